/*
 * sockio.c -- see sockio.h. Shared by the NBD server, the control server
 * and the client library.
 */
#include "sockio.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* Step past w bytes that were sent. */
static void
iov_advance(struct iovec **iovp, int *np, size_t w)
{
	struct iovec *iov = *iovp;
	int n = *np;
	while (n > 0 && w >= iov->iov_len) {
		w -= iov->iov_len;
		iov++;
		n--;
	}
	if (n > 0) {
		iov->iov_base = (uint8_t *)iov->iov_base + w;
		iov->iov_len -= w;
	}
	*iovp = iov;
	*np = n;
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
		iov_advance(&iov, &n, (size_t)w);
	}
	return 0;
}

int
sock_write_full(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	return sock_write_iov(fd, &iov, 1);
}

int
sock_read_full_fd(int fd, void *buf, size_t n, int *fdp)
{
	uint8_t *p = buf;
	while (n > 0) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(4 * sizeof(int))];
		} cb;
		struct iovec iov = { p, n };
		struct msghdr m = { 0 };
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = cb.b;
		m.msg_controllen = sizeof(cb.b);
		ssize_t r = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int got;
				memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (*fdp < 0)
					*fdp = got;
				else
					close(got); /* one descriptor per request */
			}
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int
sock_write_iov_fd(int fd, struct iovec *iov, int n, int passfd)
{
	if (passfd < 0)
		return sock_write_iov(fd, iov, n);
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cb;
	memset(&cb, 0, sizeof(cb));
	struct msghdr m = { 0 };
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	m.msg_control = cb.b;
	m.msg_controllen = sizeof(cb.b);
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &passfd, sizeof(int));
	ssize_t w;
	do
		w = sendmsg(fd, &m, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w <= 0)
		return -1;
	/* the descriptor went with the first byte; the rest as usual */
	iov_advance(&iov, &n, (size_t)w);
	return n > 0 ? sock_write_iov(fd, iov, n) : 0;
}
