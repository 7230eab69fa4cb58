#ifndef CASK_DAEMON_NBD_H
#define CASK_DAEMON_NBD_H
/* The NBD frontend (a conn_proto, nbd.c). spec: "HOST:PORT", "[V6ADDR]:PORT" or "unix:PATH". */
int nbd_listen(const char *spec);
#endif
