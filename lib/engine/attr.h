/*
 * attr.h -- dataset attributes (attr.c): the attribute object and its sync.
 */
#ifndef CASK_ENGINE_ATTR_H
#define CASK_ENGINE_ATTR_H

#include "pool_impl.h"

void attr_init(ce_pool *p);
int attr_load(ce_pool *p);
int attr_sync(ce_pool *p, uint64_t txg);
void attr_fini(ce_pool *p);

#endif
