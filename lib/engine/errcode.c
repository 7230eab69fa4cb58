/*
 * errcode.c -- the engine's stable error codes (cask/errcodes.h).
 *
 * Owns nothing: the code of a failure is kept beside its message in the
 * per-thread error detail of lib/common/util.c. An engine function names
 * a specific code with err_setc where a condition shares its errno with
 * others; err_set leaves the code its errno says.
 *
 * Invariants:
 *   1. Every failure has a code: err_set derives one from the errno, and
 *      ce_errcode_of() derives one for a -errno returned without a message.
 *   2. A code is never inferred from a message's text.
 */
#include <cask/engine.h>

#include "util.h"

int
ce_errcode(void)
{
	return err_last_code();
}

int
ce_errcode_of(int err)
{
	int c = err_code(err);
	ASSERT(err == 0 || c != 0); /* invariant 1: every failure has a code */
	return c;
}
