/* hbone stream: one CONNECT stream relayed to a TCP socket, with flow control as backpressure. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/log.h>

#include "hbone-int.h"

#define BEHIND (64 * 1024)	/* a stream holding this much for its app is "behind" */

#define MAKE_NV(n, v, vl) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE }

/* A stream's error when its own text could not be stored: the log still says it failed. */
static char error_oom[] = "out of memory";

/* Keeps why st failed for its log line: the first reason, or this one over it when replace.
 * Cut at HSTREAM_ERROR_MAX - 1 bytes, as the fixed buffer it replaces; "" is no reason. */
static void __attribute__((format(printf, 3, 4)))
set_error(struct hbone_stream *st, bool replace, const char *fmt, ...)
{
	char text[HSTREAM_ERROR_MAX];
	va_list ap;

	if (st->error && !replace)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (!text[0])
		return;
	if (st->error != error_oom)
		free(st->error);
	st->error = strdup(text);
	if (!st->error)
		st->error = error_oom;
}

static void error_free(struct hbone_stream *st)
{
	if (st->error != error_oom)
		free(st->error);
	st->error = NULL;
}

void hstream_authority_free(struct hbone_stream *st)
{
	free(st->authority);
	st->authority = NULL;
}

/* Takes the stream off its connection's list; nghttp2 forgets it too. */
static void unlink_from_conn(struct hbone_stream *st)
{
	struct hbone_conn *c = st->conn;

	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	c->active_streams--;
	if (st->id > 0 && c->h2)
		nghttp2_session_set_stream_user_data(c->h2, st->id, NULL);
	st->conn = NULL;
	st->prev = st->next = NULL;
}

/* Drops n queued bytes (written or abandoned) and their share of the node's bound. */
static void queue_drop(struct hbone_stream *st, size_t n)
{
	io_bufq_consume(&st->tcp.w->bufs, &st->q, n);
	hgate_app_release(st->gate, n);
}

static void stream_release(struct hbone_stream *st)
{
	if (st->depth > 0 || !st->finished)
		return;
	queue_drop(st, st->q.len);
	free(st->prefix);
	st->prefix = NULL;
	hstream_meta_free(st);
	hstream_authority_free(st);
	error_free(st);
	io_obj_free(&st->tcp.w->bufs, st);
}

void hstream_enter(struct hbone_stream *st)
{
	st->depth++;
}

void hstream_leave(struct hbone_stream *st)
{
	st->depth--;
	stream_release(st);
}

/* Unlinks and logs the stream; its memory goes once no callback of it is on the stack. */
static void stream_free(struct hbone_stream *st)
{
	struct hbone_conn *c = st->conn;

	if (st->finished)
		return;
	st->finished = true;
	if (c) {
		if (st->q.len && c->h2)	/* what the app never got: the window is the peer's */
			nghttp2_session_consume_connection(c->h2, st->q.len);
		unlink_from_conn(st);
	}
	access_log_complete(&st->rec, st->error);
	if (c)
		hconn_stream_detached(c);
	stream_release(st);
}

/* Frees the stream once both its halves are done. */
static void maybe_finish(struct hbone_stream *st)
{
	bool h2_done = st->h2_closed || !st->conn;

	if (!h2_done)
		return;
	if (st->has_tcp) {
		if (st->tcp.fd >= 0 && !st->tcp.closing) {
			if (!st->reset && st->conn && (st->q.len || st->writing))
				return;	/* still writing what the peer sent */
			io_sock_close(&st->tcp, st->reset);
		}
		return;	/* freed from on_tcp_closed */
	}
	stream_free(st);
}

void hstream_fail(struct hbone_stream *st, const char *reason)
{
	struct hbone_conn *c = st->conn;

	if (st->finished)
		return;
	hstream_enter(st);
	if (c)
		hconn_enter(c);
	set_error(st, false, "%s", reason);
	st->reset = true;
	if (c && st->id > 0 && !st->h2_closed)
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
	if (st->has_tcp)
		io_sock_close(&st->tcp, true);
	else if (!st->conn || st->h2_closed)
		stream_free(st);
	if (c) {
		hconn_flush(c);
		hconn_leave(c);
	}
	hstream_leave(st);
}

void hstream_conn_gone(struct hbone_stream *st, const char *reason)
{
	if (!st->h2_closed)
		set_error(st, false, "%s", reason);
	unlink_from_conn(st);
	if (!st->h2_closed)
		st->reset = true;
	maybe_finish(st);
}

static void pump_out(struct hbone_stream *st)
{
	const uint8_t *seg;
	size_t len;

	if (!st->has_tcp || !st->tcp_ready || st->tcp.closing || st->tcp.fd < 0 || st->writing ||
	    st->writing_prefix)
		return;
	if (st->prefix_len) {	/* ours, before any of the peer's bytes */
		st->writing_prefix = true;
		io_sock_write(&st->tcp, st->prefix, st->prefix_len);
		return;
	}
	seg = io_bufq_peek(&st->q, &len);
	if (seg) {
		st->writing = (uint32_t)len;
		io_sock_write(&st->tcp, seg, len);
		return;
	}
	if (st->h2_eof)
		io_sock_shutdown_write(&st->tcp);
	maybe_finish(st);
}

static void on_tcp_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	struct hbone_stream *st = s->owner;
	struct hbone_conn *c = st->conn;

	if (!c) {
		maybe_finish(st);
		return;
	}
	hstream_enter(st);
	hconn_enter(c);
	if (n < 0) {
		char why[120];

		snprintf(why, sizeof(why), "connection reset: %s", strerror((int)-n));
		hstream_fail(st, why);
		goto out;
	}
	if (n == 0)
		st->tcp_eof = true;
	st->pend = data;
	st->pend_len = (uint32_t)n;
	if (st->data_deferred && st->id > 0) {
		st->data_deferred = false;
		nghttp2_session_resume_data(c->h2, st->id);
	}
	hconn_flush(c);
out:
	hconn_leave(c);
	hstream_leave(st);
}

static void on_tcp_sent(struct io_sock *s, int err)
{
	struct hbone_stream *st = s->owner;
	struct hbone_conn *c = st->conn;
	size_t n = st->writing;

	if (err < 0) {
		st->writing = 0;
		st->writing_prefix = false;
		hstream_fail(st, "write to socket failed");
		return;
	}
	if (st->writing_prefix) {	/* not the peer's bytes: no window given back, not counted */
		st->writing_prefix = false;
		st->prefix_len = 0;
		free(st->prefix);	/* sent: a long-lived stream does not carry it */
		st->prefix = NULL;
		hstream_enter(st);
		pump_out(st);
		hstream_leave(st);
		return;
	}
	queue_drop(st, n);
	st->writing = 0;
	if (st->rec.direction == ACCESS_OUTBOUND)
		st->rec.bytes_sent += n;
	else
		st->rec.bytes_recv += n;
	hstream_enter(st);
	if (c) {
		hconn_enter(c);
		nghttp2_session_consume(c->h2, st->id, n);
		hconn_flush(c);
		pump_out(st);
		hconn_leave(c);
	} else {
		pump_out(st);
	}
	hstream_leave(st);
}

static void on_tcp_closed(struct io_sock *s)
{
	struct hbone_stream *st = s->owner;
	struct hbone_conn *c = st->conn;

	st->has_tcp = false;
	if (c)
		hconn_enter(c);
	if (c && !st->h2_closed && st->id > 0) {
		/* the socket went first: make sure the peer's stream ends too */
		/* a server that already answered non-200 has ended its side cleanly */
		bool answered = c->server && st->status >= 300;

		if (!st->reset && !answered)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
		nghttp2_session_set_stream_user_data(c->h2, st->id, NULL);
	}
	stream_free(st);
	if (c) {
		hconn_flush(c);
		hconn_leave(c);
	}
}

static void on_tcp_connected(struct io_sock *s, int err);

static const struct io_sock_cb stream_tcp_cb = {
	.on_read = on_tcp_read,
	.on_sent = on_tcp_sent,
	.on_connected = on_tcp_connected,
	.on_closed = on_tcp_closed,
};

/* DATA payload per frame: with its 9-byte header, a full TLS record's plaintext */
#define HSTREAM_FRAME_DATA (TLS_XPRT_RECORD - 9)

static ssize_t data_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
			    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct hbone_stream *st = src->ptr;

	if (!st || nghttp2_session_get_stream_user_data(h2, id) != st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (st->pend_len > 0) {	/* send_data_cb writes them from the socket's buffer */
		*flags |= NGHTTP2_DATA_FLAG_NO_COPY;
		/* a full frame with its header is one TLS record (see send_data_cb) */
		if (length > HSTREAM_FRAME_DATA)
			length = HSTREAM_FRAME_DATA;
		return (ssize_t)(st->pend_len < length ? st->pend_len : length);
	}
	if (st->tcp_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return 0;
	}
	st->data_deferred = true;
	return NGHTTP2_ERR_DEFERRED;
}

/* A DATA frame without a copy into nghttp2: its header, then the app's bytes straight from the
 * socket's read buffer into the TLS transport (sealed in place when they fill records). */
static int send_data_cb(nghttp2_session *h2, nghttp2_frame *f, const uint8_t *framehd,
			size_t length, nghttp2_data_source *src, void *user)
{
	struct hbone_conn *c = user;
	struct hbone_stream *st = src->ptr;

	if (!st || nghttp2_session_get_stream_user_data(h2, f->hd.stream_id) != st ||
	    length > st->pend_len || f->data.padlen)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;	/* nothing written yet */
	if (io_sock_headroom(&st->tcp, st->pend) >= 9) {
		/* the header goes right before the payload, over bytes already sealed (or the
		 * read's headroom): header and payload are one write, one record when full */
		uint8_t *hd = (uint8_t *)(uintptr_t)st->pend - 9;

		memcpy(hd, framehd, 9);
		if (hconn_write(c, hd, length + 9) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	} else if (hconn_write(c, framehd, 9) < 0 || hconn_write(c, st->pend, length) < 0) {
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	st->pend += length;
	st->pend_len -= (uint32_t)length;
	if (st->rec.direction == ACCESS_OUTBOUND)
		st->rec.bytes_recv += length;
	else
		st->rec.bytes_sent += length;
	if (st->pend_len == 0 && !st->tcp_eof)
		io_sock_read(&st->tcp);	/* the bytes are sealed or copied: the buffer may go */
	/* nghttp2 would go on with the next frame inside this mem_send: let the socket catch up */
	return tls_xprt_out_len(&c->tls) >= HCONN_OUT_HIGH ? NGHTTP2_ERR_PAUSE : 0;
}

struct hbone_stream *hstream_new(struct hbone_conn *c)
{
	struct hbone_stream *st = io_obj_alloc(&c->w->bufs, sizeof(*st));

	if (!st)
		return NULL;
	st->conn = c;
	st->tcp.w = c->w;
	st->gate = c->gate;
	st->id = -1;
	st->tcp.fd = -1;
	st->rec.start_ms = io_now_ms();
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	c->active_streams++;
	io_timer_disarm(&c->timer);
	return st;
}

void hstream_attach_tcp(struct hbone_stream *st, int fd)
{
	io_sock_init(&st->tcp, st->conn->w, fd, &stream_tcp_cb, st, 0);
	st->has_tcp = true;
}

int hstream_submit_request(struct hbone_stream *st, const char *authority)
{
	struct hbone_conn *c = st->conn;
	const char *a = st->authority ? st->authority : authority ? authority : "";
	nghttp2_nv nva[5] = {
		MAKE_NV(":method", "CONNECT", 7),
		MAKE_NV(":authority", a, strlen(a)),
	};
	size_t n = 2;
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = data_read_cb };

	const struct hbone_meta *m = st->meta;

	if (m && m->baggage[0])
		nva[n++] = (nghttp2_nv)MAKE_NV("baggage", m->baggage, strlen(m->baggage));
	if (m && m->forwarded[0])
		nva[n++] = (nghttp2_nv)MAKE_NV("forwarded", m->forwarded, strlen(m->forwarded));
	if (m && m->traceparent[0])
		nva[n++] = (nghttp2_nv)MAKE_NV("traceparent", m->traceparent,
					       strlen(m->traceparent));
	int32_t id = nghttp2_submit_request(c->h2, NULL, nva, n, &prd, st);

	hstream_meta_free(st);	/* nghttp2 copied the header values */
	hstream_authority_free(st);

	if (id < 0) {
		hstream_fail(st, nghttp2_strerror(id));
		return -EIO;
	}
	st->id = id;
	st->data_deferred = false;
	return 0;
}

/* ---- server side: the proxy's answer to a CONNECT ---- */

struct access_record *hbone_stream_record(struct hbone_stream *st)
{
	return &st->rec;
}

void hbone_stream_abort(struct access_record *rec, const char *reason)
{
	struct hbone_stream *st = (void *)((char *)rec - offsetof(struct hbone_stream, rec));

	hstream_fail(st, reason);
}

void hbone_stream_goaway(struct hbone_stream *st)
{
	struct hbone_conn *c = st->conn;

	if (!c || c->state != HCONN_READY)
		return;
	nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE,
			      nghttp2_session_get_last_proc_stream_id(c->h2), NGHTTP2_NO_ERROR,
			      NULL, 0);
}

struct io_worker *hbone_stream_worker(const struct hbone_stream *st)
{
	return st->conn ? st->conn->w : st->tcp.w;
}

struct hbone_meta *hstream_meta(struct hbone_stream *st)
{
	if (!st->meta)
		st->meta = calloc(1, sizeof(*st->meta));
	return st->meta;
}

void hstream_meta_free(struct hbone_stream *st)
{
	free(st->meta);
	st->meta = NULL;
}

const struct hbone_meta *hbone_stream_meta(const struct hbone_stream *st)
{
	static const struct hbone_meta none;

	return st->meta ? st->meta : &none;
}

void hbone_stream_set_response_baggage(struct hbone_stream *st, const char *baggage)
{
	struct hbone_meta *m;

	if (!baggage || !*baggage) {
		if (st->meta)
			st->meta->baggage[0] = '\0';
		return;
	}
	m = hstream_meta(st);
	if (m)	/* out of memory: the 200 goes without it */
		snprintf(m->baggage, sizeof(m->baggage), "%s", baggage);
}

const char *hbone_stream_peer_identity(const struct hbone_stream *st)
{
	return st->conn ? st->conn->peer_identity : "";
}

static int submit_status(struct hbone_stream *st, int status, bool with_body)
{
	char code[8];
	int len = snprintf(code, sizeof(code), "%d", status);
	nghttp2_nv nva[2] = { MAKE_NV(":status", code, (size_t)len) };
	size_t n = 1;
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = data_read_cb };

	int ret;

	if (status == 200 && st->meta && st->meta->baggage[0])	/* the destination's, as upstream */
		nva[n++] = (nghttp2_nv)MAKE_NV("baggage", st->meta->baggage,
					       strlen(st->meta->baggage));
	st->status = status;
	ret = nghttp2_submit_response(st->conn->h2, st->id, nva, n, with_body ? &prd : NULL);
	hstream_meta_free(st);	/* nghttp2 copied the header values */
	return ret;
}

void hbone_stream_refuse(struct hbone_stream *st, int status, const char *reason)
{
	struct hbone_conn *c = st->conn;

	set_error(st, false, "%s (HTTP %d)", reason, status);
	if (!c || st->h2_closed) {
		maybe_finish(st);
		return;
	}
	hconn_enter(c);
	/* the status ends our side; the client ends its own (some clients take an RST_STREAM
	 * sent after the response for a failure and never show the status) */
	submit_status(st, status, false);
	hconn_flush(c);
	hconn_leave(c);
}

int hbone_stream_set_prefix(struct hbone_stream *st, const uint8_t *data, size_t len)
{
	if (!len || len > 1024 || st->prefix)
		return -EINVAL;
	st->prefix = malloc(len);
	if (!st->prefix)
		return -ENOMEM;
	memcpy(st->prefix, data, len);
	st->prefix_len = (uint16_t)len;
	return 0;
}

void hbone_stream_connect(struct hbone_stream *st, int fd, const struct sockaddr *sa,
			  socklen_t salen)
{
	if (!st->conn) {
		close(fd);
		maybe_finish(st);
		return;
	}
	hstream_attach_tcp(st, fd);
	io_sock_connect(&st->tcp, sa, salen);
}

static void on_tcp_connected(struct io_sock *s, int err)
{
	struct hbone_stream *st = s->owner;
	struct hbone_conn *c = st->conn;

	if (!c || st->h2_closed) {
		st->reset = true;
		io_sock_close(&st->tcp, true);
		return;
	}
	hstream_enter(st);
	hconn_enter(c);
	if (err < 0) {
		set_error(st, true, "app connect failed: %s (HTTP 503)", strerror(-err));
		submit_status(st, 503, false);
		io_sock_close(&st->tcp, false);
	} else {
		io_sock_set_options(s->fd);
		submit_status(st, 200, true);
		st->tcp_ready = true;
		io_sock_read(&st->tcp);
		pump_out(st);
	}
	hconn_flush(c);
	hconn_leave(c);
	hstream_leave(st);
}

/* ---- nghttp2 callbacks (user_data is the hbone_conn) ---- */

static void on_response(struct hbone_stream *st)
{
	char why[80];

	if (st->status != 200) {
		snprintf(why, sizeof(why), "HBONE server answered %d", st->status);
		hstream_fail(st, why);
		return;
	}
	st->tcp_ready = true;
	if (st->pend_len == 0 && !st->tcp_eof)
		io_sock_read(&st->tcp);
	pump_out(st);
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct hbone_conn *c = user;
	struct hbone_stream *st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);

	if (c->state == HCONN_CLOSING)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK))
		hconn_pong(c);
	if (!st)
		return 0;
	hstream_enter(st);
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		st->h2_eof = true;
	if (f->hd.type == NGHTTP2_HEADERS) {
		if (c->server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
			st->request_pending = true;	/* handed on after the whole read */
			c->requests_pending++;
		}
		else if (!c->server && f->headers.cat == NGHTTP2_HCAT_RESPONSE)
			on_response(st);
	} else if (st->h2_eof) {
		pump_out(st);
	}
	hstream_leave(st);
	return 0;
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	struct hbone_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	struct hbone_conn *c = user;

	if (!st || st->reset) {
		nghttp2_session_consume(h2, id, len);
		return 0;
	}
	if (st->q.len + len > c->set->stream_window) {
		nghttp2_session_consume(h2, id, len);
		hstream_fail(st, "peer exceeded the flow-control window");
		return 0;
	}
	/* over the node's bound, a stream whose app is behind gives way; others go on */
	if (!hgate_app_add(st->gate, len) && st->q.len >= BEHIND) {
		hgate_app_release(st->gate, len);
		nghttp2_session_consume(h2, id, len);
		hstream_fail(st, "app is not reading and the node's buffer bound is reached");
		return 0;
	}
	if (io_bufq_append(&st->tcp.w->bufs, &st->q, data, len) < 0) {
		hgate_app_release(st->gate, len);
		nghttp2_session_consume(h2, id, len);
		hstream_fail(st, "out of memory");
		return 0;
	}
	hstream_enter(st);
	pump_out(st);
	hstream_leave(st);
	return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	struct hbone_stream *st = nghttp2_session_get_stream_user_data(h2, id);

	if (!st)
		return 0;
	st->h2_closed = true;
	if (code != NGHTTP2_NO_ERROR) {
		set_error(st, false, "stream reset by peer (code %u)", code);
	}
	/* anything but a clean end of both halves resets the TCP side */
	if (code != NGHTTP2_NO_ERROR || !st->h2_eof)
		st->reset = true;
	nghttp2_session_set_stream_user_data(h2, id, NULL);
	hstream_enter(st);
	if (st->has_tcp && st->reset)
		io_sock_close(&st->tcp, true);
	else
		maybe_finish(st);
	hstream_leave(st);
	return 0;
}

/* nghttp2 saying why it refuses a frame or ends the session: the close reason says it too */
static int on_h2_error(nghttp2_session *h2, int code, const char *msg, size_t len, void *user)
{
	struct hbone_conn *c = user;

	snprintf(c->close_reason, sizeof(c->close_reason), "http2: %.*s", (int)len, msg);
	log_debug("http2 error", "error=\"%.*s\"", (int)len, msg);
	return 0;
}

void hstream_set_callbacks(nghttp2_session_callbacks *cb)
{
	nghttp2_session_callbacks_set_error_callback2(cb, on_h2_error);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, hstream_on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, hstream_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
}
