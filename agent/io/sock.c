/* sock: TCP socket reads, writes, connects and closes as io_uring operations.
 *
 * A read waits for readiness without a buffer, then takes one from the worker's pool for the
 * recv: a connection with nothing in flight holds no buffer, whatever its read size. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/sock.h>

/* Written once at start-up (io_sock_set_keepalive) and only read after: seven callers in three
 * layers set socket options, and none of them carries the agent's config. */
static struct io_keepalive keepalive = { true, 180, 180, 9 };

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

static void maybe_closed(struct io_sock *s)
{
	if (!s->closing || io_sock_busy(s))
		return;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);
	s->closing = false;	/* on_closed is delivered once */
	s->cb->on_closed(s);
}

static void deliver(struct io_sock *s, ssize_t n)
{
	if (n <= 0)
		io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);
	if (n == 0)
		s->read_eof = true;
	s->cb->on_read(s, s->rbuf, n);
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
		deliver(s, res);
		return;
	}
	if (!s->rbuf && !(s->rbuf = io_buf_get(&s->w->bufs, s->rclass))) {
		deliver(s, -ENOMEM);
		return;
	}
	n = recv(s->fd, s->rbuf, io_buf_size(s->rclass), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);
		io_prep_poll_in(s->w, &s->rop, s->fd);
		return;
	}
	deliver(s, n < 0 ? -errno : n);
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
	s->woff += (size_t)res;
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
	s->rop = (struct io_op){ .cb = on_readable, .ctx = s };
	s->wop = (struct io_op){ .cb = on_send, .ctx = s };
	s->cop = (struct io_op){ .cb = on_connect, .ctx = s };
}

int io_sock_read(struct io_sock *s)
{
	if (s->rop.busy)
		return -EALREADY;
	if (s->closing || s->fd < 0)
		return -EBADF;
	io_buf_put(&s->w->bufs, s->rclass, &s->rbuf);	/* the last read's bytes are done with */
	io_prep_poll_in(s->w, &s->rop, s->fd);
	return 0;
}

int io_sock_write(struct io_sock *s, const uint8_t *data, size_t len)
{
	if (s->wop.busy || s->wdata)
		return -EALREADY;
	if (s->closing || s->fd < 0)
		return -EBADF;
	s->wdata = data;
	s->wlen = len;
	s->woff = 0;
	io_prep_send(s->w, &s->wop, s->fd, data, len);
	return 0;
}

void io_sock_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len)
{
	memcpy(&s->addr, sa, len);
	io_prep_connect(s->w, &s->cop, s->fd, (struct sockaddr *)&s->addr, len);
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
	return s->rop.busy || s->wop.busy || s->cop.busy;
}

void io_sock_close(struct io_sock *s, bool reset)
{
	if (s->closing || s->fd < 0)
		return;
	if (reset)
		linger_reset(s->fd);
	s->closing = true;
	/* shutdown wakes a pending recv (without a FIN when resetting); cancel covers the rest */
	shutdown(s->fd, reset ? SHUT_RD : SHUT_RDWR);
	io_cancel(s->w, &s->rop);
	io_cancel(s->w, &s->wop);
	io_cancel(s->w, &s->cop);
	if (!io_sock_busy(s))
		maybe_closed(s);
}
