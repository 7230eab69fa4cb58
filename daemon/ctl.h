#ifndef CASK_DAEMON_CTL_H
#define CASK_DAEMON_CTL_H
#define CE_MAX_VDEVS_API 64
int ctl_listen(const char *path, const char *version);
int ctl_start(void);
/* Stop accepting, let clients finish the request they are in, close them. */
void ctl_stop(void);
/*
 * The stable code (CE_E_*, cask/errcodes.h) of failure err about a pool,
 * or a volume (vol != 0): the engine's own code, with what was not found
 * or exists named for the context.
 */
int ctl_code(int err, int vol);
/* A code's name on the wire (INTERNAL for one that has none). */
const char *ctl_wire(int code);
#endif
