/*
 * ops.c -- the table of operations (CTL_OPS in ctl_impl.h), which the
 * server dispatches through and hello reads its features from.
 */
#include "ctl_impl.h"

#include <string.h>

const ctl_op ctl_ops[] = {
#define CTL_OP_ENTRY_(name, fn, feature) { name, fn, feature },
	CTL_OPS(CTL_OP_ENTRY_)
#undef CTL_OP_ENTRY_
};
const size_t ctl_nops = sizeof(ctl_ops) / sizeof(ctl_ops[0]);

const ctl_op *
ctl_op_find(const char *name)
{
	for (size_t i = 0; i < ctl_nops; i++)
		if (strcmp(ctl_ops[i].name, name) == 0)
			return &ctl_ops[i];
	return NULL;
}
