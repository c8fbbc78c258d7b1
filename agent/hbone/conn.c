/* hbone conn: the HTTP/2 session over the TLS transport (tls-xprt.h) on an io_uring socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include <ztunnel/log.h>

#include "hbone-int.h"

#define CONN_RBUF (256 * 1024)

void hbone_settings_default(struct hbone_settings *s)
{
	s->stream_window = 4u << 20;
	s->conn_window = 16u << 20;
	s->frame_size = 1u << 20;
	s->max_streams_per_conn = 100;
	s->max_conns_per_peer = 4;
	s->server_max_streams = 200;
	s->idle_release_ms = 5 * 60 * 1000;
	s->spare_release_ms = 5 * 1000;
	s->handshake_timeout_ms = 10 * 1000;
	s->mark = 0x539;
	s->max_pending_handshakes = 2048;
	s->max_pending_per_source = 256;
	s->app_buffer_limit = 64u << 20;
	s->max_header_list = 64 * 1024;
	s->keepalive_interval_ms = 10 * 1000;
	s->keepalive_timeout_ms = 20 * 1000;
	s->localhost_app_tunnel = true;
}

/* The handshake is over (done or failed): it no longer counts against the gate. */
static void ungate(struct hbone_conn *c)
{
	if (!c->gated)
		return;
	c->gated = false;
	hbone_gate_leave(c->gate, &c->peer);
}

static void maybe_free(struct hbone_conn *c)
{
	if (c->depth > 0 || !c->sock_closed || c->streams)
		return;
	io_timer_disarm(&c->timer);
	io_timer_disarm(&c->keepalive);
	ungate(c);
	tls_xprt_free(&c->tls);
	SSL_CTX_free(c->ctx);
	c->ctx = NULL;
	nghttp2_session_del(c->h2);
	c->h2 = NULL;
	free(c->target);
	c->target = NULL;
	if (c->server && c->handler)
		c->handler->release(c->hctx);
	io_obj_free(&c->w->bufs, c);
}

void hconn_enter(struct hbone_conn *c)
{
	c->depth++;
}

void hconn_leave(struct hbone_conn *c)
{
	c->depth--;
	maybe_free(c);
}

void hconn_stream_detached(struct hbone_conn *c)
{
	if (!c->server && c->state == HCONN_READY && c->active_streams == 0)
		hpool_conn_idle(c);
	maybe_free(c);
}

static void conn_close(struct hbone_conn *c, bool warn, const char *reason)
{
	char peer[64], gone[400];

	if (c->state == HCONN_CLOSING)
		return;
	bool handshaking = c->state != HCONN_READY;

	c->state = HCONN_CLOSING;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	if (!c->server && c->target && c->target->waypoint[0])	/* each stream's log names it */
		snprintf(gone, sizeof(gone), "waypoint %s: %s", c->target->waypoint, reason);
	else
		snprintf(gone, sizeof(gone), "%s", reason);
	access_addr(&c->peer, peer, sizeof(peer));
	if (warn && c->server)
		log_warn(handshaking ? "inbound handshake failed" : "inbound connection failed",
			 "src.addr=%s src.identity=%s error=\"%s\"", peer,
			 c->peer_identity[0] ? c->peer_identity : "-", reason);
	else if (warn)
		log_warn("outbound connection failed",
			 "dst.hbone_addr=%s dst.identity=%s src.identity=%s waypoint=\"%s\" "
			 "error=\"%s\"", peer, c->target ? c->target->dst_identity : "-",
			 c->target ? c->target->src_identity : "-",
			 c->target && c->target->waypoint[0] ? c->target->waypoint : "-", reason);
	else
		log_debug("hbone connection closed", "peer=%s reason=\"%s\"", peer, reason);
	io_timer_disarm(&c->timer);
	io_timer_disarm(&c->keepalive);
	ungate(c);
	if (!c->server)
		hpool_conn_closed(c);
	while (c->streams)
		hstream_conn_gone(c->streams, gone);
	io_sock_close(&c->sock, warn);
}

void hconn_fail(struct hbone_conn *c, const char *fmt, ...)
{
	char reason[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	conn_close(c, true, reason);
}

/* ZTUNNEL_KTLS: the first connection with an outcome says it, once per process. */
static void ktls_report(struct hbone_conn *c)
{
	static atomic_bool said;

	if (!c->set->ktls || c->tls.ktls_err == -EINPROGRESS || atomic_exchange(&said, true))
		return;
	if (c->tls.ktls_err == 0)
		log_info("kTLS: the kernel seals what the agent sends", "setting=ZTUNNEL_KTLS");
	else
		log_warn("kTLS unavailable, TLS records stay in user space",
			 "setting=ZTUNNEL_KTLS reason=\"%s\"", c->tls.reason);
}

static void send_pending(struct hbone_conn *c)
{
	const uint8_t *data;
	size_t len;

	if (c->state == HCONN_CLOSING || c->sock.wdata)
		return;
	data = tls_xprt_out_peek(&c->tls, &len);
	if (data) {
		c->writing = len;
		io_sock_write(&c->sock, data, len);
		return;
	}
	if (c->set->ktls && tls_xprt_drained(&c->tls) == 0)	/* the handshake's bytes are out */
		ktls_report(c);
	if (c->state == HCONN_READY && !nghttp2_session_want_read(c->h2) &&
	    !nghttp2_session_want_write(c->h2)) {
		char why[sizeof(c->close_reason)];

		snprintf(why, sizeof(why), "%s", c->close_reason[0] ? c->close_reason :
			 "session finished");
		conn_close(c, false, why);
	}
}

/* Frames from nghttp2 into the transport (DATA frames come through hstream's send_data
 * callback, without a copy), sealed into records, then out to the socket. */
void hconn_flush(struct hbone_conn *c)
{
	if (c->state == HCONN_CLOSING)
		return;
	while (c->state == HCONN_READY && tls_xprt_out_len(&c->tls) < HCONN_OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);

		if (n < 0) {
			hconn_fail(c, "http2 send: %s", nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			break;
		if (hconn_write(c, data, (size_t)n) < 0)
			return;
	}
	if (c->state == HCONN_READY && tls_xprt_push(&c->tls) < 0) {
		hconn_fail(c, "%s", c->tls.reason);
		return;
	}
	send_pending(c);
}

int hconn_write(struct hbone_conn *c, const uint8_t *data, size_t len)
{
	if (tls_xprt_write(&c->tls, data, len) < 0) {
		hconn_fail(c, "%s", c->tls.reason);
		return -EIO;
	}
	return 0;
}

/* The peer's certificate passed the chain check; now its identity. */
static int check_peer(struct hbone_conn *c, char *why, size_t len)
{
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	struct tls_spiffe sp;
	int ret;

	SSL_get0_alpn_selected(tls_xprt_ssl(&c->tls), &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
		snprintf(why, len, "peer did not negotiate ALPN h2");
		return -EPROTO;
	}
	ret = tls_peer_identity(tls_xprt_ssl(&c->tls), c->peer_identity, sizeof(c->peer_identity));
	if (ret < 0) {
		snprintf(why, len, "peer certificate has no valid SPIFFE identity (%s)", strerror(-ret));
		return ret;
	}
	if (c->server) {
		if (tls_spiffe_parse(c->peer_identity, &sp) < 0 ||
		    strcmp(sp.trust_domain, c->trust_domain) != 0) {
			snprintf(why, len, "client identity %s is not in trust domain %s",
				 c->peer_identity, c->trust_domain);
			return -EACCES;
		}
	} else if (strcmp(c->peer_identity, c->target->dst_identity) != 0) {
		snprintf(why, len, "server identity %s is not the expected %s", c->peer_identity,
			 c->target->dst_identity);
		return -EACCES;
	}
	return 0;
}

static int new_session(struct hbone_conn *c);
static int start_tls(struct hbone_conn *c);

static void handshake_step(struct hbone_conn *c)
{
	char why[400];
	int r = tls_xprt_handshake(&c->tls);

	if (r == 0)
		return;
	if (r < 0) {
		hconn_fail(c, "%s", c->tls.reason);
		return;
	}
	ktls_report(c);
	if (check_peer(c, why, sizeof(why)) < 0) {
		hconn_fail(c, "%s", why);
		return;
	}
	if (new_session(c) < 0) {
		hconn_fail(c, "cannot start the HTTP/2 session");
		return;
	}
	ungate(c);
	c->state = HCONN_READY;
	io_timer_disarm(&c->timer);
	io_timer_arm(c->w, &c->keepalive, c->set->keepalive_interval_ms);
	if (!c->server)
		hpool_conn_ready(c);
}

static int on_plaintext(void *arg, const uint8_t *data, size_t len)
{
	struct hbone_conn *c = arg;
	ssize_t n = nghttp2_session_mem_recv(c->h2, data, len);

	if (n < 0) {
		hconn_fail(c, "http2 protocol error: %s", nghttp2_strerror((int)n));
		return -EPROTO;
	}
	return c->state == HCONN_READY ? 0 : -ECANCELED;
}

static void read_plaintext(struct hbone_conn *c)
{
	int r = tls_xprt_read(&c->tls, on_plaintext, c);

	if (r == TLS_XPRT_CLOSED)
		conn_close(c, false, "peer sent close_notify");
	else if (r < 0 && c->state == HCONN_READY)
		hconn_fail(c, "%s", c->tls.reason);
}

static void on_sock_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	struct hbone_conn *c = s->owner;

	hconn_enter(c);
	if (n <= 0) {
		if (!tls_xprt_ssl(&c->tls))	/* not a byte sent: a scan or an attacker, not worth a warning */
			conn_close(c, false, n == 0 ? "peer closed before sending anything" :
				   strerror((int)-n));
		else if (c->state == HCONN_READY)
			conn_close(c, n < 0, n == 0 ? "peer closed the connection" : strerror((int)-n));
		else
			hconn_fail(c, "%s", n == 0 ? "peer closed during handshake" : strerror((int)-n));
		goto out;
	}
	if (!tls_xprt_ssl(&c->tls) && start_tls(c) < 0) {
		hconn_fail(c, "out of memory");
		goto out;
	}
	tls_xprt_input(&c->tls, data, (size_t)n);	/* read in place, until read_plaintext */
	if (c->state == HCONN_HANDSHAKE)
		handshake_step(c);
	if (c->state == HCONN_READY) {
		read_plaintext(c);
		if (c->requests_pending)
			hstream_dispatch_requests(c);
	}
	hconn_flush(c);
	if (c->state != HCONN_CLOSING)
		io_sock_read(&c->sock);
out:
	hconn_leave(c);
}

static void on_sock_sent(struct io_sock *s, int err)
{
	struct hbone_conn *c = s->owner;

	hconn_enter(c);
	if (err < 0) {
		hconn_fail(c, "send: %s", strerror(-err));
	} else {
		tls_xprt_out_consume(&c->tls, c->writing);
		c->writing = 0;
		hconn_flush(c);
	}
	hconn_leave(c);
}

static unsigned hconn_peer_port(const struct hbone_conn *c)
{
	if (c->peer.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&c->peer)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&c->peer)->sin_port);
}

static void on_sock_connected(struct io_sock *s, int err)
{
	struct hbone_conn *c = s->owner;

	hconn_enter(c);
	if (err < 0) {
		unsigned port = hconn_peer_port(c);

		hconn_fail(c, "connect to port %u failed: %s (is port %u reachable?)", port,
			   strerror(-err), port);
	} else {
		io_sock_set_options(s->fd);
		hconn_start_handshake(c);
	}
	hconn_leave(c);
}

static void on_sock_closed(struct io_sock *s)
{
	struct hbone_conn *c = s->owner;

	c->sock_closed = true;
	maybe_free(c);
}

static const struct io_sock_cb conn_sock_cb = {
	.on_read = on_sock_read,
	.on_sent = on_sock_sent,
	.on_connected = on_sock_connected,
	.on_closed = on_sock_closed,
};

static void on_timer(struct io_timer *t)
{
	struct hbone_conn *c = (void *)((char *)t - offsetof(struct hbone_conn, timer));

	hconn_enter(c);
	if (c->state == HCONN_READY) {
		if (!hpool_conn_keep(c))
			conn_close(c, false, "idle");
	} else if (c->state == HCONN_CONNECTING)
		hconn_fail(c, "connect timeout: no answer from port %u (is it blocked?)",
			   hconn_peer_port(c));
	else if (!tls_xprt_ssl(&c->tls))
		conn_close(c, false, "handshake timeout: peer sent nothing");
	else
		hconn_fail(c, "handshake timeout");
	hconn_leave(c);
}

/* A peer that vanished without a FIN (or froze) stops answering PINGs: the connection goes,
 * so that the pool opens a fresh one instead of queueing streams on a dead one. */
static void on_keepalive(struct io_timer *t)
{
	struct hbone_conn *c = (void *)((char *)t - offsetof(struct hbone_conn, keepalive));

	if (c->state != HCONN_READY)
		return;
	hconn_enter(c);
	if (c->ping_in_flight) {
		hconn_fail(c, "keepalive: no answer to PING within %u ms",
			   c->set->keepalive_timeout_ms);
	} else if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL) != 0) {
		hconn_fail(c, "keepalive: cannot send PING");
	} else {
		c->ping_in_flight = true;
		io_timer_arm(c->w, &c->keepalive, c->set->keepalive_timeout_ms);
		hconn_flush(c);
	}
	hconn_leave(c);
}

void hconn_pong(struct hbone_conn *c)
{
	char peer[64];

	if (!c->ping_in_flight || c->state != HCONN_READY)
		return;
	c->ping_in_flight = false;
	log_debug("keepalive answered", "peer=%s", access_addr(&c->peer, peer, sizeof(peer)));
	io_timer_arm(c->w, &c->keepalive, c->set->keepalive_interval_ms);
}

/* The TLS transport; the context reference passes to its SSL object. */
static int start_tls(struct hbone_conn *c)
{
	int ret = tls_xprt_init(&c->tls, c->ctx, c->server, &c->w->bufs, c->sock.fd, c->set->ktls);

	if (ret < 0)
		return ret;
	SSL_CTX_free(c->ctx);	/* the SSL object holds its own reference */
	c->ctx = NULL;
	return 0;
}

/* A server waits for the client's first bytes before it spends anything on TLS. */
void hconn_start_handshake(struct hbone_conn *c)
{
	c->state = HCONN_HANDSHAKE;
	if (!c->server) {
		if (start_tls(c) < 0) {
			hconn_fail(c, "out of memory");
			return;
		}
		handshake_step(c);
		hconn_flush(c);
	}
	if (c->state != HCONN_CLOSING)
		io_sock_read(&c->sock);
}

static int new_session(struct hbone_conn *c)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[4];
	size_t niv = 0;
	int ret;

	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -ENOMEM;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cb);
		return -ENOMEM;
	}
	hstream_set_callbacks(cb);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* closed streams kept only for the priority tree cost a pooled connection memory per
	 * stream it ever carried (up to its stream limit); priorities are not used here */
	nghttp2_option_set_no_closed_streams(opt, 1);
	if (c->server)
		ret = nghttp2_session_server_new2(&c->h2, cb, c, opt);
	else
		ret = nghttp2_session_client_new2(&c->h2, cb, c, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (ret != 0)
		return -ENOMEM;
	iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->set->stream_window };
	iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_FRAME_SIZE, c->set->frame_size };
	if (c->server) {
		iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
						      c->set->server_max_streams };
		iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
						      c->set->max_header_list };
	} else
		iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, (int32_t)c->set->conn_window) != 0)
		return -EINVAL;
	return 0;
}

struct hbone_conn *hconn_new(struct io_worker *w, int fd, SSL_CTX *ctx, bool server,
			     const struct hbone_settings *set, struct hbone_gate *gate)
{
	struct hbone_conn *c = io_obj_alloc(&w->bufs, sizeof(*c));

	if (!c) {
		close(fd);
		return NULL;
	}
	c->w = w;
	c->server = server;
	c->set = set;
	c->gate = gate;
	c->state = HCONN_CONNECTING;
	c->timer.fire = on_timer;
	c->keepalive.fire = on_keepalive;
	SSL_CTX_up_ref(ctx);
	c->ctx = ctx;
	io_sock_init(&c->sock, w, fd, &conn_sock_cb, c, CONN_RBUF);
	io_timer_arm(w, &c->timer, set->handshake_timeout_ms);
	return c;
}

int hbone_server_start(struct io_worker *w, int fd, SSL_CTX *ctx, const char *trust_domain,
		       const struct hbone_settings *set, struct hbone_gate *gate,
		       const struct hbone_server_handler *h, void *hctx,
		       const struct sockaddr_storage *peer)
{
	struct hbone_conn *c;
	int ret = hbone_gate_enter(gate, peer);

	if (ret < 0) {
		io_sock_reset_close(fd);	/* refused before anything was spent on it */
		return ret;
	}
	c = hconn_new(w, fd, ctx, true, set, gate);	/* options from the listener */
	if (!c) {
		hbone_gate_leave(gate, peer);
		return -ENOMEM;
	}
	c->gated = gate != NULL;
	c->handler = h;
	c->hctx = hctx;
	h->hold(hctx);
	c->peer = *peer;
	snprintf(c->trust_domain, sizeof(c->trust_domain), "%s", trust_domain);
	hconn_enter(c);
	hconn_start_handshake(c);
	hconn_leave(c);
	return 0;
}
