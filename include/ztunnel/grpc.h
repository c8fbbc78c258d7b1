/* grpc: a small blocking gRPC client over HTTP/2 (nghttp2), h2c or TLS, for the control plane. */
#ifndef ZTUNNEL_GRPC_H
#define ZTUNNEL_GRPC_H

#include <stddef.h>
#include <stdint.h>

/* gRPC status codes used by callers */
#define GRPC_OK 0
#define GRPC_CANCELLED 1
#define GRPC_UNKNOWN 2
#define GRPC_INVALID_ARGUMENT 3
#define GRPC_DEADLINE_EXCEEDED 4
#define GRPC_NOT_FOUND 5
#define GRPC_PERMISSION_DENIED 7
#define GRPC_RESOURCE_EXHAUSTED 8
#define GRPC_UNIMPLEMENTED 12
#define GRPC_INTERNAL 13
#define GRPC_UNAVAILABLE 14
#define GRPC_UNAUTHENTICATED 16

/* The upper-case name of a gRPC status ("PERMISSION_DENIED"); "UNKNOWN" when out of range. */
const char *grpc_status_name(int status);

struct grpc_metadata {
	const char *key;	/* lower case, e.g. "authorization", "clusterid" */
	const char *value;
};

/*
 * One HTTP/2 connection. Used by one thread at a time (the control plane's own thread); every
 * call blocks that thread for at most its timeout. TLS writes may raise SIGPIPE when the server
 * hangs up: the process must ignore SIGPIPE (the agent does).
 */
struct grpc_channel;

/*
 * Connects to address "http://host:port" (h2c, prior knowledge) or "https://host:port" (TLS 1.2+,
 * ALPN h2, server verified against root_ca_pem_path, or the system roots when NULL; the host name
 * is checked unless it is an IP address, then the IP SAN). md is sent with every call (copied).
 * NULL with a one-line reason in err.
 */
struct grpc_channel *grpc_channel_open(const char *address, const char *root_ca_pem_path,
				       const struct grpc_metadata *md, size_t n_md, int timeout_ms,
				       char *err, size_t errlen);
void grpc_channel_close(struct grpc_channel **ch);

/*
 * A unary call: sends req to path ("/pkg.Service/Method"), waits up to timeout_ms for the reply.
 * Returns the gRPC status (GRPC_OK with *resp malloc'd, owned by the caller), or -errno for a
 * transport failure. err gets grpc-message or the transport reason. A non-200 HTTP reply gives
 * gRPC's mapped status (403 -> PERMISSION_DENIED, 503 -> UNAVAILABLE, ...); a broken reply
 * (not application/grpc, truncated, no grpc-status, zero or two messages) gives -EPROTO.
 */
int grpc_unary(struct grpc_channel *ch, const char *path, const uint8_t *req, size_t len,
	       uint8_t **resp, size_t *resp_len, int timeout_ms, char *err, size_t errlen);

/* A bidirectional stream (e.g. ADS). */
struct grpc_stream;
struct grpc_stream *grpc_stream_open(struct grpc_channel *ch, const char *path, char *err,
				     size_t errlen);
/* Queues one message and flushes what the connection can take now. 0 or -errno. */
int grpc_stream_send(struct grpc_stream *s, const uint8_t *msg, size_t len);
/*
 * Waits up to timeout_ms for the next message. 1: *msg (malloc'd, caller frees) and *len set;
 * 0: nothing within timeout_ms; <0: the stream ended: -ECONNRESET etc., with *status the gRPC
 * status (if trailers came) and the reason in err. Messages over 64 MiB are refused (-EMSGSIZE).
 * Without trailers *status is GRPC_UNAVAILABLE for a connection failure and GRPC_INTERNAL for a
 * broken reply (-EPROTO: not HTTP 200, not application/grpc, truncated, no grpc-status).
 */
int grpc_stream_recv(struct grpc_stream *s, uint8_t **msg, size_t *len, int timeout_ms,
		     int *status, char *err, size_t errlen);
void grpc_stream_close(struct grpc_stream **s);
/*
 * fd (e.g. an eventfd, not owned; -1 to unset) is polled beside the connection: when it becomes
 * readable, waits on the channel (grpc_stream_recv) return early, as on a timeout, so the owner
 * can send. The owner drains fd.
 */
void grpc_channel_set_wake_fd(struct grpc_channel *ch, int fd);

#endif
