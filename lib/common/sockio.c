/*
 * sockio.c -- see sockio.h. Shared by the NBD server, the control server
 * and the client library.
 */
#include "sockio.h"

#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>

int
sock_read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int
sock_write_iov(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr m = { 0 };
		m.msg_iov = iov;
		m.msg_iovlen = (size_t)n;
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int
sock_write_full(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	return sock_write_iov(fd, &iov, 1);
}
