/* zds: protobuf wire-format encoder/decoder for upstream's istio.workload.zds messages. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "ztunnel/state.h"
#include "ztunnel/zds.h"

/* Wire types (protobuf encoding spec). */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

#define ZDS_MAX_GROUP_DEPTH 8	/* deprecated groups nest; bound the recursion */

/* ---- writing ---- */

struct pb_writer {
	uint8_t *buf;
	size_t cap;
	size_t len;
	bool overflow;
};

static void put_byte(struct pb_writer *w, uint8_t b)
{
	if (w->len >= w->cap) {
		w->overflow = true;
		return;
	}
	w->buf[w->len++] = b;
}

static void put_varint(struct pb_writer *w, uint64_t v)
{
	while (v >= 0x80) {
		put_byte(w, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	put_byte(w, (uint8_t)v);
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void put_tag(struct pb_writer *w, uint32_t field, int wire_type)
{
	put_varint(w, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

/* Header of a length-delimited field whose body follows. */
static void put_len_header(struct pb_writer *w, uint32_t field, size_t body_len)
{
	put_tag(w, field, WT_LEN);
	put_varint(w, body_len);
}

/* proto3: an empty string is the default and is not written. */
static void put_string(struct pb_writer *w, uint32_t field, const char *s, size_t n)
{
	if (n == 0)
		return;
	put_len_header(w, field, n);
	for (size_t i = 0; i < n; i++)
		put_byte(w, (uint8_t)s[i]);
}

/* Encoded size of a string field with a one-byte tag (all fields here are < 16). */
static size_t string_field_size(size_t n)
{
	return n ? 1 + varint_size(n) + n : 0;
}

static size_t sub_message_size(size_t body_len)
{
	return 1 + varint_size(body_len) + body_len;
}

static int writer_result(const struct pb_writer *w)
{
	if (w->overflow)
		return -ENOSPC;
	return (int)w->len;
}

int zds_encode_hello(uint8_t *buf, size_t cap)
{
	struct pb_writer w = { .buf = buf, .cap = cap };

	put_tag(&w, 1, WT_VARINT);
	put_varint(&w, ZDS_VERSION_V1);
	return writer_result(&w);
}

/* Length of a field of struct zds_request, or -EINVAL if it is unterminated or too long. */
static int checked_len(const char *s, size_t *out)
{
	size_t n = strnlen(s, ZDS_MAX_FIELD + 1);

	if (n > ZDS_MAX_FIELD)
		return -EINVAL;
	*out = n;
	return 0;
}

static int encode_add(const struct zds_request *req, struct pb_writer *w)
{
	size_t uid, name, ns, sa, info = 0, body;

	if (checked_len(req->uid, &uid) || checked_len(req->name, &name) ||
	    checked_len(req->namespace_, &ns) || checked_len(req->service_account, &sa))
		return -EINVAL;
	info = string_field_size(name) + string_field_size(ns) + string_field_size(sa);
	body = string_field_size(uid) + (req->has_info ? sub_message_size(info) : 0);
	put_len_header(w, ZDS_REQ_ADD, body);
	put_string(w, 1, req->uid, uid);
	if (req->has_info) {
		put_len_header(w, 2, info);
		put_string(w, 1, req->name, name);
		put_string(w, 2, req->namespace_, ns);
		put_string(w, 3, req->service_account, sa);
	}
	return 0;
}

/* DelWorkload carries its uid in field 2, KeepWorkload in field 1. */
static int encode_uid_only(const struct zds_request *req, uint32_t uid_field,
			   struct pb_writer *w)
{
	size_t uid;

	if (checked_len(req->uid, &uid))
		return -EINVAL;
	put_len_header(w, req->kind, string_field_size(uid));
	put_string(w, uid_field, req->uid, uid);
	return 0;
}

int zds_encode_request(const struct zds_request *req, uint8_t *buf, size_t cap)
{
	struct pb_writer w = { .buf = buf, .cap = cap };
	int err;

	switch (req->kind) {
	case ZDS_REQ_ADD:
		err = encode_add(req, &w);
		break;
	case ZDS_REQ_DEL:
		err = encode_uid_only(req, 2, &w);
		break;
	case ZDS_REQ_KEEP:
		err = encode_uid_only(req, 1, &w);
		break;
	case ZDS_REQ_SNAPSHOT_SENT:
		put_len_header(&w, ZDS_REQ_SNAPSHOT_SENT, 0);
		err = 0;
		break;
	default:
		err = -EINVAL;
	}
	if (err)
		return err;
	return writer_result(&w);
}

int zds_encode_ack(const char *error, uint8_t *buf, size_t cap)
{
	struct pb_writer w = { .buf = buf, .cap = cap };
	size_t n = error ? strnlen(error, ZDS_MAX_MESSAGE) : 0;

	if (n >= ZDS_MAX_MESSAGE)
		return -EINVAL;
	/* The oneof member is written even when the Ack itself is empty: 0a 00. */
	put_len_header(&w, 1, string_field_size(n));
	put_string(&w, 1, error, n);
	return writer_result(&w);
}

/* ---- reading ---- */

struct pb_reader {
	const uint8_t *p;
	size_t len;
	size_t off;
};

/* One field as read: its number, wire type, and value (varint) or body (LEN). */
struct pb_field {
	uint32_t num;
	int wire_type;
	uint64_t varint;
	const uint8_t *body;
	size_t body_len;
};

static int get_varint(struct pb_reader *r, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < 10; i++) {
		if (r->off >= r->len)
			return -EBADMSG;
		uint8_t b = r->p[r->off++];

		/* The tenth byte holds only bit 63. */
		if (i == 9 && b > 1)
			return -EBADMSG;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -EBADMSG;
}

static int skip_bytes(struct pb_reader *r, uint64_t n)
{
	if (n > r->len - r->off)
		return -EBADMSG;
	r->off += (size_t)n;
	return 0;
}

static int get_field(struct pb_reader *r, struct pb_field *f, int depth);

/* Skip a deprecated group up to its matching end tag. */
static int skip_group(struct pb_reader *r, uint32_t num, int depth)
{
	struct pb_field f;
	int err;

	if (depth >= ZDS_MAX_GROUP_DEPTH)
		return -EBADMSG;
	while (r->off < r->len) {
		err = get_field(r, &f, depth + 1);
		if (err)
			return err;
		if (f.wire_type == WT_EGROUP)
			return f.num == num ? 0 : -EBADMSG;
	}
	return -EBADMSG;
}

/* Read one field; fixed-width values and groups are consumed but not returned. */
static int get_field(struct pb_reader *r, struct pb_field *f, int depth)
{
	uint64_t tag, n;
	int err;

	err = get_varint(r, &tag);
	if (err)
		return err;
	if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
		return -EBADMSG;
	memset(f, 0, sizeof(*f));
	f->num = (uint32_t)(tag >> 3);
	f->wire_type = (int)(tag & 7);
	switch (f->wire_type) {
	case WT_VARINT:
		return get_varint(r, &f->varint);
	case WT_I64:
		return skip_bytes(r, 8);
	case WT_I32:
		return skip_bytes(r, 4);
	case WT_LEN:
		err = get_varint(r, &n);
		if (err)
			return err;
		f->body = r->p + r->off;
		f->body_len = (size_t)n;
		return skip_bytes(r, n);
	case WT_SGROUP:
		return skip_group(r, f->num, depth);
	case WT_EGROUP:
		return depth > 0 ? 0 : -EBADMSG;	/* an end without a start */
	default:
		return -EBADMSG;
	}
}

/* Copy a string field into dst[cap]; it must fit with its NUL. A repeated field replaces the
 * earlier value entirely (zero-filled), so equal messages decode to equal structs. */
static int copy_string(const struct pb_field *f, char *dst, size_t cap)
{
	if (f->wire_type != WT_LEN)
		return -EBADMSG;
	/* proto3 strings are UTF-8; a NUL would silently cut our C strings short */
	if (!state_utf8_valid(f->body, f->body_len))
		return -EBADMSG;
	if (f->body_len >= cap)
		return -ENAMETOOLONG;
	memset(dst, 0, cap);
	memcpy(dst, f->body, f->body_len);
	return 0;
}

static int decode_check_size(const uint8_t *buf, size_t len)
{
	if (!buf && len)
		return -EBADMSG;
	return len > ZDS_MAX_MESSAGE ? -EBADMSG : 0;
}

int zds_decode_hello(const uint8_t *buf, size_t len, uint32_t *version)
{
	struct pb_reader r = { .p = buf, .len = len };
	struct pb_field f;
	int err = decode_check_size(buf, len);

	*version = 0;	/* proto3 default: NOT_USED */
	while (!err && r.off < r.len) {
		err = get_field(&r, &f, 0);
		if (err || f.num != 1)
			continue;
		if (f.wire_type != WT_VARINT)
			err = -EBADMSG;
		else
			*version = (uint32_t)f.varint;	/* enums are int32 on the wire */
	}
	return err;
}

/* WorkloadInfo{name=1, namespace=2, service_account=3}; reserved 4 and others skipped. */
static int decode_info(const uint8_t *buf, size_t len, struct zds_request *out)
{
	struct pb_reader r = { .p = buf, .len = len };
	struct pb_field f;
	int err = 0;

	out->has_info = 1;
	while (!err && r.off < r.len) {
		err = get_field(&r, &f, 0);
		if (err)
			break;
		if (f.num == 1)
			err = copy_string(&f, out->name, sizeof(out->name));
		else if (f.num == 2)
			err = copy_string(&f, out->namespace_, sizeof(out->namespace_));
		else if (f.num == 3)
			err = copy_string(&f, out->service_account, sizeof(out->service_account));
	}
	return err;
}

/* The body of one oneof member: uid lives in field 1 (add, keep) or 2 (del). */
static int decode_payload(const uint8_t *buf, size_t len, struct zds_request *out)
{
	struct pb_reader r = { .p = buf, .len = len };
	uint32_t uid_field = out->kind == ZDS_REQ_DEL ? 2 : 1;
	struct pb_field f;
	int err = 0;

	while (!err && r.off < r.len) {
		err = get_field(&r, &f, 0);
		if (err || out->kind == ZDS_REQ_SNAPSHOT_SENT)
			continue;
		if (f.num == uid_field) {
			err = copy_string(&f, out->uid, sizeof(out->uid));
		} else if (out->kind == ZDS_REQ_ADD && f.num == 2) {
			if (f.wire_type != WT_LEN)
				err = -EBADMSG;
			else
				err = decode_info(f.body, f.body_len, out);
		}
	}
	return err;
}

int zds_decode_request(const uint8_t *buf, size_t len, struct zds_request *out)
{
	struct pb_reader r = { .p = buf, .len = len };
	struct pb_field f;
	int err = decode_check_size(buf, len);

	memset(out, 0, sizeof(*out));
	while (!err && r.off < r.len) {
		err = get_field(&r, &f, 0);
		if (err)
			break;
		if (f.num != ZDS_REQ_ADD && f.num != ZDS_REQ_DEL &&
		    f.num != ZDS_REQ_SNAPSHOT_SENT && f.num != ZDS_REQ_KEEP)
			continue;
		if (f.wire_type != WT_LEN) {
			err = -EBADMSG;
			break;
		}
		/* oneof: a different member replaces the earlier one; the same one merges. */
		if (out->kind != (enum zds_request_kind)f.num) {
			memset(out, 0, sizeof(*out));
			out->kind = (enum zds_request_kind)f.num;
		}
		err = decode_payload(f.body, f.body_len, out);
	}
	if (!err && out->kind == 0)
		err = -EBADMSG;	/* no payload we know: nothing to act on */
	if (err)
		memset(out, 0, sizeof(*out));
	return err;
}

/* Ack{error=1}; a text longer than errlen - 1 is cut (it is only shown to people). */
static int decode_ack_body(const uint8_t *buf, size_t len, char *error, size_t errlen)
{
	struct pb_reader r = { .p = buf, .len = len };
	struct pb_field f;
	int err = 0;

	while (!err && r.off < r.len) {
		err = get_field(&r, &f, 0);
		if (err || f.num != 1)
			continue;
		if (f.wire_type != WT_LEN || !state_utf8_valid(f.body, f.body_len)) {
			err = -EBADMSG;
		} else if (error && errlen) {
			size_t n = f.body_len < errlen - 1 ? f.body_len : errlen - 1;

			memcpy(error, f.body, n);
			error[n] = '\0';
		}
	}
	return err;
}

int zds_decode_ack(const uint8_t *buf, size_t len, char *error, size_t errlen)
{
	struct pb_reader r = { .p = buf, .len = len };
	struct pb_field f;
	bool have_ack = false;
	int err = decode_check_size(buf, len);

	if (error && errlen)
		error[0] = '\0';
	while (!err && r.off < r.len) {
		err = get_field(&r, &f, 0);
		if (err || f.num != 1)
			continue;
		if (f.wire_type != WT_LEN) {
			err = -EBADMSG;
			break;
		}
		have_ack = true;
		err = decode_ack_body(f.body, f.body_len, error, errlen);
	}
	if (!err && !have_ack)
		err = -EBADMSG;	/* a response without an Ack says nothing */
	if (err && error && errlen)
		error[0] = '\0';
	return err;
}
