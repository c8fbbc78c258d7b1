/* tls xprt: the TLS record pump over a custom BIO: ciphertext in place, out into pool buffers. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include <ztunnel/tls-xprt.h>
#include <ztunnel/tls.h>

#include "internal.h"

#define OBUF_CLASS IO_BUF_256K
#define STAGE_CLASS IO_BUF_16K

/* An output buffer: this header, then data[start, end) to write. */
struct tls_xprt_obuf {
	struct tls_xprt_obuf *next;
	size_t start, end;
	uint8_t data[];
};

static size_t obuf_room(void)
{
	return io_buf_size(OBUF_CLASS) - sizeof(struct tls_xprt_obuf);
}

static void obuf_put(struct tls_xprt *x, struct tls_xprt_obuf *b)
{
	uint8_t *p = (uint8_t *)b;

	io_buf_put(x->pool, OBUF_CLASS, &p);
}

/* Appends to the queue; the front run being written never moves. 0 or -ENOMEM. */
static int out_append(struct tls_xprt *x, const uint8_t *data, size_t len)
{
	while (len > 0) {
		struct tls_xprt_obuf *t = x->out_tail;
		size_t n;

		if (!t || t->end == obuf_room()) {
			t = (struct tls_xprt_obuf *)io_buf_get(x->pool, OBUF_CLASS);
			if (!t)
				return -ENOMEM;
			t->next = NULL;
			t->start = t->end = 0;
			if (x->out_tail)
				x->out_tail->next = t;
			else
				x->out_head = t;
			x->out_tail = t;
		}
		n = obuf_room() - t->end < len ? obuf_room() - t->end : len;
		memcpy(t->data + t->end, data, n);
		t->end += n;
		x->out_len += n;
		data += n;
		len -= n;
	}
	return 0;
}

const uint8_t *tls_xprt_out_peek(const struct tls_xprt *x, size_t *len)
{
	const struct tls_xprt_obuf *h = x->out_head;

	*len = h ? h->end - h->start : 0;
	return h ? h->data + h->start : NULL;
}

void tls_xprt_out_consume(struct tls_xprt *x, size_t n)
{
	while (n > 0 && x->out_head) {
		struct tls_xprt_obuf *h = x->out_head;
		size_t k = h->end - h->start < n ? h->end - h->start : n;

		h->start += k;
		x->out_len -= k;
		n -= k;
		if (h->start < h->end)
			break;
		x->out_head = h->next;
		if (!x->out_head)
			x->out_tail = NULL;
		obuf_put(x, h);
	}
}

/* ---- the BIO: reads the driver's bytes in place, writes into the output queue ---- */

static int bio_write(BIO *b, const char *data, int len)
{
	struct tls_xprt *x = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (x->ktls_tx)	/* OpenSSL sealing a record after the hand-off (a KeyUpdate): refused */
		return -1;
	if (x->ktls_keys && x->done)
		tls_ktls_count(x, (const uint8_t *)data, (size_t)len);
	return out_append(x, (const uint8_t *)data, (size_t)len) < 0 ? -1 : len;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct tls_xprt *x = BIO_get_data(b);
	size_t n;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (x->in_len == 0) {
		if (x->in_eof)
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	n = x->in_len < (size_t)len ? x->in_len : (size_t)len;
	memcpy(buf, x->in, n);
	x->in += n;
	x->in_len -= n;
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	const struct tls_xprt *x = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return x && x->in_eof && x->in_len == 0;
	case BIO_CTRL_PENDING:
		return x ? (long)x->in_len : 0;
	case BIO_CTRL_WPENDING:
		return 0;	/* queued output is the driver's to write, not a buffered BIO's */
	default:
		return 0;	/* kTLS and the rest: not supported by this BIO */
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ztunnel xprt");

	if (!m)
		return;
	BIO_meth_set_write(m, bio_write);
	BIO_meth_set_read(m, bio_read);
	BIO_meth_set_ctrl(m, bio_ctrl);
	BIO_meth_set_create(m, bio_create);
	bio_method = m;
}

/* ---- set-up and teardown ---- */

int tls_xprt_init(struct tls_xprt *x, SSL_CTX *ctx, bool server, struct io_buf_pool *pool,
		  int fd, bool ktls)
{
	BIO *bio;

	memset(x, 0, sizeof(*x));
	x->pool = pool;
	x->fd = fd;
	x->ktls = ktls;
	pthread_once(&bio_once, bio_method_init);
	if (!bio_method)
		return -ENOMEM;
	x->ssl = SSL_new(ctx);
	if (!x->ssl)
		return -ENOMEM;
	bio = BIO_new(bio_method);
	if (!bio) {
		SSL_free(x->ssl);
		x->ssl = NULL;
		return -ENOMEM;
	}
	BIO_set_data(bio, x);
	SSL_set_bio(x->ssl, bio, bio);	/* one BIO both ways, owned by the SSL object */
	if (ktls && tls_ktls_attach(x) < 0) {
		tls_xprt_free(x);
		return -ENOMEM;
	}
	SSL_set_mode(x->ssl, SSL_MODE_RELEASE_BUFFERS);	/* idle: no record buffers */
	if (server)
		SSL_set_accept_state(x->ssl);
	else
		SSL_set_connect_state(x->ssl);
	return 0;
}

void tls_xprt_init_plain(struct tls_xprt *x, struct io_buf_pool *pool)
{
	memset(x, 0, sizeof(*x));
	x->pool = pool;
	x->plain = true;
	x->fd = -1;
	x->done = true;
}

void tls_xprt_free(struct tls_xprt *x)
{
	tls_ktls_free(x);
	SSL_free(x->ssl);
	x->ssl = NULL;
	tls_xprt_out_consume(x, x->out_len);
	if (x->stage)
		io_buf_put(x->pool, STAGE_CLASS, &x->stage);
	x->stage_len = 0;
	x->in = NULL;
	x->in_len = 0;
}

/* ---- the pump ---- */

static int fail(struct tls_xprt *x, int ret, const char *what, const char *detail)
{
	char e[120];

	if (!detail || !*detail)
		detail = *tls_last_error(e, sizeof(e)) ? e : "failed";
	snprintf(x->reason, sizeof(x->reason), "%s: %s", what, detail);
	ERR_clear_error();
	return ret;
}

/* A failed SSL call: the peer's close (EOF) or a protocol error. */
static int ssl_fail(struct tls_xprt *x, int err, const char *what)
{
	char e[120];

	tls_last_error(e, sizeof(e));
	if (x->ktls_tx && err == SSL_ERROR_SSL)
		return fail(x, -EPROTO, what, "OpenSSL sealed a record after the kTLS hand-off");
	if (x->in_eof && x->in_len == 0 && (err == SSL_ERROR_SYSCALL || strstr(e, "unexpected eof")))
		return fail(x, -ECONNRESET, what, "peer closed the connection mid-record");
	if (err == SSL_ERROR_SYSCALL && !e[0])
		return fail(x, -ECONNRESET, what, "peer closed the connection");
	return fail(x, -EPROTO, what, e);
}

void tls_xprt_input(struct tls_xprt *x, const uint8_t *data, size_t len)
{
	x->in = len ? data : NULL;
	x->in_len = len;
	if (!len)
		x->in_eof = true;
}


int tls_xprt_handshake(struct tls_xprt *x)
{
	int r, err;
	long vr;

	if (x->done)
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(x->ssl);
	if (r == 1) {
		x->done = true;
		if (x->ktls)
			tls_ktls_start(x);
		return 1;
	}
	err = SSL_get_error(x->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		x->in = NULL;	/* all of it was read */
		x->in_len = 0;
		return 0;
	}
	vr = SSL_get_verify_result(x->ssl);
	if (vr != X509_V_OK)
		return fail(x, -EPROTO, "certificate verify failed",
			    X509_verify_cert_error_string(vr));
	if (x->in_eof && x->in_len == 0) {
		ERR_clear_error();
		return fail(x, -ECONNRESET, "tls handshake", "peer closed");
	}
	return ssl_fail(x, err, "tls handshake");
}

int tls_xprt_read(struct tls_xprt *x, tls_xprt_plain_fn fn, void *arg)
{
	uint8_t buf[TLS_XPRT_RECORD];
	int ret = 0, r, err;

	if (x->plain) {
		if (x->in_len)
			ret = fn(arg, x->in, x->in_len);
		goto out;
	}
	for (;;) {
		ERR_clear_error();
		r = SSL_read(x->ssl, buf, sizeof(buf));
		if (r > 0) {
			ret = fn(arg, buf, (size_t)r);
			if (ret < 0)
				break;
			continue;
		}
		err = SSL_get_error(x->ssl, r);
		if (err == SSL_ERROR_WANT_READ)
			ret = 0;
		else if (err == SSL_ERROR_ZERO_RETURN)
			ret = TLS_XPRT_CLOSED;
		else
			ret = ssl_fail(x, err, "tls read");
		break;
	}
out:
	x->in = NULL;	/* the driver's bytes are done with */
	x->in_len = 0;
	return ret;
}

/* Seals len bytes into records (OpenSSL cuts them at TLS_XPRT_RECORD); the BIO never refuses. */
static int seal(struct tls_xprt *x, const uint8_t *data, size_t len)
{
	if (x->plain || x->ktls_tx)	/* no TLS, or the kernel seals it */
		return out_append(x, data, len) < 0 ? fail(x, -ENOMEM, "write", "out of memory") : 0;
	while (len > 0) {
		int n = len > INT_MAX / 2 ? INT_MAX / 2 : (int)len;
		int r;

		ERR_clear_error();
		r = SSL_write(x->ssl, data, n);	/* < n only with SSL_MODE_ENABLE_PARTIAL_WRITE */
		if (r <= 0)
			return ssl_fail(x, SSL_get_error(x->ssl, r), "tls write");
		data += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Copies into the coalescing buffer; a full one is sealed. */
static int stage(struct tls_xprt *x, const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t n = TLS_XPRT_RECORD - x->stage_len < len ? TLS_XPRT_RECORD - x->stage_len : len;

		if (!x->stage && !(x->stage = io_buf_get(x->pool, STAGE_CLASS)))
			return fail(x, -ENOMEM, "write", "out of memory");
		memcpy(x->stage + x->stage_len, p, n);
		x->stage_len += (uint16_t)n;
		p += n;
		len -= n;
		if (x->stage_len == TLS_XPRT_RECORD) {
			int ret;

			x->stage_len = 0;
			ret = seal(x, x->stage, TLS_XPRT_RECORD);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/*
 * Small writes (frame headers, control frames, short DATA) share records. A write of a record
 * or more is sealed where it lies: what is held back goes first as its own record, so a DATA
 * frame's payload is never copied (its 9-byte header rides in the record before it).
 */
int tls_xprt_write(struct tls_xprt *x, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t whole;
	int ret;

	if (x->stage_len + len <= TLS_XPRT_RECORD || len < TLS_XPRT_RECORD)
		return stage(x, p, len);
	if (x->stage_len) {
		size_t n = x->stage_len;

		x->stage_len = 0;
		ret = seal(x, x->stage, n);
		if (ret < 0)
			return ret;
	}
	whole = len - len % TLS_XPRT_RECORD;
	ret = seal(x, p, whole);
	if (ret < 0)
		return ret;
	return stage(x, p + whole, len - whole);
}

int tls_xprt_push(struct tls_xprt *x)
{
	size_t n = x->stage_len;
	int ret = 0;

	x->stage_len = 0;
	if (n)
		ret = seal(x, x->stage, n);
	if (x->stage)	/* between bursts the connection holds no plaintext buffer */
		io_buf_put(x->pool, STAGE_CLASS, &x->stage);
	return ret;
}

int tls_xprt_shutdown(struct tls_xprt *x)
{
	int ret = tls_xprt_push(x), r;

	if (ret < 0 || x->plain || !x->done || x->ktls_tx)	/* kTLS: a FIN without close_notify */
		return ret;
	ERR_clear_error();
	r = SSL_shutdown(x->ssl);
	if (r == 1)
		return TLS_XPRT_CLOSED;
	if (r == 0)
		return 0;
	return ssl_fail(x, SSL_get_error(x->ssl, r), "tls shutdown");
}

int tls_xprt_drained(struct tls_xprt *x)
{
	if (!x->ktls_keys || x->ktls_err != -EINPROGRESS)
		return -EAGAIN;
	return tls_ktls_install(x);
}
