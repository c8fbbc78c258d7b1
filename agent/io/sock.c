/* sock: TCP socket reads, writes, connects and closes as io_uring operations.
 *
 * A read is a multishot recv into the worker's buffer ring: the kernel takes a buffer only when
 * bytes arrive, so a connection waiting for bytes holds none, and one recv stays armed across
 * reads (one completion per buffer, no poll). Buffers that arrive before the owner asks again
 * are queued on the socket, in order; past IO_SOCK_RQ_BYTES the recv is cancelled (the rest
 * waits in the kernel) and armed again when the owner has taken them. When the ring is empty
 * (ENOBUFS), or with multishot turned off, a read waits for readiness without a buffer, then
 * takes one from the worker's pool for a one-shot recv: that is also the default path, see
 * io_sock_set_multishot. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/sock.h>

#include "io-int.h"

/* Written once at start-up (io_sock_set_keepalive) and only read after: seven callers in three
 * layers set socket options, and none of them carries the agent's config. */
static struct io_keepalive keepalive = { true, 180, 180, 9 };
static bool multishot;	/* off by default: see README, "Datapath" */

void io_sock_set_multishot(bool on)
{
	multishot = on;
}

bool io_sock_multishot(void)
{
	return multishot;
}

void io_sock_set_keepalive(const struct io_keepalive *ka)
{
	keepalive = *ka;
}

void io_sock_set_options(int fd)
{
	int one = 1, idle = (int)keepalive.time_s, intvl = (int)keepalive.interval_s;
	int cnt = (int)keepalive.retries;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!keepalive.enabled)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void linger_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void io_sock_reset_close(int fd)
{
	linger_reset(fd);
	close(fd);
}

/* Pops the first queued buffer. */
static unsigned pop_queued(struct io_sock *s)
{
	struct io_buf_ring *r = &s->w->rbufs;
	unsigned bid = s->rq_head;

	s->rq_head = r->slot[bid].next;
	s->rq_n--;
	s->rq_bytes -= r->slot[bid].len;
	return bid;
}

/* Gives back the ring buffers delivered to the owner. */
static void put_delivered(struct io_sock *s)
{
	for (unsigned i = 0; s->rcur >= 0 && i < s->rcur_n; i++)
		io_buf_ring_put(&s->w->rbufs, (unsigned)s->rcur + i);
	s->rcur = -1;
	s->rcur_n = 0;
}

/* Gives back the ring buffers the socket holds: those delivered and those queued. */
static void put_ring_bufs(struct io_sock *s)
{
	struct io_buf_ring *r = &s->w->rbufs;

	put_delivered(s);
	while (s->rq_n)
		io_buf_ring_put(r, pop_queued(s));
}

static void maybe_closed(struct io_sock *s)
{
	if (!s->closing || io_sock_busy(s))
		return;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);
	put_ring_bufs(s);
	s->closing = false;	/* on_closed is delivered once */
	s->cb->on_closed(s);
}

/* Hands the owner its read; the socket may be closed and freed by it: touch s no more. */
static void deliver(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	if (n == 0)
		s->read_eof = true;
	s->want = false;
	s->cb->on_read(s, data, n);
}

/* Copies queued buffers, whole and in order, into a pool buffer up to the socket's read size
 * (after IO_SOCK_HEADROOM, as a one-shot read's) and gives them back to the ring: one read
 * instead of many small ones, when the kernel did not fill them in a row. 0 when no pool buffer
 * could be had. */
static size_t gather_queued(struct io_sock *s, size_t cap)
{
	struct io_buf_ring *r = &s->w->rbufs;
	unsigned head = s->rq_head;
	size_t len = 0;

	cap -= IO_SOCK_HEADROOM;
	if (s->rq_n < 2 || r->slot[head].len + r->slot[r->slot[head].next].len > cap || s->rbuf ||
	    !(s->rbuf = io_buf_get(&s->w->bufs, s->rclass)))
		return 0;
	while (s->rq_n && len + r->slot[s->rq_head].len <= cap) {
		unsigned bid = pop_queued(s);

		memcpy(s->rbuf + IO_SOCK_HEADROOM + len, io_buf_ring_data(r, bid), r->slot[bid].len);
		len += r->slot[bid].len;
		io_buf_ring_put(r, bid);
	}
	r->gathered++;
	return len;
}

/*
 * The oldest queued read: a ring buffer with those the kernel filled after it in memory (each
 * full but the last), up to the socket's read size, without a copy; when that run is short and
 * more is queued, the queued buffers copied into one pool buffer; else the end of the stream.
 */
static void deliver_queued(struct io_sock *s)
{
	struct io_buf_ring *r = &s->w->rbufs;
	size_t cap = io_buf_size(s->rclass), len;
	unsigned bid, n = 1;

	if (!s->rq_n) {
		s->rq_has_final = false;
		deliver(s, NULL, s->rq_final);
		return;
	}
	bid = s->rq_head;
	len = r->slot[bid].len;
	for (unsigned b = bid; n < s->rq_n && r->slot[b].len == r->size &&
	     r->slot[b].next == b + 1 && len + r->slot[b + 1].len <= cap; b++, n++)
		len += r->slot[b + 1].len;
	r->delivered++;
	if (n < s->rq_n && len < cap / 2) {
		size_t got = gather_queued(s, cap);

		if (got) {
			deliver(s, s->rbuf + IO_SOCK_HEADROOM, (ssize_t)got);
			return;
		}
	}
	for (unsigned i = 0; i < n; i++)
		pop_queued(s);
	s->rcur = (int32_t)bid;
	s->rcur_n = (uint16_t)n;
	if (n > 1)
		r->spans++;
	deliver(s, io_buf_ring_data(r, bid), (ssize_t)len);
}

static bool has_queued(const struct io_sock *s)
{
	return s->rq_n || s->rq_has_final;
}

static void on_readable(struct io_op *op, int res, uint32_t flags);
static void on_recv(struct io_op *op, int res, uint32_t flags);

/* Starts the kernel side of a read: a multishot recv while the ring has buffers to give, else
 * (and only with nothing queued, to keep the order) a poll for a one-shot recv; after an
 * ENOBUFS always the latter, so that sockets do not take turns failing on an empty ring. */
static void arm_read(struct io_sock *s, bool nobufs)
{
	struct io_buf_ring *r = &s->w->rbufs;

	if (r->registered && r->out < r->count && !nobufs) {
		s->mshot = true;
		s->rop.cb = on_recv;
		io_prep_recv_multishot(s->w, &s->rop, s->fd);
	} else if (!s->rq_n) {
		if (r->registered)
			r->fallbacks++;
		s->mshot = false;
		s->rop.cb = on_readable;
		io_prep_poll_in(s->w, &s->rop, s->fd);
	}
}

/* The socket is readable (or has an error or EOF to tell): one recv into a pool buffer. */
static void on_readable(struct io_op *op, int res, uint32_t flags)
{
	struct io_sock *s = op->ctx;
	ssize_t n;

	if (s->closing) {
		maybe_closed(s);
		return;
	}
	if (res < 0) {
		deliver(s, NULL, res);
		return;
	}
	if (!s->rbuf && !(s->rbuf = io_buf_get(&s->w->bufs, s->rclass))) {
		deliver(s, NULL, -ENOMEM);
		return;
	}
	n = recv(s->fd, s->rbuf + IO_SOCK_HEADROOM, io_buf_size(s->rclass) - IO_SOCK_HEADROOM,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);
		arm_read(s, false);	/* the ring may have buffers again */
		return;
	}
	if (n <= 0)
		io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);
	deliver(s, s->rbuf ? s->rbuf + IO_SOCK_HEADROOM : NULL, n < 0 ? -errno : n);
}

/* Queues what one multishot completion brought: a buffer, or how the recv ended. */
static void take_recv(struct io_sock *s, int res, uint32_t flags)
{
	struct io_buf_ring *r = &s->w->rbufs;

	if (flags & IORING_CQE_F_BUFFER) {
		unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;

		io_buf_ring_take(r, bid, res > 0 ? (uint32_t)res : 0);
		r->recvs++;
		if (s->closing || res <= 0) {
			io_buf_ring_put(r, bid);
		} else {
			if (s->rq_n)
				r->slot[s->rq_tail].next = (uint16_t)bid;
			else
				s->rq_head = (uint16_t)bid;
			s->rq_tail = (uint16_t)bid;
			s->rq_n++;
			s->rq_bytes += (uint32_t)res;
		}
	} else if (res > 0) {
		res = -EIO;	/* bytes without a buffer: cannot be */
	}
	if (res > 0 || s->closing)
		return;
	if (res == -ENOBUFS)
		r->enobufs++;
	else if (res != -ECANCELED && !s->rq_has_final) {
		s->rq_final = res;
		s->rq_has_final = true;
	}
}

/* A multishot recv completion: bytes in a ring buffer, the end of the stream, an error, or
 * the recv's end (ring empty, cancelled) with the socket still open. */
static void on_recv(struct io_op *op, int res, uint32_t flags)
{
	struct io_sock *s = op->ctx;
	bool more = flags & IORING_CQE_F_MORE;

	take_recv(s, res, flags);
	if (!more)
		s->rcancel = false;
	if (s->closing) {
		if (!more)
			maybe_closed(s);
		return;
	}
	if (more && s->rq_bytes >= IO_SOCK_RQ_BYTES && !s->rcancel) {
		s->rcancel = true;	/* backpressure: the rest waits in the kernel */
		s->w->rbufs.cancels++;
		io_cancel(s->w, op);
	}
	if (!s->want)
		return;
	if (has_queued(s))
		deliver_queued(s);
	else if (!more)
		arm_read(s, res == -ENOBUFS);	/* ended with nothing to tell: read on */
}

static void schedule(struct io_sock *s)
{
	struct io_worker *w = s->w;

	if (s->ready)
		return;
	s->ready = true;
	if (w->ready_tail)
		w->ready_tail->ready_next = s;
	else
		w->ready_head = s;
	w->ready_tail = s;
}

void io_sock_run_ready(struct io_worker *w)
{
	struct io_sock *s;

	while ((s = w->ready_head)) {
		w->ready_head = s->ready_next;
		if (!w->ready_head)
			w->ready_tail = NULL;
		s->ready_next = NULL;
		s->ready = false;
		if (s->closing) {
			maybe_closed(s);
		} else if (s->sent_ready) {
			int res = s->sent_res;

			s->sent_ready = false;
			if (res == 0)
				s->wdata = NULL;
			if (s->want && has_queued(s))
				schedule(s);	/* its read next; and s outlives a close in on_sent */
			s->cb->on_sent(s, res);	/* s may be gone now */
		} else if (s->want && has_queued(s))
			deliver_queued(s);
	}
}

static void on_send(struct io_op *op, int res, uint32_t flags)
{
	struct io_sock *s = op->ctx;

	if (s->closing) {
		maybe_closed(s);
		return;
	}
	if (res < 0) {
		s->cb->on_sent(s, res);
		return;
	}
	s->woff += (uint32_t)res;
	if (s->woff < s->wlen) {
		io_prep_send(s->w, &s->wop, s->fd, s->wdata + s->woff, s->wlen - s->woff);
		return;
	}
	s->wdata = NULL;
	s->cb->on_sent(s, 0);
}

static void on_connect(struct io_op *op, int res, uint32_t flags)
{
	struct io_sock *s = op->ctx;

	if (s->closing) {
		maybe_closed(s);
		return;
	}
	s->cb->on_connected(s, res);
}

void io_sock_init(struct io_sock *s, struct io_worker *w, int fd, const struct io_sock_cb *cb,
		  void *owner, size_t rcap)
{
	memset(s, 0, sizeof(*s));
	s->w = w;
	s->fd = fd;
	s->cb = cb;
	s->owner = owner;
	s->rclass = rcap && rcap <= 16 * 1024 ? IO_BUF_16K :
		    rcap && rcap <= 64 * 1024 ? IO_BUF_64K : IO_BUF_256K;
	s->rcur = -1;
	s->rop = (struct io_op){ .cb = on_readable, .ctx = s };
	s->wop = (struct io_op){ .cb = on_send, .ctx = s };
	s->cop = (struct io_op){ .cb = on_connect, .ctx = s };
}

int io_sock_read(struct io_sock *s)
{
	if (s->want)
		return -EALREADY;
	if (s->closing || s->fd < 0)
		return -EBADF;
	/* the last read's bytes are done with */
	io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);
	put_delivered(s);
	s->want = true;
	if (has_queued(s))
		schedule(s);
	/* read on while the last queued buffers are taken, unless the stream has ended */
	if (!s->rop.busy && !s->rq_has_final && s->rq_bytes < IO_SOCK_RQ_BYTES / 2)
		arm_read(s, false);
	return 0;
}

size_t io_sock_headroom(const struct io_sock *s, const uint8_t *p)
{
	if (!s->rbuf || p < s->rbuf + IO_SOCK_HEADROOM ||
	    p > s->rbuf + io_buf_size(s->rclass))
		return 0;
	return (size_t)(p - s->rbuf);
}

int io_sock_write(struct io_sock *s, const uint8_t *data, size_t len)
{
	ssize_t n;

	if (s->wop.busy || s->wdata)
		return -EALREADY;
	if (s->closing || s->fd < 0)
		return -EBADF;
	if (len > UINT32_MAX)
		return -EINVAL;
	s->wdata = data;
	s->wlen = (uint32_t)len;
	s->woff = 0;
	/* most writes fit the socket's buffer: sent now, one syscall, and on_sent from the ready
	 * list; only what the kernel did not take goes through io_uring (which waits for room) */
	n = send(s->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		s->sent_res = n < 0 ? -errno : 0;
		s->sent_ready = true;
		schedule(s);
		return 0;
	}
	if (n > 0)
		s->woff = (size_t)n;
	io_prep_send(s->w, &s->wop, s->fd, data + s->woff, len - s->woff);
	return 0;
}

void io_sock_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len)
{
	if (len > sizeof(s->addr))
		len = sizeof(s->addr);
	if (sa->sa_family == AF_INET && len > sizeof(s->addr.in))
		len = sizeof(s->addr.in);
	memset(&s->addr, 0, sizeof(s->addr));
	memcpy(&s->addr, sa, len);
	io_prep_connect(s->w, &s->cop, s->fd, &s->addr.sa, len);
}

void io_sock_shutdown_write(struct io_sock *s)
{
	if (s->shut_wr || s->fd < 0)
		return;
	s->shut_wr = true;
	shutdown(s->fd, SHUT_WR);
}

bool io_sock_busy(const struct io_sock *s)
{
	return s->rop.busy || s->wop.busy || s->cop.busy || s->ready;
}

void io_sock_close(struct io_sock *s, bool reset)
{
	if (s->closing || s->fd < 0)
		return;
	if (reset)
		linger_reset(s->fd);
	s->closing = true;
	/* shutdown wakes a pending recv (without a FIN when resetting); cancel covers the rest.
	 * With nothing pending the close alone does it (its FIN, or the linger's RST). */
	if (io_sock_busy(s))
		shutdown(s->fd, reset ? SHUT_RD : SHUT_RDWR);
	io_cancel(s->w, &s->rop);
	io_cancel(s->w, &s->wop);
	io_cancel(s->w, &s->cop);
	put_ring_bufs(s);	/* the bytes queued will never be read */
	if (!io_sock_busy(s))
		maybe_closed(s);
}
