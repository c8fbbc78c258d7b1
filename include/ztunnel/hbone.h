/* hbone: HTTP/2 CONNECT tunnels inside mutual TLS; client pool and server, on nghttp2. */
#ifndef ZTUNNEL_HBONE_H
#define ZTUNNEL_HBONE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ztunnel/access.h>
#include <ztunnel/io.h>
#include <ztunnel/tls.h>

#define HBONE_PORT 15008

struct hbone_settings {
	uint32_t stream_window;		/* HTTP2_STREAM_WINDOW_SIZE, 4 MiB */
	uint32_t conn_window;		/* HTTP2_CONNECTION_WINDOW_SIZE, 16 MiB */
	uint32_t frame_size;		/* HTTP2_FRAME_SIZE, 1 MiB */
	uint32_t max_streams_per_conn;	/* POOL_MAX_STREAMS_PER_CONNECTION, 100 */
	uint32_t max_conns_per_peer;	/* ZTUNNEL_POOL_MAX_CONNS_PER_PEER: busy connections of
					 * one pool key before streams share them again, 4 */
	uint32_t server_max_streams;	/* 200 */
	uint32_t idle_release_ms;	/* POOL_UNUSED_RELEASE_TIMEOUT, 5 min */
	uint32_t spare_release_ms;	/* ZTUNNEL_POOL_SPARE_RELEASE_TIMEOUT, 5 s: an idle
					 * connection while another of its key is ready */
	uint32_t handshake_timeout_ms;	/* 10 s: connect + TLS handshake */
	uint32_t mark;			/* SO_MARK of outbound sockets, 0x539 */
	uint32_t max_pending_handshakes;	/* ZTUNNEL_MAX_PENDING_HANDSHAKES, 2048 */
	uint32_t max_pending_per_source;	/* ZTUNNEL_MAX_PENDING_HANDSHAKES_PER_SOURCE, 256 */
	uint32_t app_buffer_limit;	/* ZTUNNEL_APP_BUFFER_LIMIT: bytes queued toward apps, 64 MiB */
	uint32_t max_header_list;	/* 64 KiB, as upstream */
	uint32_t keepalive_interval_ms;	/* PING after this long (10 s), again as long after a PONG */
	uint32_t keepalive_timeout_ms;	/* close when no PONG came this long after a PING (20 s) */
	bool localhost_app_tunnel;	/* LOCALHOST_APP_TUNNEL: PROXY app tunnels go to 127.0.0.1 */
	bool ktls;			/* ZTUNNEL_KTLS: try kernel TLS after handshakes, off */
	bool ipv6;			/* IPV6_ENABLED (the kernel has it): listeners on [::] */
};

/* Fills upstream's defaults. */
void hbone_settings_default(struct hbone_settings *s);

struct hbone_conn;
struct hbone_stream;

/*
 * The node-wide bounds of the HBONE layer, shared by every worker: inbound connections still
 * in their TLS handshake (in all and per source IP) and bytes queued toward apps.
 */
struct hbone_gate;

/* 0 for max_total or max_per_source means no bound. NULL when out of memory. */
struct hbone_gate *hbone_gate_new(const struct hbone_settings *set);
void hbone_gate_free(struct hbone_gate **g);
/* Counts a new pending handshake from peer: 0, or -EBUSY (node bound), -EMLINK (this source's
 * bound), -ENOMEM; nothing is counted on failure. */
int hbone_gate_enter(struct hbone_gate *g, const struct sockaddr_storage *peer);
/* The handshake counted by hbone_gate_enter for peer is over. */
void hbone_gate_leave(struct hbone_gate *g, const struct sockaddr_storage *peer);
/* Handshakes pending now. */
unsigned hbone_gate_pending(struct hbone_gate *g);

/*
 * What an inbound connection asks of the proxy for each CONNECT request. The proxy answers
 * with hbone_stream_refuse() or hbone_stream_connect(), now or later.
 */
struct hbone_server_handler {
	void (*on_request)(struct hbone_stream *st, const char *authority, void *ctx);
	void (*hold)(void *ctx);	/* a connection starts using ctx */
	void (*release)(void *ctx);	/* ... and is done with it */
};

/* Serves an accepted inbound connection (fd owned from now, closed on failure). ctx is the
 * server's TLS context (one reference taken). peer is the TCP peer address. Until its TLS
 * handshake is done the connection costs a small fixed amount (no buffer, no SSL object before
 * the peer's first bytes) and counts against gate. 0, or -EBUSY / -EMLINK (gate full: the
 * socket is reset at once) or -ENOMEM. */
int hbone_server_start(struct io_worker *w, int fd, SSL_CTX *ctx, const char *trust_domain,
		       const struct hbone_settings *set, struct hbone_gate *gate,
		       const struct hbone_server_handler *h, void *hctx,
		       const struct sockaddr_storage *peer);

/* The stream's access record (the proxy fills the destination side). */
struct access_record *hbone_stream_record(struct hbone_stream *st);
/* The worker the stream runs on. */
struct io_worker *hbone_stream_worker(const struct hbone_stream *st);
/* The verified client identity of the stream's connection. */
const char *hbone_stream_peer_identity(const struct hbone_stream *st);
/* Resets the stream whose access record is rec (rec from hbone_stream_record), logging reason.
 * Usable as an access_abort_fn. */
void hbone_stream_abort(struct access_record *rec, const char *reason);
/* Sends GOAWAY on the stream's connection: the peer opens no new stream on it. */
void hbone_stream_goaway(struct hbone_stream *st);
/* Refuses a request with an HTTP status (400, 401, 503...) and a reason for the log. */
void hbone_stream_refuse(struct hbone_stream *st, int status, const char *reason);
/* Bytes the app gets before the tunnelled ones (a PROXY header); copied. Call before
 * hbone_stream_connect. 0 or -ENOMEM / -EINVAL (len 0 or over 1 KiB). */
int hbone_stream_set_prefix(struct hbone_stream *st, const uint8_t *data, size_t len);
/* Connects fd (non-blocking, already bound as the proxy wants) to sa; 200 and relay on success,
 * 503 on failure. fd is owned by the stream from now. */
void hbone_stream_connect(struct hbone_stream *st, int fd, const struct sockaddr *sa,
			  socklen_t salen);

/* Upstream's CONNECT metadata. Client: the request headers to send; empty ones are left out.
 * Server: baggage and forwarded as received (baggage = the request's, until the proxy sets the
 * response's with hbone_stream_set_response_baggage). Values hold header-safe text only. */
struct hbone_meta {
	char baggage[256];
	char forwarded[128];
	char traceparent[56];	/* "00-<32 hex>-<16 hex>-00" */
};

/* The stream's received baggage and forwarded headers ("" when absent or over-long). */
const struct hbone_meta *hbone_stream_meta(const struct hbone_stream *st);
/* The baggage header of the stream's 200 response (copied; "" or NULL: none). */
void hbone_stream_set_response_baggage(struct hbone_stream *st, const char *baggage);

/* A per-worker pool of client connections. */
struct hbone_pool;

/* What an outbound tunnel needs. Strings are copied. */
struct hbone_target {
	struct sockaddr_storage hbone_addr;	/* peer ip:15008 (a waypoint's hbone_mtls_port) */
	char authority[80];			/* "ip:port" of the app */
	char src_identity[TLS_SPIFFE_MAX];
	char dst_identity[TLS_SPIFFE_MAX];	/* the SAN the server must present */
	int netns_fd;				/* source pod netns for new sockets; borrowed */
	SSL_CTX *client_ctx;			/* source identity's context; borrowed */
	char waypoint[160];			/* "" or the waypoint this goes through (logs) */
};

/* Pool key equality: source identity, destination identity, HBONE address and source netns. */
bool hbone_target_same_pool(const struct hbone_target *a, const struct hbone_target *b);

/* A pool for worker w. set, gate and metrics are borrowed and outlive it; gate (may be NULL)
 * bounds the bytes the pool's streams queue toward apps; metrics (may be NULL): each open client
 * connection counts 1 in its ztunnel_pooled_connections gauge while it is pooled. */
struct hbone_pool *hbone_pool_new(struct io_worker *w, const struct hbone_settings *set,
				  struct hbone_gate *gate, struct metrics *metrics);
void hbone_pool_free(struct hbone_pool **pool);
/* Number of open client connections. */
unsigned hbone_pool_size(const struct hbone_pool *pool);

/*
 * Tunnels the accepted client socket fd (owned from now) to t: reuses a pooled connection with
 * room for a stream or opens one. rec is copied as the stream's access record, meta (may be
 * NULL) as its request headers. On any failure the client socket is reset and the failure
 * logged.
 */
void hbone_pool_tunnel(struct hbone_pool *pool, const struct hbone_target *t, int fd,
		       const struct access_record *rec, const struct hbone_meta *meta);

#endif
