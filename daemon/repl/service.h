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
/*
 * Read leases (docs/replication.md 3.3 item 7, as built). A replica volume
 * of this caskd ("POOL/NAME") grants its promised epoch's holder a lease of
 * REPL_LEASE_MS from each grant (a KEEPALIVE answered, a promise made, or
 * the in-process controller's own tick). repl_lease_grant records one:
 * 0, or -ESTALE when a newer epoch has begun to be promised here
 * (repl_lease_wait), so the older holder can no longer renew. Before a
 * newer epoch is promised, repl_lease_wait stops all grants to older
 * epochs and sleeps until the last grant is REPL_LEASE_MS old (CLOCK_MONOTONIC;
 * a volume with no grant since this process started counts its start as
 * one, so a restarted replica also waits one lease); it returns after at
 * most REPL_LEASE_MS.
 */
#include "cask/engine.h"
#define REPL_LEASE_MS 2000u
int repl_lease_grant(const char *export_name, ce_epoch e);
void repl_lease_wait(const char *export_name, ce_epoch newer);
#endif
