/* admin http: strict HTTP/1.x request-head parsing, query look-up and response framing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin-int.h"

static const struct {
	const char *name;
	enum admin_method method;
} http_methods[] = {
	{ "GET", ADMIN_M_GET },
	{ "HEAD", ADMIN_M_HEAD },
	{ "POST", ADMIN_M_POST },
};

/* RFC 9110 tchar */
static int http_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Field value bytes: visible ASCII, SP, HTAB, obs-text. */
static int http_vchar(unsigned char c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

/* The request line in line[0..len): "METHOD SP /target SP HTTP/1.x". 0 or 400. */
static int http_parse_line(char *line, size_t len, struct admin_request *req)
{
	char *sp1 = memchr(line, ' ', len), *sp2, *q;
	size_t i;

	if (!sp1 || sp1 == line || sp1 - line > 16)
		return 400;
	for (char *p = line; p < sp1; p++)
		if (!http_tchar((unsigned char)*p))
			return 400;
	sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line));
	if (!sp2 || sp2 == sp1 + 1 || sp1[1] != '/')
		return 400;
	for (char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return 400;
	if ((size_t)(line + len - (sp2 + 1)) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return 400;
	*sp1 = '\0';
	*sp2 = '\0';
	req->method_name = line;
	req->method = ADMIN_M_OTHER;
	for (i = 0; i < sizeof(http_methods) / sizeof(http_methods[0]); i++)
		if (strcmp(line, http_methods[i].name) == 0)
			req->method = http_methods[i].method;
	req->path = sp1 + 1;
	q = strchr(sp1 + 1, '?');
	if (q)
		*q = '\0';
	req->query = q ? q + 1 : "";
	return 0;
}

/* One header line "name:value" (no folding, no space before the colon). 0 or 400. */
static int http_check_header(const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);

	if (!colon || colon == line)
		return 400;
	for (const char *p = line; p < colon; p++)
		if (!http_tchar((unsigned char)*p))
			return 400;
	for (const char *p = colon + 1; p < line + len; p++)
		if (!http_vchar((unsigned char)*p))
			return 400;
	return 0;
}

int admin_http_parse(char *head, size_t len, struct admin_request *req)
{
	char *p = head, *end = head + len, *eol;
	int first = 1, err;

	memset(req, 0, sizeof(*req));
	if (len < 4 || memcmp(end - 4, "\r\n\r\n", 4) != 0)
		return 400;
	for (;;) {
		eol = memchr(p, '\r', (size_t)(end - p));
		if (!eol || eol + 1 >= end || eol[1] != '\n')
			return 400;	/* a bare CR, or CR not followed by LF */
		if (eol == p)
			return first ? 400 : (eol + 2 == end ? 0 : 400);
		if (memchr(p, '\n', (size_t)(eol - p)))
			return 400;	/* a bare LF */
		err = first ? http_parse_line(p, (size_t)(eol - p), req)
			    : http_check_header(p, (size_t)(eol - p));
		if (err)
			return err;
		first = 0;
		p = eol + 2;
	}
}

static int http_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..len) into out[outsz] (NUL-terminated). 0 or -EINVAL. */
static int http_decode(const char *s, size_t len, char *out, size_t outsz)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 2 >= len)
				return -EINVAL;
			int hi = http_hex(s[i + 1]), lo = http_hex(s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (n + 1 >= outsz)
			return -EINVAL;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

int admin_http_query(const char *query, const char *key, char *out, size_t outsz)
{
	size_t klen = strlen(key);
	const char *p = query;

	if (!outsz)
		return -EINVAL;
	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		size_t name_len = eq ? (size_t)(eq - p) : n;

		if (name_len == klen && memcmp(p, key, klen) == 0)
			return eq ? http_decode(eq + 1, n - name_len - 1, out, outsz)
				  : http_decode("", 0, out, outsz);
		p = amp ? amp + 1 : NULL;
	}
	return -ENOENT;
}

const char *admin_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

int admin_http_response(const struct admin_reply *rep, const char *body, size_t body_len,
			int head_only, char **out, size_t *out_len)
{
	FILE *f = open_memstream(out, out_len);

	if (!f)
		return -ENOMEM;
	fprintf(f, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", rep->status,
		admin_http_reason(rep->status),
		rep->content_type ? rep->content_type : "text/plain; charset=utf-8", body_len);
	if (rep->allow)
		fprintf(f, "Allow: %s\r\n", rep->allow);
	fputs("Connection: close\r\n\r\n", f);
	if (!head_only && body_len)
		fwrite(body, 1, body_len, f);
	int bad = ferror(f);

	if (fclose(f) != 0 || bad) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}
