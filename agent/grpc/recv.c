/* grpc recv: judging a reply (HTTP status, content-type, trailers), stream reads, unary calls. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc-int.h"

static const char *const status_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *grpc_status_name(int status)
{
	if (status < 0 || (size_t)status >= sizeof(status_names) / sizeof(status_names[0]))
		return "UNKNOWN";
	return status_names[status];
}

/* gRPC's HTTP-to-status mapping for responses that are not gRPC (doc/http-grpc-status-mapping). */
int grpc_status_from_http(int http_status)
{
	switch (http_status) {
	case 400:
		return GRPC_INTERNAL;
	case 401:
		return GRPC_UNAUTHENTICATED;
	case 403:
		return GRPC_PERMISSION_DENIED;
	case 404:
		return GRPC_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return GRPC_UNAVAILABLE;
	default:
		return GRPC_UNKNOWN;
	}
}

static size_t buffered(const struct grpc_stream *s)
{
	return s->in.len - s->in.off;
}

/* Length of the complete message at the head of s->in, or -1 when it is not all here yet. */
static int64_t head_message(const struct grpc_stream *s)
{
	const uint8_t *p = s->in.data + s->in.off;
	uint32_t mlen;

	if (buffered(s) < GRPC_PREFIX_LEN)
		return -1;
	mlen = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	return buffered(s) - GRPC_PREFIX_LEN >= mlen ? (int64_t)mlen : -1;
}

static bool bad_response(const struct grpc_stream *s)
{
	return (s->headers_seen && s->http_status != 200) || s->ctype == 2 ||
	       (s->ctype == 0 && buffered(s));
}

static bool recv_ready(const void *arg)
{
	const struct grpc_stream *s = arg;

	return s->error || s->closed || !s->ch || s->ch->dead || bad_response(s) ||
	       head_message(s) >= 0;
}

static bool unary_done(const void *arg)
{
	const struct grpc_stream *s = arg;

	return s->error || s->closed || !s->ch || s->ch->dead || bad_response(s);
}

/* How a closed stream ended. -ECONNRESET with the trailers' status, or a protocol error. */
static int stream_end(struct grpc_stream *s, int *status, char *err, size_t errlen)
{
	if (s->grpc_status >= 0 && !(s->grpc_status == GRPC_OK && buffered(s))) {
		*status = s->grpc_status;
		snprintf(err, errlen, "%s", s->grpc_message[0] ? s->grpc_message
							      : grpc_status_name(*status));
		return -ECONNRESET;
	}
	*status = GRPC_INTERNAL;
	if (s->grpc_status >= 0)
		snprintf(err, errlen, "the response ended inside a message (truncated)");
	else if (s->rst_code)
		snprintf(err, errlen, "stream reset by the server (%s)",
			 nghttp2_http2_strerror(s->rst_code));
	else
		snprintf(err, errlen, "the response ended without a grpc-status");
	return s->rst_code && s->grpc_status < 0 ? -ECONNRESET : -EPROTO;
}

/* 1: a message popped into *msg; 0: nothing yet; <0: the stream is over (status and err set). */
static int stream_poll(struct grpc_stream *s, uint8_t **msg, size_t *len, int *status, char *err,
		       size_t errlen)
{
	int64_t mlen;

	*status = GRPC_INTERNAL;
	if (s->headers_seen && s->http_status != 200) {
		*status = grpc_status_from_http(s->http_status);
		snprintf(err, errlen, "HTTP status %d from the server (not a gRPC reply)",
			 s->http_status);
		return -EPROTO;
	}
	if (bad_response(s)) {
		snprintf(err, errlen, "the reply's content-type is not application/grpc");
		return -EPROTO;
	}
	if (s->error) {
		snprintf(err, errlen, "%s", s->reason);
		return s->error;
	}
	mlen = head_message(s);
	if (mlen >= 0) {
		*msg = malloc(mlen ? (size_t)mlen : 1);
		if (!*msg)
			return -ENOMEM;
		memcpy(*msg, s->in.data + s->in.off + GRPC_PREFIX_LEN, (size_t)mlen);
		*len = (size_t)mlen;
		s->in.off += GRPC_PREFIX_LEN + (size_t)mlen;
		return 1;
	}
	if (s->closed)
		return stream_end(s, status, err, errlen);
	*status = GRPC_UNAVAILABLE;
	if (!s->ch) {
		snprintf(err, errlen, "the channel was closed");
		return -ENOTCONN;
	}
	if (s->ch->dead) {
		snprintf(err, errlen, "%s", s->ch->reason);
		return s->ch->dead;
	}
	return 0;
}

int grpc_stream_recv(struct grpc_stream *s, uint8_t **msg, size_t *len, int timeout_ms,
		     int *status, char *err, size_t errlen)
{
	int ret;

	*msg = NULL;
	*len = 0;
	*status = GRPC_UNAVAILABLE;
	if (!s || !s->ch) {
		snprintf(err, errlen, "the channel was closed");
		return -ENOTCONN;
	}
	ret = stream_poll(s, msg, len, status, err, errlen);
	if (ret)
		return ret;
	grpc_pump(s->ch, grpc_now_ms() + (timeout_ms > 0 ? timeout_ms : 0), recv_ready, s);
	return stream_poll(s, msg, len, status, err, errlen);
}

/* The outcome of a finished unary call: exactly one message and grpc-status 0 is success. */
static int unary_result(struct grpc_stream *s, uint8_t **resp, size_t *resp_len, char *err,
			size_t errlen)
{
	uint8_t *extra = NULL;
	size_t extra_len;
	int ret, status;

	ret = stream_poll(s, resp, resp_len, &status, err, errlen);
	if (ret == 1) {
		ret = stream_poll(s, &extra, &extra_len, &status, err, errlen);
		if (ret == 1) {
			free(extra);
			snprintf(err, errlen, "more than one message in a unary reply");
			ret = -EPROTO;
		}
	}
	if (ret == -ECONNRESET && s->grpc_status >= 0 && !s->error)
		ret = status;	/* the call completed with trailers */
	else if (ret == -EPROTO && s->headers_seen && s->http_status != 200)
		ret = status;
	if (ret == GRPC_OK && !*resp) {
		snprintf(err, errlen, "status OK without a reply message");
		ret = -EPROTO;
	}
	if (ret != GRPC_OK) {
		free(*resp);
		*resp = NULL;
		*resp_len = 0;
	}
	return ret;
}

int grpc_unary(struct grpc_channel *ch, const char *path, const uint8_t *req, size_t len,
	       uint8_t **resp, size_t *resp_len, int timeout_ms, char *err, size_t errlen)
{
	struct grpc_stream *s;
	int ret;

	*resp = NULL;
	*resp_len = 0;
	if (len > GRPC_MAX_MESSAGE) {
		snprintf(err, errlen, "request over 64 MiB");
		return -EMSGSIZE;
	}
	if (timeout_ms <= 0)
		timeout_ms = 10000;
	s = grpc_stream_new(ch, path, timeout_ms, err, errlen);
	if (!s)
		return ch && ch->dead ? ch->dead : -EINVAL;
	ret = grpc_stream_queue(s, req, len, true);
	if (ret) {
		snprintf(err, errlen, "cannot queue the request: %s", strerror(-ret));
		goto out;
	}
	ret = grpc_pump(ch, grpc_now_ms() + timeout_ms, unary_done, s);
	if (ret == -ETIMEDOUT) {
		snprintf(err, errlen, "no reply from %s within %d ms", ch->addr.authority,
			 timeout_ms);
		goto out;
	}
	ret = unary_result(s, resp, resp_len, err, errlen);
out:
	grpc_stream_close(&s);
	return ret;
}
