// ztbench: benchmark load tool (request/response, connection rate, held connections, echo server).
// Build: cc -O2 -o build/ztbench tests/bench/ztbench.c -lpthread
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_S	5		/* blocking connect/send/recv give up after this */
#define MAX_SIZE	(1 << 20)	/* rr request size bound */
#define MAX_SAMPLES	(1 << 25)	/* rr stops measuring after this many requests */
#define MAX_DURATION	3600
#define MAX_HOLD	100000
#define MAX_THREADS	256
#define ECHO_BUF	65536

struct opts {
	const char *host;
	const char *port;
	long rate;		/* rr: requests per second, 0 = as fast as possible */
	long duration;		/* seconds */
	long size;		/* rr: bytes per request */
	long concurrency;	/* conn: threads */
	long count;		/* hold: connections */
	long seconds;		/* hold: how long to hold them */
};

static void usage(void)
{
	fprintf(stderr,
		"usage: ztbench rr HOST PORT --rate R --duration S [--size N]\n"
		"       ztbench conn HOST PORT --duration S [--concurrency C]\n"
		"       ztbench hold HOST PORT --count N --seconds S\n"
		"       ztbench echo-server PORT [--duration S]\n");
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long parse_num(const char *name, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "ztbench: %s must be an integer in [%ld, %ld], got '%s'\n",
			name, min, max, s);
		exit(2);
	}
	return v;
}

static void parse_flags(struct opts *o, int argc, char **argv)
{
	for (int i = 0; i < argc; i += 2) {
		const char *k = argv[i];

		if (i + 1 >= argc) {
			fprintf(stderr, "ztbench: %s needs a value\n", k);
			usage();
		}
		if (!strcmp(k, "--rate"))
			o->rate = parse_num(k, argv[i + 1], 0, 10000000);
		else if (!strcmp(k, "--duration"))
			o->duration = parse_num(k, argv[i + 1], 1, MAX_DURATION);
		else if (!strcmp(k, "--size"))
			o->size = parse_num(k, argv[i + 1], 1, MAX_SIZE);
		else if (!strcmp(k, "--concurrency"))
			o->concurrency = parse_num(k, argv[i + 1], 1, MAX_THREADS);
		else if (!strcmp(k, "--count"))
			o->count = parse_num(k, argv[i + 1], 1, MAX_HOLD);
		else if (!strcmp(k, "--seconds"))
			o->seconds = parse_num(k, argv[i + 1], 0, MAX_DURATION);
		else {
			fprintf(stderr, "ztbench: unknown option %s\n", k);
			usage();
		}
	}
}

/* Resolves HOST:PORT once (IPv4 or IPv6) into addr. */
static int resolve(const char *host, const char *port, struct sockaddr_storage *addr,
		   socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int rc = getaddrinfo(host, port, &hints, &res);

	if (rc) {
		fprintf(stderr, "ztbench: cannot resolve %s:%s: %s\n", host, port,
			gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Blocking connect with IO_TIMEOUT_S on connect, send and recv. Returns fd or -errno. */
static int dial(const struct sockaddr_storage *addr, socklen_t len)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int one = 1, fd, err;

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)addr, len) < 0) {
		err = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(fd);
		return -err;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -ECONNRESET;	/* peer closed before the full echo */
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t percentile(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

struct samples {
	uint64_t *v;	/* latencies in ns, owned */
	size_t n, cap;
};

static int samples_add(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1 << 16;
		uint64_t *bigger;

		if (cap > MAX_SAMPLES)
			return -ENOSPC;
		bigger = realloc(s->v, cap * sizeof(*bigger));
		if (!bigger)
			return -ENOMEM;
		s->v = bigger;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
	return 0;
}

/* Sleeps until request n is due at the given rate; returns 1 if it would be past deadline. */
static int pace(uint64_t start, uint64_t deadline, size_t n, long rate)
{
	uint64_t due = start + (uint64_t)n * 1000000000ull / (uint64_t)rate;
	struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull),
			       .tv_nsec = (long)(due % 1000000000ull) };

	if (due >= deadline)
		return 1;
	if (due > now_ns())
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	return 0;
}

static void rr_report(struct samples *lat, uint64_t elapsed_ns)
{
	qsort(lat->v, lat->n, sizeof(*lat->v), cmp_u64);
	printf("requests=%zu p50_us=%.1f p99_us=%.1f rps=%.0f\n", lat->n,
	       (double)percentile(lat->v, lat->n, 0.50) / 1000.0,
	       (double)percentile(lat->v, lat->n, 0.99) / 1000.0,
	       (double)lat->n / ((double)elapsed_ns / 1e9));
}

/* rr: one connection, request/response of o->size bytes, paced at o->rate if non-zero. */
static int run_rr(const struct opts *o)
{
	struct sockaddr_storage addr;
	struct samples lat = { 0 };
	uint64_t start, deadline, t0;
	char *out = NULL, *in = NULL;
	socklen_t alen;
	int fd = -1, rc = 1, err = 0;

	if (resolve(o->host, o->port, &addr, &alen))
		return 1;
	out = calloc(1, (size_t)o->size);
	in = malloc((size_t)o->size);
	if (!out || !in) {
		fprintf(stderr, "ztbench rr: out of memory\n");
		goto cleanup;
	}
	fd = dial(&addr, alen);
	if (fd < 0) {
		fprintf(stderr, "ztbench rr: connect %s:%s: %s\n", o->host, o->port,
			strerror(-fd));
		goto cleanup;
	}
	start = now_ns();
	deadline = start + (uint64_t)o->duration * 1000000000ull;
	while (!err) {
		if (o->rate && pace(start, deadline, lat.n, o->rate))
			break;
		t0 = now_ns();
		if (t0 >= deadline)
			break;
		err = send_all(fd, out, (size_t)o->size);
		if (!err)
			err = recv_all(fd, in, (size_t)o->size);
		if (!err)
			err = samples_add(&lat, now_ns() - t0);
	}
	if (err && err != -ENOSPC) {
		fprintf(stderr, "ztbench rr: request %zu failed: %s\n", lat.n, strerror(-err));
		goto cleanup;
	}
	rr_report(&lat, now_ns() - start);
	rc = lat.n ? 0 : 1;
cleanup:
	if (fd >= 0)
		close(fd);
	free(in);
	free(out);
	free(lat.v);
	return rc;
}

struct conn_worker {
	pthread_t tid;
	const struct sockaddr_storage *addr;
	socklen_t alen;
	uint64_t deadline;
	long ok;
	long failures;
	long early_eagain;	/* blocking recvs that said EAGAIN long before their timeout */
	int last_err;
};

/*
 * recv on a blocking socket, where EAGAIN means the SO_RCVTIMEO ran out. One that comes back
 * with EAGAIN well before that is not a timeout: the kernel's sockmap receive path
 * (tcp_bpf_recvmsg) can return it when a FIN wakes it with nothing queued. That is counted
 * apart, and the recv is made again, so that it is not taken for a lost connection.
 */
static ssize_t recv_blocking(struct conn_worker *w, int fd, char *buf, size_t len)
{
	for (int tries = 0;; tries++) {
		uint64_t t0 = now_ns();
		ssize_t n = recv(fd, buf, len, 0);

		if (n >= 0 || errno != EAGAIN || tries > 0 ||
		    now_ns() - t0 > (uint64_t)(IO_TIMEOUT_S - 1) * 1000000000ull)
			return n;
		w->early_eagain++;
	}
}

/* One connection: connect, 1 byte each way, half-close, wait for the server's close. */
static int one_conn(struct conn_worker *w)
{
	char c = 'c';
	int fd, err;

	fd = dial(w->addr, w->alen);
	if (fd < 0)
		return fd;
	err = send_all(fd, &c, 1);
	if (!err)
		err = recv_all(fd, &c, 1);
	if (!err) {
		shutdown(fd, SHUT_WR);
		if (recv_blocking(w, fd, &c, 1) < 0)
			err = errno == EAGAIN ? -ETIMEDOUT : -errno;
	}
	close(fd);
	return err;
}

static void *conn_loop(void *arg)
{
	struct conn_worker *w = arg;

	while (now_ns() < w->deadline) {
		int err = one_conn(w);

		if (err) {
			w->failures++;
			w->last_err = -err;
			if (err == -ECONNREFUSED)
				usleep(1000);	/* don't spin at full speed on a dead port */
		} else {
			w->ok++;
		}
	}
	return NULL;
}

/* conn: o->concurrency threads each open-use-close connections until the deadline. */
static int run_conn(const struct opts *o)
{
	struct conn_worker w[MAX_THREADS];
	struct sockaddr_storage addr;
	long ok = 0, failures = 0, started = 0, early_eagain = 0;
	uint64_t start;
	int last_err = 0;
	socklen_t alen;

	if (resolve(o->host, o->port, &addr, &alen))
		return 1;
	start = now_ns();
	for (long i = 0; i < o->concurrency; i++) {
		w[i] = (struct conn_worker){ .addr = &addr, .alen = alen,
			.deadline = start + (uint64_t)o->duration * 1000000000ull };
		if (pthread_create(&w[i].tid, NULL, conn_loop, &w[i])) {
			fprintf(stderr, "ztbench conn: cannot start thread %ld\n", i);
			break;
		}
		started++;
	}
	for (long i = 0; i < started; i++) {
		pthread_join(w[i].tid, NULL);
		ok += w[i].ok;
		failures += w[i].failures;
		early_eagain += w[i].early_eagain;
		if (w[i].last_err)
			last_err = w[i].last_err;
	}
	if (failures)
		fprintf(stderr, "ztbench conn: %ld failures, last error: %s\n", failures,
			strerror(last_err));
	printf("conns_per_sec=%.0f failures=%ld early_eagain=%ld\n",
	       (double)ok / ((double)(now_ns() - start) / 1e9), failures, early_eagain);
	return ok ? 0 : 1;
}

static void raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < (rlim_t)want) {
		rl.rlim_cur = (rlim_t)want;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;	/* works as root; else take the max */
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			getrlimit(RLIMIT_NOFILE, &rl);
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
}

/* hold: open o->count echo-checked connections, report, keep them o->seconds, close. */
static int run_hold(const struct opts *o)
{
	struct sockaddr_storage addr;
	struct timespec ts = { .tv_sec = o->seconds };
	long opened = 0, held = 0;	/* held: opened and echoed */
	socklen_t alen;
	int *fds, err = 0;

	if (resolve(o->host, o->port, &addr, &alen))
		return 1;
	raise_nofile(o->count + 64);
	fds = calloc((size_t)o->count, sizeof(*fds));
	if (!fds) {
		fprintf(stderr, "ztbench hold: out of memory\n");
		return 1;
	}
	while (opened < o->count) {
		char c = 'h';
		int fd = dial(&addr, alen);

		if (fd < 0) {
			err = fd;
			break;
		}
		fds[opened++] = fd;
		err = send_all(fd, &c, 1);
		if (!err)
			err = recv_all(fd, &c, 1);
		if (err)
			break;
		held++;
	}
	if (err) {
		fprintf(stderr, "ztbench hold: connection %ld (0-based) failed: %s\n", held,
			strerror(-err));
	} else {
		printf("ready held=%ld\n", opened);
		fflush(stdout);
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	for (long i = 0; i < opened; i++)
		close(fds[i]);
	free(fds);
	printf("held=%ld\n", held);
	return err ? 1 : 0;
}

struct echo_conn {
	int fd;
	int want_out;		/* registered for EPOLLOUT (a write was short) */
	size_t off, len;	/* pending bytes buf[off..len) not yet written back */
	char buf[ECHO_BUF];
};

static void echo_close(int ep, struct echo_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Switches the connection between waiting to read and waiting to write. */
static int echo_watch(int ep, struct echo_conn *c, int out)
{
	struct epoll_event ev = { .events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c };

	c->want_out = out;
	return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) ? -1 : 0;
}

/* Echoes what is readable; returns -1 when the connection should be closed. */
static int echo_io(int ep, struct echo_conn *c)
{
	for (int rounds = 0; rounds < 16; rounds++) {
		if (c->off == c->len) {
			ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);

			if (n == 0)
				return -1;
			if (n < 0)
				return errno == EAGAIN || errno == EINTR ? 0 : -1;
			c->off = 0;
			c->len = (size_t)n;
		}
		while (c->off < c->len) {
			ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

			if (n < 0 && errno == EAGAIN)
				return echo_watch(ep, c, 1);
			if (n < 0)
				return errno == EINTR ? 0 : -1;
			c->off += (size_t)n;
		}
		if (c->want_out && echo_watch(ep, c, 0))
			return -1;
	}
	return 0;
}

static int echo_listen(const char *port)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	int one = 1, zero = 0, fd;

	a.sin6_port = htons((uint16_t)parse_num("PORT", port, 1, 65535));
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void echo_accept(int ep, int lfd)
{
	for (int i = 0; i < 64; i++) {
		int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct echo_conn *c;

		if (fd < 0)
			return;	/* EAGAIN, or EMFILE: retry on the next wakeup */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->want_out = 0;
		c->off = c->len = 0;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
		}
	}
}

/* echo-server: single-threaded epoll echo on [::]:PORT (v4 too) until the duration ends. */
static int run_echo(const char *port, const struct opts *o)
{
	struct epoll_event evs[256], lev = { .events = EPOLLIN, .data.ptr = NULL };
	uint64_t deadline = now_ns() + (uint64_t)o->duration * 1000000000ull;
	int lfd, ep;

	raise_nofile(200000);
	lfd = echo_listen(port);
	if (lfd < 0) {
		fprintf(stderr, "ztbench echo-server: listen on port %s: %s\n", port,
			strerror(-lfd));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev)) {
		fprintf(stderr, "ztbench echo-server: epoll: %s\n", strerror(errno));
		return 1;
	}
	while (now_ns() < deadline) {
		int n = epoll_wait(ep, evs, 256, 1000);

		for (int i = 0; i < n; i++) {
			struct echo_conn *c = evs[i].data.ptr;

			if (!c)
				echo_accept(ep, lfd);
			else if (echo_io(ep, c) < 0)
				echo_close(ep, c);
		}
	}
	return 0;	/* the process exit closes the remaining connections */
}

int main(int argc, char **argv)
{
	struct opts o = { .size = 64, .concurrency = 1, .duration = 0, .count = 0, .seconds = -1 };
	int rc;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		usage();
	if (!strcmp(argv[1], "echo-server")) {
		o.duration = 3600;
		parse_flags(&o, argc - 3, argv + 3);
		return run_echo(argv[2], &o);
	}
	if (argc < 4)
		usage();
	o.host = argv[2];
	o.port = argv[3];
	o.rate = -1;
	parse_flags(&o, argc - 4, argv + 4);
	if (!strcmp(argv[1], "rr")) {
		if (o.rate < 0 || !o.duration) {
			fprintf(stderr, "ztbench rr: --rate and --duration are required\n");
			usage();
		}
		rc = run_rr(&o);
	} else if (!strcmp(argv[1], "conn")) {
		if (!o.duration) {
			fprintf(stderr, "ztbench conn: --duration is required\n");
			usage();
		}
		rc = run_conn(&o);
	} else if (!strcmp(argv[1], "hold")) {
		if (!o.count || o.seconds < 0) {
			fprintf(stderr, "ztbench hold: --count and --seconds are required\n");
			usage();
		}
		rc = run_hold(&o);
	} else {
		usage();
	}
	return rc;
}
