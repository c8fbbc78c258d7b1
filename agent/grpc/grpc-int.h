/* grpc internal: channel and stream structures shared by the transport, session and call code. */
#ifndef ZTUNNEL_GRPC_INT_H
#define ZTUNNEL_GRPC_INT_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ztunnel/grpc.h"
#include "ztunnel/iobuf.h"
#include "ztunnel/tls-xprt.h"

#define GRPC_PREFIX_LEN 5
#define GRPC_MAX_MESSAGE (64u << 20)	/* larger messages are refused both ways */
#define GRPC_MAX_BUFFERED (GRPC_MAX_MESSAGE + GRPC_PREFIX_LEN + (1u << 20))
#define GRPC_HOST_MAX 256
#define GRPC_REASON_MAX 256

/* A parsed "http://host:port" or "https://host:port". */
struct grpc_addr {
	bool tls;
	bool host_is_ip;
	char host[GRPC_HOST_MAX];	/* without brackets */
	char port[8];
	char authority[GRPC_HOST_MAX + 16];	/* host:port, [v6]:port */
};

/* A byte queue: data[off, len) is pending; owned by its stream. */
struct grpc_buf {
	uint8_t *data;
	size_t off, len, cap;
};

struct grpc_stream {
	struct grpc_channel *ch;	/* NULL once the channel is closed under us */
	struct grpc_stream *next;	/* the channel's list of open streams */
	int32_t id;
	struct grpc_buf out;	/* framed messages not yet handed to nghttp2 */
	bool out_eof;		/* end the request body once out drains */
	bool deferred;		/* nghttp2 waits for resume_data */
	struct grpc_buf in;	/* received body bytes, deframed from in.off */
	size_t scan;		/* next message prefix not yet checked */
	bool headers_seen;
	int http_status;
	int ctype;		/* 0 missing, 1 application/grpc*, 2 something else */
	int grpc_status;	/* -1 until grpc-status arrives */
	char grpc_message[GRPC_REASON_MAX];
	bool closed;
	uint32_t rst_code;	/* HTTP/2 error code the stream closed with */
	int error;		/* a local failure (-EMSGSIZE, -EPROTO), 0 if none */
	char reason[GRPC_REASON_MAX];
};

struct grpc_channel {
	int fd;
	SSL_CTX *ssl_ctx;	/* owned, NULL for h2c */
	struct tls_xprt tls;	/* the record pump (plain for h2c) */
	struct io_buf_pool pool;	/* the transport's buffers; owned, this thread's */
	nghttp2_session *session;	/* owned */
	bool got_settings;
	int goaway_recv;	/* error code + 1 of a GOAWAY from the server, 0 if none */
	int goaway_sent;
	bool session_ended;	/* nghttp2 wants no more I/O */
	int dead;		/* -errno once the connection failed; everything then fails */
	char reason[GRPC_REASON_MAX];
	struct grpc_addr addr;
	struct grpc_metadata *md;	/* owned copies of keys and values */
	size_t n_md;
	struct grpc_stream *streams;
	int wake_fd;		/* not owned; -1 when unset (see grpc_channel_set_wake_fd) */
};

/* transport.c */
int grpc_addr_parse(const char *address, struct grpc_addr *out);
int64_t grpc_now_ms(void);
int grpc_tcp_connect(struct grpc_channel *ch, int64_t deadline, char *err, size_t errlen);
int grpc_tls_connect(struct grpc_channel *ch, const char *root_ca_pem_path, int64_t deadline,
		     char *err, size_t errlen);
typedef bool (*grpc_done_fn)(const void *arg);
/* Writes and reads until done(arg), the deadline (-ETIMEDOUT) or a failure (ch->dead). */
int grpc_pump(struct grpc_channel *ch, int64_t deadline, grpc_done_fn done, const void *arg);
/* Writes what the socket takes now without waiting. 0 or ch->dead. */
int grpc_flush(struct grpc_channel *ch);
/* Marks the channel failed with a reason (first failure wins); returns ch->dead. */
int grpc_chan_fail(struct grpc_channel *ch, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* session.c */
int grpc_session_new(struct grpc_channel *ch);

/* call.c */
/* Fails one stream (first failure wins) and resets it. */
void grpc_stream_fail(struct grpc_stream *s, int err, const char *what);
/* A new request stream on ch (HEADERS submitted, body pending), linked into ch->streams. */
struct grpc_stream *grpc_stream_new(struct grpc_channel *ch, const char *path, int timeout_ms,
				    char *err, size_t errlen);
/* Frames msg into the request body; last ends the body after it. 0 or -errno. */
int grpc_stream_queue(struct grpc_stream *s, const uint8_t *msg, size_t len, bool last);
void grpc_stream_on_header(struct grpc_stream *s, const uint8_t *name, size_t namelen,
			   const uint8_t *value, size_t valuelen);
void grpc_stream_on_data(struct grpc_stream *s, const uint8_t *data, size_t len);
ssize_t grpc_stream_read_body(struct grpc_stream *s, uint8_t *buf, size_t len, uint32_t *flags);
int grpc_status_from_http(int http_status);
size_t grpc_percent_decode(const char *in, size_t inlen, char *out, size_t outlen);

#endif
