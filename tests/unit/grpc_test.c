// unit-standalone
/* grpc unit tests: address parsing, grpc-message decoding, HTTP status mapping, message
 * deframing from arbitrary chunks, hostile replies, request body framing, connect failures. */
#include "../../agent/grpc/call.c"
#include "../../agent/grpc/recv.c"
#include "../../agent/grpc/session.c"
#include "../../agent/grpc/transport.c"
#include "../../agent/io/buf.c"
#include "../../agent/tls/ktls.c"
#include "../../agent/tls/xprt.c"
#include "../../agent/tls/identity.c"

#include <arpa/inet.h>

#include "check.h"

static const struct {
	const char *in;
	int ret;
	bool tls, ip;
	const char *host, *authority;
} addr_cases[] = {
	{ "http://127.0.0.1:15010", 0, false, true, "127.0.0.1", "127.0.0.1:15010" },
	{ "https://istiod.istio-system.svc:15012", 0, true, false, "istiod.istio-system.svc",
	  "istiod.istio-system.svc:15012" },
	{ "https://[fd00::1]:15012/", 0, true, true, "fd00::1", "[fd00::1]:15012" },
	{ "https://istiod", 0, true, false, "istiod", "istiod:443" },
	{ "http://istiod", 0, false, false, "istiod", "istiod:80" },
	{ "istiod:15012", -EINVAL, false, false, NULL, NULL },
	{ "grpc://istiod:15012", -EINVAL, false, false, NULL, NULL },
	{ "http://", -EINVAL, false, false, NULL, NULL },
	{ "http://:15010", -EINVAL, false, false, NULL, NULL },
	{ "http://host:", -EINVAL, false, false, NULL, NULL },
	{ "http://host:0", -EINVAL, false, false, NULL, NULL },
	{ "http://host:65536", -EINVAL, false, false, NULL, NULL },
	{ "http://host:12ab", -EINVAL, false, false, NULL, NULL },
	{ "http://host:80/path", -EINVAL, false, false, NULL, NULL },
	{ "http://[fd00::1:80", -EINVAL, false, false, NULL, NULL },
	{ "http://[notv6]:80", -EINVAL, false, false, NULL, NULL },
	{ "http://user@host:80", -EINVAL, false, false, NULL, NULL },
	{ "http://ho st:80", -EINVAL, false, false, NULL, NULL },
	{ NULL, -EINVAL, false, false, NULL, NULL },
};

static void test_addr(void)
{
	struct grpc_addr a;

	for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
		int ret = grpc_addr_parse(addr_cases[i].in, &a);

		CHECK(ret == addr_cases[i].ret, "%s: %d", addr_cases[i].in, ret);
		if (ret || addr_cases[i].ret)
			continue;
		CHECK(a.tls == addr_cases[i].tls && a.host_is_ip == addr_cases[i].ip, "%s",
		      addr_cases[i].in);
		CHECK(!strcmp(a.host, addr_cases[i].host), "%s: host %s", addr_cases[i].in, a.host);
		CHECK(!strcmp(a.authority, addr_cases[i].authority), "%s: authority %s",
		      addr_cases[i].in, a.authority);
	}
}

static void test_percent_and_status(void)
{
	char out[16];

	grpc_percent_decode("a%20b%zz%4", 10, out, sizeof(out));
	CHECK(!strcmp(out, "a b%zz%4"), "'%s'", out);
	grpc_percent_decode("x%0Ay", 5, out, sizeof(out));
	CHECK(!strcmp(out, "x?y"), "control characters are masked: '%s'", out);
	grpc_percent_decode("0123456789abcdefXYZ", 19, out, 8);
	CHECK(!strcmp(out, "0123456"), "bounded: '%s'", out);
	CHECK(grpc_status_from_http(403) == GRPC_PERMISSION_DENIED, "403");
	CHECK(grpc_status_from_http(404) == GRPC_UNIMPLEMENTED, "404");
	CHECK(grpc_status_from_http(503) == GRPC_UNAVAILABLE, "503");
	CHECK(grpc_status_from_http(418) == GRPC_UNKNOWN, "418");
	CHECK(!strcmp(grpc_status_name(7), "PERMISSION_DENIED"), "name 7");
	CHECK(!strcmp(grpc_status_name(99), "UNKNOWN"), "name 99");
}

/* A stream with no channel, as the session callbacks leave it after good response headers. */
static void stream_init(struct grpc_stream *s)
{
	memset(s, 0, sizeof(*s));
	s->grpc_status = -1;
	s->headers_seen = true;
	grpc_stream_on_header(s, (const uint8_t *)":status", 7, (const uint8_t *)"200", 3);
	grpc_stream_on_header(s, (const uint8_t *)"content-type", 12,
			      (const uint8_t *)"application/grpc+proto", 22);
}

static void stream_fini(struct grpc_stream *s)
{
	free(s->in.data);
	free(s->out.data);
}

/* Writes a prefix announcing len, and the body when fill is non-zero. */
static size_t put_msg(uint8_t *p, uint8_t flag, uint32_t len, uint8_t fill)
{
	p[0] = flag;
	p[1] = (uint8_t)(len >> 24);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 8);
	p[4] = (uint8_t)len;
	if (fill)
		memset(p + 5, fill, len);
	return 5 + (size_t)len;
}

/* Three messages (0, 5 and 70000 bytes) fed in chunks of `chunk` bytes come out whole. */
static void test_deframe(size_t chunk)
{
	static uint8_t wire[80000];
	const uint32_t lens[] = { 0, 5, 70000 };
	struct grpc_stream s;
	size_t n = 0, len, got = 0;
	uint8_t *msg;
	char err[256];
	int status, ret;

	for (int i = 0; i < 3; i++)
		n += put_msg(wire + n, 0, lens[i], (uint8_t)('a' + i));
	stream_init(&s);
	for (size_t off = 0; off < n; off += chunk) {
		grpc_stream_on_data(&s, wire + off, off + chunk > n ? n - off : chunk);
		while ((ret = stream_poll(&s, &msg, &len, &status, err, sizeof(err))) == 1) {
			CHECK(got < 3 && len == lens[got], "chunk %zu: message %zu len %zu", chunk,
			      got, len);
			CHECK(len == 0 || (msg[0] == 'a' + got && msg[len - 1] == 'a' + got),
			      "chunk %zu: content of message %zu", chunk, got);
			free(msg);
			got++;
		}
	}
	CHECK(got == 3, "chunk %zu: %zu messages", chunk, got);
	grpc_stream_on_header(&s, (const uint8_t *)"grpc-status", 11, (const uint8_t *)"0", 1);
	s.closed = true;
	ret = stream_poll(&s, &msg, &len, &status, err, sizeof(err));
	CHECK(ret == -ECONNRESET && status == GRPC_OK, "end: %d %d %s", ret, status, err);
	stream_fini(&s);
}

enum hostile { H_FLAG, H_HUGE, H_HTML, H_404, H_NOSTATUS, H_RST, H_TRUNC, H_MSG, H_BADSTATUS };

static const struct {
	enum hostile kind;
	int ret, status;
	const char *err;
} hostile_cases[] = {
	{ H_FLAG, -EPROTO, GRPC_INTERNAL, "compressed" },
	{ H_HUGE, -EMSGSIZE, GRPC_INTERNAL, "64 MiB" },
	{ H_HTML, -EPROTO, GRPC_INTERNAL, "content-type" },
	{ H_404, -EPROTO, GRPC_UNIMPLEMENTED, "HTTP status 404" },
	{ H_NOSTATUS, -EPROTO, GRPC_INTERNAL, "without a grpc-status" },
	{ H_RST, -ECONNRESET, GRPC_INTERNAL, "reset" },
	{ H_TRUNC, -EPROTO, GRPC_INTERNAL, "truncated" },
	{ H_MSG, -ECONNRESET, GRPC_PERMISSION_DENIED, "no way: 100%" },
	{ H_BADSTATUS, -ECONNRESET, GRPC_UNKNOWN, "UNKNOWN" },
};

static void hostile_setup(struct grpc_stream *s, enum hostile kind)
{
	uint8_t buf[16];

	stream_init(s);
	s->closed = true;
	switch (kind) {
	case H_FLAG:
	case H_HUGE:
		put_msg(buf, kind == H_FLAG ? 1 : 0, kind == H_FLAG ? 3 : 0x7fffffff, 0);
		grpc_stream_on_data(s, buf, 8);
		s->closed = false;
		break;
	case H_HTML:
		grpc_stream_on_header(s, (const uint8_t *)"content-type", 12,
				      (const uint8_t *)"text/html", 9);
		grpc_stream_on_data(s, (const uint8_t *)"<html>", 6);
		break;
	case H_404:
		s->http_status = 404;
		break;
	case H_RST:
		s->rst_code = NGHTTP2_INTERNAL_ERROR;
		break;
	case H_TRUNC:
		put_msg(buf, 0, 10, 'x');
		grpc_stream_on_data(s, buf, 9);
		s->grpc_status = 0;
		break;
	case H_MSG:
		grpc_stream_on_header(s, (const uint8_t *)"grpc-status", 11,
				      (const uint8_t *)"7", 1);
		grpc_stream_on_header(s, (const uint8_t *)"grpc-message", 12,
				      (const uint8_t *)"no%20way%3A 100%25", 18);
		break;
	case H_BADSTATUS:
		grpc_stream_on_header(s, (const uint8_t *)"grpc-status", 11,
				      (const uint8_t *)"7x", 2);
		break;
	case H_NOSTATUS:
		break;
	}
}

static void test_hostile(void)
{
	for (size_t i = 0; i < sizeof(hostile_cases) / sizeof(hostile_cases[0]); i++) {
		struct grpc_stream s;
		uint8_t *msg = NULL;
		size_t len;
		char err[256] = "";
		int status, ret;

		hostile_setup(&s, hostile_cases[i].kind);
		ret = stream_poll(&s, &msg, &len, &status, err, sizeof(err));
		CHECK(ret == hostile_cases[i].ret && status == hostile_cases[i].status &&
			      strstr(err, hostile_cases[i].err),
		      "case %zu: ret %d status %d err '%s'", i, ret, status, err);
		CHECK(!msg, "case %zu: no message", i);
		free(msg);
		stream_fini(&s);
	}
}

/* The request body: prefix + message per send, read in small pieces, EOF after the last. */
static void test_body(void)
{
	struct grpc_stream s;
	uint8_t out[64];
	size_t n = 0;
	uint32_t flags = 0;
	ssize_t r;

	stream_init(&s);
	CHECK(grpc_stream_read_body(&s, out, sizeof(out), &flags) == NGHTTP2_ERR_DEFERRED &&
		      s.deferred,
	      "empty body defers");
	s.deferred = false;
	CHECK(frame_append(&s, (const uint8_t *)"hello", 5) == 0, "append");
	CHECK(frame_append(&s, NULL, 0) == 0, "append empty");
	s.out_eof = true;
	while (!(flags & NGHTTP2_DATA_FLAG_EOF) && n < sizeof(out)) {
		r = grpc_stream_read_body(&s, out + n, 3, &flags);
		CHECK(r >= 0 && r <= 3, "read %zd", r);
		if (r < 0)
			break;
		n += (size_t)r;
	}
	CHECK(n == 15 && !memcmp(out, "\0\0\0\0\5hello\0\0\0\0\0", 15), "body %zu bytes", n);
	CHECK(frame_append(&s, (const uint8_t *)"x", GRPC_MAX_MESSAGE + 1) == -EMSGSIZE,
	      "oversized request");
	stream_fini(&s);
}

/* Connect failures are one-line errors within the deadline, never a hang or a crash. */
static void test_connect_failures(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	struct grpc_metadata bad_md = { "Bad Key", "v" };
	struct grpc_channel *ch;
	char addr[64], err[256];
	int64_t t0;
	int ls;

	ch = grpc_channel_open("ftp://x", NULL, NULL, 0, 1000, err, sizeof(err));
	CHECK(!ch && strstr(err, "bad address"), "'%s'", err);
	ch = grpc_channel_open("http://127.0.0.1:1", NULL, &bad_md, 1, 1000, err, sizeof(err));
	CHECK(!ch && strstr(err, "invalid metadata"), "'%s'", err);
	/* a listener that never answers: the SETTINGS wait times out */
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(ls >= 0 && !bind(ls, (struct sockaddr *)&sa, sizeof(sa)) && !listen(ls, 4) &&
		      !getsockname(ls, (struct sockaddr *)&sa, &sl),
	      "listener");
	snprintf(addr, sizeof(addr), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	t0 = grpc_now_ms();
	ch = grpc_channel_open(addr, NULL, NULL, 0, 300, err, sizeof(err));
	CHECK(!ch && strstr(err, "no HTTP/2 SETTINGS"), "'%s'", err);
	CHECK(grpc_now_ms() - t0 < 3000, "timeout honoured");
	close(ls);
	/* nothing listens there any more */
	ch = grpc_channel_open(addr, NULL, NULL, 0, 1000, err, sizeof(err));
	CHECK(!ch && strstr(err, "Connection refused"), "'%s'", err);
	snprintf(addr, sizeof(addr), "https://127.0.0.1:%u", ntohs(sa.sin_port));
	ch = grpc_channel_open(addr, "/nonexistent/roots.pem", NULL, 0, 1000, err, sizeof(err));
	CHECK(!ch && err[0], "'%s'", err);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);	/* FAIL lines survive a sanitizer exit */
	test_addr();
	test_percent_and_status();
	test_deframe(1);
	test_deframe(7);
	test_deframe(4096);
	test_deframe(1 << 20);
	test_hostile();
	test_body();
	test_connect_failures();
	if (failures)
		printf("%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
