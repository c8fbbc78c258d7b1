/* dns/client: a pod's TCP connection to the proxy: length-prefixed queries, one at a time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/log.h>

#include "dns-int.h"

#define IN_CAP (2 + DNS_MAX_QUERY)

/*
 * Owned by itself from accept until on_closed. Queries are taken in order, one in progress at
 * a time (pipelined ones wait in in[]); nothing is read while one is in progress, so a client
 * holds at most one forward and IN_CAP bytes. Idle (no query in progress) for
 * DNS_TCP_TIMEOUT_MS, it is closed, as upstream's 5 s TCP request timeout.
 */
struct dns_client_conn {
	struct io_sock s;
	struct dns_listener *l;		/* reference */
	struct dns_client_conn *next;	/* l->conns */
	struct dns_forward *fwd;	/* the query being forwarded, or NULL */
	struct io_timer idle;
	bool busy;			/* a query in progress (answering, forwarding or writing) */
	bool closing;
	uint8_t *out;			/* owned: the answer being written, with its prefix */
	size_t in_len;
	uint8_t in[IN_CAP];
};

static void conn_close(struct dns_client_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	io_timer_disarm(&c->idle);
	if (c->fwd) {
		dns_forward_detach(c->fwd);
		c->fwd = NULL;
	}
	io_sock_close(&c->s, false);
}

static void on_idle(struct io_timer *t)
{
	conn_close((struct dns_client_conn *)((char *)t - offsetof(struct dns_client_conn, idle)));
}

/* Takes the next complete query from in[] if none is in progress; else reads on. */
static void next_query(struct dns_client_conn *c)
{
	uint8_t q[DNS_MAX_QUERY];
	size_t need;
	struct dns_reply_to to = { .tcp = c };

	if (c->closing || c->busy)
		return;
	if (c->in_len >= 2) {
		need = ((size_t)c->in[0] << 8) | c->in[1];
		if (need > DNS_MAX_QUERY) {
			metrics_dns_drop(c->l->dw->dns->metrics, METRICS_DNS_DROP_OVERSIZED);
			conn_close(c);
			return;
		}
		if (c->in_len >= 2 + need) {
			memcpy(q, c->in + 2, need);
			c->in_len -= 2 + need;
			memmove(c->in, c->in + 2 + need, c->in_len);
			c->busy = true;
			io_timer_disarm(&c->idle);
			dns_handle_query(c->l, &to, q, need);	/* may reply at once */
			return;
		}
	}
	io_timer_arm(c->l->dw->io, &c->idle, DNS_TCP_TIMEOUT_MS);
	if (io_sock_read(&c->s) < 0 && !c->s.rop.busy)
		conn_close(c);
}

void dns_client_reply(struct dns_client_conn *c, uint8_t *msg, size_t len)
{
	if (!msg || c->closing || len > DNS_TCP_LIMIT) {
		free(msg);
		conn_close(c);
		return;
	}
	free(c->out);
	c->out = malloc(len + 2);
	if (!c->out) {
		free(msg);
		conn_close(c);
		return;
	}
	c->out[0] = (uint8_t)(len >> 8);
	c->out[1] = (uint8_t)len;
	memcpy(c->out + 2, msg, len);
	free(msg);
	if (io_sock_write(&c->s, c->out, len + 2) < 0)
		conn_close(c);
}

void dns_client_set_forward(struct dns_client_conn *c, struct dns_forward *f)
{
	c->fwd = f;
}

static void on_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	struct dns_client_conn *c = s->owner;

	if (c->closing)
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	if ((size_t)n > IN_CAP - c->in_len) {
		/* more than a whole query's worth pipelined at once: not a resolver's client */
		metrics_dns_drop(c->l->dw->dns->metrics, METRICS_DNS_DROP_OVERSIZED);
		conn_close(c);
		return;
	}
	memcpy(c->in + c->in_len, data, (size_t)n);
	c->in_len += (size_t)n;
	next_query(c);
}

static void on_sent(struct io_sock *s, int err)
{
	struct dns_client_conn *c = s->owner;

	free(c->out);
	c->out = NULL;
	if (err < 0) {
		conn_close(c);
		return;
	}
	c->busy = false;
	next_query(c);
}

static void on_closed(struct io_sock *s)
{
	struct dns_client_conn *c = s->owner, **pp;
	struct dns_listener *l = c->l;

	for (pp = &l->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	l->n_conns--;
	free(c->out);
	free(c);
	dns_listener_unref(l);
}

static void on_connected(struct io_sock *s, int err)
{
}

static const struct io_sock_cb client_cb = {
	.on_read = on_read,
	.on_sent = on_sent,
	.on_connected = on_connected,
	.on_closed = on_closed,
};

void dns_client_accept(struct dns_listener *l, int fd)
{
	struct dns_client_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		io_sock_reset_close(fd);
		return;
	}
	c->l = dns_listener_ref(l);
	c->next = l->conns;
	l->conns = c;
	l->n_conns++;
	c->idle.fire = on_idle;
	io_sock_init(&c->s, l->dw->io, fd, &client_cb, c, 16384);
	next_query(c);
}

void dns_client_close_all(struct dns_listener *l)
{
	struct dns_client_conn *c, *next;

	for (c = l->conns; c; c = next) {
		next = c->next;
		conn_close(c);	/* on_closed may run at once and unlink c */
	}
}
