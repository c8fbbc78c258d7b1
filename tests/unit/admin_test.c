// unit-standalone
/* admin_test: request parsing, routes, status codes and slow clients over real loopback TCP. */
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/log/escape.c"
#include "../../agent/log/format.c"
#include "../../agent/log/log.c"
#include "../../agent/metrics/registry.c"
#include "../../agent/metrics/render.c"
#include "../../agent/metrics/dns.c"
#include "../../agent/admin/http.c"
#include "../../agent/admin/limits.c"
#include "../../agent/admin/routes.c"
#include "../../agent/admin/server.c"

#include "check.h"

/* ---- the parser, by table ---- */

static void test_parse(void)
{
	static const struct {
		const char *head;
		int status;
		enum admin_method method;
		const char *path, *query;
	} cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0, ADMIN_M_GET, "/metrics", "" },
		{ "POST /logging?level=debug HTTP/1.0\r\n\r\n", 0, ADMIN_M_POST, "/logging",
		  "level=debug" },
		{ "HEAD / HTTP/1.1\r\nA: b\r\nC:\r\n\r\n", 0, ADMIN_M_HEAD, "/", "" },
		{ "BREW /pot HTTP/1.1\r\n\r\n", 0, ADMIN_M_OTHER, "/pot", "" },
		{ "GET /metrics HTTP/1.1\r\n\r\n\r\n", 400, 0, NULL, NULL },		/* bytes after the head */
		{ "GET /x HTTP/2.0\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET /x HTTP/1.1 \r\n\r\n", 400, 0, NULL, NULL },
		{ "GET  /x HTTP/1.1\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET x HTTP/1.1\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET /x\r\n\r\n", 400, 0, NULL, NULL },
		{ "G(T /x HTTP/1.1\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET /a\tb HTTP/1.1\r\n\r\n", 400, 0, NULL, NULL },
		{ "\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET /x HTTP/1.1\nHost: a\r\n\r\n", 400, 0, NULL, NULL },		/* bare LF */
		{ "GET /x HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, 0, NULL, NULL },	/* bare CR */
		{ "GET /x HTTP/1.1\r\nHost : a\r\n\r\n", 400, 0, NULL, NULL },	/* space before colon */
		{ "GET /x HTTP/1.1\r\nNoColon\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET /x HTTP/1.1\r\n: empty\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, 0, NULL, NULL },
		{ "GET /x HTTP/1.1\r\nA: \x01\r\n\r\n", 400, 0, NULL, NULL },
		{ "AVERYVERYLONGMETHODNAME /x HTTP/1.1\r\n\r\n", 400, 0, NULL, NULL },
	};
	char buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct admin_request req;
		size_t len = strlen(cases[i].head);

		memcpy(buf, cases[i].head, len + 1);
		int st = admin_http_parse(buf, len, &req);
		CHECK(st == cases[i].status, "parse case %zu: status %d, want %d", i, st,
		      cases[i].status);
		if (st || cases[i].status)
			continue;
		CHECK(req.method == cases[i].method && strcmp(req.path, cases[i].path) == 0 &&
			      strcmp(req.query, cases[i].query) == 0,
		      "parse case %zu: method %d path %s query %s", i, req.method, req.path,
		      req.query);
	}
	/* a NUL byte inside the head */
	memcpy(buf, "GET /x HTTP/1.1\r\nA: \0b\r\n\r\n", 27);
	struct admin_request req;
	CHECK(admin_http_parse(buf, 27, &req) == 400, "NUL in a header value");
}

static void test_query(void)
{
	static const struct {
		const char *query, *key;
		int err;
		const char *value;
	} cases[] = {
		{ "level=debug", "level", 0, "debug" },
		{ "a=1&level=warn&b", "level", 0, "warn" },
		{ "levels=x&level=%65rror", "level", 0, "error" },
		{ "level=a+b", "level", 0, "a b" },
		{ "level", "level", 0, "" },
		{ "", "level", -ENOENT, NULL },
		{ "lev=debug", "level", -ENOENT, NULL },
		{ "level=%6", "level", -EINVAL, NULL },
		{ "level=%zz", "level", -EINVAL, NULL },
		{ "level=%00", "level", -EINVAL, NULL },
		{ "level=0123456789abcdef", "level", -EINVAL, NULL },	/* longer than out */
	};
	char out[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = admin_http_query(cases[i].query, cases[i].key, out, sizeof(out));

		CHECK(err == cases[i].err, "query case %zu: %d, want %d", i, err, cases[i].err);
		if (!err && cases[i].value)
			CHECK(strcmp(out, cases[i].value) == 0, "query case %zu: %s", i, out);
	}
}

/* ---- the server, over TCP ---- */

struct fake {
	int ready;
	int drains;
};

static void fake_dump(void *ctx, FILE *out)
{
	fputs("{\"workloads\":[],\"certificates\":[{\"identity\":\"x\"}]}", out);
}

static bool fake_ready(void *ctx)
{
	return __atomic_load_n(&((struct fake *)ctx)->ready, __ATOMIC_ACQUIRE);
}

static void fake_drain(void *ctx)
{
	__atomic_fetch_add(&((struct fake *)ctx)->drains, 1, __ATOMIC_ACQ_REL);
}

static int64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connected client socket with a 5 s receive timeout, or -1. */
static int dial(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 5 };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads until EOF into resp (NUL-terminated); the length, or -1 on error/timeout. */
static ssize_t read_all(int fd, char *resp, size_t size)
{
	size_t len = 0;

	for (;;) {
		ssize_t k = recv(fd, resp + len, size - 1 - len, 0);
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		len += (size_t)k;
		if (len == size - 1)
			break;
	}
	resp[len] = '\0';
	return (ssize_t)len;
}

/* One request, the whole response into resp; the status code or -1. */
static int http(uint16_t port, const char *req, size_t req_len, char *resp, size_t size)
{
	int fd = dial(port);
	ssize_t n;

	resp[0] = '\0';
	if (fd < 0)
		return -1;
	if (send_all(fd, req, req_len) < 0) {
		close(fd);
		return -1;
	}
	n = read_all(fd, resp, size);
	close(fd);
	if (n < 12 || strncmp(resp, "HTTP/1.1 ", 9) != 0)
		return -1;
	return atoi(resp + 9);
}

static const char *body_of(const char *resp)
{
	const char *p = strstr(resp, "\r\n\r\n");

	return p ? p + 4 : "";
}

/* Content-Length must equal the body's length (or, for HEAD, be > 0 with no body). */
static int framing_ok(const char *resp, int head)
{
	const char *cl = strstr(resp, "\r\nContent-Length: ");
	size_t body = strlen(body_of(resp));

	if (!cl || !strstr(resp, "\r\nConnection: close\r\n"))
		return 0;
	long n = strtol(cl + 18, NULL, 10);
	return head ? (n > 0 && body == 0) : (size_t)n == body;
}

struct server {
	struct admin *admin;
	struct metrics *metrics;
	struct fake fake;
	uint16_t port[ADMIN_LISTENERS];
};

static int server_start(struct server *s)
{
	struct admin_config cfg = { 0, 0, 0 };
	struct admin_sources src;
	struct metrics_labels l = { .reporter = "destination", .source_workload = "client",
				    .request_protocol = "tcp", .response_flags = "-",
				    .connection_security_policy = "mutual_tls" };
	struct metrics_shard *sh;

	memset(s, 0, sizeof(*s));
	s->metrics = metrics_new();
	sh = metrics_shard_new(s->metrics);
	metrics_conn_opened(metrics_series_get(sh, &l));
	metrics_conn_opened(metrics_series_get(sh, &l));
	l.response_flags = "DENY";
	metrics_conn_failed(metrics_series_get(sh, &l));
	src = (struct admin_sources){ .metrics = s->metrics, .config_dump = fake_dump,
				      .ready = fake_ready, .drain = fake_drain, .ctx = &s->fake };
	s->admin = admin_start(&cfg, &src);
	if (!s->admin)
		return -1;
	for (int i = 0; i < ADMIN_LISTENERS; i++)
		s->port[i] = admin_bound_port(s->admin, (enum admin_listener)i);
	return 0;
}

static void test_routes(struct server *s)
{
	static const struct {
		enum admin_listener on;
		const char *req;
		int status;
		const char *type;	/* Content-Type, NULL = not checked */
		const char *body;	/* exact, or "~text" = contains */
	} cases[] = {
		{ ADMIN_LISTENER_ADMIN, "GET /config_dump HTTP/1.1\r\nHost: x\r\n\r\n", 200,
		  "application/json", "{\"workloads\":[],\"certificates\":[{\"identity\":\"x\"}]}" },
		{ ADMIN_LISTENER_ADMIN, "GET / HTTP/1.1\r\n\r\n", 200, "text/plain; charset=utf-8",
		  "~/quitquitquit" },
		{ ADMIN_LISTENER_ADMIN, "GET /nope HTTP/1.1\r\n\r\n", 404, NULL, "not found\n" },
		{ ADMIN_LISTENER_ADMIN, "GET /metrics HTTP/1.1\r\n\r\n", 404, NULL, NULL },
		{ ADMIN_LISTENER_ADMIN, "DELETE /config_dump HTTP/1.1\r\n\r\n", 405, NULL,
		  "method DELETE not allowed\n" },
		{ ADMIN_LISTENER_ADMIN, "GET /quitquitquit HTTP/1.1\r\n\r\n", 405, NULL, NULL },
		{ ADMIN_LISTENER_ADMIN, "GET /logging HTTP/1.1\r\n\r\n", 200, NULL, "level=info\n" },
		{ ADMIN_LISTENER_ADMIN, "GET /logging?level=verbose HTTP/1.1\r\n\r\n", 400, NULL,
		  NULL },
		{ ADMIN_LISTENER_ADMIN, "GET /logging?colour=red HTTP/1.1\r\n\r\n", 400, NULL, NULL },
		{ ADMIN_LISTENER_ADMIN, "PUT /logging?level=debug HTTP/1.1\r\n\r\n", 405, NULL, NULL },
		{ ADMIN_LISTENER_METRICS, "GET /metrics HTTP/1.1\r\n\r\n", 200,
		  "text/plain; version=0.0.4; charset=utf-8",
		  "~\nistio_tcp_connections_opened_total{reporter=\"destination\","
		  "source_workload=\"client\",source_canonical_service=\"unknown\"," },
		{ ADMIN_LISTENER_METRICS, "GET /stats/prometheus HTTP/1.0\r\n\r\n", 200,
		  "text/plain; version=0.0.4; charset=utf-8",
		  "~response_flags=\"DENY\",connection_security_policy=\"mutual_tls\"} 1\n" },
		{ ADMIN_LISTENER_METRICS, "GET /metrics HTTP/1.1\r\n\r\n", 200, NULL,
		  "~\n# TYPE process_open_fds gauge\nprocess_open_fds " },
		{ ADMIN_LISTENER_METRICS, "GET /metrics HTTP/1.1\r\n\r\n", 200, NULL,
		  "~\n# TYPE process_max_fds gauge\nprocess_max_fds " },
		{ ADMIN_LISTENER_METRICS, "POST /metrics HTTP/1.1\r\n\r\n", 405, NULL, NULL },
		{ ADMIN_LISTENER_METRICS, "GET /healthz/ready HTTP/1.1\r\n\r\n", 404, NULL, NULL },
		{ ADMIN_LISTENER_READY, "GET /healthz/ready HTTP/1.1\r\n\r\n", 503, NULL,
		  "not ready\n" },
		{ ADMIN_LISTENER_READY, "GET /config_dump HTTP/1.1\r\n\r\n", 404, NULL, NULL },
		{ ADMIN_LISTENER_READY, "GET healthz HTTP/1.1\r\n\r\n", 400, NULL, "Bad Request\n" },
		{ ADMIN_LISTENER_READY, "GET /healthz/ready HTTP/1.1\nHost: x\r\n\r\n", 400, NULL,
		  NULL },
		{ ADMIN_LISTENER_READY, "GET /healthz/ready HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400,
		  NULL, NULL },
	};
	static char resp[256 * 1024];
	char want[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = http(s->port[cases[i].on], cases[i].req, strlen(cases[i].req), resp,
			      sizeof(resp));
		const char *body = body_of(resp);

		CHECK(st == cases[i].status, "route case %zu: status %d, want %d", i, st,
		      cases[i].status);
		CHECK(framing_ok(resp, 0), "route case %zu: framing:\n%s", i, resp);
		if (cases[i].type) {
			snprintf(want, sizeof(want), "\r\nContent-Type: %s\r\n", cases[i].type);
			CHECK(strstr(resp, want), "route case %zu: no %s", i, want);
		}
		if (cases[i].body && cases[i].body[0] == '~')
			CHECK(strstr(body, cases[i].body + 1), "route case %zu: body %s", i, body);
		else if (cases[i].body)
			CHECK(strcmp(body, cases[i].body) == 0, "route case %zu: body %s", i, body);
		if (st == 405)
			CHECK(strstr(resp, "\r\nAllow: "), "route case %zu: 405 without Allow", i);
	}
	const char *head = "HEAD /config_dump HTTP/1.1\r\n\r\n";
	CHECK(http(s->port[0], head, strlen(head), resp, sizeof(resp)) == 200 &&
		      framing_ok(resp, 1), "HEAD: length without body:\n%s", resp);
}

static int simple(struct server *s, enum admin_listener on, const char *req, char *resp,
		  size_t size)
{
	return http(s->port[on], req, strlen(req), resp, size);
}

static void test_actions(struct server *s)
{
	char resp[4096];

	CHECK(simple(s, ADMIN_LISTENER_ADMIN, "POST /logging?level=debug HTTP/1.1\r\n\r\n", resp,
		     sizeof(resp)) == 200 && strcmp(body_of(resp), "level=debug\n") == 0,
	      "set debug: %s", resp);
	CHECK(log_enabled(LOG_DEBUG), "level is debug now");
	CHECK(simple(s, ADMIN_LISTENER_ADMIN, "GET /logging?level=%65rror HTTP/1.1\r\n\r\n", resp,
		     sizeof(resp)) == 200 && strcmp(body_of(resp), "level=error\n") == 0,
	      "set error (percent-encoded): %s", resp);
	CHECK(!log_enabled(LOG_WARN) && log_enabled(LOG_ERROR), "level is error now");
	CHECK(simple(s, ADMIN_LISTENER_ADMIN, "GET /logging HTTP/1.1\r\n\r\n", resp,
		     sizeof(resp)) == 200 && strcmp(body_of(resp), "level=error\n") == 0,
	      "current level: %s", resp);
	CHECK(simple(s, ADMIN_LISTENER_ADMIN, "POST /logging?level=loud HTTP/1.1\r\n\r\n", resp,
		     sizeof(resp)) == 400 && !log_enabled(LOG_WARN),
	      "unknown level refused, level kept");
	log_set_level_name("info");

	CHECK(__atomic_load_n(&s->fake.drains, __ATOMIC_ACQUIRE) == 0, "no drain yet");
	CHECK(simple(s, ADMIN_LISTENER_ADMIN, "POST /quitquitquit HTTP/1.1\r\n\r\n", resp,
		     sizeof(resp)) == 200 && strcmp(body_of(resp), "draining\n") == 0,
	      "quitquitquit: %s", resp);
	CHECK(__atomic_load_n(&s->fake.drains, __ATOMIC_ACQUIRE) == 1, "drain called once");

	const char *ready = "GET /healthz/ready HTTP/1.1\r\n\r\n";
	__atomic_store_n(&s->fake.ready, 1, __ATOMIC_RELEASE);
	CHECK(simple(s, ADMIN_LISTENER_READY, ready, resp, sizeof(resp)) == 200 &&
		      strcmp(body_of(resp), "ready\n") == 0, "ready: %s", resp);
	__atomic_store_n(&s->fake.ready, 0, __ATOMIC_RELEASE);
	CHECK(simple(s, ADMIN_LISTENER_READY, ready, resp, sizeof(resp)) == 503,
	      "not ready again: %s", resp);
}

/* A head of exactly total bytes: "GET /healthz/ready HTTP/1.1\r\nX: aaaa...\r\n\r\n". */
static char *head_of_size(size_t total)
{
	const char *start = "GET /healthz/ready HTTP/1.1\r\nX: ";
	char *h = malloc(total + 1);
	size_t s = strlen(start);

	memcpy(h, start, s);
	memset(h + s, 'a', total - s - 4);
	memcpy(h + total - 4, "\r\n\r\n", 5);
	return h;
}

static void test_limits(struct server *s)
{
	size_t big = 20 * 1024;
	char *line = malloc(big + 32), resp[4096];
	int n = snprintf(line, big + 32, "GET /");

	memset(line + n, 'a', big);
	strcpy(line + n + big, " HTTP/1.1\r\n\r\n");
	CHECK(http(s->port[ADMIN_LISTENER_READY], line, strlen(line), resp, sizeof(resp)) == 431,
	      "20 KiB request line: %s", resp);
	free(line);

	char *h = head_of_size(ADMIN_HEAD_MAX);
	CHECK(http(s->port[ADMIN_LISTENER_READY], h, ADMIN_HEAD_MAX, resp, sizeof(resp)) == 503,
	      "a head of exactly 8 KiB is served: %.40s", resp);
	free(h);
	h = head_of_size(ADMIN_HEAD_MAX + 1);
	CHECK(http(s->port[ADMIN_LISTENER_READY], h, ADMIN_HEAD_MAX + 1, resp, sizeof(resp)) == 431,
	      "8 KiB + 1 is too large: %.40s", resp);
	free(h);

	/* a request in pieces, split inside the final CRLF CRLF */
	int fd = dial(s->port[ADMIN_LISTENER_READY]);
	const char *part[] = { "GET /healthz", "/ready HTTP/1.1\r\n\r", "\n" };
	for (int i = 0; fd >= 0 && i < 3; i++) {
		send_all(fd, part[i], strlen(part[i]));
		usleep(20000);	/* separate segments; correctness does not depend on it */
	}
	CHECK(fd >= 0 && read_all(fd, resp, sizeof(resp)) > 0 && atoi(resp + 9) == 503,
	      "request in pieces: %s", resp);
	if (fd >= 0)
		close(fd);
}

static void test_slow_clients(struct server *s)
{
	const char *ready = "GET /healthz/ready HTTP/1.1\r\n\r\n";
	int stall = dial(s->port[ADMIN_LISTENER_ADMIN]);
	int silent = dial(s->port[ADMIN_LISTENER_METRICS]);
	char resp[4096];
	int64_t t0 = ms_now();

	CHECK(stall >= 0 && silent >= 0, "dial");
	if (stall < 0 || silent < 0)
		goto out;
	send_all(stall, "GET /config_dump HTTP/1.1\r\nHo", 29);
	/* other clients are served at once, on every port */
	for (int i = 0; i < 5; i++)
		CHECK(simple(s, ADMIN_LISTENER_READY, ready, resp, sizeof(resp)) == 503,
		      "served beside a stalled client: %s", resp);
	CHECK(simple(s, ADMIN_LISTENER_ADMIN, "GET /config_dump HTTP/1.1\r\n\r\n", resp,
		     sizeof(resp)) == 200, "admin port beside a stalled client");
	CHECK(ms_now() - t0 < 1000, "served in %lld ms, not after the stall", (long long)(ms_now() - t0));
	/* the stalled client gets 408 after the 2 s read deadline */
	ssize_t n = read_all(stall, resp, sizeof(resp));
	int64_t waited = ms_now() - t0;
	CHECK(n > 12 && atoi(resp + 9) == 408, "stalled client gets 408: %s", n > 0 ? resp : "");
	CHECK(waited >= ADMIN_READ_TIMEOUT_MS - 100 && waited < ADMIN_READ_TIMEOUT_MS + 1500,
	      "408 after %lld ms", (long long)waited);
	/* a client that never sent a byte is just closed */
	n = read_all(silent, resp, sizeof(resp));
	CHECK(n == 0, "silent client closed without a response (%zd)", n);
out:
	if (stall >= 0)
		close(stall);
	if (silent >= 0)
		close(silent);
}

static void test_many_clients(struct server *s)
{
	int fd[ADMIN_MAX_CONNS + 8];
	char resp[4096];
	const char *ready = "GET /healthz/ready HTTP/1.1\r\n\r\n";
	int ok = 0;

	/* more connections than slots: the extra wait in the backlog and are served later */
	for (int i = 0; i < ADMIN_MAX_CONNS + 8; i++)
		fd[i] = dial(s->port[ADMIN_LISTENER_READY]);
	for (int i = 0; i < ADMIN_MAX_CONNS + 8; i++)
		if (fd[i] >= 0)
			send_all(fd[i], ready, strlen(ready));
	for (int i = 0; i < ADMIN_MAX_CONNS + 8; i++) {
		if (fd[i] < 0)
			continue;
		ok += read_all(fd[i], resp, sizeof(resp)) > 12 && atoi(resp + 9) == 503;
		close(fd[i]);
	}
	CHECK(ok == ADMIN_MAX_CONNS + 8, "%d of %d concurrent clients served", ok,
	      ADMIN_MAX_CONNS + 8);
}

static void test_stop(struct server *s)
{
	struct admin_config cfg = { s->port[0], 0, 0 };
	struct admin_sources src = { .ctx = &s->fake };
	struct admin *other;
	char resp[64];
	int idle = dial(s->port[ADMIN_LISTENER_ADMIN]);

	errno = 0;
	other = admin_start(&cfg, &src);
	CHECK(!other && errno == EADDRINUSE, "second server on a used port: errno %d", errno);
	admin_stop(&other);
	CHECK(admin_start(NULL, &src) == NULL && errno == EINVAL, "NULL config");

	int64_t t0 = ms_now();
	admin_stop(&s->admin);
	CHECK(s->admin == NULL, "admin_stop clears the pointer");
	CHECK(ms_now() - t0 < 500, "stop took %lld ms", (long long)(ms_now() - t0));
	/* EOF if the server had accepted it, a reset if it still sat in the backlog; not a hang */
	ssize_t n = idle >= 0 ? read_all(idle, resp, sizeof(resp)) : -2;
	CHECK(n == 0 || (n == -1 && errno == ECONNRESET), "open connection closed (%zd, %s)", n,
	      strerror(errno));
	if (idle >= 0)
		close(idle);
	CHECK(dial(s->port[ADMIN_LISTENER_READY]) < 0, "listener closed after stop");
	CHECK(admin_bound_port(NULL, ADMIN_LISTENER_ADMIN) == 0, "bound port of NULL");
	metrics_free(&s->metrics);
}

/* RLIMIT_NOFILE: the soft limit is raised to the hard one, the dump and the gauges show it. */
static void test_nofile(void)
{
	struct rlimit rl, low;
	char *dump = NULL, want[128];
	size_t len = 0;
	FILE *f;
	long before, after;
	int fd;

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit: %s", strerror(errno));
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max < 64) {
		printf("test_nofile: skipped (hard limit %llu)\n", (unsigned long long)rl.rlim_max);
		return;
	}
	low = (struct rlimit){ .rlim_cur = rl.rlim_max - 1, .rlim_max = rl.rlim_max };
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0, "lowering the soft limit: %s", strerror(errno));
	CHECK(admin_raise_nofile() == 0, "admin_raise_nofile failed");
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == rl.rlim_max,
	      "soft %llu after the raise, hard %llu", (unsigned long long)rl.rlim_cur,
	      (unsigned long long)rl.rlim_max);
	f = open_memstream(&dump, &len);
	admin_limits_dump_json(f);
	fclose(f);
	snprintf(want, sizeof(want), "\"limits\":{\"nofile\":{\"soft\":%llu,\"hard\":%llu}}",
		 (unsigned long long)rl.rlim_max, (unsigned long long)rl.rlim_max);
	CHECK(dump && !strcmp(dump, want), "limits dump: %s, want %s", dump, want);
	free(dump);
	before = open_fds();
	fd = dup(0);
	after = open_fds();
	CHECK(before > 0 && after == before + 1, "open_fds: %ld, then %ld after a dup", before, after);
	close(fd);
}

int main(void)
{
	static struct server s;

	signal(SIGPIPE, SIG_IGN);
	test_parse();
	test_query();
	test_nofile();
	if (server_start(&s) != 0) {
		printf("FAIL admin_start: %s\n", strerror(errno));
		return 1;
	}
	CHECK(s.port[0] && s.port[1] && s.port[2], "bound ports %u %u %u", s.port[0], s.port[1],
	      s.port[2]);
	test_routes(&s);
	test_actions(&s);
	test_limits(&s);
	test_many_clients(&s);
	test_slow_clients(&s);
	test_stop(&s);
	if (failures) {
		printf("admin_test: %d failure(s)\n", failures);
		return 1;
	}
	printf("admin_test: ok\n");
	return 0;
}
