/*
 * sockio.h -- whole-message IO on sockets: read exactly n bytes, send a
 * whole iovec (MSG_NOSIGNAL: a vanished peer is an error, not SIGPIPE).
 * Both retry EINTR and return 0, or -1 on EOF or error.
 */
#ifndef CASK_COMMON_SOCKIO_H
#define CASK_COMMON_SOCKIO_H
#include <stddef.h>
#include <sys/uio.h>

int sock_read_full(int fd, void *buf, size_t n);
/* iov is modified (advanced past what was sent). */
int sock_write_iov(int fd, struct iovec *iov, int n);
/* The same, passing file descriptor passfd (>= 0) along with the first byte (SCM_RIGHTS). */
int sock_write_iov_fd(int fd, struct iovec *iov, int n, int passfd);
/* sock_read_full, keeping a descriptor passed with the bytes in *fdp (set it to -1 first). */
int sock_read_full_fd(int fd, void *buf, size_t n, int *fdp);
int sock_write_full(int fd, const void *buf, size_t n);
#endif
