/* io_sock_test: socket reads on a real worker over loopback TCP: multishot recv from the buffer
 * ring, backpressure, ring exhaustion (ENOBUFS), half-close, close with a recv in flight, and
 * the same reads with multishot turned off. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/io.h>
#include <ztunnel/sock.h>

#include "check.h"

/* The test side of a connection (a blocking-free sender) and the agent side (an io_sock owner
 * that checks every byte against the pattern). Owner fields are touched on the worker only. */
struct peer {
	struct io_sock s;
	int tx;			/* test side: bytes are written here */
	size_t to_send, sent;
	bool shut_after;	/* shutdown(SHUT_WR) once everything is sent */
	size_t got, reads, max_read;
	size_t headroom_reads;	/* reads with IO_SOCK_HEADROOM writable bytes before them */
	bool bad_headroom;	/* headroom reported beyond the read's buffer */
	bool bad;		/* a byte out of order */
	bool eof, closed, hold, held;
	int err;
	unsigned max_rq;
};

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 131 + i / 4093);
}

static void on_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	struct peer *p = s->owner;

	if (s->rq_n > p->max_rq)
		p->max_rq = s->rq_n;
	if (n < 0) {
		p->err = (int)n;
		return;
	}
	if (n == 0) {
		p->eof = true;
		return;
	}
	p->reads++;
	{
		size_t room = io_sock_headroom(s, data);

		if (room == IO_SOCK_HEADROOM) {
			memset((uint8_t *)(uintptr_t)data - room, 0xee, room);	/* the owner's */
			p->headroom_reads++;
		} else if (room) {
			p->bad_headroom = true;	/* a fresh read has exactly the headroom, or none */
		}
		if (io_sock_headroom(s, data + n / 2) != (room ? room + (size_t)n / 2 : 0))
			p->bad_headroom = true;	/* what was used of the read is the owner's too */
	}
	if ((size_t)n > p->max_read)
		p->max_read = (size_t)n;
	for (ssize_t i = 0; i < n; i++)
		if (data[i] != pattern(p->got + (size_t)i))
			p->bad = true;
	p->got += (size_t)n;
	if (p->hold)
		p->held = true;	/* keeps data and its buffer: no io_sock_read */
	else
		io_sock_read(s);
}

static void on_sent(struct io_sock *s, int err)
{
}

static void on_connected(struct io_sock *s, int err)
{
}

static void on_closed(struct io_sock *s)
{
	((struct peer *)s->owner)->closed = true;
}

static const struct io_sock_cb cb = { on_read, on_sent, on_connected, on_closed };

/* ---- running code on the worker ---- */

struct call {
	void (*fn)(struct io_worker *w, void *arg);
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void call_task(struct io_worker *w, void *arg)
{
	struct call *c = arg;

	c->fn(w, c->arg);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Runs fn(w, arg) on the worker and waits for it. */
static void on_worker(struct io_worker *w, void (*fn)(struct io_worker *, void *), void *arg)
{
	struct call c = { fn, arg, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

	if (io_worker_post(w, call_task, &c) < 0)
		return;
	pthread_mutex_lock(&c.mu);
	while (!c.done)
		pthread_cond_wait(&c.cv, &c.mu);
	pthread_mutex_unlock(&c.mu);
}

struct peers {
	struct peer *v;
	size_t n;
	bool all;		/* the result of a check */
	struct io_buf_ring ring;	/* a copy of the worker's ring counters */
};

static void start_reads(struct io_worker *w, void *arg)
{
	struct peers *ps = arg;

	for (size_t i = 0; i < ps->n; i++) {
		io_sock_init(&ps->v[i].s, w, ps->v[i].s.fd, &cb, &ps->v[i], 0);
		io_sock_read(&ps->v[i].s);
	}
}

static void release(struct io_worker *w, void *arg)
{
	struct peers *ps = arg;

	for (size_t i = 0; i < ps->n; i++) {
		ps->v[i].hold = false;
		if (ps->v[i].held) {
			ps->v[i].held = false;
			io_sock_read(&ps->v[i].s);
		}
	}
}

static void close_all(struct io_worker *w, void *arg)
{
	struct peers *ps = arg;

	for (size_t i = 0; i < ps->n; i++)
		io_sock_close(&ps->v[i].s, false);
}

static void snapshot(struct io_worker *w, void *arg)
{
	struct peers *ps = arg;

	ps->ring = w->rbufs;
}

/* ---- loopback connections and a sender ---- */

static int make_pair(int *agent_fd, int *test_fd)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = -1, a = -1;

	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) < 0)
		goto out;
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	a = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (a < 0)
		goto out;
	fcntl(c, F_SETFL, O_NONBLOCK);
	*agent_fd = a;
	*test_fd = c;
	close(l);
	return 0;
out:
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	return -1;
}

/* Writes every peer's to_send bytes of the pattern (non-blocking, round robin). */
static void *sender(void *arg)
{
	struct peers *ps = arg;
	uint8_t chunk[32 * 1024];
	size_t left = ps->n;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (left) {
		struct timespec t;

		left = 0;
		for (size_t i = 0; i < ps->n; i++) {
			struct peer *p = &ps->v[i];
			size_t n = p->to_send - p->sent;
			ssize_t w;

			if (!n)
				continue;
			left++;
			n = n > sizeof(chunk) ? sizeof(chunk) : n;
			for (size_t k = 0; k < n; k++)
				chunk[k] = pattern(p->sent + k);
			w = send(p->tx, chunk, n, MSG_NOSIGNAL);
			if (w > 0)
				p->sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				p->to_send = p->sent;	/* closed: the test is over for it */
			if (p->sent == p->to_send && p->shut_after)
				shutdown(p->tx, SHUT_WR);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 60)
			break;	/* the checks will fail */
		if (left)
			usleep(200);
	}
	return NULL;
}

static struct peers *peers_new(size_t n, size_t bytes, bool shut_after)
{
	struct peers *ps = calloc(1, sizeof(*ps));

	ps->v = calloc(n, sizeof(*ps->v));
	ps->n = n;
	for (size_t i = 0; i < n; i++) {
		int a, t;

		if (make_pair(&a, &t) < 0) {
			CHECK(0, "loopback pair %zu: %s", i, strerror(errno));
			ps->n = i;
			break;
		}
		ps->v[i].s.fd = a;
		ps->v[i].tx = t;
		ps->v[i].to_send = bytes;
		ps->v[i].shut_after = shut_after;
	}
	return ps;
}

static void peers_free(struct io_worker *w, struct peers *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		close(ps->v[i].tx);
	free(ps->v);
	free(ps);
}

enum cond { ALL_GOT, ALL_EOF, ALL_CLOSED };

struct wait_arg {
	struct peers *ps;
	enum cond c;
	bool ok;
};

static void check_cond(struct io_worker *w, void *arg)
{
	struct wait_arg *a = arg;

	a->ok = true;
	for (size_t i = 0; i < a->ps->n; i++) {
		struct peer *p = &a->ps->v[i];

		if ((a->c == ALL_GOT && p->got < p->to_send) || (a->c == ALL_EOF && !p->eof) ||
		    (a->c == ALL_CLOSED && !p->closed))
			a->ok = false;
	}
}

/* Polls the condition on the worker until it holds, or 30 s. */
static bool wait_for(struct io_worker *w, struct peers *ps, enum cond c)
{
	struct wait_arg a = { ps, c, false };

	for (int i = 0; i < 3000; i++) {
		on_worker(w, check_cond, &a);
		if (a.ok)
			return true;
		usleep(10000);
	}
	return false;
}

static void check_bytes(struct peers *ps, const char *what)
{
	size_t bad = 0, short_ = 0;

	for (size_t i = 0; i < ps->n; i++) {
		bad += ps->v[i].bad;
		short_ += ps->v[i].got != ps->v[i].to_send;
	}
	CHECK(bad == 0, "%s: %zu sockets got a byte out of order", what, bad);
	CHECK(short_ == 0, "%s: %zu sockets got too few or too many bytes (first: %zu of %zu)",
	      what, short_, ps->v[0].got, ps->v[0].to_send);
}

/* Closes every socket, waits for on_closed, and checks every ring buffer came back. */
static void close_and_check(struct io_worker *w, struct peers *ps, const char *what)
{
	on_worker(w, close_all, ps);
	CHECK(wait_for(w, ps, ALL_CLOSED), "%s: on_closed for every socket", what);
	on_worker(w, snapshot, ps);
	CHECK(ps->ring.out == 0, "%s: %u ring buffers not given back", what, ps->ring.out);
}

/* ---- the tests ---- */

/* 8 MiB on one connection arrive in order over many reads, each at most a ring buffer. */
static void test_order(struct io_worker *w, bool mshot)
{
	struct peers *ps = peers_new(1, 8u << 20, false);
	pthread_t th;

	on_worker(w, start_reads, ps);
	pthread_create(&th, NULL, sender, ps);
	CHECK(wait_for(w, ps, ALL_GOT), "order: all bytes arrive (got %zu)", ps->v[0].got);
	pthread_join(th, NULL);
	check_bytes(ps, "order");
	on_worker(w, snapshot, ps);
	CHECK(ps->v[0].reads > 8u * 1024 * 1024 / IO_SOCK_RBUF, "order: %zu reads", ps->v[0].reads);
	CHECK(!ps->v[0].bad_headroom, "order: headroom out of the read's buffer");
	if (mshot)
		CHECK(ps->ring.recvs > 0, "order: bytes came through the ring (%lu recvs)",
		      (unsigned long)ps->ring.recvs);
	else
		CHECK(!ps->ring.registered && ps->v[0].headroom_reads == ps->v[0].reads,
		      "multishot off: no ring registered, headroom before every read (%zu of %zu)",
		      ps->v[0].headroom_reads, ps->v[0].reads);
	close_and_check(w, ps, "order");
	peers_free(w, ps);
}

/* An owner that holds its read: later bytes queue up to the bound, the recv is stopped, and
 * once the owner reads again everything arrives in order. */
static void test_backpressure(struct io_worker *w)
{
	struct peers *ps = peers_new(1, 16u << 20, false);
	uint64_t cancels0;
	pthread_t th;

	on_worker(w, snapshot, ps);
	cancels0 = ps->ring.cancels;
	ps->v[0].hold = true;
	on_worker(w, start_reads, ps);
	pthread_create(&th, NULL, sender, ps);
	usleep(300 * 1000);	/* the sender fills what the kernel and the queue take */
	on_worker(w, snapshot, ps);
	CHECK(ps->v[0].held && ps->v[0].reads == 1, "backpressure: one read delivered, held");
	CHECK(ps->v[0].s.rq_bytes <= IO_SOCK_RQ_BYTES + 4 * IO_RING_BUF_SIZE,
	      "backpressure: %u bytes queued", ps->v[0].s.rq_bytes);
	CHECK(ps->v[0].s.rq_bytes >= IO_SOCK_RQ_BYTES, "backpressure: the queue filled (%u)",
	      ps->v[0].s.rq_bytes);
	CHECK(ps->ring.cancels > cancels0, "backpressure: the multishot recv was stopped");
	CHECK(ps->v[0].sent < ps->v[0].to_send, "backpressure: the sender is held back");
	on_worker(w, release, ps);
	CHECK(wait_for(w, ps, ALL_GOT), "backpressure: all bytes arrive (got %zu)", ps->v[0].got);
	pthread_join(th, NULL);
	check_bytes(ps, "backpressure");
	CHECK(ps->v[0].max_read > IO_RING_BUF_SIZE && ps->v[0].max_read <= IO_SOCK_RBUF,
	      "backpressure: adjacent queued buffers delivered as one read (largest %zu)",
	      ps->v[0].max_read);
	close_and_check(w, ps, "backpressure");
	peers_free(w, ps);
}

/* More sockets with bytes queued than the ring has buffers: recvs end with ENOBUFS, reads fall
 * back to poll + recv, and every byte of every socket still arrives in order. */
static void test_exhaustion(struct io_worker *w)
{
	size_t n = 3 * IO_RING_BUFS;
	struct peers *ps = peers_new(n, 1u << 20, false);
	uint64_t enobufs0;
	pthread_t th;

	on_worker(w, snapshot, ps);
	enobufs0 = ps->ring.enobufs;
	for (size_t i = 0; i < ps->n; i++)
		ps->v[i].hold = true;
	on_worker(w, start_reads, ps);
	pthread_create(&th, NULL, sender, ps);
	usleep(500 * 1000);
	on_worker(w, snapshot, ps);
	CHECK(ps->ring.out == ps->ring.count, "exhaustion: every ring buffer taken (%u of %u)",
	      ps->ring.out, ps->ring.count);
	CHECK(ps->ring.enobufs > enobufs0, "exhaustion: ENOBUFS seen");
	on_worker(w, release, ps);
	CHECK(wait_for(w, ps, ALL_GOT), "exhaustion: all bytes arrive");
	pthread_join(th, NULL);
	check_bytes(ps, "exhaustion");
	on_worker(w, snapshot, ps);
	printf("exhaustion: %zu sockets, recvs %lu, enobufs %lu, fallback reads %lu, cancels %lu\n",
	       ps->n, (unsigned long)ps->ring.recvs, (unsigned long)(ps->ring.enobufs - enobufs0),
	       (unsigned long)ps->ring.fallbacks, (unsigned long)ps->ring.cancels);
	CHECK(ps->ring.fallbacks > 0, "exhaustion: reads fell back to the pool");
	close_and_check(w, ps, "exhaustion");
	peers_free(w, ps);
}

/* The peer sends and shuts down while the owner holds a read: EOF comes after every byte. */
static void test_half_close(struct io_worker *w)
{
	struct peers *ps = peers_new(4, 300 * 1000, true);
	pthread_t th;

	for (size_t i = 0; i < ps->n; i++)
		ps->v[i].hold = true;
	on_worker(w, start_reads, ps);
	pthread_create(&th, NULL, sender, ps);
	pthread_join(th, NULL);
	usleep(200 * 1000);	/* the FIN is in, behind queued bytes */
	on_worker(w, snapshot, ps);
	CHECK(!ps->v[0].eof, "half-close: no EOF while bytes are held");
	on_worker(w, release, ps);
	CHECK(wait_for(w, ps, ALL_EOF), "half-close: EOF delivered");
	check_bytes(ps, "half-close");	/* on_read checked the order; EOF came after them all */
	close_and_check(w, ps, "half-close");
	peers_free(w, ps);
}

/* Closing with a multishot recv armed (idle), with buffers queued, and while the peer sends:
 * on_closed comes once the recv ended, every buffer goes back (ASan: no use after free). */
static void test_close_in_flight(struct io_worker *w, bool mshot)
{
	struct peers *ps = peers_new(3, 4u << 20, false);
	pthread_t th;

	ps->v[0].to_send = 0;	/* idle: the recv waits with no buffer */
	ps->v[1].hold = true;	/* buffers queued */
	on_worker(w, start_reads, ps);
	pthread_create(&th, NULL, sender, ps);
	usleep(200 * 1000);
	on_worker(w, snapshot, ps);
	CHECK(ps->v[0].s.rop.busy && ps->v[0].s.rcur < 0 && !ps->v[0].s.rq_n && !ps->v[0].s.rbuf,
	      "close: the idle socket's read is armed and it holds no buffer");
	if (mshot)
		CHECK(ps->v[1].s.rq_n > 0, "close: the held socket has buffers queued");
	close_and_check(w, ps, "close in flight");
	for (size_t i = 0; i < ps->n; i++)
		shutdown(ps->v[i].tx, SHUT_RDWR);	/* the sender stops on errors */
	pthread_join(th, NULL);
	peers_free(w, ps);
}

struct dirty {
	unsigned n;
};

static void count_dirty(struct io_worker *w, void *arg)
{
	struct dirty *d = arg;

	d->n = 0;
	for (unsigned i = 0; i < w->rbufs.count; i++)
		d->n += w->rbufs.slot[i].dirty;
}

/* A quiet worker gives the pages of its ring buffers back (the tick, after 2 s). */
static void test_ring_trim(struct io_worker *w)
{
	struct dirty d = { 0 };

	on_worker(w, count_dirty, &d);
	CHECK(d.n > 0, "trim: buffers were written");
	for (int i = 0; i < 100 && d.n; i++) {
		usleep(100 * 1000);
		on_worker(w, count_dirty, &d);
	}
	CHECK(d.n == 0, "trim: %u ring buffers still resident after 10 s quiet", d.n);
}

/* ---- writes: sent at once where the kernel takes them, on_sent always from the loop ---- */

struct writer {
	struct io_sock s;
	int tx;			/* the test side */
	uint8_t *buf;
	size_t len;
	bool in_call;		/* io_sock_write is on the stack */
	bool sent_inside;	/* on_sent came from inside io_sock_write */
	int sent, err, write_ret;
	bool closed;
};

static void w_on_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
}

static void w_on_sent(struct io_sock *s, int err)
{
	struct writer *wr = s->owner;

	if (wr->in_call)
		wr->sent_inside = true;
	wr->sent++;
	wr->err = err;
}

static void w_on_closed(struct io_sock *s)
{
	((struct writer *)s->owner)->closed = true;
}

static const struct io_sock_cb wcb = { w_on_read, w_on_sent, on_connected, w_on_closed };

static void w_init(struct io_worker *w, void *arg)
{
	struct writer *wr = arg;

	io_sock_init(&wr->s, w, wr->s.fd, &wcb, wr, 0);
}

static void w_write(struct io_worker *w, void *arg)
{
	struct writer *wr = arg;

	wr->in_call = true;
	wr->write_ret = io_sock_write(&wr->s, wr->buf, wr->len);
	wr->in_call = false;
}

static void w_close(struct io_worker *w, void *arg)
{
	io_sock_close(&((struct writer *)arg)->s, false);
}

struct w_wait {
	struct writer *wr;
	int want;
	bool ok;
};

static void w_check(struct io_worker *w, void *arg)
{
	struct w_wait *a = arg;

	a->ok = a->wr->sent >= a->want;
}

/* Waits up to ms for the writer's want-th on_sent. */
static bool w_wait_sent(struct io_worker *w, struct writer *wr, int want, int ms)
{
	struct w_wait a = { wr, want, false };

	for (int i = 0; i < ms / 10; i++) {
		on_worker(w, w_check, &a);
		if (a.ok)
			return true;
		usleep(10000);
	}
	return false;
}

/* Reads len bytes from fd (non-blocking, polling) and checks them against buf. */
static bool drain_and_check(int fd, const uint8_t *buf, size_t len)
{
	uint8_t chunk[64 * 1024];
	size_t got = 0;
	bool same = true;

	for (int idle = 0; got < len && idle < 3000;) {
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);

		if (n <= 0) {
			idle++;
			usleep(1000);
			continue;
		}
		same = same && (size_t)n <= len - got && !memcmp(chunk, buf + got, (size_t)n);
		got += (size_t)n;
	}
	return same && got == len;
}

static void test_write(struct io_worker *w)
{
	struct writer wr = { 0 };
	size_t big = 16u << 20;
	int a, t;

	if (make_pair(&a, &t) < 0) {
		CHECK(0, "write: loopback pair");
		return;
	}
	wr.s.fd = a;
	wr.tx = t;
	wr.buf = malloc(big);
	for (size_t i = 0; i < big; i++)
		wr.buf[i] = pattern(i);
	on_worker(w, w_init, &wr);
	/* a small write: the kernel takes it at once; on_sent follows, from the loop */
	wr.len = 1000;
	on_worker(w, w_write, &wr);
	CHECK(wr.write_ret == 0, "write: small write refused (%d)", wr.write_ret);
	CHECK(w_wait_sent(w, &wr, 1, 5000) && wr.err == 0, "write: small write's on_sent (%d, %d)",
	      wr.sent, wr.err);
	CHECK(drain_and_check(t, wr.buf, 1000), "write: the small write's bytes");
	/* more than the socket buffers hold while the test side does not read: the rest waits
	 * in io_uring for room, and on_sent comes only once all of it is out */
	wr.len = big;
	on_worker(w, w_write, &wr);
	CHECK(wr.write_ret == 0, "write: big write refused (%d)", wr.write_ret);
	usleep(100000);
	CHECK(!w_wait_sent(w, &wr, 2, 20), "write: on_sent before the bytes could have gone");
	CHECK(drain_and_check(t, wr.buf, big), "write: the big write's bytes, whole and in order");
	CHECK(w_wait_sent(w, &wr, 2, 5000) && wr.err == 0, "write: big write's on_sent (%d, %d)",
	      wr.sent, wr.err);
	/* the peer is gone: a write's error comes through on_sent too, never from inside */
	close(t);
	wr.len = 1000;
	for (int i = 0; i < 20 && wr.err == 0; i++) {
		int before = wr.sent;

		on_worker(w, w_write, &wr);
		if (wr.write_ret < 0)
			break;
		if (!w_wait_sent(w, &wr, before + 1, 5000))
			break;
		usleep(10000);	/* the peer's RST */
	}
	CHECK(wr.err == -EPIPE || wr.err == -ECONNRESET, "write: a write to a closed peer: err %d",
	      wr.err);
	CHECK(!wr.sent_inside, "write: on_sent came from inside io_sock_write");
	on_worker(w, w_close, &wr);
	for (int i = 0; i < 500 && !wr.closed; i++)
		usleep(10000);
	CHECK(wr.closed, "write: on_closed");
	free(wr.buf);
}

static void run(bool mshot)
{
	struct io_worker w;

	io_sock_set_multishot(mshot);
	if (io_worker_init(&w, 0, 1024) < 0 || io_worker_start(&w) < 0) {
		CHECK(0, "worker set-up");
		return;
	}
	if (mshot)
		CHECK(w.rbufs.registered, "the buffer ring is registered");
	test_order(&w, mshot && w.rbufs.registered);
	if (mshot && w.rbufs.registered) {
		test_backpressure(&w);
		test_exhaustion(&w);
	}
	test_half_close(&w);
	test_write(&w);
	test_close_in_flight(&w, mshot && w.rbufs.registered);
	if (mshot && w.rbufs.registered)
		test_ring_trim(&w);
	io_worker_stop(&w);
	io_worker_destroy(&w);
}

int main(void)
{
	run(true);
	run(false);
	printf("%s\n", failures ? "FAILED" : "io_sock_test: ok");
	return failures ? 1 : 0;
}
