#ifndef CASK_DAEMON_SOCKPATH_H
#define CASK_DAEMON_SOCKPATH_H
/*
 * Unix socket paths caskd listens on (the control socket, unix NBD
 * listeners). sockpath_claim decides what may be done with whatever is at
 * PATH before caskd binds there, the one place that decision is made:
 *   nothing there               → 0
 *   a socket nobody listens on  → removed (a stale socket of a dead caskd), 0
 *   a socket that accepts       → -EADDRINUSE ("in use by another process")
 *   anything else (a regular file, a directory, a symlink, a FIFO, a socket
 *   that cannot be probed)      → an error naming PATH; nothing is removed.
 * what names the socket in messages ("control socket", "NBD socket").
 */
int sockpath_claim(const char *path, const char *what);
#endif
