#ifndef CASK_DAEMON_TLS_H
#define CASK_DAEMON_TLS_H
/*
 * tls -- caskd's TLS configuration for the frontends (OpenSSL): the server
 * context built from --tls-cert/--tls-key (x509, optionally --tls-ca to
 * require client certificates) and/or --tls-psk (a psktool file of
 * "identity:hexkey" lines), and the policy --tls=off|on|require.
 */
enum { TLS_OFF, TLS_ON, TLS_REQUIRE };

typedef struct tls_config {
	int mode;               /* TLS_OFF (default), TLS_ON (offered), TLS_REQUIRE */
	const char *cert, *key; /* x509 server certificate chain and key (PEM) */
	const char *ca;         /* CA of the client certificates to require, or NULL */
	const char *psk;        /* PSK file, or NULL */
	const char *access;     /* --tls-access: which identity may open which exports, or NULL (all) */
} tls_config;

/* Build the context (errors in ce_errmsg()); with mode TLS_OFF nothing. */
int tls_init(const tls_config *cfg);
void tls_fini(void);
int tls_mode(void);
/* The SSL_CTX * (as void *, so conn.h needs no OpenSSL header), or NULL when TLS is off. */
void *tls_ctx(void);
/* Whether a client authenticated as identity ("" for none: in the clear, or x509 without a
 * client certificate) may open export ("pool/vol" or "pool/vol@snap"); without --tls-access
 * every client may open every export. */
int tls_allows(const char *identity, const char *export_name);
#endif
