// unit-standalone
/* zds_client_test: the istio-cni ZDS client against a scripted SEQPACKET server — hello, snapshot
 * reconciliation across reconnects, replayed Adds, NACKs for bad fds and bad bytes, backoff. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "../../agent/inpod/zds.c"
#include "../../agent/state/text.c"
#include "../../agent/inpod/zds_io.c"
#include "../../agent/inpod/zds_client.c"

#include "check.h"

/* ---- a fake pod registry in place of pods.c ---- */

#define MAX_PODS 8
struct inpod {
	char uid[MAX_PODS][64];
	struct stat ns[MAX_PODS];
	int n;
	int enrolls;	/* inpod_enroll calls that enrolled */
};

static int pod_index(struct inpod *ip, const char *uid)
{
	for (int i = 0; i < ip->n; i++)
		if (strcmp(ip->uid[i], uid) == 0)
			return i;
	return -1;
}

int inpod_enroll(struct inpod *ip, const char *uid, const char *name, const char *namespace_,
		 int netns_fd, bool persist, char *err, size_t errlen)
{
	int i = pod_index(ip, uid);

	if (strcmp(name, "broken") == 0) {
		snprintf(err, errlen, "cannot enroll %s", name);
		close(netns_fd);
		return -EPROTO;
	}
	if (i < 0) {
		if (ip->n == MAX_PODS) {
			close(netns_fd);
			return -ENOSPC;
		}
		i = ip->n++;
	}
	snprintf(ip->uid[i], sizeof(ip->uid[i]), "%s", uid);
	fstat(netns_fd, &ip->ns[i]);
	close(netns_fd);
	ip->enrolls++;
	return 0;
}

int inpod_remove(struct inpod *ip, const char *uid)
{
	int i = pod_index(ip, uid);

	if (i >= 0) {
		ip->n--;
		memcpy(ip->uid[i], ip->uid[ip->n], sizeof(ip->uid[i]));
		ip->ns[i] = ip->ns[ip->n];
	}
	return 0;
}

unsigned inpod_count(struct inpod *ip)
{
	return (unsigned)ip->n;
}

void inpod_for_each_pod(struct inpod *ip, void (*fn)(const char *uid, void *arg), void *arg)
{
	for (int i = 0; i < ip->n; i++)
		fn(ip->uid[i], arg);
}

bool inpod_enrolled_in(struct inpod *ip, const char *uid, int netns_fd)
{
	int i = pod_index(ip, uid);
	struct stat st;

	return i >= 0 && fstat(netns_fd, &st) == 0 && st.st_ino == ip->ns[i].st_ino &&
	       st.st_dev == ip->ns[i].st_dev;
}

void log_emit(enum log_level level, const char *msg, const char *fields, ...)
{
	if (getenv("VERBOSE"))
		fprintf(stderr, "log: %s\n", msg);
}

bool log_enabled(enum log_level level)
{
	return false;
}

/* ---- the scripted istio-cni side ---- */

static char sock_path[108];
static int listen_fd = -1;

static void server_listen(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	strcpy(sa.sun_path, sock_path);
	unlink(sock_path);
	listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(listen_fd, 4) < 0) {
		printf("FAIL: cannot listen on %s: %s\n", sock_path, strerror(errno));
		exit(1);
	}
}

/* One round of the caller's poll loop. */
static void pump(struct inpod_zds_client *c, int wait_ms)
{
	struct pollfd fds[1];
	int timeout = wait_ms;
	int n = inpod_zds_client_pollfds(c, fds, 1, &timeout);

	poll(fds, (nfds_t)n, timeout);
	inpod_zds_client_handle(c, fds, n);
}

/* Lets the client connect; returns the server side after checking the hello. */
static int server_accept(struct inpod_zds_client *c)
{
	uint8_t buf[64];
	uint32_t version = 0;
	int fd;
	ssize_t n;

	for (int i = 0; i < 100; i++) {
		struct pollfd lp = { .fd = listen_fd, .events = POLLIN };

		if (poll(&lp, 1, 0) == 1)
			break;
		pump(c, 20);
	}
	fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	CHECK(fd >= 0, "accept: %s", strerror(errno));
	if (fd < 0)
		exit(1);
	n = recv(fd, buf, sizeof(buf), 0);	/* the hello is sent with the connect */
	CHECK(n > 0 && zds_decode_hello(buf, (size_t)n, &version) == 0 && version == 1,
	      "hello: %zd bytes, version %u", n, version);
	return fd;
}

/* istio-cni closes the connection; the client notices on its next poll. */
static void server_close(struct inpod_zds_client *c, int srv)
{
	close(srv);
	for (int i = 0; i < 10 && c->fd >= 0; i++)
		pump(c, 50);
	CHECK(c->fd < 0 && !inpod_zds_client_synced(c), "disconnect not noticed");
}

/* Sends bytes with nfds copies of netns_fd, lets the client serve it, returns the Ack's text. */
static const char *exchange(struct inpod_zds_client *c, int srv, const uint8_t *msg, size_t len,
			    int netns_fd, int nfds)
{
	static char error[400];
	char cbuf[CMSG_SPACE(4 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	uint8_t buf[600];
	ssize_t n;

	if (nfds > 0) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		for (int i = 0; i < nfds; i++)
			memcpy(CMSG_DATA(cm) + i * sizeof(int), &netns_fd, sizeof(int));
	}
	if (sendmsg(srv, &mh, MSG_NOSIGNAL) < 0)
		return "(send failed)";
	pump(c, 1000);
	struct timeval tv = { .tv_sec = 2 };

	setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(srv, buf, sizeof(buf), 0);
	if (n <= 0)
		return "(no ack)";
	if (zds_decode_ack(buf, (size_t)n, error, sizeof(error)) < 0)
		return "(bad ack)";
	return error;
}

static const char *request(struct inpod_zds_client *c, int srv, enum zds_request_kind kind,
			   const char *uid, const char *name, int netns_fd, int nfds)
{
	struct zds_request req = { .kind = kind };
	uint8_t buf[ZDS_MAX_MESSAGE];
	int len;

	snprintf(req.uid, sizeof(req.uid), "%s", uid);
	if (name) {
		req.has_info = 1;
		snprintf(req.name, sizeof(req.name), "%s", name);
		snprintf(req.namespace_, sizeof(req.namespace_), "default");
	}
	len = zds_encode_request(&req, buf, sizeof(buf));
	if (len < 0)
		return "(encode failed)";
	return exchange(c, srv, buf, (size_t)len, netns_fd, nfds);
}

#define ACK_OK(what, got) CHECK(strcmp((got), "") == 0, "%s: want ack, got \"%s\"", what, got)
#define NACK(what, got, text)                                                          \
	CHECK(strstr((got), (text)) != NULL, "%s: want NACK with \"%s\", got \"%s\"", what, \
	      text, got)

static bool enrolled(struct inpod *ip, const char *uid)
{
	return pod_index(ip, uid) >= 0;
}

/* The client replays nothing itself: istio-cni sends A and B again and the snapshot. */
static int replay(struct inpod_zds_client *c, int ns_a, int ns_b)
{
	int srv = server_accept(c);

	ACK_OK("replayed add A", request(c, srv, ZDS_REQ_ADD, "uid-a", "a", ns_a, 1));
	ACK_OK("replayed add B", request(c, srv, ZDS_REQ_ADD, "uid-b", "b", ns_b, 1));
	ACK_OK("replayed snapshot", request(c, srv, ZDS_REQ_SNAPSHOT_SENT, "", NULL, -1, 0));
	return srv;
}

/* After a protocol error's NACK the client drops the session (as upstream) and reconnects. */
static int dropped(struct inpod_zds_client *c, int srv, const char *what, int ns_a, int ns_b)
{
	for (int i = 0; i < 10 && c->fd >= 0; i++)
		pump(c, 50);
	CHECK(c->fd < 0 && !inpod_zds_client_synced(c), "%s: the session went on", what);
	close(srv);
	return replay(c, ns_a, ns_b);
}

/* First connection: a snapshot of A and B, then bad requests, each NACKed: a pod's failure
 * keeps the session, a protocol error ends it. */
static int first_connection(struct inpod_zds_client *c, struct inpod *ip, int ns_a, int ns_b)
{
	int srv = server_accept(c);
	static const uint8_t garbage[] = { 0x0a, 0x7f, 0x01 };	/* add, length past the end */

	CHECK(!inpod_zds_client_synced(c), "synced before the snapshot");
	ACK_OK("add A", request(c, srv, ZDS_REQ_ADD, "uid-a", "a", ns_a, 1));
	ACK_OK("add B", request(c, srv, ZDS_REQ_ADD, "uid-b", "b", ns_b, 1));
	CHECK(!inpod_zds_client_synced(c), "synced before SnapshotSent");
	ACK_OK("snapshot sent", request(c, srv, ZDS_REQ_SNAPSHOT_SENT, "", NULL, -1, 0));
	CHECK(inpod_zds_client_synced(c), "not synced after SnapshotSent");
	CHECK(enrolled(ip, "uid-a") && enrolled(ip, "uid-b") && ip->n == 2, "pods: %d", ip->n);

	NACK("add without fd", request(c, srv, ZDS_REQ_ADD, "uid-c", "c", -1, 0), "exactly one");
	NACK("add with two fds", request(c, srv, ZDS_REQ_ADD, "uid-c", "c", ns_a, 2), "got 2");
	NACK("del with fd", request(c, srv, ZDS_REQ_DEL, "uid-a", NULL, ns_a, 1), "unexpected fd");
	NACK("enroll failure", request(c, srv, ZDS_REQ_ADD, "uid-x", "broken", ns_a, 1),
	     "cannot enroll broken");
	CHECK(inpod_zds_client_synced(c) && c->fd >= 0, "a pod's NACK lost the session");
	NACK("malformed", exchange(c, srv, garbage, sizeof(garbage), -1, 0), "malformed");
	srv = dropped(c, srv, "malformed", ns_a, ns_b);
	NACK("add without workload_info", request(c, srv, ZDS_REQ_ADD, "uid-c", NULL, ns_a, 1),
	     "workload_info is required");
	srv = dropped(c, srv, "add without workload_info", ns_a, ns_b);
	NACK("keep after snapshot", request(c, srv, ZDS_REQ_KEEP, "uid-a", NULL, -1, 0),
	     "after SnapshotSent");
	srv = dropped(c, srv, "keep after snapshot", ns_a, ns_b);
	NACK("second snapshot", request(c, srv, ZDS_REQ_SNAPSHOT_SENT, "", NULL, -1, 0), "twice");
	srv = dropped(c, srv, "second snapshot", ns_a, ns_b);
	CHECK(enrolled(ip, "uid-a") && enrolled(ip, "uid-b") && !enrolled(ip, "uid-c") &&
	      ip->n == 2, "bad requests changed the pods: %d", ip->n);
	CHECK(inpod_zds_client_synced(c), "not synced after the last replay");
	return srv;
}

static void run(void)
{
	struct inpod ip = { 0 };
	struct inpod_zds_client *c;
	int ns_a = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int ns_b = open("/dev/null", O_RDONLY | O_CLOEXEC), srv, enrolls;

	snprintf(sock_path, sizeof(sock_path), "/tmp/zds_client_test.%d.sock", getpid());
	server_listen();
	c = inpod_zds_client_new(&ip, sock_path);
	CHECK(c != NULL, "client_new");
	if (!c)
		exit(1);
	srv = first_connection(c, &ip, ns_a, ns_b);

	/* istio-cni restarts: pods keep being served, not synced until the next snapshot */
	server_close(c, srv);
	CHECK(ip.n == 2, "pods dropped with the connection: %d", ip.n);

	/* second connection: A replayed (same netns: not re-enrolled) and kept, B gone */
	srv = server_accept(c);
	enrolls = ip.enrolls;
	ACK_OK("replayed add A again", request(c, srv, ZDS_REQ_ADD, "uid-a", "a", ns_a, 1));
	CHECK(ip.enrolls == enrolls, "replayed Add re-enrolled the pod");
	ACK_OK("keep B then del B", request(c, srv, ZDS_REQ_KEEP, "uid-b", NULL, -1, 0));
	ACK_OK("del B before snapshot", request(c, srv, ZDS_REQ_DEL, "uid-b", NULL, -1, 0));
	CHECK(!enrolled(&ip, "uid-b"), "Del before the snapshot kept B");
	ACK_OK("snapshot 2", request(c, srv, ZDS_REQ_SNAPSHOT_SENT, "", NULL, -1, 0));
	CHECK(enrolled(&ip, "uid-a") && ip.n == 1, "after snapshot 2: %d pods", ip.n);
	server_close(c, srv);

	/* third connection: only a Keep of B (unknown) → A not named, removed */
	srv = server_accept(c);
	ACK_OK("keep unknown", request(c, srv, ZDS_REQ_KEEP, "uid-b", NULL, -1, 0));
	ACK_OK("snapshot 3", request(c, srv, ZDS_REQ_SNAPSHOT_SENT, "", NULL, -1, 0));
	CHECK(ip.n == 0, "A not named in snapshot 3 but still enrolled");
	ACK_OK("add after snapshot", request(c, srv, ZDS_REQ_ADD, "uid-a", "a", ns_a, 1));
	ACK_OK("del after snapshot", request(c, srv, ZDS_REQ_DEL, "uid-a", NULL, -1, 0));
	CHECK(ip.n == 0, "Del after the snapshot kept A");

	/* istio-cni gone: the waits double from 10 ms up to 15 s */
	close(listen_fd);
	unlink(sock_path);
	server_close(c, srv);
	c->backoff_ms = BACKOFF_FIRST_MS;
	for (unsigned want = 10, i = 0; i < 14; i++, want = want * 2 > 15000 ? 15000 : want * 2) {
		int timeout = 60000;

		c->next_try_ms = 0;
		inpod_zds_client_handle(c, NULL, 0);
		inpod_zds_client_pollfds(c, NULL, 0, &timeout);
		CHECK(timeout > (int)want - 50 && timeout <= (int)want,
		      "attempt %u: wait %d ms, want %u", i, timeout, want);
	}
	inpod_zds_client_free(&c);
	CHECK(c == NULL, "free did not clear the pointer");
	close(ns_a);
	close(ns_b);
}

int main(void)
{
	run();
	if (failures) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("zds_client_test: all checks passed\n");
	return 0;
}
