/* inpod zds io: reading one ZDS message with its netns fd, and answering with an Ack. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ztunnel/zds.h>

#include "inpod_private.h"

#define MAX_FDS 4	/* fds beyond this are truncated by the kernel (MSG_CTRUNC) */

ssize_t zds_io_recv(int fd, uint8_t *buf, size_t cap, int *netns_fd, int *nfds)
{
	char cbuf[CMSG_SPACE(MAX_FDS * sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	int count = 0;

	*netns_fd = -1;
	if (nfds)
		*nfds = 0;
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int fds[MAX_FDS];

		if (nfd > MAX_FDS)
			nfd = MAX_FDS;
		memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
		for (size_t i = 0; i < nfd; i++, count++) {
			if (*netns_fd < 0)
				*netns_fd = fds[i];
			else
				close(fds[i]);
		}
	}
	if (nfds)
		*nfds = count;
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		if (*netns_fd >= 0)
			close(*netns_fd);
		*netns_fd = -1;
		return -EMSGSIZE;
	}
	return n;
}

int zds_io_send_ack(int fd, const char *error)
{
	uint8_t buf[600];
	int len = zds_encode_ack(error, buf, sizeof(buf));

	if (len < 0)
		len = zds_encode_ack("agent error too long to report", buf, sizeof(buf));
	if (len < 0)
		return len;
	if (send(fd, buf, (size_t)len, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}
