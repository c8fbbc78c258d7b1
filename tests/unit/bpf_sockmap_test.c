/* bpf_sockmap_test: the socket fast path (sockops + sk_msg) on real loopback sockets in a netns of
 * its own, with the programs attached to a cgroup of its own. Neither program type has
 * BPF_PROG_TEST_RUN, so the kernel runs them for real: which pairs are short-circuited, that
 * bytes skip TCP in order, half-close, and the bound on bytes a reader leaves unread. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <bpf/bpf.h>

#include <ztunnel/redirect.h>

#include "check.h"

#define AGENT_ADDR "10.99.0.1"	/* stands for a captured destination (outbound leg) */
#define POD_ADDR "10.99.0.2"	/* the pod's own address (inbound delivery leg) */
#define MARK 0x539

static char cgroup[256], cgroup_root[128];

static void leave_cgroup(void)
{
	char path[300];
	FILE *f;

	if (!cgroup[0])
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup_root);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d\n", getpid());
		fclose(f);
	}
	rmdir(cgroup);
	cgroup[0] = '\0';
}

/* Moves this process into a new cgroup under the v2 root: the programs see only our sockets. */
static int enter_cgroup(void)
{
	char path[300];
	FILE *f;

	snprintf(cgroup_root, sizeof(cgroup_root), "%s", redirect_sockmap_default_cgroup());
	snprintf(cgroup, sizeof(cgroup), "%s/zt-unit-sockmap-%d", cgroup_root, getpid());
	if (mkdir(cgroup, 0755) < 0) {
		cgroup[0] = '\0';
		return -errno;
	}
	atexit(leave_cgroup);
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "%d\n", getpid());
	return fclose(f) == 0 ? 0 : -errno;
}

/* A counter from the agent's /config_dump view ("sockmap":{..., "name":N, ...}). */
static long long counter(const char *name)
{
	char *buf = NULL, key[64], *p;
	size_t len = 0;
	long long v = -1;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -1;
	redirect_sockmap_dump_json(f);
	fclose(f);
	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(buf, key);
	if (p)
		v = strtoll(p + strlen(key), NULL, 10);
	free(buf);
	return v;
}

static int tcp_socket(uint32_t mark)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (mark)
			setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	}
	return fd;
}

/* A connected pair: c connects (with client_mark) to a listener on addr (with server_mark). */
static int pair(const char *addr, uint32_t client_mark, uint32_t server_mark, int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int l = tcp_socket(server_mark);

	*c = *s = -1;
	inet_pton(AF_INET, addr, &a.sin_addr);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		goto fail;
	*c = tcp_socket(client_mark);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	*s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*s < 0)
		goto fail;
	close(l);
	return 0;
fail:
	printf("pair %s: %s\n", addr, strerror(errno));
	if (l >= 0)
		close(l);
	if (*c >= 0)
		close(*c);
	*c = -1;
	return -1;
}

static void unpair(int c, int s)
{
	close(c);
	close(s);
}

/* Reads exactly len bytes (waiting with poll, at most 5 s per read); 0 when all came. */
static int read_n(int fd, char *buf, size_t len)
{
	while (len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0)
			return -ETIMEDOUT;
		n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int eof_next(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	for (int i = 0; i < 100; i++) {
		if (poll(&p, 1, 5000) <= 0)
			return 0;
		ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);

		if (n == 0)
			return 1;
		if (n > 0 || errno != EAGAIN)
			return 0;
	}
	return 0;
}

static void echo_both_ways(int c, int s, const char *what)
{
	char buf[5];

	CHECK(send(c, "hello", 5, 0) == 5 && read_n(s, buf, 5) == 0 && !memcmp(buf, "hello", 5),
	      "%s: bytes arrive one way", what);
	CHECK(send(s, "olleh", 5, 0) == 5 && read_n(c, buf, 5) == 0 && !memcmp(buf, "olleh", 5),
	      "%s: and back", what);
}

static void test_which_pairs(void)
{
	long long pairs = counter("pairs"), bytes = counter("bytesRedirected");
	int c, s;

	if (pair(AGENT_ADDR, 0, MARK, &c, &s) == 0) {
		echo_both_ways(c, s, "app -> agent (outbound leg)");
		unpair(c, s);
	}
	CHECK(counter("pairs") == pairs + 1, "the outbound leg is paired (%lld -> %lld)", pairs,
	      counter("pairs"));
	CHECK(counter("bytesRedirected") == bytes + 10, "its 10 bytes skipped TCP (%lld -> %lld)",
	      bytes, counter("bytesRedirected"));
	if (pair(POD_ADDR, MARK, 0, &c, &s) == 0) {
		echo_both_ways(c, s, "agent -> app (inbound delivery leg)");
		unpair(c, s);
	}
	CHECK(counter("pairs") == pairs + 2, "the inbound delivery leg is paired");
	CHECK(counter("bytesRedirected") == bytes + 20, "its bytes skipped TCP too");

	pairs = counter("pairs");
	bytes = counter("bytesRedirected");
	if (pair(POD_ADDR, 0, 0, &c, &s) == 0) {	/* app to app inside the pod */
		echo_both_ways(c, s, "app -> app");
		unpair(c, s);
	}
	if (pair(AGENT_ADDR, 0, 0, &c, &s) == 0) {	/* neither end the agent's */
		echo_both_ways(c, s, "app -> another app");
		unpair(c, s);
	}
	if (pair(POD_ADDR, MARK, MARK, &c, &s) == 0) {	/* the agent to itself */
		echo_both_ways(c, s, "agent -> agent");
		unpair(c, s);
	}
	if (pair("127.0.0.1", 0, MARK, &c, &s) == 0) {	/* loopback is never captured */
		echo_both_ways(c, s, "app -> agent on 127.0.0.1");
		unpair(c, s);
	}
	CHECK(counter("pairs") == pairs, "no pair without exactly one agent end, none on loopback "
	      "(%lld -> %lld)", pairs, counter("pairs"));
	CHECK(counter("bytesRedirected") == bytes, "and none of their bytes skipped TCP");
}

static void test_half_close(void)
{
	static char big[100000], got[100000];
	int c, s;

	if (pair(AGENT_ADDR, 0, MARK, &c, &s) < 0)
		return;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	CHECK(send(c, big, sizeof(big), 0) == (ssize_t)sizeof(big), "100000 bytes sent");
	CHECK(shutdown(c, SHUT_WR) == 0, "then SHUT_WR");
	CHECK(read_n(s, got, sizeof(got)) == 0 && !memcmp(big, got, sizeof(big)),
	      "the peer reads them all, in order");
	CHECK(eof_next(s), "then end of stream");
	CHECK(send(s, "reply", 5, 0) == 5 && read_n(c, got, 5) == 0 && !memcmp(got, "reply", 5),
	      "the half-closed end still receives");
	CHECK(shutdown(s, SHUT_WR) == 0 && eof_next(c), "and sees the peer's end of stream");
	unpair(c, s);
}

/* Reads n bytes of the counting pattern from fd, checking that word *want comes next. */
static int read_words(int fd, size_t n, uint32_t *want)
{
	static uint32_t buf[16384];

	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);

		if (read_n(fd, (char *)buf, k) < 0) {
			CHECK(0, "reading back stopped with %zu bytes left", n);
			return -1;
		}
		for (size_t i = 0; i < k / 4; i++, (*want)++)
			if (buf[i] != *want) {
				CHECK(0, "word %u arrived out of order (%u)", *want, buf[i]);
				return -1;
			}
		n -= k;
	}
	return 0;
}

/* Sends the counting pattern from word *next without blocking, up to max bytes. */
static size_t write_words(int fd, size_t max, uint32_t *next)
{
	static uint32_t chunk[16384];	/* 64 KiB */
	size_t sent = 0;

	while (sent < max) {
		for (size_t i = 0; i < sizeof(chunk) / 4; i++)
			chunk[i] = *next + (uint32_t)i;
		ssize_t n = send(fd, chunk, sizeof(chunk), MSG_DONTWAIT);

		if (n < 0)
			break;
		/* what was not taken is sent again from where it stopped (whole words here) */
		CHECK(n % 4 == 0, "a partial send of %zd bytes", n);
		*next += (uint32_t)n / 4;
		sent += (size_t)n;
	}
	return sent;
}

/* A reader that does not read: the writer is held back by TCP once the peer's queue passes the
 * bound, and all arrives in order, also when the writer goes on while the TCP bytes are only
 * half read; after a full drain the pair goes back to the fast path. */
static void test_queue_bound(void)
{
	long long full = counter("tcpQueueFull"), back = counter("toRedirect");
	uint32_t next = 0, want = 0, w;
	size_t sent, more;
	int c, s;

	if (pair(AGENT_ADDR, 0, MARK, &c, &s) < 0)
		return;
	sent = write_words(c, 256u << 20, &next);	/* a writer without a bound gets that far */
	CHECK(errno == EAGAIN, "the writer stops with EAGAIN (%s)", strerror(errno));
	CHECK(sent < (64u << 20), "after %zu bytes: no more than the 4 MiB queue bound plus TCP's "
	      "buffers", sent);
	CHECK(counter("tcpQueueFull") > full, "the full queue sent it to TCP");
	/* read past the redirected bytes into the TCP ones, then write more: it must queue
	 * behind the unread TCP bytes, not jump ahead of them */
	if (read_words(s, sent / 8 * 7, &want) == 0) {
		more = write_words(c, 1u << 20, &next);
		CHECK(more > 0, "the writer goes on once there is room");
		CHECK(counter("toRedirect") == back, "and stays on TCP while TCP bytes are unread");
		read_words(s, sent - sent / 8 * 7 + more, &want);
	}
	/* all TCP bytes read: the next send may go the fast path again */
	for (int i = 0; i < 50 && counter("toRedirect") == back; i++) {
		w = next++;
		CHECK(send(c, &w, 4, 0) == 4, "small send %d", i);
		read_words(s, 4, &want);
	}
	CHECK(counter("toRedirect") > back, "back on the fast path once TCP was drained");
	w = next++;
	CHECK(send(c, &w, 4, 0) == 4 && read_words(s, 4, &want) == 0, "and in order after it");
	unpair(c, s);
}

static void test_pod_removed(void)
{
	long long pairs;
	int c, s;

	redirect_sockmap_pod_del();
	pairs = counter("pairs");
	if (pair(AGENT_ADDR, 0, MARK, &c, &s) == 0) {
		echo_both_ways(c, s, "after the pod left");
		unpair(c, s);
	}
	CHECK(counter("pairs") == pairs, "a netns no longer enrolled is not paired");
}

int main(void)
{
	struct redirect_pod pod = { .netns_fd = -1, .n_ipv4 = 1 };
	char err[512];
	int ret, cg;
	__u32 n = 0;

	if (getuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		printf("bpf_sockmap_test: SKIP (needs root for a netns of its own)\n");
		return 77;
	}
	if (system("ip link set lo up && ip addr add " AGENT_ADDR "/32 dev lo && "
		   "ip addr add " POD_ADDR "/32 dev lo") != 0) {
		printf("bpf_sockmap_test: SKIP (cannot set up lo with ip)\n");
		return 77;
	}
	ret = enter_cgroup();
	if (ret < 0) {
		printf("bpf_sockmap_test: SKIP (no cgroup v2 to attach to: %s)\n", strerror(-ret));
		return 77;
	}
	ret = redirect_sockmap_start(cgroup, MARK, err, sizeof(err));
	if (ret < 0) {
		printf("bpf_sockmap_test: SKIP (%s)\n", err);
		return 77;
	}
	inet_pton(AF_INET, POD_ADDR, &pod.ipv4[0]);
	CHECK(redirect_sockmap_pod_add(&pod, err, sizeof(err)) == 0, "pod_add: %s", err);
	test_which_pairs();
	test_half_close();
	test_queue_bound();
	test_pod_removed();
	redirect_sockmap_stop();
	cg = open(cgroup, O_RDONLY | O_DIRECTORY);
	CHECK(cg >= 0 && bpf_prog_query(cg, BPF_CGROUP_SOCK_OPS, 0, NULL, NULL, &n) == 0 && n == 0,
	      "stop leaves no sock_ops program on the cgroup (%u)", n);
	if (cg >= 0)
		close(cg);
	leave_cgroup();
	printf("bpf_sockmap_test: %s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
