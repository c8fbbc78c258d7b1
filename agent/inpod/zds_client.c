/* inpod zds client: the agent as a ZDS client of istio-cni's socket (INPOD_UDS), with snapshots. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/inpod.h>
#include <ztunnel/log.h>
#include <ztunnel/zds.h>

#include "inpod_private.h"

#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 15000
#define MAX_SEEN 65536		/* pods one snapshot may name; more is refused */
#define MAX_BURST 64		/* messages served per poll event, so the loop stays fair */

struct inpod_zds_client {
	struct inpod *ip;			/* borrowed */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd;					/* owned; -1 while disconnected */
	bool snapshot_done;			/* SnapshotSent seen on this connection */
	bool warned;				/* connect failure logged since the last success */
	long long next_try_ms;			/* monotonic; next connection attempt */
	unsigned backoff_ms;			/* wait after the next failure */
	char **seen;				/* owned strings; uids added or kept here */
	size_t n_seen, cap_seen;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- uids added or kept since the connection began ---- */

static ssize_t seen_find(const struct inpod_zds_client *c, const char *uid)
{
	for (size_t i = 0; i < c->n_seen; i++)
		if (strcmp(c->seen[i], uid) == 0)
			return (ssize_t)i;
	return -1;
}

static int seen_add(struct inpod_zds_client *c, const char *uid)
{
	char **grown, *copy;

	if (seen_find(c, uid) >= 0)
		return 0;
	if (c->n_seen >= MAX_SEEN)
		return -E2BIG;
	if (c->n_seen == c->cap_seen) {
		size_t cap = c->cap_seen ? c->cap_seen * 2 : 16;

		grown = realloc(c->seen, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		c->seen = grown;
		c->cap_seen = cap;
	}
	copy = strdup(uid);
	if (!copy)
		return -ENOMEM;
	c->seen[c->n_seen++] = copy;
	return 0;
}

static void seen_del(struct inpod_zds_client *c, const char *uid)
{
	ssize_t i = seen_find(c, uid);

	if (i < 0)
		return;
	free(c->seen[i]);
	c->seen[i] = c->seen[--c->n_seen];
}

static void seen_clear(struct inpod_zds_client *c)
{
	while (c->n_seen)
		free(c->seen[--c->n_seen]);
}

/* ---- the connection ---- */

struct inpod_zds_client *inpod_zds_client_new(struct inpod *ip, const char *path)
{
	struct inpod_zds_client *c;

	if (strlen(path) >= sizeof(c->path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ip = ip;
	c->fd = -1;
	c->backoff_ms = BACKOFF_FIRST_MS;
	c->next_try_ms = now_ms();
	strcpy(c->path, path);
	log_info("enrollment by istio-cni", "path=%s", path);
	return c;
}

void inpod_zds_client_free(struct inpod_zds_client **cp)
{
	struct inpod_zds_client *c = *cp;

	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	seen_clear(c);
	free(c->seen);
	free(c);
	*cp = NULL;
}

bool inpod_zds_client_synced(const struct inpod_zds_client *c)
{
	return c->fd >= 0 && c->snapshot_done;
}

static void retry_later(struct inpod_zds_client *c)
{
	c->next_try_ms = now_ms() + c->backoff_ms;
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void disconnect(struct inpod_zds_client *c, const char *why)
{
	log_warn("istio-cni connection lost", "path=%s reason=\"%s\" enrolled=%u retry_ms=%u",
		 c->path, why, inpod_count(c->ip), c->backoff_ms);
	close(c->fd);
	c->fd = -1;
	c->snapshot_done = false;
	seen_clear(c);
	retry_later(c);
}

/* A connected socket: blocking sends bounded by a timeout, reads with MSG_DONTWAIT. */
static int open_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 2 };
	uint8_t hello[16];
	int fd, len, ret;

	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		goto fail;
	len = zds_encode_hello(hello, sizeof(hello));
	if (len < 0) {
		errno = -len;
		goto fail;
	}
	if (send(fd, hello, (size_t)len, MSG_NOSIGNAL) < 0)
		goto fail;
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

static void try_connect(struct inpod_zds_client *c)
{
	int fd = open_socket(c->path);

	if (fd < 0) {
		if (!c->warned)
			log_warn("cannot connect to istio-cni, retrying", "path=%s error=\"%s\"",
				 c->path, strerror(-fd));
		else
			log_debug("cannot connect to istio-cni", "path=%s error=\"%s\" retry_ms=%u",
				  c->path, strerror(-fd), c->backoff_ms);
		c->warned = true;
		retry_later(c);
		return;
	}
	c->fd = fd;
	c->warned = false;
	c->snapshot_done = false;
	seen_clear(c);
	log_info("connected to istio-cni", "path=%s enrolled=%u", c->path, inpod_count(c->ip));
}

int inpod_zds_client_pollfds(struct inpod_zds_client *c, struct pollfd *fds, int max,
			     int *timeout_ms)
{
	long long wait;

	if (c->fd >= 0) {
		if (max < 1)
			return 0;
		fds[0] = (struct pollfd){ .fd = c->fd, .events = POLLIN };
		return 1;
	}
	wait = c->next_try_ms - now_ms();
	if (wait < 0)
		wait = 0;
	if (timeout_ms && (*timeout_ms < 0 || *timeout_ms > wait))
		*timeout_ms = (int)wait;
	return 0;
}

/* ---- requests ---- */

struct uid_list {
	char **uids;
	size_t n, cap;
	bool failed;
};

static void collect_uid(const char *uid, void *arg)
{
	struct uid_list *l = arg;
	char **grown;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;

		grown = realloc(l->uids, cap * sizeof(*grown));
		if (!grown) {
			l->failed = true;
			return;
		}
		l->uids = grown;
		l->cap = cap;
	}
	l->uids[l->n] = strdup(uid);
	if (l->uids[l->n])
		l->n++;
	else
		l->failed = true;
}

/* Removes the enrolled pods the snapshot did not name; istio-cni saw them go while we were away. */
static int reconcile(struct inpod_zds_client *c, char *err, size_t errlen)
{
	struct uid_list l = { 0 };
	unsigned removed = 0;

	inpod_for_each_pod(c->ip, collect_uid, &l);
	for (size_t i = 0; i < l.n; i++) {
		if (!l.failed && seen_find(c, l.uids[i]) < 0) {
			log_info("pod not in the istio-cni snapshot", "uid=%s", l.uids[i]);
			inpod_remove(c->ip, l.uids[i]);
			removed++;
		}
		free(l.uids[i]);
	}
	free(l.uids);
	if (l.failed) {
		snprintf(err, errlen, "out of memory reconciling the snapshot");
		return -ENOMEM;
	}
	log_info("istio-cni snapshot applied", "kept=%zu removed=%u enrolled=%u", c->n_seen,
		 removed, inpod_count(c->ip));
	seen_clear(c);
	return 0;
}

static int handle_add(struct inpod_zds_client *c, const struct zds_request *req, int netns_fd,
		      char *err, size_t errlen)
{
	int ret;

	log_info("istio-cni add", "uid=%s pod=%s/%s", req->uid, req->namespace_, req->name);
	if (!c->snapshot_done && (ret = seen_add(c, req->uid)) < 0) {
		close(netns_fd);
		snprintf(err, errlen, "cannot track pod %s: %s", req->uid, strerror(-ret));
		return ret;
	}
	if (inpod_enrolled_in(c->ip, req->uid, netns_fd)) {
		close(netns_fd);	/* a replayed Add: the pod is already served */
		return 0;
	}
	/* true: no record in the state dir; istio-cni owns the truth and replays it */
	ret = inpod_enroll(c->ip, req->uid, req->name, req->namespace_, netns_fd, true, err, errlen);
	if (ret < 0)
		log_warn("pod enrollment failed", "uid=%s pod=%s/%s error=\"%s\"", req->uid,
			 req->namespace_, req->name, err);
	return ret;
}

/*
 * Serves one request; err is set (non-empty) when the answer is a NACK. netns_fd is consumed.
 * Returns false for a protocol error, after which (as upstream) the session is dropped and
 * istio-cni replays its snapshot on the next one; a pod that failed to start is not one.
 */
static bool handle_request(struct inpod_zds_client *c, const struct zds_request *req,
			   int netns_fd, int nfds, char *err, size_t errlen)
{
	if (req->kind == ZDS_REQ_ADD && nfds != 1) {
		snprintf(err, errlen, "AddWorkload needs exactly one network namespace fd, got %d",
			 nfds);
		goto drop_fd;
	}
	if (req->kind != ZDS_REQ_ADD && nfds > 0) {
		snprintf(err, errlen, "unexpected fd with a request other than AddWorkload");
		goto drop_fd;
	}
	if (req->kind == ZDS_REQ_ADD && !req->has_info) {
		snprintf(err, errlen, "workload_info is required but not present");
		close(netns_fd);
		return false;
	}
	switch (req->kind) {
	case ZDS_REQ_ADD:
		handle_add(c, req, netns_fd, err, errlen);
		return true;
	case ZDS_REQ_KEEP:
		if (c->snapshot_done) {
			snprintf(err, errlen, "KeepWorkload after SnapshotSent");
			return false;
		}
		if (seen_add(c, req->uid) < 0)
			snprintf(err, errlen, "cannot track pod %s", req->uid);
		return true;
	case ZDS_REQ_DEL:
		log_info("istio-cni del", "uid=%s", req->uid);
		seen_del(c, req->uid);
		inpod_remove(c->ip, req->uid);
		return true;
	case ZDS_REQ_SNAPSHOT_SENT:
		if (c->snapshot_done) {
			snprintf(err, errlen, "SnapshotSent received twice");
			return false;
		}
		if (reconcile(c, err, errlen) == 0) {
			c->snapshot_done = true;
			c->backoff_ms = BACKOFF_FIRST_MS;
			log_info("istio-cni snapshot synced", "path=%s", c->path);
		}
		return true;
	}
drop_fd:
	if (netns_fd >= 0)
		close(netns_fd);
	return true;	/* a missing fd fails that pod only */
}

/* Reads and answers one message; false when the connection is gone. */
static bool serve_one(struct inpod_zds_client *c)
{
	uint8_t buf[ZDS_MAX_MESSAGE];
	char err[320] = "";
	struct zds_request req;
	int netns_fd, nfds, ret;
	bool keep = false;
	ssize_t n = zds_io_recv(c->fd, buf, sizeof(buf), &netns_fd, &nfds);

	if (n == -EAGAIN || n == -EINTR)
		return false;
	if (n <= 0 && n != -EMSGSIZE) {
		disconnect(c, n == 0 ? "closed by istio-cni" : strerror((int)-n));
		return false;
	}
	ret = n < 0 ? (int)n : zds_decode_request(buf, (size_t)n, &req);
	if (ret < 0) {
		log_warn("malformed ZDS request from istio-cni", "bytes=%zd error=\"%s\"", n,
			 strerror(-ret));
		if (netns_fd >= 0)
			close(netns_fd);
		snprintf(err, sizeof(err), "malformed WorkloadRequest: %s", strerror(-ret));
	} else {
		keep = handle_request(c, &req, netns_fd, nfds, err, sizeof(err));
	}
	if (err[0])
		log_warn("istio-cni request refused", "error=\"%s\"", err);
	ret = zds_io_send_ack(c->fd, err);
	if (ret < 0 || !keep) {
		disconnect(c, ret < 0 ? strerror(-ret) : "protocol error, reconnecting");
		return false;
	}
	return true;
}

void inpod_zds_client_handle(struct inpod_zds_client *c, const struct pollfd *fds, int n)
{
	if (c->fd < 0) {
		if (now_ms() >= c->next_try_ms)
			try_connect(c);
		return;
	}
	if (n < 1 || fds[0].fd != c->fd || !fds[0].revents)
		return;
	for (int i = 0; i < MAX_BURST && c->fd >= 0; i++)
		if (!serve_one(c))
			break;
}
