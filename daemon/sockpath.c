/* Claiming a unix socket path: only a stale socket is ever removed (sockpath.h). */
#include "sockpath.h"
#include "util.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int
sockpath_claim(const char *path, const char *what)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(-ENAMETOOLONG, "%s path too long: %s", what, path);
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return err_set(-errno, "%s %s: %s", what, path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return err_set(-EEXIST, "%s %s: exists and is not a socket (%s); refusing to replace it", what,
		    path, S_ISREG(st.st_mode) ? "a regular file" : S_ISDIR(st.st_mode) ? "a directory" :
		    S_ISLNK(st.st_mode) ? "a symbolic link" : "not a socket");
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return err_set(-errno, "socket: %s", strerror(errno));
	int rc = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
	int e = rc == 0 ? 0 : errno;
	close(probe);
	if (rc == 0)
		return err_set(-EADDRINUSE, "%s %s: in use by another process (a listener accepted a connection)",
		    what, path);
	if (e != ECONNREFUSED)
		return err_set(-e, "%s %s: cannot tell whether it is stale: %s", what, path, strerror(e));
	/*
	 * Stale: a socket with no listener (its caskd died without removing it).
	 * Between the probe and this unlink another process could have bound a
	 * new socket here; the inode check narrows that to the instant between
	 * the second lstat and unlink. (Two caskds started at the same instant
	 * on one path are not fully serialised; the state directory lock covers
	 * the usual case of the same --state.)
	 */
	struct stat st2;
	if (lstat(path, &st2) != 0 || st2.st_ino != st.st_ino || st2.st_dev != st.st_dev)
		return err_set(-EAGAIN, "%s %s: changed while caskd was checking it", what, path);
	if (unlink(path) != 0 && errno != ENOENT)
		return err_set(-errno, "%s %s: cannot remove the stale socket: %s", what, path, strerror(errno));
	return 0;
}
