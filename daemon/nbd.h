#ifndef CASK_DAEMON_NBD_H
#define CASK_DAEMON_NBD_H
/* spec: "HOST:PORT", "[V6ADDR]:PORT" or "unix:PATH". */
int nbd_listen(const char *spec);
int nbd_start(void);
/* Stop accepting, let connections finish their current request, close them. */
void nbd_stop(void);
#endif
