/* tls xprt: the one TLS transport (handshake, record pump, shutdown) under hbone/ and grpc/. */
#ifndef ZTUNNEL_TLS_XPRT_H
#define ZTUNNEL_TLS_XPRT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ztunnel/iobuf.h>

/*
 * The transport knows no socket: its driver hands it the ciphertext the socket delivered
 * (tls_xprt_input, read in place through a custom BIO, no copy into a memory BIO) and writes
 * what tls_xprt_out_peek shows (ciphertext appended by OpenSSL straight into pool buffers). The
 * upper layer writes plaintext with tls_xprt_write (small writes coalesced into full records,
 * tls_xprt_push ends a burst) and gets plaintext through the callback of tls_xprt_read.
 * hbone/conn.c drives it over an io_uring socket, grpc/transport.c with poll and recv/send.
 * A transport made with tls_xprt_init_plain passes bytes through unchanged (gRPC over h2c).
 *
 * Memory: nothing but the SSL object while idle. The output buffers go back to the pool as
 * they drain, the coalescing buffer at each push; SSL_MODE_RELEASE_BUFFERS drops OpenSSL's
 * record buffers between records.
 */

#define TLS_XPRT_RECORD 16384u	/* plaintext of a full TLS record */
#define TLS_XPRT_REASON 160

struct tls_xprt_obuf;
struct tls_ktls;

struct tls_xprt {
	SSL *ssl;			/* owned (with its BIO); NULL for a plain transport */
	struct io_buf_pool *pool;	/* borrowed: output and coalescing buffers */
	struct tls_xprt_obuf *out_head, *out_tail;	/* ciphertext to write; owned */
	size_t out_len;			/* bytes queued in out_head.. */
	const uint8_t *in;		/* ciphertext being decrypted; the driver's, borrowed
					 * from tls_xprt_input until tls_xprt_read returns */
	size_t in_len;
	uint8_t *stage;			/* plaintext coalesced for the next record; owned */
	uint16_t stage_len;
	bool in_eof;			/* the peer shut down writing */
	bool plain;			/* passthrough, no TLS */
	bool ktls;			/* try kTLS after the handshake */
	bool done;			/* handshake complete */
	int fd;				/* the socket, for kTLS only; -1 unknown */
	int ktls_err;			/* after a handshake with ktls: 0 records sent by the
					 * kernel, -EINPROGRESS waiting for tls_xprt_drained,
					 * else -errno why they stay here (reason says it) */
	bool ktls_tx;			/* the kernel seals what we send */
	struct tls_ktls *ktls_keys;	/* owned, while a hand-off may still come */
	char reason[TLS_XPRT_REASON];	/* why the last call failed */
};

/* TLS over ctx (one reference taken by the SSL object) as server or client. pool must live as
 * long as x and be used on one thread; x must not move (the kTLS keylog finds it). fd: the
 * socket (for kTLS), or -1. ktls: hand our sending key to the kernel after the handshake where
 * it offers TCP_ULP "tls" (tls_xprt_handshake, tls_xprt_drained); needs a context made by
 * tls_ctx_new. 0 or -ENOMEM. */
int tls_xprt_init(struct tls_xprt *x, SSL_CTX *ctx, bool server, struct io_buf_pool *pool,
		  int fd, bool ktls);
/* A transport without TLS: bytes in and out unchanged. */
void tls_xprt_init_plain(struct tls_xprt *x, struct io_buf_pool *pool);
/* Frees the SSL object and every buffer; x may be zeroed or freed already. */
void tls_xprt_free(struct tls_xprt *x);
/* The SSL object (peer certificate, ALPN, verify settings), NULL for a plain transport. */
static inline SSL *tls_xprt_ssl(const struct tls_xprt *x)
{
	return x->ssl;
}

/* Ciphertext from the socket: len bytes at data, read in place until the next tls_xprt_read
 * returns (the driver keeps them alive that long); len 0 means the peer shut down writing. */
void tls_xprt_input(struct tls_xprt *x, const uint8_t *data, size_t len);
/* Advances the handshake over the input given. 1 complete (input may remain for
 * tls_xprt_read), 0 more input is needed (output may be queued), <0 failed: -EPROTO (verify
 * or protocol), -ECONNRESET (the peer closed), with x->reason. On completion with ktls asked
 * for, tries the kernel: x->ktls_err and x->reason tell the outcome for the caller to log. */
int tls_xprt_handshake(struct tls_xprt *x);

/* Plaintext for the upper layer; a negative return stops the read and is returned. */
typedef int (*tls_xprt_plain_fn)(void *arg, const uint8_t *data, size_t len);
#define TLS_XPRT_CLOSED 1
/* Decrypts all the input given, record by record, into fn. 0 the input is used up,
 * TLS_XPRT_CLOSED the peer sent close_notify, fn's negative return, or <0 with x->reason:
 * -EPROTO (bad record, garbage), -ECONNRESET (the peer closed mid-record). */
int tls_xprt_read(struct tls_xprt *x, tls_xprt_plain_fn fn, void *arg);

/* Plaintext to send: whole records go straight to the cipher, a tail shorter than a record
 * waits (copied) for more until tls_xprt_push. 0 or -ENOMEM / -EPROTO with x->reason. */
int tls_xprt_write(struct tls_xprt *x, const void *data, size_t len);
/* Seals what tls_xprt_write holds back into a record. Call it when a burst of writes ends. */
int tls_xprt_push(struct tls_xprt *x);
/* Pushes, then queues close_notify. 0, TLS_XPRT_CLOSED when the peer's came already, or <0. */
int tls_xprt_shutdown(struct tls_xprt *x);

/* Ciphertext waiting for the socket, in bytes (what tls_xprt_write held back not included). */
static inline size_t tls_xprt_out_len(const struct tls_xprt *x)
{
	return x->out_len;
}
/* The first contiguous run of ciphertext to write, NULL (len 0) when none. It stays valid and
 * in place while more is queued behind it, until tls_xprt_out_consume covers it. */
const uint8_t *tls_xprt_out_peek(const struct tls_xprt *x, size_t *len);
/* n bytes of the front were written; drained buffers go back to the pool. */
void tls_xprt_out_consume(struct tls_xprt *x, size_t n);

/*
 * ZTUNNEL_KTLS: the driver says that everything queued is on the wire and no write is in
 * flight. After a handshake whose TCP_ULP "tls" attached, this hands our sending key to the
 * kernel (TLS_TX; receiving stays in user space). 0 when the kernel took it now (x->reason
 * says so), else nothing changed; x->ktls_err tells the outcome. Cheap when there is nothing
 * pending. Untested here: the kernels this was written on have no CONFIG_TLS.
 */
int tls_xprt_drained(struct tls_xprt *x);

#endif
