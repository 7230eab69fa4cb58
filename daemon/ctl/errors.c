/*
 * errors.c -- the stable code of a failed request (cask/errcodes.h).
 *
 * The engine gives each failure a code (ce_errcode_of); the two generic
 * ones, NOT_FOUND and EXISTS, are named here for what the request was about
 * (a pool or a volume); an operation that knows better (a snapshot, a hold)
 * names it itself. Nothing here reads a message.
 */
#include "ctl_impl.h"

/* The stable code of an engine error, in the context of a pool or a volume (ctl.h). */
int
ctl_code(int err, int vol)
{
	int c = ce_errcode_of(err);
	if (c == CE_E_NOT_FOUND)
		return vol ? CE_E_VOLUME_NOT_FOUND : CE_E_POOL_NOT_FOUND;
	if (c == CE_E_EXISTS)
		return vol ? CE_E_VOLUME_EXISTS : CE_E_POOL_EXISTS;
	return c;
}

const char *
ctl_wire(int code)
{
	const char *w = ce_errcode_wire(code);
	return w != NULL ? w : ce_errcode_wire(CE_E_INTERNAL); /* NONE, or a generic code not named */
}
