/* hbone request: the server side's view of a CONNECT request head, and when it is handed on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbone-int.h"

int hstream_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user)
{
	struct hbone_conn *c = user;
	struct hbone_stream *st;

	if (c->state == HCONN_CLOSING)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (!c->server || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	st = hstream_new(c);
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->id = f->hd.stream_id;
	st->rec.direction = ACCESS_INBOUND;
	io_addr_pack(&st->rec.src, &c->peer);
	/* out of memory: the proxy refuses the stream (it checks the name is there) */
	access_set(&st->rec, ACCESS_SRC_IDENTITY, c->peer_identity);
	nghttp2_session_set_stream_user_data(h2, st->id, st);
	return 0;
}

static void copy_value(char *dst, size_t cap, const uint8_t *v, size_t len)
{
	if (len >= cap)
		len = 0;	/* over-long: treated as missing, refused as a bad request */
	memcpy(dst, v, len);
	dst[len] = '\0';
}

static bool c_server(const struct hbone_stream *st)
{
	return st->conn && st->conn->server;
}

/* Several baggage headers are one list (RFC 9110 5.3); one that does not fit is dropped. */
static void append_value(char *dst, size_t cap, const uint8_t *v, size_t len)
{
	size_t have = strlen(dst), sep = have ? 1 : 0;

	if (!len || have + sep + len >= cap)
		return;
	if (sep)
		dst[have++] = ',';
	memcpy(dst + have, v, len);
	dst[have + len] = '\0';
}

/* The last :authority of a request (over-long or empty: none, refused as missing). */
static void keep_authority(struct hbone_stream *st, const uint8_t *v, size_t len)
{
	hstream_authority_free(st);
	st->authority_lost = false;
	if (!len || len >= HSTREAM_AUTHORITY_MAX)
		return;
	st->authority = malloc(len + 1);
	if (!st->authority) {
		st->authority_lost = true;	/* refused with 503 */
		return;
	}
	memcpy(st->authority, v, len);
	st->authority[len] = '\0';
}

/* baggage (several headers are one list) or forwarded (the first one) of a request */
static void append_meta(struct hbone_stream *st, bool baggage, const uint8_t *v, size_t len)
{
	struct hbone_meta *m = len ? hstream_meta(st) : NULL;

	if (!m)
		return;
	if (baggage)
		append_value(m->baggage, sizeof(m->baggage), v, len);
	else if (!m->forwarded[0])
		copy_value(m->forwarded, sizeof(m->forwarded), v, len);
}

int hstream_on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct hbone_stream *st = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
	size_t n;

	if (!st || f->hd.type != NGHTTP2_HEADERS)
		return 0;
	/* RFC 9113 6.5.2: name + value + 32 per field; past the bound nothing more is kept (nor
	 * counted: the sum stays small) */
	if (st->header_bytes > st->conn->set->max_header_list)
		return 0;
	n = st->header_bytes + namelen + valuelen + 32;
	st->header_bytes = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	if (st->header_bytes > st->conn->set->max_header_list)
		return 0;
	if (namelen == 7 && memcmp(name, ":method", 7) == 0)
		st->method_connect = valuelen == 7 && memcmp(value, "CONNECT", 7) == 0;
	else if (c_server(st) && namelen == 10 && memcmp(name, ":authority", 10) == 0)
		keep_authority(st, value, valuelen);
	else if (c_server(st) && namelen == 7 && memcmp(name, "baggage", 7) == 0)
		append_meta(st, true, value, valuelen);
	else if (c_server(st) && namelen == 9 && memcmp(name, "forwarded", 9) == 0)
		append_meta(st, false, value, valuelen);
	else if (namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen == 3)
		st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	return 0;
}

static void on_request(struct hbone_conn *c, struct hbone_stream *st)
{
	if (st->header_bytes > c->set->max_header_list) {
		hbone_stream_refuse(st, 431, "request header list over the 64 KiB bound");
		return;
	}
	if (!st->method_connect) {
		hbone_stream_refuse(st, 400, "method is not CONNECT");
		return;
	}
	if (st->authority_lost) {
		hbone_stream_refuse(st, 503, "out of memory");
		return;
	}
	if (!st->authority) {
		hbone_stream_refuse(st, 400, "missing or over-long :authority");
		return;
	}
	c->handler->on_request(st, st->authority, c->hctx);
	hstream_authority_free(st);	/* the handler copied what it keeps */
}

void hstream_dispatch_requests(struct hbone_conn *c)
{
	struct hbone_stream *st;

	/* a handler may end any stream (and its list neighbours): restart from the head each time */
	while (c->requests_pending > 0 && c->state != HCONN_CLOSING) {
		for (st = c->streams; st && !st->request_pending; st = st->next)
			;
		if (!st)
			break;
		st->request_pending = false;
		c->requests_pending--;
		if (st->h2_closed || st->reset)
			continue;
		hstream_enter(st);
		on_request(c, st);
		hstream_leave(st);
	}
	c->requests_pending = 0;
}
