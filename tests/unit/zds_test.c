// unit-standalone
/* zds_test: ZDS protobuf codec — exact bytes, round trips, unknown fields, hostile input. */
#include <stdio.h>
#include <stdlib.h>

#include "../../agent/inpod/zds.c"
#include "../../agent/state/text.c"

#include "check.h"

static void check_bytes(const char *what, const uint8_t *got, int got_len, const uint8_t *want,
			size_t want_len)
{
	if (got_len == (int)want_len && memcmp(got, want, want_len) == 0)
		return;
	failures++;
	printf("FAIL %s: got %d bytes:", what, got_len);
	for (int i = 0; i < got_len && i < 64; i++)
		printf(" %02x", got[i]);
	printf(" / want %zu bytes:", want_len);
	for (size_t i = 0; i < want_len && i < 64; i++)
		printf(" %02x", want[i]);
	printf("\n");
}

static struct zds_request make_req(enum zds_request_kind kind, const char *uid, int has_info,
				   const char *name, const char *ns, const char *sa)
{
	struct zds_request r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.has_info = has_info;
	snprintf(r.uid, sizeof(r.uid), "%s", uid);
	snprintf(r.name, sizeof(r.name), "%s", name);
	snprintf(r.namespace_, sizeof(r.namespace_), "%s", ns);
	snprintf(r.service_account, sizeof(r.service_account), "%s", sa);
	return r;
}

static void test_hello(void)
{
	uint8_t buf[16];
	static const uint8_t want[] = { 0x08, 0x01 };
	uint32_t v = 99;
	int n = zds_encode_hello(buf, sizeof(buf));

	check_bytes("hello", buf, n, want, sizeof(want));
	CHECK(zds_decode_hello(buf, (size_t)n, &v) == 0 && v == 1, "hello round trip v=%u", v);
	CHECK(zds_encode_hello(buf, 1) == -ENOSPC, "hello into 1 byte must be -ENOSPC");
	CHECK(zds_decode_hello(NULL, 0, &v) == 0 && v == 0, "empty hello is version 0");
	/* unknown fields of every wire type around the version */
	static const uint8_t unk[] = { 0x10, 0x05,			/* f2 varint */
				       0x19, 1, 2, 3, 4, 5, 6, 7, 8,	/* f3 fixed64 */
				       0x22, 0x02, 'h', 'i',		/* f4 bytes */
				       0x2d, 1, 2, 3, 4,		/* f5 fixed32 */
				       0x33, 0x08, 0x07, 0x34,		/* f6 group{f1=7} */
				       0x08, 0x01 };
	CHECK(zds_decode_hello(unk, sizeof(unk), &v) == 0 && v == 1, "hello with unknowns v=%u", v);
	static const uint8_t long_v[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0x02 };
	CHECK(zds_decode_hello(long_v, sizeof(long_v), &v) == -EBADMSG, "hello varint > 64 bits");
	static const uint8_t wrong_wt[] = { 0x0a, 0x01, 0x01 };	/* version as bytes */
	CHECK(zds_decode_hello(wrong_wt, sizeof(wrong_wt), &v) == -EBADMSG, "hello wrong wire type");
}

struct exact_case {
	const char *what;
	struct zds_request req;
	uint8_t want[64];
	size_t want_len;
};

static void test_request_exact(void)
{
	struct exact_case cases[] = {
		{ "add uid+info", make_req(ZDS_REQ_ADD, "u1", 1, "foo", "ns", "sa"),
		  { 0x0a, 0x13, 0x0a, 0x02, 'u', '1', 0x12, 0x0d, 0x0a, 0x03, 'f', 'o', 'o',
		    0x12, 0x02, 'n', 's', 0x1a, 0x02, 's', 'a' }, 21 },
		{ "add no info", make_req(ZDS_REQ_ADD, "u1", 0, "x", "y", "z"),
		  { 0x0a, 0x04, 0x0a, 0x02, 'u', '1' }, 6 },
		{ "add empty info", make_req(ZDS_REQ_ADD, "u", 1, "", "", ""),
		  { 0x0a, 0x05, 0x0a, 0x01, 'u', 0x12, 0x00 }, 7 },
		{ "del", make_req(ZDS_REQ_DEL, "abc", 0, "", "", ""),
		  { 0x12, 0x05, 0x12, 0x03, 'a', 'b', 'c' }, 7 },
		{ "keep", make_req(ZDS_REQ_KEEP, "abc", 0, "", "", ""),
		  { 0x2a, 0x05, 0x0a, 0x03, 'a', 'b', 'c' }, 7 },
		{ "snapshot_sent", make_req(ZDS_REQ_SNAPSHOT_SENT, "", 0, "", "", ""),
		  { 0x1a, 0x00 }, 2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[ZDS_MAX_MESSAGE];
		struct zds_request back;
		int n = zds_encode_request(&cases[i].req, buf, sizeof(buf));

		check_bytes(cases[i].what, buf, n, cases[i].want, cases[i].want_len);
		if (n < 0)
			continue;
		int err = zds_decode_request(buf, (size_t)n, &back);
		CHECK(err == 0, "%s: decode err %d", cases[i].what, err);
		CHECK(memcmp(&back, &cases[i].req, sizeof(back)) == 0 ||
		      (cases[i].req.has_info == 0 && back.kind == cases[i].req.kind &&
		       strcmp(back.uid, cases[i].req.uid) == 0 && back.has_info == 0),
		      "%s: round trip differs", cases[i].what);
		/* every shorter buffer is -ENOSPC, never an overrun */
		for (int cap = 0; cap < n; cap++)
			CHECK(zds_encode_request(&cases[i].req, buf, (size_t)cap) == -ENOSPC,
			      "%s: cap %d not -ENOSPC", cases[i].what, cap);
	}
}

static void test_request_limits(void)
{
	uint8_t buf[ZDS_MAX_MESSAGE];
	struct zds_request req, back;
	int n;

	/* every field at the maximum: multi-byte lengths, still round trips */
	memset(&req, 0, sizeof(req));
	req.kind = ZDS_REQ_ADD;
	req.has_info = 1;
	memset(req.uid, 'u', ZDS_MAX_FIELD);
	memset(req.name, 'n', ZDS_MAX_FIELD);
	memset(req.namespace_, 's', ZDS_MAX_FIELD);
	memset(req.service_account, 'a', ZDS_MAX_FIELD);
	n = zds_encode_request(&req, buf, sizeof(buf));
	CHECK(n > 4 * ZDS_MAX_FIELD, "max add encodes, n=%d", n);
	CHECK(n > 0 && zds_decode_request(buf, (size_t)n, &back) == 0 &&
	      memcmp(&back, &req, sizeof(req)) == 0, "max add round trip");

	/* an unterminated field is refused by the encoder */
	memset(req.uid, 'u', sizeof(req.uid));
	CHECK(zds_encode_request(&req, buf, sizeof(buf)) == -EINVAL, "unterminated uid");
	req.kind = (enum zds_request_kind)4;
	req.uid[0] = '\0';
	CHECK(zds_encode_request(&req, buf, sizeof(buf)) == -EINVAL, "bad kind");

	/* del{uid} with a 255-byte uid (one too long), then a 254-byte one */
	uint8_t big[300] = { 0x12, 0x82, 0x02, 0x12, 0xff, 0x01 };
	memset(big + 6, 'x', 255);
	CHECK(zds_decode_request(big, 6 + 255, &back) == -ENAMETOOLONG, "255-byte uid");
	big[1] = 0x81, big[4] = 0xfe;
	CHECK(zds_decode_request(big, 6 + 254, &back) == 0 && strlen(back.uid) == 254,
	      "254-byte uid accepted");
	CHECK(zds_decode_request(big, ZDS_MAX_MESSAGE + 1, &back) == -EBADMSG, "oversize message");
}

struct bad_case {
	const char *what;
	uint8_t b[24];
	size_t n;
	int want;
};

static void test_request_malformed(void)
{
	struct bad_case cases[] = {
		{ "truncated tag varint", { 0x80 }, 1, -EBADMSG },
		{ "truncated length", { 0x12, 0x80 }, 2, -EBADMSG },
		{ "length past end", { 0x12, 0x05, 0x12, 0x03, 'a' }, 5, -EBADMSG },
		{ "inner length past end", { 0x12, 0x03, 0x12, 0x07, 'a' }, 5, -EBADMSG },
		/* each case below ends in a valid del{} (12 00), so only its flaw can reject it */
		{ "11-byte varint", { 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				      0x01, 0x12, 0x00 }, 14, -EBADMSG },
		{ "10th varint byte > 1", { 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					    0xff, 0x02, 0x12, 0x00 }, 13, -EBADMSG },
		{ "field number 0", { 0x02, 0x00, 0x12, 0x00 }, 4, -EBADMSG },
		{ "wire type 6", { 0x0e, 0x12, 0x00 }, 3, -EBADMSG },
		{ "wire type 7", { 0x0f, 0x12, 0x00 }, 3, -EBADMSG },
		{ "stray end group", { 0x3c, 0x12, 0x00 }, 3, -EBADMSG },
		{ "unterminated group", { 0x12, 0x00, 0x33, 0x08, 0x01 }, 5, -EBADMSG },
		{ "mismatched end group", { 0x33, 0x3c, 0x12, 0x00 }, 4, -EBADMSG },
		{ "nested group within limit", { 0x33, 0x43, 0x44, 0x34, 0x12, 0x00 }, 6, 0 },
		{ "groups nested 8 deep", { 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x34, 0x34,
					    0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x12, 0x00 }, 18, 0 },
		{ "groups nested 9 deep", { 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x34,
					    0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x34, 0x12,
					    0x00 }, 20, -EBADMSG },
		{ "payload as varint", { 0x08, 0x01 }, 2, -EBADMSG },
		{ "uid as varint", { 0x12, 0x02, 0x10, 0x01 }, 4, -EBADMSG },
		{ "info as fixed32", { 0x0a, 0x05, 0x15, 1, 2, 3, 4 }, 7, -EBADMSG },
		{ "name as varint", { 0x0a, 0x04, 0x12, 0x02, 0x08, 0x01 }, 6, -EBADMSG },
		{ "truncated fixed64", { 0x19, 1, 2, 3 }, 4, -EBADMSG },
		{ "truncated fixed32", { 0x1d, 1, 2 }, 3, -EBADMSG },
		{ "NUL in uid", { 0x12, 0x04, 0x12, 0x02, 'a', 0x00 }, 6, -EBADMSG },
		{ "bad utf-8 uid", { 0x12, 0x04, 0x12, 0x02, 0xc3, 0x28 }, 6, -EBADMSG },
		{ "overlong utf-8", { 0x12, 0x04, 0x12, 0x02, 0xc0, 0x80 }, 6, -EBADMSG },
		{ "empty message", { 0 }, 0, -EBADMSG },
		{ "only unknown payload 4", { 0x22, 0x00 }, 2, -EBADMSG },
	};
	struct zds_request out;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = zds_decode_request(cases[i].b, cases[i].n, &out);

		CHECK(err == cases[i].want, "%s: got %d want %d", cases[i].what, err, cases[i].want);
		CHECK(err == 0 || (out.kind == 0 && out.uid[0] == '\0'), "%s: output not cleared",
		      cases[i].what);
	}
}

static void test_request_unknown_fields(void)
{
	/* del{f7 fixed32, uid="zz", f9 group{f1 varint}} with f6 varint / f15 fixed64 / f4 LEN /
	 * f20 (two-byte tag) varint around it */
	static const uint8_t msg[] = {
		0x30, 0x96, 0x01,				/* f6 varint 150 */
		0x79, 1, 2, 3, 4, 5, 6, 7, 8,			/* f15 fixed64 */
		0x22, 0x01, 0x00,				/* f4 LEN (removed no_snapshot_present) */
		0x12, 0x0d,
		0x3d, 1, 2, 3, 4,				/* f7 fixed32 */
		0x12, 0x02, 'z', 'z',
		0x4b, 0x08, 0x01, 0x4c,				/* f9 group{f1=1} */
		0xa0, 0x01, 0x05,				/* f20 varint */
	};
	static const uint8_t add_td[] = {	/* add{uid="a", info{name="n", f4 trust_domain="td"}} */
		0x0a, 0x0c, 0x0a, 0x01, 'a', 0x12, 0x07, 0x0a, 0x01, 'n', 0x22, 0x02, 't', 'd',
	};
	static const uint8_t two[] = {	/* oneof: del then add — the last member wins */
		0x12, 0x03, 0x12, 0x01, 'd', 0x0a, 0x03, 0x0a, 0x01, 'a',
	};
	struct zds_request out;

	CHECK(zds_decode_request(msg, sizeof(msg), &out) == 0 && out.kind == ZDS_REQ_DEL &&
	      strcmp(out.uid, "zz") == 0, "del with unknown fields: kind %d uid '%s'", out.kind,
	      out.uid);
	CHECK(zds_decode_request(add_td, sizeof(add_td), &out) == 0 && out.kind == ZDS_REQ_ADD &&
	      out.has_info && strcmp(out.name, "n") == 0 && out.namespace_[0] == '\0',
	      "add with reserved trust_domain");
	CHECK(zds_decode_request(two, sizeof(two), &out) == 0 && out.kind == ZDS_REQ_ADD &&
	      strcmp(out.uid, "a") == 0, "last oneof member wins");
}

static void test_ack(void)
{
	uint8_t buf[ZDS_MAX_MESSAGE];
	char err[64];
	static const uint8_t pos[] = { 0x0a, 0x00 };
	static const uint8_t neg[] = { 0x0a, 0x06, 0x0a, 0x04, 'n', 'o', 'p', 'e' };
	int n;

	n = zds_encode_ack(NULL, buf, sizeof(buf));
	check_bytes("ack NULL", buf, n, pos, sizeof(pos));
	n = zds_encode_ack("", buf, sizeof(buf));
	check_bytes("ack empty", buf, n, pos, sizeof(pos));
	strcpy(err, "junk");
	CHECK(zds_decode_ack(buf, (size_t)n, err, sizeof(err)) == 0 && err[0] == '\0',
	      "positive ack decodes to \"\" (got '%s')", err);
	n = zds_encode_ack("nope", buf, sizeof(buf));
	check_bytes("ack nope", buf, n, neg, sizeof(neg));
	CHECK(zds_decode_ack(buf, (size_t)n, err, sizeof(err)) == 0 && strcmp(err, "nope") == 0,
	      "nack round trip '%s'", err);
	CHECK(zds_decode_ack(buf, (size_t)n, err, 3) == 0 && strcmp(err, "no") == 0,
	      "long error is cut to errlen");
	CHECK(zds_encode_ack("nope", buf, 5) == -ENOSPC, "ack -ENOSPC");
	CHECK(zds_decode_ack(NULL, 0, err, sizeof(err)) == -EBADMSG, "empty response is no ack");
	static const uint8_t unk[] = { 0x15, 1, 2, 3, 4, 0x0a, 0x05, 0x10, 0x01, 0x0a, 0x01, 'e' };
	CHECK(zds_decode_ack(unk, sizeof(unk), err, sizeof(err)) == 0 && strcmp(err, "e") == 0,
	      "ack with unknown fields '%s'", err);
	static const uint8_t bad[] = { 0x0a, 0x03, 0x0a, 0x05, 'e' };
	CHECK(zds_decode_ack(bad, sizeof(bad), err, sizeof(err)) == -EBADMSG && err[0] == '\0',
	      "ack inner length past end");
	static const uint8_t wt[] = { 0x08, 0x00 };
	CHECK(zds_decode_ack(wt, sizeof(wt), err, sizeof(err)) == -EBADMSG, "ack as varint");
	/* a long (multi-byte length) error round trips */
	char longerr[1000];
	memset(longerr, 'E', sizeof(longerr) - 1);
	longerr[sizeof(longerr) - 1] = '\0';
	char back[1000];
	n = zds_encode_ack(longerr, buf, sizeof(buf));
	CHECK(n > 1000 && zds_decode_ack(buf, (size_t)n, back, sizeof(back)) == 0 &&
	      strcmp(back, longerr) == 0, "long ack round trip");
}

/* Random and mutated buffers: any result is fine, a crash or sanitizer report is not. */
static void test_garbage(void)
{
	uint8_t buf[512], good[ZDS_MAX_MESSAGE];
	struct zds_request req = make_req(ZDS_REQ_ADD, "uid-1", 1, "pod", "default", "sa");
	struct zds_request out;
	char err[32];
	uint32_t v;
	int good_len = zds_encode_request(&req, good, sizeof(good));

	srand(12345);
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rand() % (int)sizeof(buf));

		if (i % 2 && good_len > 0) {	/* mutate a valid message */
			n = (size_t)good_len;
			memcpy(buf, good, n);
			for (int k = 0; k < 1 + rand() % 4; k++)
				buf[rand() % (int)n] = (uint8_t)rand();
			n = (size_t)(rand() % ((int)n + 1));
		} else {
			for (size_t k = 0; k < n; k++)
				buf[k] = (uint8_t)rand();
		}
		int r1 = zds_decode_request(buf, n, &out);
		int r2 = zds_decode_ack(buf, n, err, sizeof(err));
		int r3 = zds_decode_hello(buf, n, &v);

		CHECK(r1 == 0 || r1 == -EBADMSG || r1 == -ENAMETOOLONG, "garbage request rc %d", r1);
		CHECK(r2 == 0 || r2 == -EBADMSG, "garbage ack rc %d", r2);
		CHECK(r3 == 0 || r3 == -EBADMSG, "garbage hello rc %d", r3);
		if (r1 == 0)
			CHECK(strlen(out.uid) <= ZDS_MAX_FIELD && strlen(out.name) <= ZDS_MAX_FIELD,
			      "decoded fields within bounds");
		CHECK(strlen(err) < sizeof(err), "ack error terminated");
	}
}

int main(void)
{
	test_hello();
	test_request_exact();
	test_request_limits();
	test_request_malformed();
	test_request_unknown_fields();
	test_ack();
	test_garbage();
	if (failures) {
		printf("zds_test: %d check(s) failed\n", failures);
		return 1;
	}
	printf("zds_test: all checks passed\n");
	return 0;
}
