/* hbone pool: per-worker client connections shared by streams with the same key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/inpod.h>
#include <ztunnel/log.h>

#include "hbone-int.h"

struct hbone_pool {
	struct io_worker *w;
	const struct hbone_settings *set;
	struct hbone_conn *conns;	/* linked by pool_next; each conn owns itself */
	unsigned n;
	struct hbone_gate *gate;	/* borrowed */
	struct metrics *metrics;	/* ztunnel_pooled_connections follows n; borrowed */
};

bool hbone_target_same_pool(const struct hbone_target *a, const struct hbone_target *b)
{
	return a->netns_fd == b->netns_fd && a->client_ctx == b->client_ctx &&
	       memcmp(&a->hbone_addr, &b->hbone_addr, sizeof(a->hbone_addr)) == 0 &&
	       strcmp(a->src_identity, b->src_identity) == 0 &&
	       strcmp(a->dst_identity, b->dst_identity) == 0;
}

struct hbone_pool *hbone_pool_new(struct io_worker *w, const struct hbone_settings *set,
				  struct hbone_gate *gate, struct metrics *metrics)
{
	struct hbone_pool *p = calloc(1, sizeof(*p));

	if (p) {
		p->w = w;
		p->set = set;
		p->gate = gate;
		p->metrics = metrics;
	}
	return p;
}

void hbone_pool_free(struct hbone_pool **pool)
{
	struct hbone_conn *c;

	if (!*pool)
		return;
	for (c = (*pool)->conns; c; c = c->pool_next)
		c->pool = NULL;
	metrics_gauge_add((*pool)->metrics, METRICS_POOLED_CONNECTIONS, -(int64_t)(*pool)->n);
	free(*pool);
	*pool = NULL;
}

unsigned hbone_pool_size(const struct hbone_pool *pool)
{
	return pool->n;
}

static bool has_room(const struct hbone_conn *c)
{
	uint32_t limit = c->set->max_streams_per_conn;

	if (c->state == HCONN_CLOSING)
		return false;
	if (c->state == HCONN_READY) {
		uint32_t peer = nghttp2_session_get_remote_settings(
			c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

		if (peer < limit)
			limit = peer;
		if (!nghttp2_session_check_request_allowed(c->h2))
			return false;
	}
	return c->active_streams < limit;
}

static struct hbone_conn *open_conn(struct hbone_pool *p, const struct hbone_target *t)
{
	struct hbone_conn *c;
	int fd = inpod_socket(t->netns_fd, t->hbone_addr.ss_family, SOCK_STREAM, p->set->mark);

	if (fd < 0) {
		errno = -fd;
		return NULL;
	}
	c = hconn_new(p->w, fd, t->client_ctx, false, p->set, p->gate);
	if (!c)
		return NULL;
	c->target = malloc(sizeof(*c->target));
	if (!c->target) {
		hconn_fail(c, "out of memory");
		return NULL;
	}
	*c->target = *t;
	c->peer = t->hbone_addr;
	c->pool = p;
	c->pool_next = p->conns;
	p->conns = c;
	p->n++;
	metrics_gauge_add(p->metrics, METRICS_POOLED_CONNECTIONS, 1);
	io_sock_connect(&c->sock, (const struct sockaddr *)&t->hbone_addr,
			t->hbone_addr.ss_family == AF_INET ? sizeof(struct sockaddr_in)
							  : sizeof(struct sockaddr_in6));
	return c;
}

/* Bytes waiting inside the agent (a stream's, either way, or a connection's ciphertext) from
 * which on it is moving bulk, not a request and its answer. */
#define BULK_BYTES (64 * 1024)

static bool stream_bulk(const struct hbone_stream *st)
{
	return st->pend_len + st->q.len >= BULK_BYTES;
}

/* Bytes a connection's streams moved per second from which on it is carrying bulk (about
 * 64 Mbit/s: request/response traffic stays far below, an iperf3 stream far above). */
#define BULK_RATE (8u * 1024 * 1024)
#define RATE_MIN_MS 20		/* shorter intervals are noise: the previous verdict stands */

/* Whether c's streams moved bytes at bulk rate since the pool last looked (their access
 * records count the bytes; a stream gone since takes its share along, erring towards idle). */
static bool conn_moving(struct hbone_conn *c)
{
	uint64_t now = io_now_ms(), total = 0, moved;

	for (const struct hbone_stream *st = c->streams; st; st = st->next)
		total += st->rec.bytes_sent + st->rec.bytes_recv;
	if (now - c->pool_rate_ms >= RATE_MIN_MS) {
		moved = total > c->pool_rate_bytes ? total - c->pool_rate_bytes : 0;
		c->pool_busy = moved * 1000 >= (uint64_t)BULK_RATE * (now - c->pool_rate_ms);
		c->pool_rate_bytes = total;
		c->pool_rate_ms = now;
	}
	return c->pool_busy;
}

/*
 * How busy c is moving bytes: streams at bulk rate lately, its ciphertext backed up behind a
 * write in flight, its connection window (ours to send in) short of one stream window, or
 * streams with many bytes queued on it. An idle or request/response connection scores 0
 * whatever its stream count.
 */
static unsigned conn_bulk(struct hbone_conn *c)
{
	unsigned bulk = 0;

	if (c->state != HCONN_READY || !c->active_streams)
		return 0;
	for (const struct hbone_stream *st = c->streams; st; st = st->next)
		bulk += stream_bulk(st);
	bulk += conn_moving(c);
	if (c->sock.wdata && tls_xprt_out_len(&c->tls) >= BULK_BYTES)
		bulk++;
	if (nghttp2_session_get_remote_window_size(c->h2) < (int32_t)c->set->stream_window)
		bulk++;
	return bulk;
}

/* Orders connections of one key: fewest busy signals, then fewest streams. */
static uint64_t conn_load(struct hbone_conn *c)
{
	return ((uint64_t)conn_bulk(c) << 32) | c->active_streams;
}

/*
 * The connection of t's key for a new stream: the least-loaded one with room; a new one when
 * none has room (upstream's rule, at the stream limit), or when even the least-loaded is busy
 * moving bytes and the key has fewer than max_conns_per_peer connections (competing streams
 * spread over connections: their own TCP windows, TLS pumps and, on the peer, workers).
 */
static struct hbone_conn *pick_conn(struct hbone_pool *p, const struct hbone_target *t)
{
	struct hbone_conn *c, *best = NULL;
	uint64_t best_load = 0, load;
	unsigned n_key = 0;

	for (c = p->conns; c; c = c->pool_next) {
		if (!hbone_target_same_pool(c->target, t))
			continue;
		n_key++;
		if (!has_room(c))
			continue;
		load = conn_load(c);
		if (!best || load < best_load) {
			best = c;
			best_load = load;
		}
	}
	if (best && (!(best_load >> 32) || n_key >= p->set->max_conns_per_peer))
		return best;
	c = open_conn(p, t);
	return c ? c : best;	/* no new connection (out of fds): a busy one carries it */
}

void hbone_pool_tunnel(struct hbone_pool *p, const struct hbone_target *t, int fd,
		       const struct access_record *rec, const struct hbone_meta *meta)
{
	struct hbone_conn *c = pick_conn(p, t);
	struct hbone_stream *st;

	if (!c) {
		struct access_record r = *rec;

		access_log_complete(&r, "cannot open an HBONE connection");
		close(fd);
		return;
	}
	hconn_enter(c);
	st = hstream_new(c);
	if (!st) {
		struct access_record r = *rec;

		access_log_complete(&r, "out of memory");
		close(fd);
		goto out;
	}
	st->rec = *rec;
	if (meta && hstream_meta(st))
		*st->meta = *meta;	/* without it the request goes out without metadata */
	hstream_attach_tcp(st, fd);
	if (c->state == HCONN_READY) {
		hstream_submit_request(st, t->authority);
		hconn_flush(c);
		goto out;
	}
	/* the pool key leaves the app port out: a stream waiting for its connection keeps its
	 * own authority */
	st->authority = strdup(t->authority);
	if (!st->authority)
		hstream_fail(st, "out of memory");
out:
	hconn_leave(c);
}

void hpool_conn_ready(struct hbone_conn *c)
{
	struct hbone_stream *st, *next;

	for (st = c->streams; st; st = next) {
		next = st->next;
		if (st->id < 0 && !st->reset)	/* not one failed while it waited */
			hstream_submit_request(st, NULL);
	}
	if (!c->streams)
		hpool_conn_idle(c);
}

/* Another connection of c's key that can take new streams. */
static bool other_ready(const struct hbone_conn *c)
{
	if (!c->pool)
		return false;
	for (const struct hbone_conn *o = c->pool->conns; o; o = o->pool_next)
		if (o != c && o->state == HCONN_READY &&
		    hbone_target_same_pool(o->target, c->target))
			return true;
	return false;
}

/*
 * Upstream keeps every connection a storm opened until its idle timeout (with its TLS and
 * HTTP/2 state, tens of kB each, and an fd on both nodes). Here a connection that goes idle
 * while another of its key is ready is a spare and closes after the short spare timeout; the
 * last of its key keeps the pool's.
 */
void hpool_conn_idle(struct hbone_conn *c)
{
	uint32_t idle = c->set->idle_release_ms, spare = c->set->spare_release_ms;

	c->idle_spare = spare < idle && other_ready(c);
	io_timer_arm(c->w, &c->timer, c->idle_spare ? spare : idle);
}

bool hpool_conn_keep(struct hbone_conn *c)
{
	if (!c->idle_spare || other_ready(c))
		return false;
	c->idle_spare = false;
	io_timer_arm(c->w, &c->timer, c->set->idle_release_ms - c->set->spare_release_ms);
	return true;
}

void hpool_conn_closed(struct hbone_conn *c)
{
	struct hbone_conn **pp;

	if (!c->pool)
		return;
	for (pp = &c->pool->conns; *pp; pp = &(*pp)->pool_next) {
		if (*pp == c) {
			*pp = c->pool_next;
			c->pool->n--;
			metrics_gauge_add(c->pool->metrics, METRICS_POOLED_CONNECTIONS, -1);
			break;
		}
	}
	c->pool = NULL;
}
