/* proxy relay: copies both directions between two TCP sockets, with backpressure and half-close. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/log.h>
#include <ztunnel/sock.h>

#include "proxy-int.h"

/*
 * a is the accepted client, b the upstream. Each read buffer is handed to the other socket's
 * write as is, and the next read starts only when that write is done: at most one buffer per
 * direction is ever held, whatever the speed of either side.
 */
struct relay {
	struct io_sock a, b;
	int open_socks;
	bool connected;
	bool reset;
	struct access_record rec;
	char error[160];
};

static struct io_sock *other(struct relay *r, struct io_sock *s)
{
	return s == &r->a ? &r->b : &r->a;
}

/* open_socks doubles as the reference count: closing one socket may free the relay. */
static void relay_put(struct relay *r)
{
	if (--r->open_socks > 0)
		return;
	access_log_complete(&r->rec, r->error[0] ? r->error : NULL);
	io_obj_free(&r->a.w->bufs, r);
}

static void close_both(struct relay *r, bool reset)
{
	r->open_socks++;
	io_sock_close(&r->a, reset);
	io_sock_close(&r->b, reset);
	relay_put(r);
}

static void relay_abort(struct relay *r, const char *why)
{
	if (!r->error[0])
		snprintf(r->error, sizeof(r->error), "%s", why);
	r->reset = true;
	close_both(r, true);
}

static void maybe_done(struct relay *r)
{
	if (r->a.read_eof && r->b.read_eof && !r->a.wdata && !r->b.wdata)
		close_both(r, false);
}

static void on_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	struct relay *r = s->owner;
	struct io_sock *o = other(r, s);
	char why[120];

	if (n < 0) {
		snprintf(why, sizeof(why), "%s: %s", s == &r->a ? "client" : "upstream",
			 strerror((int)-n));
		relay_abort(r, why);
		return;
	}
	if (n == 0) {
		io_sock_shutdown_write(o);
		maybe_done(r);
		return;
	}
	if (s == &r->a)
		r->rec.bytes_recv += (uint64_t)n;
	else
		r->rec.bytes_sent += (uint64_t)n;
	io_sock_write(o, data, (size_t)n);
}

static void on_sent(struct io_sock *s, int err)
{
	struct relay *r = s->owner;

	if (err < 0) {
		relay_abort(r, strerror(-err));
		return;
	}
	/* the buffer written came from the other socket: it may read again */
	io_sock_read(other(r, s));
	maybe_done(r);
}

static void on_connected(struct io_sock *s, int err)
{
	struct relay *r = s->owner;
	char why[120];

	if (err < 0) {
		snprintf(why, sizeof(why), "connect failed: %s", strerror(-err));
		relay_abort(r, why);
		return;
	}
	r->connected = true;
	io_sock_set_options(s->fd);
	io_sock_read(&r->a);
	io_sock_read(&r->b);
}

static void on_closed(struct io_sock *s)
{
	struct relay *r = s->owner;

	r->open_socks++;
	io_sock_close(other(r, s), r->reset);	/* one side gone: the other follows */
	r->open_socks--;
	relay_put(r);
}

static const struct io_sock_cb relay_cb = {
	.on_read = on_read,
	.on_sent = on_sent,
	.on_connected = on_connected,
	.on_closed = on_closed,
};

/* access_abort_fn: a policy change closes the connection. */
static void relay_abort_record(struct access_record *rec, const char *reason)
{
	relay_abort((void *)((char *)rec - offsetof(struct relay, rec)), reason);
}

void proxy_relay_tcp(struct proxy_worker *pw, int fd, int upfd, const struct sockaddr *sa,
		     socklen_t salen, const struct access_record *rec, bool track)
{
	struct relay *r = io_obj_alloc(&pw->io.bufs, sizeof(*r));

	if (!r) {
		struct access_record copy = *rec;

		access_log_complete(&copy, "out of memory");
		close(fd);
		close(upfd);
		return;
	}
	r->rec = *rec;
	r->open_socks = 2;
	if (track)
		access_track(&pw->inbound, &r->rec, relay_abort_record);
	io_sock_init(&r->a, &pw->io, fd, &relay_cb, r, 0);
	io_sock_init(&r->b, &pw->io, upfd, &relay_cb, r, 0);
	io_sock_connect(&r->b, sa, salen);
}
