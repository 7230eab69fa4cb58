#ifndef CASK_ENGINE_REBUILD_H
#define CASK_ENGINE_REBUILD_H
/*
 * rebuild.h -- what repl.c asks of the rebuild side (rebuild.c; the
 * public calls are ce_rebuild_* in cask/engine.h).
 */
#include "phys.h"

/* A replica record in this state applies the live stream's sequenced operations:
 * complete, and rebuilding (a write-only member, docs/replication.md 12.4). */
static inline int
rebuild_takes_live(const repl_phys *r)
{
	return r->rp_state == RP_COMPLETE || r->rp_state == RP_REBUILDING;
}
#endif
