/* inpod netns: entering a pod's network namespace to create sockets and install rules. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

#include <ztunnel/inpod.h>
#include <ztunnel/log.h>

static int host_netns = -1;	/* the agent's own netns, opened once at start */

int inpod_netns_init(void)
{
	host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	return host_netns < 0 ? -errno : 0;
}

static int leave(void)
{
	if (setns(host_netns, CLONE_NEWNET) < 0) {
		/* a thread stuck in a pod's netns would create sockets in the wrong place */
		log_error("cannot return to the host network namespace", "errno=%d", errno);
		abort();
	}
	return 0;
}

int inpod_in_netns(int netns_fd, int (*fn)(void *arg), void *arg)
{
	int ret;

	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	ret = fn(arg);
	leave();
	return ret;
}

int inpod_socket(int netns_fd, int family, int type, uint32_t mark)
{
	int fd, err;

	if (setns(netns_fd, CLONE_NEWNET) < 0)
		return -errno;
	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	err = errno;
	leave();
	if (fd < 0)
		return -err;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		err = errno;
		close(fd);
		return -err;
	}
	return fd;
}
