/* inpod cni server: the unix socket the CNI plugin speaks ZDS to (hello, Add/Del, Ack). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ztunnel/inpod.h>
#include <ztunnel/log.h>
#include <ztunnel/zds.h>

#include "inpod_private.h"

#define MAX_CLIENTS 32

struct inpod_cni_server {
	struct inpod *ip;
	int listen_fd;		/* owned */
	int clients[MAX_CLIENTS];	/* owned; -1 when free */
};

static int mkdirs(const char *path)
{
	char buf[256];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

int inpod_cni_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	ret = mkdirs(path);
	if (ret < 0)
		return ret;
	strcpy(sa.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 64) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

struct inpod_cni_server *inpod_cni_server_new(struct inpod *ip, int listen_fd)
{
	struct inpod_cni_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->ip = ip;
	s->listen_fd = listen_fd;
	for (int i = 0; i < MAX_CLIENTS; i++)
		s->clients[i] = -1;
	return s;
}

void inpod_cni_server_free(struct inpod_cni_server **sp)
{
	struct inpod_cni_server *s = *sp;

	if (!s)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i] >= 0)
			close(s->clients[i]);
	close(s->listen_fd);
	free(s);
	*sp = NULL;
}

int inpod_cni_pollfds(struct inpod_cni_server *s, struct pollfd *fds, int max)
{
	int n = 0;

	if (max < 1 + MAX_CLIENTS)
		return 0;
	fds[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	for (int i = 0; i < MAX_CLIENTS; i++)
		fds[n++] = (struct pollfd){ .fd = s->clients[i], .events = POLLIN };
	return n;
}

static void send_ack(int fd, const char *error)
{
	int ret = zds_io_send_ack(fd, error);

	if (ret < 0)
		log_warn("cannot answer the CNI plugin", "error=\"%s\"", strerror(-ret));
}

static void accept_client(struct inpod_cni_server *s)
{
	uint8_t hello[16];
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC), i, len;

	if (fd < 0)
		return;
	for (i = 0; i < MAX_CLIENTS && s->clients[i] >= 0; i++)
		;
	len = zds_encode_hello(hello, sizeof(hello));
	if (i == MAX_CLIENTS || len < 0 || send(fd, hello, (size_t)len, MSG_NOSIGNAL) < 0) {
		close(fd);
		return;
	}
	struct timeval tv = { .tv_sec = 5 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	s->clients[i] = fd;
}

static void handle_request(struct inpod_cni_server *s, int fd, const struct zds_request *req,
			   int netns_fd)
{
	char err[300] = "";

	switch (req->kind) {
	case ZDS_REQ_ADD:
		if (netns_fd < 0) {
			send_ack(fd, "AddWorkload without a network namespace fd");
			return;
		}
		log_info("enrollment request", "uid=%s pod=%s/%s", req->uid, req->namespace_,
			 req->name);
		if (inpod_enroll(s->ip, req->uid, req->name, req->namespace_, netns_fd, false, err,
				 sizeof(err)) < 0) {
			log_warn("pod enrollment failed", "uid=%s pod=%s/%s error=\"%s\"", req->uid,
				 req->namespace_, req->name, err);
			send_ack(fd, err);
			return;
		}
		send_ack(fd, NULL);
		return;
	case ZDS_REQ_DEL:
		inpod_remove(s->ip, req->uid);
		break;
	case ZDS_REQ_KEEP:
	case ZDS_REQ_SNAPSHOT_SENT:
		break;
	}
	if (netns_fd >= 0)
		close(netns_fd);
	send_ack(fd, NULL);
}

static void serve_client(struct inpod_cni_server *s, int slot)
{
	uint8_t buf[ZDS_MAX_MESSAGE];
	struct zds_request req;
	int fd = s->clients[slot], netns_fd, ret;
	ssize_t n = zds_io_recv(fd, buf, sizeof(buf), &netns_fd, NULL);

	if (n == -EAGAIN)
		return;
	if (n <= 0) {
		if (n < 0)
			log_warn("CNI socket read failed", "error=\"%s\"", strerror((int)-n));
		close(fd);
		s->clients[slot] = -1;
		return;
	}
	ret = zds_decode_request(buf, (size_t)n, &req);
	if (ret < 0) {
		log_warn("malformed ZDS request", "bytes=%zd error=\"%s\"", n, strerror(-ret));
		if (netns_fd >= 0)
			close(netns_fd);
		send_ack(fd, "malformed WorkloadRequest");
		return;
	}
	handle_request(s, fd, &req, netns_fd);
}

void inpod_cni_handle(struct inpod_cni_server *s, const struct pollfd *fds, int n)
{
	if (n < 1 + MAX_CLIENTS)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (s->clients[i] >= 0 && fds[1 + i].revents)
			serve_client(s, i);
	if (fds[0].revents & POLLIN)
		accept_client(s);
}
