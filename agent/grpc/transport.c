/* grpc transport: address parsing, TCP connect, and the blocking driver of the TLS transport. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "grpc-int.h"
#include "ztunnel/tls.h"

#define OUT_HIGH (1024 * 1024)	/* ciphertext queued before nghttp2 is asked for more */

int64_t grpc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - grpc_now_ms();

	if (left <= 0)
		return 0;
	return left > 1000000 ? 1000000 : (int)left;
}

int grpc_chan_fail(struct grpc_channel *ch, int err, const char *fmt, ...)
{
	va_list ap;

	if (ch->dead)
		return ch->dead;
	ch->dead = err < 0 ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(ch->reason, sizeof(ch->reason), fmt, ap);
	va_end(ap);
	return ch->dead;
}

/* Port: 1..65535, digits only. */
static int parse_port(const char *p, size_t n, char *out, size_t outlen)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || outlen < 6)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	snprintf(out, outlen, "%u", v);
	return 0;
}

int grpc_addr_parse(const char *address, struct grpc_addr *out)
{
	const char *p, *host, *hend, *port = NULL, *end;
	struct in6_addr a6;

	memset(out, 0, sizeof(*out));
	if (!address)
		return -EINVAL;
	if (!strncmp(address, "http://", 7)) {
		p = address + 7;
	} else if (!strncmp(address, "https://", 8)) {
		p = address + 8;
		out->tls = true;
	} else {
		return -EINVAL;
	}
	end = p + strlen(p);
	if (end > p && end[-1] == '/')
		end--;
	if (*p == '[') {
		host = p + 1;
		hend = memchr(host, ']', (size_t)(end - host));
		if (!hend)
			return -EINVAL;
		p = hend + 1;
	} else {
		host = p;
		hend = memchr(host, ':', (size_t)(end - host));
		if (!hend)
			hend = end;
		p = hend;
	}
	if (p < end) {
		if (*p != ':')
			return -EINVAL;
		port = p + 1;
	}
	if (hend == host || (size_t)(hend - host) >= sizeof(out->host))
		return -EINVAL;
	memcpy(out->host, host, (size_t)(hend - host));
	for (const char *c = out->host; *c; c++)
		if (*c <= ' ' || *c == '/' || *c == '@' || *c == '[' || *c == ']' || *c == 0x7f)
			return -EINVAL;
	if (port ? parse_port(port, (size_t)(end - port), out->port, sizeof(out->port))
		 : parse_port(out->tls ? "443" : "80", out->tls ? 3 : 2, out->port,
			      sizeof(out->port)))
		return -EINVAL;
	if (inet_pton(AF_INET6, out->host, &a6) == 1) {
		out->host_is_ip = true;
		snprintf(out->authority, sizeof(out->authority), "[%s]:%s", out->host, out->port);
		return 0;
	}
	if (host[-1] == '[')
		return -EINVAL;
	out->host_is_ip = inet_pton(AF_INET, out->host, &a6) == 1;
	snprintf(out->authority, sizeof(out->authority), "%s:%s", out->host, out->port);
	return 0;
}

/* One non-blocking connect attempt bounded by the deadline. fd or -errno. */
static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, soerr = 0, one = 1, ret;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
		ret = -errno;
		goto fail;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	do {
		ret = poll(&pfd, 1, ms_left(deadline));
	} while (ret < 0 && errno == EINTR);
	if (ret == 0) {
		ret = -ETIMEDOUT;
		goto fail;
	}
	if (ret < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl)) {
		ret = -errno;
		goto fail;
	}
	if (soerr) {
		ret = -soerr;
		goto fail;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return ret;
}

int grpc_tcp_connect(struct grpc_channel *ch, int64_t deadline, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int ret, gai;

	gai = getaddrinfo(ch->addr.host, ch->addr.port, &hints, &res);
	if (gai) {
		snprintf(err, errlen, "cannot resolve %s: %s", ch->addr.host, gai_strerror(gai));
		return -EHOSTUNREACH;
	}
	ret = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai && ret < 0; ai = ai->ai_next) {
		if (ret == -ETIMEDOUT || !ms_left(deadline)) {
			ret = -ETIMEDOUT;
			break;
		}
		ret = connect_one(ai, deadline);
	}
	freeaddrinfo(res);
	if (ret < 0) {
		snprintf(err, errlen, "connect to %s: %s", ch->addr.authority, strerror(-ret));
		return ret;
	}
	ch->fd = ret;
	return 0;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret;

	do {
		ret = poll(&pfd, 1, ms_left(deadline));
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	return ret == 0 ? -ETIMEDOUT : 0;
}

static SSL_CTX *client_ctx(const char *root, char *err, size_t errlen)
{
	static const unsigned char alpn[] = "\x02h2";
	char why[200];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (root ? SSL_CTX_load_verify_locations(ctx, root, NULL) != 1
		 : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "cannot load root certificates %s: %s", root ? root : "(system)",
			 tls_last_error(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) == 0)
		return ctx;
fail:
	snprintf(err, errlen, "TLS context: %s", tls_last_error(why, sizeof(why)));
	SSL_CTX_free(ctx);
	return NULL;
}

/* Sets the peer name the certificate must carry: the IP SAN for an address, else the DNS name. */
static int expect_peer(struct grpc_channel *ch)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(tls_xprt_ssl(&ch->tls));

	if (ch->addr.host_is_ip)
		return X509_VERIFY_PARAM_set1_ip_asc(param, ch->addr.host) == 1 ? 0 : -EINVAL;
	if (X509_VERIFY_PARAM_set1_host(param, ch->addr.host, 0) != 1)
		return -EINVAL;
	return SSL_set_tlsext_host_name(tls_xprt_ssl(&ch->tls), ch->addr.host) == 1 ? 0 : -EINVAL;
}

/* Writes queued output until the socket would block. 0 or ch->dead. */
static int send_out(struct grpc_channel *ch)
{
	const uint8_t *p;
	size_t len;
	ssize_t n;

	while ((p = tls_xprt_out_peek(&ch->tls, &len))) {
		n = send(ch->fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return grpc_chan_fail(ch, -ECONNRESET,
					      "connection closed by the server (write: %s)",
					      strerror(errno));
		if (n < 0)
			return grpc_chan_fail(ch, -errno, "write: %s", strerror(errno));
		tls_xprt_out_consume(&ch->tls, (size_t)n);
	}
	return 0;
}

/* Hands what the socket has to the transport: >0 bytes, 0 the peer closed (fed as the end of
 * input), -EAGAIN nothing now, other -errno a socket error. */
static ssize_t recv_in(struct grpc_channel *ch, uint8_t *buf, size_t len)
{
	ssize_t n = recv(ch->fd, buf, len, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	if (n < 0 && errno != ECONNRESET)
		return -errno;
	tls_xprt_input(&ch->tls, buf, n > 0 ? (size_t)n : 0);
	return n > 0 ? n : 0;
}

/* Plaintext from the server into nghttp2. */
static int on_plain(void *arg, const uint8_t *data, size_t len)
{
	struct grpc_channel *ch = arg;
	ssize_t r;

	if (!ch->got_settings && len >= 5 && !memcmp(data, "HTTP/", 5))
		return grpc_chan_fail(ch, -EPROTO, "the server answered HTTP/1, not HTTP/2");
	r = nghttp2_session_mem_recv(ch->session, data, len);
	if (r < 0)
		return grpc_chan_fail(ch, -EPROTO, "HTTP/2 protocol error from the server: %s",
				      nghttp2_strerror((int)r));
	return 0;
}

static int handshake_failed(struct grpc_channel *ch, int r, char *err, size_t errlen)
{
	long vr = SSL_get_verify_result(tls_xprt_ssl(&ch->tls));

	if (vr != X509_V_OK)
		snprintf(err, errlen, "TLS handshake with %s: server certificate rejected: %s",
			 ch->addr.authority, X509_verify_cert_error_string(vr));
	else
		snprintf(err, errlen, "TLS handshake with %s failed: %s", ch->addr.authority,
			 r == -ECONNRESET ? "connection closed by the server" : ch->tls.reason);
	return -ECONNREFUSED;
}

/* Runs the handshake to its end; bytes after it stay in the transport, read from buf. */
static int handshake(struct grpc_channel *ch, uint8_t *buf, size_t buflen, int64_t deadline,
		     char *err, size_t errlen)
{
	ssize_t n;
	int r;

	for (;;) {
		r = tls_xprt_handshake(&ch->tls);
		if (send_out(ch) < 0) {
			snprintf(err, errlen, "TLS handshake with %s: %s", ch->addr.authority,
				 ch->reason);
			return ch->dead;
		}
		if (r < 0)
			return handshake_failed(ch, r, err, errlen);
		if (r == 1)
			return 0;
		r = wait_fd(ch->fd, POLLIN | (tls_xprt_out_len(&ch->tls) ? POLLOUT : 0), deadline);
		if (r) {
			snprintf(err, errlen, "TLS handshake with %s: %s", ch->addr.authority,
				 strerror(-r));
			return r;
		}
		n = recv_in(ch, buf, buflen);
		if (n < 0 && n != -EAGAIN) {
			snprintf(err, errlen, "TLS handshake with %s: %s", ch->addr.authority,
				 strerror((int)-n));
			return (int)n;
		}
	}
}

int grpc_tls_connect(struct grpc_channel *ch, const char *root_ca_pem_path, int64_t deadline,
		     char *err, size_t errlen)
{
	const unsigned char *proto = NULL;
	uint8_t buf[16384];
	unsigned plen = 0;
	int ret;

	ch->ssl_ctx = client_ctx(root_ca_pem_path, err, errlen);
	if (!ch->ssl_ctx)
		return -EINVAL;
	if (tls_xprt_init(&ch->tls, ch->ssl_ctx, false, &ch->pool, ch->fd, false) < 0 ||
	    expect_peer(ch)) {
		snprintf(err, errlen, "TLS setup for %s failed", ch->addr.authority);
		return -ENOMEM;
	}
	ret = handshake(ch, buf, sizeof(buf), deadline, err, errlen);
	if (ret)
		return ret;
	SSL_get0_alpn_selected(tls_xprt_ssl(&ch->tls), &proto, &plen);
	if (plen != 2 || memcmp(proto, "h2", 2)) {
		snprintf(err, errlen, "TLS to %s: the server did not negotiate ALPN h2",
			 ch->addr.authority);
		return -EPROTO;
	}
	/* what came with the server's last flight (its SETTINGS, often) is read before buf goes */
	ret = tls_xprt_read(&ch->tls, on_plain, ch);
	if (ret < 0 || ch->dead) {
		snprintf(err, errlen, "TLS to %s: %s", ch->addr.authority,
			 ch->dead ? ch->reason : ch->tls.reason);
		return ch->dead ? ch->dead : ret;
	}
	return 0;
}

static int session_over(struct grpc_channel *ch)
{
	if (ch->goaway_sent)
		return grpc_chan_fail(ch, -EPROTO, "HTTP/2 protocol error from the server (%s)",
				      nghttp2_http2_strerror((uint32_t)ch->goaway_sent - 1));
	if (ch->goaway_recv)
		return grpc_chan_fail(ch, -ECONNRESET, "the server ended the session (GOAWAY %s)",
				      nghttp2_http2_strerror((uint32_t)ch->goaway_recv - 1));
	return grpc_chan_fail(ch, -ECONNRESET, "%s",
			      ch->session_ended ? "the HTTP/2 session ended"
						: "connection closed by the server");
}

/* Pulls nghttp2's output into the transport (up to OUT_HIGH queued) and writes it. */
int grpc_flush(struct grpc_channel *ch)
{
	const uint8_t *data;
	bool pulled;
	ssize_t n;
	int ret;

	if (ch->dead)
		return ch->dead;
	do {
		pulled = false;
		while (tls_xprt_out_len(&ch->tls) < OUT_HIGH) {
			n = nghttp2_session_mem_send(ch->session, &data);
			if (n < 0)
				return grpc_chan_fail(ch, -EPROTO, "HTTP/2: %s",
						      nghttp2_strerror((int)n));
			if (n == 0)
				break;
			if (tls_xprt_write(&ch->tls, data, (size_t)n) < 0)
				return grpc_chan_fail(ch, -EPROTO, "%s", ch->tls.reason);
			pulled = true;
		}
		if (tls_xprt_push(&ch->tls) < 0)
			return grpc_chan_fail(ch, -EPROTO, "%s", ch->tls.reason);
		ret = send_out(ch);
		if (ret)
			return ret;
	} while (pulled && tls_xprt_out_len(&ch->tls) == 0);
	return 0;
}

/* Reads one chunk through the transport into nghttp2. 1 progress, 0 nothing to read, <0 failed. */
static int read_some(struct grpc_channel *ch)
{
	uint8_t buf[16384];
	ssize_t n = recv_in(ch, buf, sizeof(buf));
	int r;

	if (n == -EAGAIN)
		return 0;
	if (n < 0)
		return grpc_chan_fail(ch, (int)n, "read: %s", strerror((int)-n));
	r = tls_xprt_read(&ch->tls, on_plain, ch);
	if (ch->dead)
		return ch->dead;
	if (r == TLS_XPRT_CLOSED || n == 0 || r == -ECONNRESET)
		return session_over(ch);
	if (r < 0)
		return grpc_chan_fail(ch, -EPROTO, "%s", ch->tls.reason);
	grpc_flush(ch);	/* our GOAWAY, if nghttp2 found a protocol error */
	if (!ch->dead && !nghttp2_session_want_read(ch->session)) {
		ch->session_ended = true;
		return session_over(ch);
	}
	return 1;
}

int grpc_pump(struct grpc_channel *ch, int64_t deadline, grpc_done_fn done, const void *arg)
{
	struct pollfd pfd[2];
	int ret;

	for (;;) {
		ret = grpc_flush(ch);
		if (ret)
			return ret;
		if (done(arg))
			return 0;
		ret = read_some(ch);
		if (ret < 0)
			return ret;
		if (ret > 0)
			continue;
		if (!nghttp2_session_want_read(ch->session) && !tls_xprt_out_len(&ch->tls) &&
		    !nghttp2_session_want_write(ch->session)) {
			ch->session_ended = true;
			return session_over(ch);
		}
		if (!ms_left(deadline))
			return -ETIMEDOUT;
		pfd[0] = (struct pollfd){ .fd = ch->fd, .events = POLLIN };
		if (tls_xprt_out_len(&ch->tls))
			pfd[0].events |= POLLOUT;
		pfd[1] = (struct pollfd){ .fd = ch->wake_fd, .events = POLLIN };
		if (poll(pfd, ch->wake_fd >= 0 ? 2 : 1, ms_left(deadline)) < 0 && errno != EINTR)
			return grpc_chan_fail(ch, -errno, "poll: %s", strerror(errno));
		if (ch->wake_fd >= 0 && (pfd[1].revents & POLLIN))
			return -EINTR;	/* the owner has something to send */
	}
}
