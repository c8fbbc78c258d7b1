/* hbone conn: the TLS pump (memory BIOs over an io_uring socket) and the HTTP/2 session. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include <ztunnel/log.h>

#include "hbone-int.h"

#define CONN_RBUF (256 * 1024)
#define OBUF_SIZE (256 * 1024)
#define WBIO_HIGH (1024 * 1024)	/* stop pulling frames from nghttp2 above this */

void hbone_settings_default(struct hbone_settings *s)
{
	s->stream_window = 4u << 20;
	s->conn_window = 16u << 20;
	s->frame_size = 1u << 20;
	s->max_streams_per_conn = 100;
	s->server_max_streams = 200;
	s->idle_release_ms = 5 * 60 * 1000;
	s->handshake_timeout_ms = 10 * 1000;
	s->mark = 0x539;
}

static void maybe_free(struct hbone_conn *c)
{
	if (c->depth > 0 || !c->sock_closed || c->streams)
		return;
	io_timer_disarm(&c->timer);
	SSL_free(c->ssl);
	c->ssl = NULL;
	nghttp2_session_del(c->h2);
	c->h2 = NULL;
	free(c->obuf);
	c->obuf = NULL;
	if (c->server && c->handler)
		c->handler->release(c->hctx);
	free(c);
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
		io_timer_arm(c->w, &c->timer, c->set->idle_release_ms);
	maybe_free(c);
}

static void conn_close(struct hbone_conn *c, bool warn, const char *reason)
{
	char peer[64];

	if (c->state == HCONN_CLOSING)
		return;
	bool handshaking = c->state != HCONN_READY;

	c->state = HCONN_CLOSING;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	access_addr(&c->peer, peer, sizeof(peer));
	if (warn && c->server)
		log_warn(handshaking ? "inbound handshake failed" : "inbound connection failed",
			 "src.addr=%s src.identity=%s error=\"%s\"", peer,
			 c->peer_identity[0] ? c->peer_identity : "-", reason);
	else if (warn)
		log_warn("outbound connection failed",
			 "dst.hbone_addr=%s dst.identity=%s src.identity=%s error=\"%s\"", peer,
			 c->target.dst_identity, c->target.src_identity, reason);
	else
		log_debug("hbone connection closed", "peer=%s reason=\"%s\"", peer, reason);
	io_timer_disarm(&c->timer);
	if (!c->server)
		hpool_conn_closed(c);
	while (c->streams)
		hstream_conn_gone(c->streams, reason);
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

static void send_pending(struct hbone_conn *c)
{
	int n;

	if (c->state == HCONN_CLOSING || c->sock.wdata)
		return;
	if (BIO_pending(c->wbio) == 0) {
		if (c->state == HCONN_READY && !nghttp2_session_want_read(c->h2) &&
		    !nghttp2_session_want_write(c->h2))
			conn_close(c, false, "session finished");
		return;
	}
	n = BIO_read(c->wbio, c->obuf, OBUF_SIZE);
	if (n > 0)
		io_sock_write(&c->sock, c->obuf, (size_t)n);
}

void hconn_flush(struct hbone_conn *c)
{
	if (c->state == HCONN_CLOSING)
		return;
	while (c->state == HCONN_READY && BIO_pending(c->wbio) < WBIO_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);

		if (n < 0) {
			hconn_fail(c, "http2 send: %s", nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			break;
		if (SSL_write(c->ssl, data, (int)n) != (int)n) {
			char e[120];

			hconn_fail(c, "tls write: %s", tls_last_error(e, sizeof(e)));
			return;
		}
	}
	send_pending(c);
}

/* The peer's certificate passed the chain check; now its identity. */
static int check_peer(struct hbone_conn *c, char *why, size_t len)
{
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	struct tls_spiffe sp;
	int ret;

	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
		snprintf(why, len, "peer did not negotiate ALPN h2");
		return -EPROTO;
	}
	ret = tls_peer_identity(c->ssl, c->peer_identity, sizeof(c->peer_identity));
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
	} else if (strcmp(c->peer_identity, c->target.dst_identity) != 0) {
		snprintf(why, len, "server identity %s is not the expected %s", c->peer_identity,
			 c->target.dst_identity);
		return -EACCES;
	}
	return 0;
}

static void handshake_step(struct hbone_conn *c)
{
	char why[400], e[200];
	int r = SSL_do_handshake(c->ssl);

	if (r == 1) {
		if (check_peer(c, why, sizeof(why)) < 0) {
			hconn_fail(c, "%s", why);
			return;
		}
		c->state = HCONN_READY;
		io_timer_disarm(&c->timer);
		if (!c->server)
			hpool_conn_ready(c);
		return;
	}
	int err = SSL_get_error(c->ssl, r);

	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return;
	tls_last_error(e, sizeof(e));
	long vr = SSL_get_verify_result(c->ssl);

	if (vr != X509_V_OK)
		hconn_fail(c, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
	else
		hconn_fail(c, "tls handshake: %s", e[0] ? e : "peer closed");
}

static void read_plaintext(struct hbone_conn *c)
{
	uint8_t buf[32 * 1024];

	while (c->state == HCONN_READY) {
		int r = SSL_read(c->ssl, buf, sizeof(buf));

		if (r <= 0) {
			int err = SSL_get_error(c->ssl, r);
			char e[160];

			if (err == SSL_ERROR_WANT_READ)
				return;
			if (err == SSL_ERROR_ZERO_RETURN)
				conn_close(c, false, "peer sent close_notify");
			else
				hconn_fail(c, "tls read: %s", tls_last_error(e, sizeof(e)));
			return;
		}
		ssize_t n = nghttp2_session_mem_recv(c->h2, buf, (size_t)r);

		if (n < 0) {
			hconn_fail(c, "http2 protocol error: %s", nghttp2_strerror((int)n));
			return;
		}
	}
}

static void on_sock_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	struct hbone_conn *c = s->owner;

	hconn_enter(c);
	if (n <= 0) {
		if (c->state == HCONN_READY)
			conn_close(c, n < 0, n == 0 ? "peer closed the connection" : strerror((int)-n));
		else
			hconn_fail(c, "%s", n == 0 ? "peer closed during handshake" : strerror((int)-n));
		goto out;
	}
	BIO_write(c->rbio, data, (int)n);
	if (c->state == HCONN_HANDSHAKE)
		handshake_step(c);
	if (c->state == HCONN_READY)
		read_plaintext(c);
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
	if (err < 0)
		hconn_fail(c, "send: %s", strerror(-err));
	else
		hconn_flush(c);
	hconn_leave(c);
}

static void on_sock_connected(struct io_sock *s, int err)
{
	struct hbone_conn *c = s->owner;

	hconn_enter(c);
	if (err < 0) {
		hconn_fail(c, "connect to port 15008 failed: %s (is port 15008 reachable?)",
			   strerror(-err));
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
	if (c->state == HCONN_READY)
		conn_close(c, false, "idle");
	else if (c->state == HCONN_CONNECTING)
		hconn_fail(c, "connect timeout: no answer from port 15008 (is it blocked?)");
	else
		hconn_fail(c, "handshake timeout");
	hconn_leave(c);
}

void hconn_start_handshake(struct hbone_conn *c)
{
	c->state = HCONN_HANDSHAKE;
	handshake_step(c);
	hconn_flush(c);
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
	if (c->server)
		iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
						      c->set->server_max_streams };
	else
		iv[niv++] = (nghttp2_settings_entry){ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 };
	if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, niv) != 0 ||
	    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, (int32_t)c->set->conn_window) != 0)
		return -EINVAL;
	return 0;
}

struct hbone_conn *hconn_new(struct io_worker *w, int fd, SSL_CTX *ctx, bool server,
			     const struct hbone_settings *set)
{
	struct hbone_conn *c = calloc(1, sizeof(*c));

	if (!c)
		goto fail;
	c->w = w;
	c->server = server;
	c->set = set;
	c->state = HCONN_CONNECTING;
	c->timer.fire = on_timer;
	io_sock_init(&c->sock, w, fd, &conn_sock_cb, c, CONN_RBUF);
	fd = -1;
	c->obuf = malloc(OBUF_SIZE);
	c->ssl = SSL_new(ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->obuf || !c->ssl || !c->rbio || !c->wbio)
		goto fail_conn;
	BIO_set_mem_eof_return(c->rbio, -1);
	BIO_set_mem_eof_return(c->wbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	if (server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	if (new_session(c) < 0)
		goto fail_conn;
	io_timer_arm(w, &c->timer, set->handshake_timeout_ms);
	return c;

fail_conn:
	if (!c->ssl) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
	}
	SSL_free(c->ssl);
	nghttp2_session_del(c->h2);
	free(c->obuf);
	if (c->sock.fd >= 0)
		close(c->sock.fd);
	free(c);
	return NULL;
fail:
	if (fd >= 0)
		close(fd);
	return NULL;
}

int hbone_server_start(struct io_worker *w, int fd, SSL_CTX *ctx, const char *trust_domain,
		       const struct hbone_settings *set, const struct hbone_server_handler *h,
		       void *hctx, const struct sockaddr_storage *peer)
{
	struct hbone_conn *c;

	io_sock_set_options(fd);
	c = hconn_new(w, fd, ctx, true, set);
	if (!c)
		return -ENOMEM;
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
