/* hbone internals: the connection and stream objects shared by conn.c, stream.c and pool.c. */
#ifndef ZTUNNEL_HBONE_INT_H
#define ZTUNNEL_HBONE_INT_H

#include <nghttp2/nghttp2.h>

#include <ztunnel/hbone.h>
#include <ztunnel/iobuf.h>
#include <ztunnel/sock.h>
#include <ztunnel/tls-xprt.h>

enum hconn_state { HCONN_CONNECTING, HCONN_HANDSHAKE, HCONN_READY, HCONN_CLOSING };

/*
 * A TLS + HTTP/2 connection. Owns its socket, TLS transport, session and the list of its
 * streams' links (streams own themselves). Freed once the socket is closed, no stream refers
 * to it and no callback of it is on the stack. What a connection holds grows with what it has
 * done: the SSL object comes with the peer's first bytes (server) or the connect (client), the
 * HTTP/2 session with the finished handshake, the transport's output buffers only while bytes
 * go out.
 */
struct hbone_conn {
	struct io_worker *w;
	struct io_sock sock;
	SSL_CTX *ctx;			/* one reference, until the TLS transport exists */
	struct tls_xprt tls;		/* the record pump; its SSL object once started */
	nghttp2_session *h2;
	struct hbone_gate *gate;	/* borrowed */
	bool gated;			/* counted as a pending handshake in gate */
	unsigned requests_pending;	/* streams with a request not yet handed to the handler */
	enum hconn_state state;
	bool server;
	bool idle_spare;		/* its idle timer is the spare's (another of its key was
					 * ready), not the pool's idle timeout */
	bool sock_closed;
	int depth;			/* callbacks of this conn on the stack */
	size_t writing;			/* ciphertext of tls's queue handed to the socket */
	struct io_timer timer;		/* handshake deadline, then idle release */
	struct io_timer keepalive;	/* next PING, or the deadline of the one in flight */
	bool ping_in_flight;
	const struct hbone_settings *set;
	char peer_identity[TLS_SPIFFE_MAX];
	struct sockaddr_storage peer;
	char close_reason[160];
	struct hbone_stream *streams;	/* every stream attached to this conn */
	unsigned active_streams;
	/* server side */
	const struct hbone_server_handler *handler;
	void *hctx;
	char trust_domain[128];
	/* client side */
	struct hbone_pool *pool;
	struct hbone_conn *pool_next;
	uint64_t pool_rate_bytes, pool_rate_ms;	/* the pool's last look at its streams */
	bool pool_busy;			/* ... and whether they moved bulk until then */
	struct hbone_target *target;	/* the pool key and connect parameters (its authority is
					 * the first stream's; streams carry their own); owned. A
					 * pointer so that a server connection stays small */
};

/* The longest :authority a server stream keeps (longer is refused as missing), and the longest
 * error text a stream logs (cut there). */
#define HSTREAM_AUTHORITY_MAX 300
#define HSTREAM_ERROR_MAX 320

/*
 * One CONNECT stream bridged to a TCP socket. Owns its socket and receive queue. It lives in a
 * 1 KiB slab slot: what only the request or a failure needs is allocated apart, only then.
 */
struct hbone_stream {
	struct hbone_conn *conn;	/* NULL once the connection is gone */
	struct hbone_gate *gate;	/* borrowed: its queue counts toward the node's bound */
	struct hbone_stream *prev, *next;
	int32_t id;			/* -1 until submitted (client) */
	int16_t depth;			/* callbacks of this stream on the stack */
	int16_t status;			/* of the response */
	uint32_t header_bytes;		/* request header list size, as HTTP/2 counts it (kept
					 * below the bound, whatever the peer sends) */
	uint16_t prefix_len;
	bool has_tcp : 1;
	bool tcp_ready : 1;		/* connected (server) or 200 received (client) */
	bool tcp_eof : 1;
	bool data_deferred : 1;
	bool request_pending : 1;	/* server: request complete, not yet handed on */
	bool h2_eof : 1;
	bool h2_closed : 1;
	bool reset : 1;
	bool finished : 1;		/* unlinked and logged; memory goes when depth is 0 */
	bool writing_prefix : 1;
	bool method_connect : 1;	/* server: the request's :method is CONNECT */
	bool authority_lost : 1;	/* server: out of memory storing :authority */
	struct io_sock tcp;		/* its worker (tcp.w) is the stream's from the start */
	/* TCP -> HTTP/2 */
	const uint8_t *pend;
	uint32_t pend_len;		/* at most a socket read (IO_SOCK_RBUF) */
	/* HTTP/2 -> TCP */
	uint32_t writing;		/* bytes of q's head being written (one chunk at most) */
	struct io_bufq q;		/* received, not yet written; pool chunks */
	/* owned, NULL when there is none. Client: what to ask for, while the request waits for
	 * its connection; server: what was asked, until the request is handed on */
	char *authority;
	/* why the stream failed, for its log line: owned (or hstream_error_oom), NULL until then */
	char *error;
	/* owned, NULL when there is none: client, the headers to send (freed once submitted);
	 * server, the received ones, then the response's baggage (freed once answered), so that
	 * a long-lived stream does not carry them */
	struct hbone_meta *meta;
	uint8_t *prefix;	/* owned: bytes for the app before the tunnel's (PROXY header), until
				 * written */
	struct access_record rec;
};

/* conn.c */
#define HCONN_OUT_HIGH (1024 * 1024)	/* no more frames from nghttp2 above this much ciphertext */
/* Frames to the peer: pulls nghttp2's output into the TLS transport and starts the socket. */
void hconn_flush(struct hbone_conn *c);
/* Plaintext into the transport (coalesced, sealed at the flush). 0, or -EIO with c failed. */
int hconn_write(struct hbone_conn *c, const uint8_t *data, size_t len);
void hconn_fail(struct hbone_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct hbone_conn *hconn_new(struct io_worker *w, int fd, SSL_CTX *ctx, bool server,
			     const struct hbone_settings *set, struct hbone_gate *gate);
void hconn_enter(struct hbone_conn *c);
void hconn_leave(struct hbone_conn *c);
void hconn_start_handshake(struct hbone_conn *c);
void hconn_stream_detached(struct hbone_conn *c);
/* The peer answered our PING. */
void hconn_pong(struct hbone_conn *c);

/* stream.c */
/* st's metadata, allocated (zeroed) on first use; NULL when out of memory. */
struct hbone_meta *hstream_meta(struct hbone_stream *st);
void hstream_meta_free(struct hbone_stream *st);
/* A callback of st is on the stack: st stays allocated until the matching leave. */
void hstream_enter(struct hbone_stream *st);
void hstream_leave(struct hbone_stream *st);
struct hbone_stream *hstream_new(struct hbone_conn *c);
void hstream_attach_tcp(struct hbone_stream *st, int fd);
/* Submits st's CONNECT for authority (st->authority, or the caller's when st has none);
 * st->authority is freed. 0, or -EIO with st failed. */
int hstream_submit_request(struct hbone_stream *st, const char *authority);
/* Drops st's stored :authority. */
void hstream_authority_free(struct hbone_stream *st);
void hstream_set_callbacks(nghttp2_session_callbacks *cb);
void hstream_conn_gone(struct hbone_stream *st, const char *reason);
void hstream_fail(struct hbone_stream *st, const char *reason);
/* Hands the requests that came in during the last read to the handler, skipping streams the
 * peer already reset (a rapid-reset peer never gets an app connection opened). */
void hstream_dispatch_requests(struct hbone_conn *c);

/* request.c: nghttp2 callbacks for a request head (user_data is the hbone_conn) */
int hstream_on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *user);
int hstream_on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
		      size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		      void *user);

/* gate.c: adds n queued bytes; false when the node's total is now over its bound */
bool hgate_app_add(struct hbone_gate *g, size_t n);
void hgate_app_release(struct hbone_gate *g, size_t n);

/* pool.c */
void hpool_conn_ready(struct hbone_conn *c);
/* c (a client connection) has no stream: arms its idle release, the short spare one when
 * another connection of its key is ready to carry new streams. */
void hpool_conn_idle(struct hbone_conn *c);
/* At its idle deadline: true (re-armed for the rest of the pool's idle timeout) when c's was
 * the spare's deadline and no other connection of its key is ready any more: the last one
 * stays. */
bool hpool_conn_keep(struct hbone_conn *c);
void hpool_conn_closed(struct hbone_conn *c);

#endif
