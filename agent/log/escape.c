/* log escape: quoting key=value values, JSON strings, and the key=value to JSON conversion. */
#include <stdio.h>
#include <string.h>

#include <ztunnel/log.h>

#include "log-int.h"

void log_buf_put(struct log_buf *b, const char *s, size_t n)
{
	if (b->full || n >= b->cap - b->len) {
		b->full = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

void log_buf_putc(struct log_buf *b, char c)
{
	log_buf_put(b, &c, 1);
}

size_t log_buf_end(struct log_buf *b)
{
	if (b->cap)
		b->p[b->len] = '\0';
	return b->len;
}

size_t log_utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, UTF-16 surrogates and beyond U+10FFFF are not UTF-8 */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool log_needs_quotes(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n; i++) {
		size_t k = log_utf8_len(u + i, n - i);

		if (k == 0 || u[i] <= ' ' || u[i] == 0x7f || u[i] == '"' || u[i] == '\\' ||
		    u[i] == '=')
			return true;
		i += k - 1;
	}
	return false;
}

/* The escape of a character both formats share (\" \\ \n \t \r), or NULL. */
static const char *common_escape(unsigned char c)
{
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	case '\t': return "\\t";
	case '\r': return "\\r";
	default: return NULL;
	}
}

/* Appends s[0..n) escaped as the inside of a quoted key=value value or, json, of a JSON string. */
static void escape(struct log_buf *b, const char *s, size_t n, bool json)
{
	const unsigned char *u = (const unsigned char *)s;
	char hex[8];

	for (size_t i = 0; i < n && !b->full; i++) {
		const char *e = common_escape(u[i]);
		size_t k = log_utf8_len(u + i, n - i);

		if (e) {
			log_buf_put(b, e, strlen(e));
		} else if (k == 0 && json) {
			log_buf_put(b, "\\ufffd", 6);
		} else if (k == 0 || u[i] < 0x20 || u[i] == 0x7f) {
			snprintf(hex, sizeof(hex), json ? "\\u%04x" : "\\x%02x", u[i]);
			log_buf_put(b, hex, strlen(hex));
		} else {
			log_buf_put(b, s + i, k);
			i += k - 1;
		}
	}
}

void log_escape_quoted(struct log_buf *b, const char *s, size_t n)
{
	escape(b, s, n, false);
}

void log_escape_json(struct log_buf *b, const char *s, size_t n)
{
	escape(b, s, n, true);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads the escape after a backslash at *f (inside a quoted value) into *c; false if it is
 * none we write (then the backslash stands for itself). Advances *f past it. */
static bool unescape(const char **f, unsigned char *c)
{
	const char *p = *f;

	switch (*p) {
	case '"': case '\\': *c = (unsigned char)*p; break;
	case 'n': *c = '\n'; break;
	case 't': *c = '\t'; break;
	case 'r': *c = '\r'; break;
	case 'x':
		if (hexval(p[1]) < 0 || hexval(p[2]) < 0)
			return false;
		*c = (unsigned char)(hexval(p[1]) << 4 | hexval(p[2]));
		*f = p + 3;
		return true;
	default:
		return false;
	}
	*f = p + 1;
	return true;
}

/* Appends the quoted value starting after its opening quote as JSON; returns what follows. */
static const char *quoted_to_json(struct log_buf *b, const char *f)
{
	const char *run = f;
	unsigned char c;

	while (*f && *f != '"') {
		if (*f != '\\') {
			f++;
			continue;
		}
		log_escape_json(b, run, (size_t)(f - run));
		f++;
		if (!unescape(&f, &c))
			c = '\\';
		if (c >= 0x80)	/* an invalid UTF-8 byte, written \xNN by the text form */
			log_buf_put(b, "\\ufffd", 6);
		else
			log_escape_json(b, (const char *)&c, 1);
		run = f;
	}
	log_escape_json(b, run, (size_t)(f - run));
	return *f ? f + 1 : f;
}

/* Appends the field at *f as a JSON member and advances *f. When the buffer fills, a member
 * cut in its value is still closed; one cut in its key is taken back: the output stays JSON. */
static void member_to_json(struct log_buf *b, const char **fp)
{
	const char *f = *fp;
	size_t start = b->len, klen = strcspn(f, "= ");

	b->cap--;	/* room for the closing quote */
	log_buf_put(b, ",\"", 2);
	log_escape_json(b, f, klen);
	log_buf_put(b, "\":\"", 3);
	if (b->full) {
		b->len = start;
	} else if (f[klen] == '=' && f[klen + 1] == '"') {
		f = quoted_to_json(b, f + klen + 2);
	} else if (f[klen] == '=') {
		size_t vlen = strcspn(f + klen + 1, " ");

		log_escape_json(b, f + klen + 1, vlen);
		f += klen + 1 + vlen;
	} else {
		f += klen;	/* a key without '=': an empty value */
	}
	b->cap++;
	if (b->len > start)
		b->p[b->len++] = '"';	/* fits: the room kept above */
	*fp = f;
}

size_t log_fields_to_json(const char *f, char *out, size_t cap)
{
	struct log_buf b = { .p = out, .cap = cap };

	if (cap < 2)
		return cap ? log_buf_end(&b) : 0;
	while (f && !b.full) {
		while (*f == ' ')
			f++;
		if (!*f)
			break;
		member_to_json(&b, &f);
	}
	return log_buf_end(&b);
}
