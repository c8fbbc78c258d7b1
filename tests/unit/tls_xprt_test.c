// unit-standalone
/* tls xprt unit tests: a real client and server transport (development CA, HBONE contexts)
 * joined by in-memory pipes: handshake, records fed a byte at a time, large and coalesced
 * writes, close_notify both ways, a peer gone mid-record, garbage, memory held when idle, the
 * plain mode and the ZTUNNEL_KTLS fallback. */
#include "../../agent/io/buf.c"
#include "../../agent/tls/ca.c"
#include "../../agent/tls/cert.c"
#include "../../agent/tls/ctx.c"
#include "../../agent/tls/identity.c"
#include "../../agent/tls/ktls.c"
#include "../../agent/tls/x509.c"
#include "../../agent/tls/xprt.c"

#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

#define CLIENT_ID "spiffe://cluster.local/ns/a/sa/client"
#define SERVER_ID "spiffe://cluster.local/ns/b/sa/server"

static SSL_CTX *client_ctx, *server_ctx;

/* What one side received: plaintext appended, records counted by the sender's side. */
struct sink {
	uint8_t *data;
	size_t len, cap;
	int calls;
};

static int sink_add(void *arg, const uint8_t *data, size_t len)
{
	struct sink *s = arg;

	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->data = realloc(s->data, s->cap);
		if (!s->data)
			return -ENOMEM;
	}
	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->calls++;
	return 0;
}

/* One end: its transport, its pool, what it got. */
struct end {
	struct io_buf_pool pool;
	struct tls_xprt x;
	struct sink got;
	int hs;		/* last handshake result */
	int rd;		/* last read result */
};

static void end_init(struct end *e, bool server, int fd, bool ktls)
{
	memset(e, 0, sizeof(*e));
	CHECK(tls_xprt_init(&e->x, server ? server_ctx : client_ctx, server, &e->pool, fd, ktls) == 0,
	      "init");
}

static void end_free(struct end *e)
{
	tls_xprt_free(&e->x);
	CHECK(io_buf_in_use_bytes(&e->pool) == 0, "buffers left after free: %zu",
	      io_buf_in_use_bytes(&e->pool));
	io_buf_pool_clear(&e->pool);
	free(e->got.data);
}

/* Hands `to` what `from` queued, chunk bytes per input (the socket's reads), copying each
 * chunk into a buffer of its own as a socket read buffer would be. Returns bytes moved. */
static size_t deliver(struct end *from, struct end *to, size_t chunk)
{
	size_t moved = 0, len;
	const uint8_t *p;

	while ((p = tls_xprt_out_peek(&from->x, &len))) {
		size_t n = len < chunk ? len : chunk;
		uint8_t *copy = malloc(n);

		memcpy(copy, p, n);
		tls_xprt_out_consume(&from->x, n);
		tls_xprt_input(&to->x, copy, n);
		if (!to->x.done)
			to->hs = tls_xprt_handshake(&to->x);
		if (to->x.done && to->hs >= 0)
			to->rd = tls_xprt_read(&to->x, sink_add, &to->got);
		free(copy);	/* the transport must not keep pointing at it */
		moved += n;
		if (to->hs < 0 || to->rd < 0)
			break;
	}
	return moved;
}

/* Runs the handshake to its end, both directions, chunk bytes per read. */
static bool handshake(struct end *c, struct end *s, size_t chunk)
{
	c->hs = tls_xprt_handshake(&c->x);
	for (int i = 0; i < 20 && (c->hs == 0 || s->hs == 0 || tls_xprt_out_len(&c->x) ||
				  tls_xprt_out_len(&s->x)); i++) {
		deliver(c, s, chunk);
		deliver(s, c, chunk);
		if (c->hs < 0 || s->hs < 0)
			return false;
	}
	return c->hs == 1 && s->hs == 1;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* Walks the TLS records in a ciphertext stream: count, and the largest length. */
static void records(const uint8_t *p, size_t len, int *count, size_t *largest)
{
	*count = 0;
	*largest = 0;
	while (len >= 5) {
		size_t rl = (size_t)p[3] << 8 | p[4];

		if (rl + 5 > len)
			break;
		(*count)++;
		if (rl > *largest)
			*largest = rl;
		p += rl + 5;
		len -= rl + 5;
	}
}

/* All of from's queued ciphertext, without consuming it. */
static size_t peek_all(const struct tls_xprt *x, uint8_t *buf, size_t cap)
{
	size_t n = 0;

	for (const struct tls_xprt_obuf *b = x->out_head; b; b = b->next) {
		size_t k = b->end - b->start;

		if (n + k > cap)
			break;
		memcpy(buf + n, b->data + b->start, k);
		n += k;
	}
	return n;
}

static void test_handshake(void)
{
	struct end c, s;
	char id[TLS_SPIFFE_MAX];
	const unsigned char *alpn;
	unsigned alpn_len = 0;

	end_init(&c, false, -1, false);
	end_init(&s, true, -1, false);
	CHECK(handshake(&c, &s, SIZE_MAX), "handshake: client %d server %d (%s / %s)", c.hs, s.hs,
	      c.x.reason, s.x.reason);
	CHECK(tls_peer_identity(tls_xprt_ssl(&s.x), id, sizeof(id)) == 0 && !strcmp(id, CLIENT_ID),
	      "server sees the client's identity");
	CHECK(tls_peer_identity(tls_xprt_ssl(&c.x), id, sizeof(id)) == 0 && !strcmp(id, SERVER_ID),
	      "client sees the server's identity");
	SSL_get0_alpn_selected(tls_xprt_ssl(&c.x), &alpn, &alpn_len);
	CHECK(alpn_len == 2 && !memcmp(alpn, "h2", 2), "ALPN h2");
	CHECK(SSL_version(tls_xprt_ssl(&c.x)) == TLS1_3_VERSION, "TLS 1.3");
	/* idle after the handshake: no output queued, no buffer of the pool held */
	CHECK(tls_xprt_out_len(&c.x) == 0 && c.x.out_head == NULL && c.x.stage == NULL,
	      "client idle holds no output buffer");
	CHECK(io_buf_in_use_bytes(&c.pool) == 0 && io_buf_in_use_bytes(&s.pool) == 0,
	      "idle: pool buffers in use %zu / %zu", io_buf_in_use_bytes(&c.pool),
	      io_buf_in_use_bytes(&s.pool));
	end_free(&c);
	end_free(&s);
}

/* Handshake and data with every read one byte long: records split at every possible point. */
static void test_byte_at_a_time(void)
{
	struct end c, s;
	size_t n = 40000;
	uint8_t *msg = malloc(n);

	fill(msg, n, 7);
	end_init(&c, false, -1, false);
	end_init(&s, true, -1, false);
	CHECK(handshake(&c, &s, 1), "handshake fed 1 byte at a time: %d %d (%s / %s)", c.hs, s.hs,
	      c.x.reason, s.x.reason);
	CHECK(tls_xprt_write(&c.x, msg, n) == 0 && tls_xprt_push(&c.x) == 0, "write");
	deliver(&c, &s, 1);
	CHECK(s.rd == 0, "read result %d (%s)", s.rd, s.x.reason);
	CHECK(s.got.len == n && !memcmp(s.got.data, msg, n), "server got %zu of %zu bytes intact",
	      s.got.len, n);
	/* and back, in reads of 7 bytes */
	CHECK(tls_xprt_write(&s.x, msg, n) == 0 && tls_xprt_push(&s.x) == 0, "write back");
	deliver(&s, &c, 7);
	CHECK(c.got.len == n && !memcmp(c.got.data, msg, n), "client got %zu of %zu bytes intact",
	      c.got.len, n);
	free(msg);
	end_free(&c);
	end_free(&s);
}

/* Writes of every awkward size; records are full where the data allows, small writes share. */
static void test_large_and_coalesced_writes(void)
{
	static const size_t sizes[] = { 1, 9, 16383, 16384, 16385, 9, 100000, 3, 1 << 20, 5 };
	size_t total = 0, off = 0, largest, len;
	struct end c, s;
	uint8_t *msg, *wire;
	int count;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		total += sizes[i];
	msg = malloc(total);
	wire = malloc(total * 2);
	fill(msg, total, 11);
	end_init(&c, false, -1, false);
	end_init(&s, true, -1, false);
	CHECK(handshake(&c, &s, SIZE_MAX), "handshake");

	/* 100 writes of 10 bytes and a push: one record */
	for (int i = 0; i < 100; i++)
		CHECK(tls_xprt_write(&c.x, msg + i * 10, 10) == 0, "small write");
	CHECK(tls_xprt_out_len(&c.x) == 0, "small writes are held back until the push");
	CHECK(tls_xprt_push(&c.x) == 0, "push");
	len = peek_all(&c.x, wire, total * 2);
	records(wire, len, &count, &largest);
	CHECK(count == 1 && largest == 1000 + 17, "100 small writes sealed as %d record(s)", count);
	deliver(&c, &s, SIZE_MAX);
	CHECK(s.got.len == 1000 && !memcmp(s.got.data, msg, 1000), "coalesced bytes arrive");
	s.got.len = 0;

	/* 1 MiB in one write: full records only (16384 + type + tag) */
	CHECK(tls_xprt_write(&c.x, msg, 1 << 20) == 0 && tls_xprt_push(&c.x) == 0, "1 MiB write");
	len = peek_all(&c.x, wire, total * 2);
	records(wire, len, &count, &largest);
	CHECK(count == 64 && largest == TLS_XPRT_RECORD + 17, "1 MiB as %d records, largest %zu",
	      count, largest);
	deliver(&c, &s, 65536);
	CHECK(s.got.len == 1 << 20 && !memcmp(s.got.data, msg, 1 << 20), "1 MiB arrives intact");
	s.got.len = 0;

	/* the awkward sizes, one push at the end, delivered in 1000-byte reads */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		CHECK(tls_xprt_write(&c.x, msg + off, sizes[i]) == 0, "write of %zu", sizes[i]);
		off += sizes[i];
	}
	CHECK(tls_xprt_push(&c.x) == 0, "push");
	len = peek_all(&c.x, wire, total * 2);
	records(wire, len, &count, &largest);
	CHECK(largest <= TLS_XPRT_RECORD + 17, "no record over 16 KiB of plaintext (%zu)", largest);
	CHECK((size_t)count <= total / TLS_XPRT_RECORD + 8, "%d records for %zu bytes", count, total);
	deliver(&c, &s, 1000);
	CHECK(s.rd == 0 && s.got.len == total && !memcmp(s.got.data, msg, total),
	      "%zu of %zu bytes intact", s.got.len, total);
	CHECK(c.x.out_head == NULL && c.x.stage == NULL && io_buf_in_use_bytes(&c.pool) == 0,
	      "drained: the sender holds no buffer");
	free(msg);
	free(wire);
	end_free(&c);
	end_free(&s);
}

/* close_notify one way, then the other; a read after the peer's close_notify says so. */
static void test_shutdown(void)
{
	struct end c, s;

	end_init(&c, false, -1, false);
	end_init(&s, true, -1, false);
	CHECK(handshake(&c, &s, SIZE_MAX), "handshake");
	CHECK(tls_xprt_write(&c.x, "bye", 3) == 0, "write");
	CHECK(tls_xprt_shutdown(&c.x) == 0, "client close_notify queued (peer's not yet seen)");
	deliver(&c, &s, SIZE_MAX);
	CHECK(s.got.len == 3 && !memcmp(s.got.data, "bye", 3), "data before close_notify arrives");
	CHECK(s.rd == TLS_XPRT_CLOSED, "server read sees close_notify: %d (%s)", s.rd, s.x.reason);
	CHECK(tls_xprt_shutdown(&s.x) == TLS_XPRT_CLOSED, "server answers: both sides closed");
	deliver(&s, &c, SIZE_MAX);
	CHECK(c.rd == TLS_XPRT_CLOSED, "client read sees the server's close_notify: %d", c.rd);
	end_free(&c);
	end_free(&s);
}

/* The peer's FIN in the middle of a record: an error with a reason, nothing half-delivered. */
static void test_closed_mid_record(void)
{
	struct end c, s;
	uint8_t msg[1000], wire[2000];
	size_t len;

	fill(msg, sizeof(msg), 3);
	end_init(&c, false, -1, false);
	end_init(&s, true, -1, false);
	CHECK(handshake(&c, &s, SIZE_MAX), "handshake");
	CHECK(tls_xprt_write(&c.x, msg, sizeof(msg)) == 0 && tls_xprt_push(&c.x) == 0, "write");
	len = peek_all(&c.x, wire, sizeof(wire));
	tls_xprt_input(&s.x, wire, len / 2);
	CHECK(tls_xprt_read(&s.x, sink_add, &s.got) == 0, "half a record: wait for more");
	tls_xprt_input(&s.x, NULL, 0);
	s.rd = tls_xprt_read(&s.x, sink_add, &s.got);
	CHECK(s.rd == -ECONNRESET, "EOF mid-record: %d", s.rd);
	CHECK(strstr(s.x.reason, "mid-record") != NULL, "reason says so: %s", s.x.reason);
	CHECK(s.got.len == 0, "no plaintext from a partial record");
	end_free(&c);
	end_free(&s);

	/* and during the handshake: the client goes after its hello */
	end_init(&c, false, -1, false);
	end_init(&s, true, -1, false);
	c.hs = tls_xprt_handshake(&c.x);
	len = peek_all(&c.x, wire, sizeof(wire));
	tls_xprt_input(&s.x, wire, len - 10);
	CHECK(tls_xprt_handshake(&s.x) == 0, "partial ClientHello: wait");
	tls_xprt_input(&s.x, NULL, 0);
	CHECK(tls_xprt_handshake(&s.x) == -ECONNRESET, "EOF in the handshake: %s", s.x.reason);
	end_free(&c);
	end_free(&s);
}

/* Garbage: before the handshake, and in place of a record after it. */
static void test_garbage(void)
{
	uint8_t junk[4096];
	struct end c, s;
	int r;

	fill(junk, sizeof(junk), 5);
	end_init(&s, true, -1, false);
	tls_xprt_input(&s.x, junk, sizeof(junk));
	r = tls_xprt_handshake(&s.x);
	CHECK(r == -EPROTO && s.x.reason[0], "garbage instead of a ClientHello: %d %s", r, s.x.reason);
	end_free(&s);

	end_init(&s, true, -1, false);
	tls_xprt_input(&s.x, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18);
	CHECK(tls_xprt_handshake(&s.x) == -EPROTO, "plaintext HTTP refused: %s", s.x.reason);
	end_free(&s);

	end_init(&c, false, -1, false);
	end_init(&s, true, -1, false);
	CHECK(handshake(&c, &s, SIZE_MAX), "handshake");
	junk[0] = 23;	/* an application-data record header, then noise: the tag fails */
	junk[1] = 3;
	junk[2] = 3;
	junk[3] = 0x01;
	junk[4] = 0x00;
	tls_xprt_input(&s.x, junk, 5 + 256);
	r = tls_xprt_read(&s.x, sink_add, &s.got);
	CHECK(r == -EPROTO && s.got.len == 0, "forged record refused: %d %s", r, s.x.reason);
	end_free(&c);
	end_free(&s);
}

/* No TLS: bytes pass unchanged, coalesced the same way. */
static void test_plain(void)
{
	struct io_buf_pool pool = { 0 };
	struct tls_xprt x;
	struct sink got = { 0 };
	const uint8_t *p;
	size_t len;

	tls_xprt_init_plain(&x, &pool);
	CHECK(tls_xprt_ssl(&x) == NULL && tls_xprt_handshake(&x) == 1, "plain: no handshake");
	CHECK(tls_xprt_write(&x, "abc", 3) == 0 && tls_xprt_write(&x, "def", 3) == 0 &&
	      tls_xprt_push(&x) == 0, "plain write");
	p = tls_xprt_out_peek(&x, &len);
	CHECK(p && len == 6 && !memcmp(p, "abcdef", 6), "plain bytes out unchanged");
	tls_xprt_out_consume(&x, len);
	tls_xprt_input(&x, (const uint8_t *)"xyz", 3);
	CHECK(tls_xprt_read(&x, sink_add, &got) == 0 && got.len == 3 &&
	      !memcmp(got.data, "xyz", 3), "plain bytes in unchanged");
	tls_xprt_free(&x);
	CHECK(io_buf_in_use_bytes(&pool) == 0, "plain: no buffer left");
	io_buf_pool_clear(&pool);
	free(got.data);
}

/* ZTUNNEL_KTLS on real TCP sockets: without the kernel's TLS ULP the transport says why and
 * carries on in user space (the only outcome this machine can show). */
static void test_ktls_fallback(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), cfd = socket(AF_INET, SOCK_STREAM, 0), sfd;
	struct end c, s;

	CHECK(l >= 0 && cfd >= 0 && bind(l, (void *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
	      getsockname(l, (void *)&a, &al) == 0 && connect(cfd, (void *)&a, sizeof(a)) == 0,
	      "tcp pair: %s", strerror(errno));
	sfd = accept(l, NULL, NULL);
	end_init(&c, false, cfd, true);
	end_init(&s, true, sfd, true);
	CHECK(handshake(&c, &s, SIZE_MAX), "handshake with kTLS asked for");
	/* here: no CONFIG_TLS; elsewhere the ULP attaches and the keys wait for the drain */
	CHECK(c.x.ktls_err == -ENOENT || c.x.ktls_err == -EINPROGRESS,
	      "kTLS outcome %d (%s)", c.x.ktls_err, c.x.reason);
	if (s.x.ktls_err == -ENOENT)
		CHECK(strstr(s.x.reason, "TLS ULP") && !s.x.ktls_keys && !s.x.ktls_tx,
		      "fallback: reason %s, keys dropped", s.x.reason);
	CHECK(tls_xprt_write(&c.x, "still TLS", 9) == 0 && tls_xprt_push(&c.x) == 0, "write");
	deliver(&c, &s, SIZE_MAX);
	CHECK(s.got.len == 9 && !memcmp(s.got.data, "still TLS", 9), "user-space records flow");
	end_free(&c);
	end_free(&s);
	close(cfd);
	close(sfd);
	close(l);
}

/* Decrypts one TLS 1.3 record with what the kernel would get: the same key, nonce and AAD. */
static bool kernel_would_open(const union tls_ktls_info *ci, const uint8_t *rec, size_t len,
			      const void *want, size_t want_len)
{
	bool big = ci->info.cipher_type == TLS_CIPHER_AES_GCM_256;
	const uint8_t *key = big ? ci->g256.key : ci->g128.key;
	const uint8_t *salt = big ? ci->g256.salt : ci->g128.salt;
	const uint8_t *iv = big ? ci->g256.iv : ci->g128.iv;
	const uint8_t *seq = big ? ci->g256.rec_seq : ci->g128.rec_seq;
	uint8_t nonce[12], out[256];
	EVP_CIPHER_CTX *e = EVP_CIPHER_CTX_new();
	int n = 0, m = 0;
	bool ok;

	memcpy(nonce, salt, 4);
	memcpy(nonce + 4, iv, 8);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] ^= seq[i];
	ok = len > 5 + 16 && len - 5 - 16 <= sizeof(out) &&
	     EVP_DecryptInit_ex(e, big ? EVP_aes_256_gcm() : EVP_aes_128_gcm(), NULL, key, nonce) &&
	     EVP_DecryptUpdate(e, NULL, &n, rec, 5) &&
	     EVP_DecryptUpdate(e, out, &n, rec + 5, (int)(len - 5 - 16)) &&
	     EVP_CIPHER_CTX_ctrl(e, EVP_CTRL_GCM_SET_TAG, 16, (void *)(rec + len - 16)) &&
	     EVP_DecryptFinal_ex(e, out + n, &m) == 1;
	EVP_CIPHER_CTX_free(e);
	/* TLS 1.3 inner plaintext: the data, then its content type (23) */
	return ok && (size_t)(n + m) == want_len + 1 && !memcmp(out, want, want_len) &&
	       out[want_len] == 23;
}

/* The hand-off's parameters, checked without a kernel: the traffic secret from the keylog,
 * the sequence counted from what user space sealed, key and nonce as the kernel would use them
 * open the records OpenSSL wrote. Then a refused TLS_TX leaves the connection in user space. */
static void test_ktls_keys(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a), len;
	int l = socket(AF_INET, SOCK_STREAM, 0), cfd = socket(AF_INET, SOCK_STREAM, 0), sfd;
	union tls_ktls_info ci;
	uint8_t wire[512];
	size_t n;
	struct end c, s;

	end_init(&c, false, -1, true);
	end_init(&s, true, -1, false);
	c.x.ktls = false;	/* keep the keys: no ULP step at the handshake's end */
	CHECK(handshake(&c, &s, SIZE_MAX), "handshake");
	CHECK(c.x.ktls_keys && c.x.ktls_keys->secret_len == 48, "client traffic secret captured");
	CHECK(c.x.ktls_keys && c.x.ktls_keys->tx_records == 0, "no record after the handshake yet");
	CHECK(tls_xprt_write(&c.x, "first", 5) == 0 && tls_xprt_push(&c.x) == 0, "write");
	CHECK(tls_xprt_write(&c.x, "second", 6) == 0 && tls_xprt_push(&c.x) == 0, "write");
	CHECK(c.x.ktls_keys && c.x.ktls_keys->tx_records == 2 && c.x.ktls_keys->counting_ok,
	      "two records counted");
	n = peek_all(&c.x, wire, sizeof(wire));
	CHECK(n == 2 * (5 + 5 + 17) + 1, "two records queued: %zu bytes", n);
	CHECK(tls_ktls_crypto_info(tls_xprt_ssl(&c.x), c.x.ktls_keys->secret,
				   c.x.ktls_keys->secret_len, 0, &ci, &len) == 0 &&
	      ci.info.version == TLS_1_3_VERSION && ci.info.cipher_type == TLS_CIPHER_AES_GCM_256 &&
	      len == sizeof(ci.g256), "TLS_TX parameters for AES-256-GCM");
	CHECK(kernel_would_open(&ci, wire, 5 + 5 + 17, "first", 5), "record 0 opens with seq 0");
	CHECK(!kernel_would_open(&ci, wire + 27, 5 + 6 + 17, "second", 6), "not with seq 0");
	tls_ktls_crypto_info(tls_xprt_ssl(&c.x), c.x.ktls_keys->secret, c.x.ktls_keys->secret_len,
			     1, &ci, &len);
	CHECK(kernel_would_open(&ci, wire + 27, 5 + 6 + 17, "second", 6), "record 1 with seq 1");

	/* the drain with the hand-off pending, on a TCP socket without the ULP: refused, and
	 * the records go on in user space */
	CHECK(l >= 0 && cfd >= 0 && bind(l, (void *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
	      getsockname(l, (void *)&a, &al) == 0 && connect(cfd, (void *)&a, sizeof(a)) == 0,
	      "tcp pair: %s", strerror(errno));
	sfd = accept(l, NULL, NULL);
	CHECK(tls_xprt_drained(&c.x) == -EAGAIN, "nothing pending: nothing done");
	deliver(&c, &s, SIZE_MAX);
	c.x.fd = cfd;
	c.x.ktls_keys->pending = true;
	c.x.ktls_err = -EINPROGRESS;
	CHECK(tls_xprt_drained(&c.x) < 0 && c.x.ktls_err < 0 && c.x.ktls_err != -EINPROGRESS &&
	      !c.x.ktls_tx && !c.x.ktls_keys, "TLS_TX refused: %d %s", c.x.ktls_err, c.x.reason);
	CHECK(tls_xprt_write(&c.x, "third", 5) == 0 && tls_xprt_push(&c.x) == 0, "write");
	deliver(&c, &s, SIZE_MAX);
	CHECK(s.got.len == 16 && !memcmp(s.got.data, "firstsecondthird", 16),
	      "server got every record: %zu bytes", s.got.len);
	end_free(&c);
	end_free(&s);
	close(cfd);
	close(sfd);
	close(l);
}

int main(void)
{
	struct tls_ca *ca = tls_ca_generate("cluster.local");
	struct tls_cert *cc = ca ? tls_ca_issue(ca, CLIENT_ID, 600) : NULL;
	struct tls_cert *sc = ca ? tls_ca_issue(ca, SERVER_ID, 600) : NULL;
	char err[256];

	if (!cc || !sc) {
		printf("FAIL: cannot issue test certificates\n");
		return 1;
	}
	client_ctx = tls_ctx_new(cc, ca->cert, TLS_CLIENT, err, sizeof(err));
	server_ctx = tls_ctx_new(sc, ca->cert, TLS_SERVER, err, sizeof(err));
	if (!client_ctx || !server_ctx) {
		printf("FAIL: contexts: %s\n", err);
		return 1;
	}
	test_handshake();
	test_byte_at_a_time();
	test_large_and_coalesced_writes();
	test_shutdown();
	test_closed_mid_record();
	test_garbage();
	test_plain();
	test_ktls_fallback();
	test_ktls_keys();
	SSL_CTX_free(client_ctx);
	SSL_CTX_free(server_ctx);
	tls_cert_free(&cc);
	tls_cert_free(&sc);
	tls_ca_free(&ca);
	if (failures) {
		printf("tls_xprt_test: %d failure(s)\n", failures);
		return 1;
	}
	printf("tls_xprt_test: ok\n");
	return 0;
}
