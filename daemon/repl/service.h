#ifndef CASK_DAEMON_REPL_SERVICE_H
#define CASK_DAEMON_REPL_SERVICE_H
/*
 * service.h -- the replica service: `caskd --replica-listen ADDR:PORT`
 * accepts controllers and applies their frames to replica volumes
 * (docs/replication.md, docs/replica-protocol.md; service.c).
 */
#include <stddef.h>
#include <stdint.h>

typedef struct repl_peer_config {
	const uint8_t *key;      /* the --peer-key secret, or NULL */
	size_t keylen;
	int insecure;            /* --insecure-peers */
	char advertise[64];      /* the address this caskd puts in HELLO and records */
	uint64_t instance;       /* random per process start */
} repl_peer_config;

/* Set once at start, before any listener or controller runs. */
void repl_peer_configure(const repl_peer_config *c);
const repl_peer_config *repl_peer_cfg(void);

/* Bind ADDR:PORT ([V6]:PORT); accept from repl_service_start on. 0 or -errno (message set). */
int repl_service_listen(const char *addr);
int repl_service_start(void);
void repl_service_stop(void);

/* "HOST:PORT" / "[V6]:PORT" -> host, port. 0 or -EINVAL. */
int repl_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);
#endif
