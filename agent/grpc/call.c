/* grpc call: request streams, gRPC message framing both ways, response status, unary calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc-int.h"

void grpc_stream_fail(struct grpc_stream *s, int err, const char *what)
{
	if (s->error)
		return;
	s->error = err;
	snprintf(s->reason, sizeof(s->reason), "%s", what);
	if (s->ch && !s->closed)
		nghttp2_submit_rst_stream(s->ch->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
}

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
	return len == strlen(want) && !memcmp(name, want, len);
}

static int parse_uint(const uint8_t *v, size_t len, int max)
{
	int n = 0;

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n <= max ? n : -1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t grpc_percent_decode(const char *in, size_t inlen, char *out, size_t outlen)
{
	size_t o = 0;

	if (!outlen)
		return 0;
	for (size_t i = 0; i < inlen && o + 1 < outlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%' && i + 2 < inlen &&
		    hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
			c = (unsigned char)(hexval(in[i + 1]) << 4 | hexval(in[i + 2]));
			i += 2;
		}
		out[o++] = (c < ' ' || c == 0x7f) ? '?' : (char)c;
	}
	out[o] = '\0';
	return o;
}

void grpc_stream_on_header(struct grpc_stream *s, const uint8_t *name, size_t namelen,
			   const uint8_t *value, size_t valuelen)
{
	char tmp[GRPC_REASON_MAX];
	size_t n;

	if (name_is(name, namelen, ":status")) {
		s->http_status = parse_uint(value, valuelen, 999);
	} else if (name_is(name, namelen, "content-type")) {
		n = strlen("application/grpc");
		s->ctype = valuelen >= n && !memcmp(value, "application/grpc", n) &&
					   (valuelen == n || value[n] == '+' || value[n] == ';')
				   ? 1
				   : 2;
	} else if (name_is(name, namelen, "grpc-status")) {
		s->grpc_status = parse_uint(value, valuelen, 1000);
		if (s->grpc_status < 0)
			s->grpc_status = GRPC_UNKNOWN;
	} else if (name_is(name, namelen, "grpc-message")) {
		n = valuelen < sizeof(tmp) - 1 ? valuelen : sizeof(tmp) - 1;
		memcpy(tmp, value, n);
		grpc_percent_decode(tmp, n, s->grpc_message, sizeof(s->grpc_message));
	}
}

static int buf_append(struct grpc_buf *b, const uint8_t *data, size_t len, size_t limit)
{
	size_t cap;
	uint8_t *p;

	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (len > limit || b->len - b->off > limit - len)
		return -EMSGSIZE;
	if (b->cap - b->len < len && b->off) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len < len) {
		cap = b->cap ? b->cap : 4096;
		while (cap - b->len < len)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks each message prefix as soon as it is complete: flag 0 and a bounded length. */
static void scan_prefixes(struct grpc_stream *s)
{
	size_t base = s->in.off;

	if (s->scan < base)
		s->scan = base;
	while (!s->error && s->in.len >= s->scan + GRPC_PREFIX_LEN) {
		const uint8_t *p = s->in.data + s->scan;
		uint32_t mlen = be32(p + 1);

		if (p[0] != 0)
			grpc_stream_fail(s, -EPROTO, p[0] == 1 ? "compressed message (not negotiated)"
							  : "bad message prefix");
		else if (mlen > GRPC_MAX_MESSAGE)
			grpc_stream_fail(s, -EMSGSIZE, "message over 64 MiB");
		s->scan += GRPC_PREFIX_LEN + mlen;
	}
}

void grpc_stream_on_data(struct grpc_stream *s, const uint8_t *data, size_t len)
{
	size_t old_off = s->in.off;
	int ret;

	if (s->error)
		return;
	ret = buf_append(&s->in, data, len, GRPC_MAX_BUFFERED);
	if (ret) {
		grpc_stream_fail(s, ret, ret == -ENOMEM ? "out of memory" : "too much unread data");
		return;
	}
	if (s->in.off != old_off)	/* buf_append compacted the buffer */
		s->scan -= old_off;
	if (s->ctype == 1)	/* otherwise not gRPC framing: the reader reports the type */
		scan_prefixes(s);
}

ssize_t grpc_stream_read_body(struct grpc_stream *s, uint8_t *buf, size_t len, uint32_t *flags)
{
	size_t n = s->out.len - s->out.off;

	if (n == 0) {
		if (s->out_eof) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		s->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	if (n > len)
		n = len;
	memcpy(buf, s->out.data + s->out.off, n);
	s->out.off += n;
	if (s->out.off == s->out.len) {
		s->out.off = s->out.len = 0;
		if (s->out_eof)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)n;
}

static ssize_t read_body_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			    size_t len, uint32_t *flags, nghttp2_data_source *source,
			    void *user_data)
{
	struct grpc_stream *s = nghttp2_session_get_stream_user_data(session, stream_id);

	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return grpc_stream_read_body(s, buf, len, flags);
}

static int frame_append(struct grpc_stream *s, const uint8_t *msg, size_t len)
{
	uint8_t prefix[GRPC_PREFIX_LEN] = { 0, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
					    (uint8_t)(len >> 8), (uint8_t)len };
	int ret;

	if (len > GRPC_MAX_MESSAGE || (len && !msg))
		return -EMSGSIZE;
	ret = buf_append(&s->out, prefix, sizeof(prefix), GRPC_MAX_BUFFERED);
	if (!ret && len)
		ret = buf_append(&s->out, msg, len, GRPC_MAX_BUFFERED);
	return ret == -EMSGSIZE ? -ENOBUFS : ret;
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

/* Submits the request HEADERS with the body provider; the stream gets its id. */
static int submit(struct grpc_stream *s, const char *path, int timeout_ms)
{
	struct grpc_channel *ch = s->ch;
	nghttp2_data_provider body = { .read_callback = read_body_cb };
	nghttp2_nv nv[8 + 64] = {
		NV(":method", "POST"),
		NV(":scheme", ch->addr.tls ? "https" : "http"),
		NV(":path", path),
		NV(":authority", ch->addr.authority),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
		NV("user-agent", "ztunnel-c-grpc/0.1"),
	};
	char tmo[16];
	size_t n = 7;
	int32_t id;

	if (timeout_ms > 0 && timeout_ms <= 99999999) {
		snprintf(tmo, sizeof(tmo), "%dm", timeout_ms);
		nv[n++] = (nghttp2_nv)NV("grpc-timeout", tmo);
	}
	for (size_t i = 0; i < ch->n_md; i++)
		nv[n++] = (nghttp2_nv)NV(ch->md[i].key, ch->md[i].value);
	id = nghttp2_submit_request(ch->session, NULL, nv, n, &body, s);
	if (id < 0)
		return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? -EAGAIN : -ENOMEM;
	s->id = id;
	return 0;
}

struct grpc_stream *grpc_stream_new(struct grpc_channel *ch, const char *path, int timeout_ms,
				    char *err, size_t errlen)
{
	struct grpc_stream *s;

	if (!ch || ch->dead) {
		snprintf(err, errlen, "%s", ch ? ch->reason : "no channel");
		return NULL;
	}
	if (!path || path[0] != '/' || strpbrk(path, "\r\n ")) {
		snprintf(err, errlen, "bad method path '%s'", path ? path : "");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->ch = ch;
	s->grpc_status = -1;
	if (submit(s, path, timeout_ms)) {
		snprintf(err, errlen, "cannot start a stream on %s", ch->addr.authority);
		free(s);
		return NULL;
	}
	s->next = ch->streams;
	ch->streams = s;
	return s;
}

static void stream_unlink(struct grpc_stream *s)
{
	struct grpc_stream **pp;

	if (!s->ch)
		return;
	for (pp = &s->ch->streams; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	if (!s->closed)
		nghttp2_submit_rst_stream(s->ch->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
	nghttp2_session_set_stream_user_data(s->ch->session, s->id, NULL);
	grpc_flush(s->ch);
	s->ch = NULL;
}

void grpc_stream_close(struct grpc_stream **sp)
{
	struct grpc_stream *s = sp ? *sp : NULL;

	if (!s)
		return;
	stream_unlink(s);
	free(s->out.data);
	free(s->in.data);
	free(s);
	*sp = NULL;
}

struct grpc_stream *grpc_stream_open(struct grpc_channel *ch, const char *path, char *err,
				     size_t errlen)
{
	struct grpc_stream *s = grpc_stream_new(ch, path, 0, err, errlen);

	if (s && grpc_flush(ch)) {
		snprintf(err, errlen, "%s", ch->reason);
		grpc_stream_close(&s);
	}
	return s;
}

int grpc_stream_queue(struct grpc_stream *s, const uint8_t *msg, size_t len, bool last)
{
	int ret = frame_append(s, msg, len);

	if (ret)
		return ret;
	s->out_eof = last;
	if (s->deferred) {
		s->deferred = false;
		nghttp2_session_resume_data(s->ch->session, s->id);
	}
	return 0;
}

int grpc_stream_send(struct grpc_stream *s, const uint8_t *msg, size_t len)
{
	int ret;

	if (!s || !s->ch)
		return -ENOTCONN;
	if (s->ch->dead)
		return s->ch->dead;
	if (s->closed || s->error || s->out_eof)
		return -EPIPE;
	ret = grpc_stream_queue(s, msg, len, false);
	return ret ? ret : grpc_flush(s->ch);
}
