#ifndef CASK_ENGINE_PROP_H
#define CASK_ENGINE_PROP_H
/*
 * prop.h -- volume properties by name (prop.c): the one place that knows
 * their names, values and defaults.
 */

/* Which settable property prop names (CE_PROP_*), or 0 with the error set. */
unsigned prop_of(const char *prop);
/* Property which's value from its name (value NULL: an error): 0, or -EINVAL with the error set. */
int prop_parse(unsigned which, const char *value, int *val);
/* What property which is when not set ("default"). */
int prop_default(unsigned which);
#endif
