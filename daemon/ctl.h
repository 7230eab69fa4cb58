#ifndef CASK_DAEMON_CTL_H
#define CASK_DAEMON_CTL_H
#define CE_MAX_VDEVS_API 64
int ctl_listen(const char *path, const char *version);
int ctl_start(void);
/* Stop accepting, let clients finish the request they are in, close them. */
void ctl_stop(void);
/* The stable code (control-protocol.md) of engine error err about a pool, or a volume (vol != 0). */
const char *ctl_code_for(int err, int vol);
#endif
