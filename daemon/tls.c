/*
 * tls.c -- the TLS server context of caskd's frontends (tls.h): x509
 * certificates and pre-shared keys (RFC 4279 / TLS 1.3 external PSK), as
 * NBD clients use them (NBD_OPT_STARTTLS: libnbd's nbds:// URIs,
 * qemu's tls-creds-x509 and tls-creds-psk). conn.c runs the handshake and
 * the records on a connection (conn_start_tls).
 *
 * Invariants:
 *   1. TLS 1.2 or newer only; with certificates, only forward-secret
 *      suites OpenSSL's default list allows; with PSK, the PSK suites.
 *   2. A PSK identity is looked up exactly (length and bytes) in the key
 *      file read at start; an unknown identity fails the handshake.
 *   3. With --tls-ca, a client without a certificate signed by that CA is
 *      refused in the handshake.
 *   4. With --tls-access, an export is opened (or listed) only for an
 *      identity whose line names it: exactly, or by the pattern POOL/STAR
 *      (STAR being the character '*': the volumes and snapshots of POOL),
 *      or STAR alone (all); "-" names the clients without an identity (in
 *      the clear, or x509 without a client certificate). Without the file
 *      every client may open every export.
 */
#include "tls.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pskent {
	char *id;
	unsigned char *key;
	size_t keylen;
} pskent;

typedef struct access_ent {
	char *id;               /* "-": no identity */
	char **pat;
	size_t npat;
} access_ent;

static SSL_CTX *ctx;
static access_ent *acl;
static size_t nacl;
static int have_acl;
static int mode = TLS_OFF;
static pskent *psks;
static size_t npsk;

static int
ssl_err(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return err_set(-EINVAL, "TLS: %s: %s", what, e ? buf : "failed");
}

static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "identity:hexkey" per line (psktool's format), blank lines and # comments skipped. */
static int
load_psk(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return err_set(-errno, "TLS: cannot read the PSK file %s: %s", path, strerror(errno));
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		size_t n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		size_t hl = colon ? strlen(colon + 1) : 0;
		if (colon == NULL || colon == line || hl == 0 || hl % 2 != 0 || hl / 2 > PSK_MAX_PSK_LEN) {
			fclose(f);
			return err_set(-EINVAL, "TLS: %s line %d: want IDENTITY:HEXKEY (at most %d key bytes)", path, lineno,
			    PSK_MAX_PSK_LEN);
		}
		*colon = '\0';
		pskent e = { xstrdup(line), xmalloc(hl / 2), hl / 2 };
		for (size_t i = 0; i < e.keylen; i++) {
			int hi = hexval(colon[1 + 2 * i]), lo = hexval(colon[2 + 2 * i]);
			if (hi < 0 || lo < 0) {
				free(e.id);
				free(e.key);
				fclose(f);
				return err_set(-EINVAL, "TLS: %s line %d: the key is not hexadecimal", path, lineno);
			}
			e.key[i] = (unsigned char)(hi << 4 | lo);
		}
		psks = xrealloc(psks, (npsk + 1) * sizeof(*psks));
		psks[npsk++] = e;
	}
	fclose(f);
	if (npsk == 0)
		return err_set(-EINVAL, "TLS: the PSK file %s holds no key", path);
	return 0;
}

/* TLS 1.2 PSK suites, and TLS 1.3 external PSKs through OpenSSL's compatibility path (SHA-256). */
static unsigned int
psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk, unsigned int max_len)
{
	if (identity == NULL)
		return 0;
	for (size_t i = 0; i < npsk; i++)
		if (strcmp(psks[i].id, identity) == 0 && psks[i].keylen <= max_len) {
			memcpy(psk, psks[i].key, psks[i].keylen);
			SSL_set_app_data(ssl, psks[i].id); /* the identity, for conn.c (TLS 1.3 keeps none) */
			return (unsigned int)psks[i].keylen;
		}
	log_info("TLS: unknown PSK identity refused");
	return 0;
}

/* "IDENTITY PATTERN..." per line (invariant 4), # comments. */
static int
load_access(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return err_set(-errno, "TLS: cannot read the access file %s: %s", path, strerror(errno));
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *save, *tok = strtok_r(line, " \t\r\n", &save);
		if (tok == NULL || tok[0] == '#')
			continue;
		access_ent e = { xstrdup(tok), NULL, 0 };
		while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
			e.pat = xrealloc(e.pat, (e.npat + 1) * sizeof(char *));
			e.pat[e.npat++] = xstrdup(tok);
		}
		if (e.npat == 0) {
			fclose(f);
			free(e.id);
			return err_set(-EINVAL, "TLS: %s line %d: want IDENTITY EXPORT... (POOL/VOL, POOL/*, *)", path,
			    lineno);
		}
		acl = xrealloc(acl, (nacl + 1) * sizeof(*acl));
		acl[nacl++] = e;
	}
	fclose(f);
	have_acl = 1;
	return 0;
}

static int
pattern_matches(const char *pat, const char *ex)
{
	size_t n = strlen(pat);
	if (strcmp(pat, "*") == 0)
		return 1;
	if (n >= 2 && strcmp(pat + n - 2, "/*") == 0)
		return strncmp(ex, pat, n - 1) == 0; /* "pool/" prefix */
	return strcmp(pat, ex) == 0;
}

int
tls_allows(const char *identity, const char *export_name)
{
	if (!have_acl)
		return 1;
	const char *who = identity[0] ? identity : "-";
	for (size_t i = 0; i < nacl; i++)
		if (strcmp(acl[i].id, who) == 0)
			for (size_t k = 0; k < acl[i].npat; k++)
				if (pattern_matches(acl[i].pat[k], export_name))
					return 1;
	return 0;
}

int
tls_init(const tls_config *cfg)
{
	mode = cfg->mode;
	if (cfg->access != NULL) {
		int err = load_access(cfg->access);
		if (err != 0)
			return err;
	}
	if (mode == TLS_OFF) {
		if (cfg->cert || cfg->key || cfg->psk || cfg->ca || cfg->access)
			return err_set(-EINVAL, "--tls-cert, --tls-key, --tls-ca, --tls-psk and --tls-access need --tls=on or "
			    "--tls=require");
		return 0;
	}
	if ((cfg->cert == NULL) != (cfg->key == NULL))
		return err_set(-EINVAL, "--tls-cert and --tls-key go together");
	if (cfg->cert == NULL && cfg->psk == NULL)
		return err_set(-EINVAL, "--tls=%s needs --tls-cert and --tls-key, or --tls-psk",
		    mode == TLS_REQUIRE ? "require" : "on");
	if (cfg->ca != NULL && cfg->cert == NULL)
		return err_set(-EINVAL, "--tls-ca (client certificates) needs a server certificate (--tls-cert)");
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return ssl_err("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (cfg->cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1)
			return ssl_err(cfg->cert);
		if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key, SSL_FILETYPE_PEM) != 1)
			return ssl_err(cfg->key);
		if (SSL_CTX_check_private_key(ctx) != 1)
			return ssl_err("the key does not match the certificate");
	}
	if (cfg->ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->ca, NULL) != 1)
			return ssl_err(cfg->ca);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	if (cfg->psk != NULL) {
		int err = load_psk(cfg->psk);
		if (err != 0)
			return err;
		SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
		/*
		 * TLS 1.3: OpenSSL binds a PSK from this callback to SHA-256, so a SHA-256 suite must
		 * be chosen whatever the client prefers (GnuTLS lists AES-256-GCM/SHA-384 first).
		 */
		if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
		    "TLS_AES_256_GCM_SHA384") != 1)
			return ssl_err("TLS 1.3 suites");
		SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
		/* TLS 1.2 PSK suites beside the certificate ones (TLS 1.3 suites are separate) */
		if (SSL_CTX_set_cipher_list(ctx, cfg->cert ? "DEFAULT:PSK:!aNULL:!eNULL" : "PSK:!aNULL:!eNULL") != 1)
			return ssl_err("cipher list");
	}
	log_info("TLS %s: %s%s%s%s", mode == TLS_REQUIRE ? "required" : "offered",
	    cfg->cert ? "x509 certificate " : "", cfg->cert ? cfg->cert : "",
	    cfg->ca ? " (client certificates required)" : "", cfg->psk ? (cfg->cert ? ", PSK" : "PSK") : "");
	return 0;
}

void
tls_fini(void)
{
	SSL_CTX_free(ctx);
	ctx = NULL;
	for (size_t i = 0; i < npsk; i++) {
		OPENSSL_cleanse(psks[i].key, psks[i].keylen);
		free(psks[i].key);
		free(psks[i].id);
	}
	free(psks);
	psks = NULL;
	npsk = 0;
	for (size_t i = 0; i < nacl; i++) {
		for (size_t k = 0; k < acl[i].npat; k++)
			free(acl[i].pat[k]);
		free(acl[i].pat);
		free(acl[i].id);
	}
	free(acl);
	acl = NULL;
	nacl = 0;
	have_acl = 0;
}

int
tls_mode(void)
{
	return mode;
}

void *
tls_ctx(void)
{
	return ctx;
}
