/* grpc session: the nghttp2 client session callbacks and opening / closing a channel. */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "grpc-int.h"

#define GRPC_STREAM_WINDOW (1 << 20)
#define GRPC_CONN_WINDOW (16 << 20)

static struct grpc_stream *stream_of(nghttp2_session *session, int32_t id)
{
	return nghttp2_session_get_stream_user_data(session, id);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user_data)
{
	struct grpc_stream *s;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = stream_of(session, frame->hd.stream_id);
	if (s)
		grpc_stream_on_header(s, name, namelen, value, valuelen);
	return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct grpc_channel *ch = user_data;
	struct grpc_stream *s;

	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
			ch->got_settings = true;
		break;
	case NGHTTP2_GOAWAY:
		ch->goaway_recv = (int)frame->goaway.error_code + 1;
		break;
	case NGHTTP2_HEADERS:
		s = stream_of(session, frame->hd.stream_id);
		if (s && frame->headers.cat == NGHTTP2_HCAT_RESPONSE)
			s->headers_seen = true;
		break;
	}
	return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct grpc_channel *ch = user_data;

	if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
		ch->goaway_sent = (int)frame->goaway.error_code + 1;
	return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
			 const uint8_t *data, size_t len, void *user_data)
{
	struct grpc_stream *s = stream_of(session, stream_id);

	if (s)
		grpc_stream_on_data(s, data, len);
	return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
			   void *user_data)
{
	struct grpc_stream *s = stream_of(session, stream_id);

	if (s) {
		s->closed = true;
		s->rst_code = error_code;
	}
	return 0;
}

int grpc_session_new(struct grpc_channel *ch)
{
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPC_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 << 10 },
	};
	nghttp2_session_callbacks *cb;
	int ret;

	if (nghttp2_session_callbacks_new(&cb))
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	ret = nghttp2_session_client_new(&ch->session, cb, ch);
	nghttp2_session_callbacks_del(cb);
	if (ret)
		return -ENOMEM;
	if (nghttp2_submit_settings(ch->session, NGHTTP2_FLAG_NONE, settings,
				    sizeof(settings) / sizeof(settings[0])) ||
	    nghttp2_session_set_local_window_size(ch->session, NGHTTP2_FLAG_NONE, 0,
						  GRPC_CONN_WINDOW))
		return -ENOMEM;
	return 0;
}

/* Header names the HTTP/2 spec allows (lower case token chars); values without CR, LF, NUL. */
static bool md_valid(const struct grpc_metadata *m)
{
	if (!m->key || !m->value || !m->key[0] || m->key[0] == ':')
		return false;
	for (const char *c = m->key; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_' || *c == '.'))
			return false;
	return strpbrk(m->value, "\r\n") == NULL;
}

static int md_copy(struct grpc_channel *ch, const struct grpc_metadata *md, size_t n)
{
	if (n == 0)
		return 0;
	if (n > 64 || !md)
		return -EINVAL;
	ch->md = calloc(n, sizeof(*ch->md));
	if (!ch->md)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!md_valid(&md[i]))
			return -EINVAL;
		ch->md[i].key = strdup(md[i].key);
		ch->md[i].value = strdup(md[i].value);
		ch->n_md = i + 1;
		if (!ch->md[i].key || !ch->md[i].value)
			return -ENOMEM;
	}
	return 0;
}

static bool settings_seen(const void *arg)
{
	const struct grpc_channel *ch = arg;

	return ch->got_settings;
}

static int channel_connect(struct grpc_channel *ch, const char *root, int timeout_ms, char *err,
			   size_t errlen)
{
	int64_t deadline = grpc_now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
	int ret;

	ret = grpc_tcp_connect(ch, deadline, err, errlen);
	if (ret)
		return ret;
	/* the session first: the server's first bytes may come with its last handshake flight */
	if (grpc_session_new(ch)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (ch->addr.tls)
		ret = grpc_tls_connect(ch, root, deadline, err, errlen);
	else
		tls_xprt_init_plain(&ch->tls, &ch->pool);
	if (ret)
		return ret;
	ret = grpc_pump(ch, deadline, settings_seen, ch);
	if (ret == -ETIMEDOUT)
		snprintf(err, errlen, "%s: no HTTP/2 SETTINGS from the server within %d ms",
			 ch->addr.authority, timeout_ms);
	else if (ret)
		snprintf(err, errlen, "%s: %s", ch->addr.authority, ch->reason);
	return ret;
}

struct grpc_channel *grpc_channel_open(const char *address, const char *root_ca_pem_path,
				       const struct grpc_metadata *md, size_t n_md, int timeout_ms,
				       char *err, size_t errlen)
{
	struct grpc_channel *ch = calloc(1, sizeof(*ch));
	int ret;

	if (!ch) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ch->fd = -1;
	ch->wake_fd = -1;
	if (grpc_addr_parse(address, &ch->addr)) {
		snprintf(err, errlen, "bad address '%s' (want http://host:port or https://host:port)",
			 address ? address : "");
		goto fail;
	}
	ret = md_copy(ch, md, n_md);
	if (ret) {
		snprintf(err, errlen, "%s", ret == -ENOMEM ? "out of memory" : "invalid metadata");
		goto fail;
	}
	if (channel_connect(ch, root_ca_pem_path, timeout_ms, err, errlen))
		goto fail;
	return ch;
fail:
	grpc_channel_close(&ch);
	return NULL;
}

void grpc_channel_close(struct grpc_channel **chp)
{
	struct grpc_channel *ch = chp ? *chp : NULL;

	if (!ch)
		return;
	for (struct grpc_stream *s = ch->streams; s; s = s->next)
		s->ch = NULL;
	if (ch->session && !ch->dead) {
		nghttp2_session_terminate_session(ch->session, NGHTTP2_NO_ERROR);
		grpc_flush(ch);
		/* then close_notify, if the socket takes it now */
		if (tls_xprt_ssl(&ch->tls) && !ch->dead && tls_xprt_shutdown(&ch->tls) >= 0)
			grpc_flush(ch);
	}
	nghttp2_session_del(ch->session);
	tls_xprt_free(&ch->tls);
	io_buf_pool_clear(&ch->pool);
	SSL_CTX_free(ch->ssl_ctx);
	ERR_clear_error();
	if (ch->fd >= 0)
		close(ch->fd);
	for (size_t i = 0; i < ch->n_md; i++) {
		free((char *)ch->md[i].key);
		free((char *)ch->md[i].value);
	}
	free(ch->md);
	free(ch);
	*chp = NULL;
}

void grpc_channel_set_wake_fd(struct grpc_channel *ch, int fd)
{
	if (ch)
		ch->wake_fd = fd;
}
