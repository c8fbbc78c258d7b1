// unit-standalone
/* log_test: values are escaped by where they land (quoted, bare, key=value or JSON), lines stay
 * one line and parseable when cut, and the conversions print as printf would. */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../agent/log/escape.c"
#include "../../agent/log/format.c"
#include "../../agent/log/log.c"

#include "check.h"

static int capture_fd = -1;	/* read end of the pipe standing in for stderr */

static void capture_start(void)
{
	int p[2];

	if (pipe2(p, O_NONBLOCK) < 0) {
		perror("pipe2");
		exit(1);
	}
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	capture_fd = p[0];
}

/* What the logger wrote since the last call (NUL-terminated, static). */
static const char *captured(void)
{
	static char buf[16384];
	ssize_t n = read(capture_fd, buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* The fields of a text line: what follows msg="...". */
static const char *fields_of(const char *line)
{
	const char *p = strstr(line, "msg=\"");

	if (!p)
		return "";
	for (p += 5; *p && *p != '"'; p++)
		if (*p == '\\' && p[1])
			p++;
	return *p ? p + 2 : p;
}

static int hex(char c)
{
	return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/*
 * An independent key=value reader: finds key's value in line (quoted values unescaped with
 * \" \\ \n \t \r \xNN) into out. 0, or -1 when absent or malformed.
 */
static int kv_get(const char *line, const char *key, char *out, size_t cap)
{
	const char *p = line;
	size_t klen = strlen(key), n = 0;

	for (;;) {
		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			return -1;
		const char *eq = p + strcspn(p, "= \n");
		bool match = (size_t)(eq - p) == klen && !strncmp(p, key, klen) && *eq == '=';

		p = *eq == '=' ? eq + 1 : eq;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				char c = *p;

				if (c == '\n')
					return -1;	/* a raw newline inside a value */
				if (c == '\\') {
					c = *++p;
					if (c == 'n') c = '\n';
					else if (c == 't') c = '\t';
					else if (c == 'r') c = '\r';
					else if (c == 'x') {
						c = (char)(hex(p[1]) << 4 | hex(p[2]));
						p += 2;
					} else if (c != '"' && c != '\\')
						return -1;
				}
				if (match && n + 1 < cap)
					out[n++] = c;
			}
			if (*p != '"')
				return -1;
			p++;
		} else {
			for (; *p && *p != ' ' && *p != '\n'; p++) {
				if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
					return -1;	/* a bare value must not hold these */
				if (match && n + 1 < cap)
					out[n++] = *p;
			}
		}
		if (match) {
			out[n] = '\0';
			return 0;
		}
	}
}

static bool one_line(const char *s)
{
	const char *nl = strchr(s, '\n');

	return nl && nl[1] == '\0';
}

/* Nasty values survive a round trip in quoted and in bare position. */
static void test_round_trip(void)
{
	static const char *const values[] = {
		"invalid pod uid \"x\"", "back\\slash", "a\\\"b", "line\nbreak\r\n", "tab\there",
		"ctl\x01\x1f\x7f", "spaces  in  it", "k=v", "", "-", "\"", "\\", "é ünïcødé ✓",
		"bad utf8 \xff\xfe \xc3", "trailing\\",
	};
	char got[512];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		const char *line, *f;

		log_emit(LOG_INFO, "round trip", "q=\"%s\" b=%s pod=ns/%s n=%zu", values[i], values[i],
			 values[i], i);
		line = captured();
		f = fields_of(line);
		CHECK(one_line(line), "value %zu: not one line: %s", i, line);
		CHECK(kv_get(f, "q", got, sizeof(got)) == 0, "value %zu: q unreadable: %s", i, line);
		/* invalid UTF-8 bytes come back as the same bytes (\xNN) */
		CHECK(!strcmp(got, values[i]), "value %zu: q=%s in %s", i, got, line);
		CHECK(kv_get(f, "b", got, sizeof(got)) == 0 && !strcmp(got, values[i]),
		      "value %zu: b in %s", i, line);
		snprintf(got + 256, 256, "ns/%s", values[i]);
		CHECK(kv_get(f, "pod", got, 256) == 0 && !strcmp(got, got + 256),
		      "value %zu: pod in %s", i, line);
		CHECK(kv_get(f, "n", got, sizeof(got)) == 0 && (size_t)atoi(got) == i,
		      "value %zu: n in %s", i, line);
	}
}

/* The exact text for the cases of the issue and the escapes asked for. */
static void test_exact(void)
{
	static const struct {
		const char *fmt, *arg, *want;
	} cases[] = {
		{ "error=\"%s\"", "invalid pod uid \"x\"", " error=\"invalid pod uid \\\"x\\\"\"\n" },
		{ "path=\"%s\"", "C:\\dir", " path=\"C:\\\\dir\"\n" },
		{ "e=\"%s\"", "a\nb\tc\rd\x01\x7f", " e=\"a\\nb\\tc\\rd\\x01\\x7f\"\n" },
		{ "reason=%s", "idle timeout", " reason=\"idle timeout\"\n" },
		{ "id=%s", "spiffe://td/ns/a/sa/b", " id=spiffe://td/ns/a/sa/b\n" },
		{ "pod=%s/x", "a b", " pod=\"a b/x\"\n" },
		{ "u=%s", "é", " u=é\n" },
		{ "u=%s", "\xff", " u=\"\\xff\"\n" },
		{ "a=%s b=1", "x\"y", " a=\"x\\\"y\" b=1\n" },
		{ "via=%s", "/quitquitquit", " via=/quitquitquit\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		log_emit(LOG_WARN, "m", cases[i].fmt, cases[i].arg);
		const char *line = captured(), *f = strstr(line, "msg=\"m\"");

		CHECK(f && !strcmp(f + 7, cases[i].want), "case %zu: %s", i, line);
	}
	log_emit(LOG_INFO, "say \"hi\"\n", NULL);
	const char *line = captured();
	CHECK(strstr(line, " msg=\"say \\\"hi\\\"\\n\"\n"), "msg escaping: %s", line);
	CHECK(one_line(line), "msg escaping: %s", line);
}

/* Conversions print as snprintf prints them (in harmless bare values). */
static void test_conversions(void)
{
	char want[256], got[256];
	long long ll = -1234567890123LL;
	ssize_t zd = -5;
	int w = 6;

	log_emit(LOG_INFO, "c", "a=%d b=%u c=%zu d=%lld e=%llu f=%.3f g=%zd h=%x i=%05d j=%.2s "
		 "k=%c l=%*d m=%% n=%ld o=%-4sX p=%" PRIu64, -7, 4000000000u, (size_t)42, ll,
		 18446744073709551615ULL, 1.23456, zd, 255u, 42, "abcdef", 'Z', w, 17, 99L, "ab",
		 (uint64_t)1 << 40);
	snprintf(want, sizeof(want), "a=%d b=%u c=%zu d=%lld e=%llu f=%.3f g=%zd h=%x i=%05d j=%.2s "
		 "k=%c l=%s m=%% n=%ld o=%s p=%" PRIu64 "\n", -7, 4000000000u, (size_t)42, ll,
		 18446744073709551615ULL, 1.23456, zd, 255u, 42, "abcdef", 'Z', "\"    17\"", 99L,
		 "\"ab  X\"", (uint64_t)1 << 40);
	snprintf(got, sizeof(got), "%s", fields_of(captured()));
	CHECK(!strcmp(got, want), "conversions:\n got %s want %s", got, want);
	const char *volatile null = NULL;	/* hidden from the compiler's format check */

	log_emit(LOG_INFO, "c", "s=%s", null);
	CHECK(strstr(captured(), " s=(null)\n"), "NULL string");
	/* the integers written without printf, at their limits */
	log_emit(LOG_INFO, "c", "a=%lld b=%d c=%u d=%jd e=%ld", LLONG_MIN, 0, 0u, (intmax_t)-1,
		 LONG_MAX);
	snprintf(want, sizeof(want), "a=%lld b=0 c=0 d=-1 e=%ld\n", LLONG_MIN, LONG_MAX);
	snprintf(got, sizeof(got), "%s", captured());
	CHECK(!strcmp(fields_of(got), want), "integer limits: %s", got);
	/* the timestamp: RFC 3339, UTC, microseconds */
	{
		const char *ts = strstr(got, "ts=");
		bool ok = ts && strlen(ts) > 31;

		for (int i = 0; ok && i < 27; i++) {
			char c = ts[3 + i];

			ok = i == 4 || i == 7 ? c == '-' : i == 10 ? c == 'T' :
			     i == 13 || i == 16 ? c == ':' : i == 19 ? c == '.' :
			     i == 26 ? c == 'Z' : c >= '0' && c <= '9';
		}
		CHECK(ok && ts[30] == ' ', "timestamp: %s", got);
	}
}

/* A line longer than the buffer is cut between escapes and its quoted value still closes. */
static void test_cut(void)
{
	static char big[5000];
	char got[4096];
	const char *line;

	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = "ab\"\\\n"[i % 5];
	log_emit(LOG_INFO, "long", "k=\"%s\"", big);
	line = captured();
	CHECK(strlen(line) <= 2048 && one_line(line), "cut: %zu bytes", strlen(line));
	CHECK(kv_get(fields_of(line), "k", got, sizeof(got)) == 0 && !strncmp(got, big, strlen(got)) &&
	      strlen(got) > 1000, "cut quoted value unreadable: ...%s", line + strlen(line) - 40);
	log_emit(LOG_INFO, "long", "k=%s", big);
	line = captured();
	CHECK(strlen(line) <= 2048 && one_line(line), "cut bare: %zu bytes", strlen(line));
	CHECK(kv_get(fields_of(line), "k", got, sizeof(got)) == 0 && !strncmp(got, big, strlen(got)),
	      "cut bare value unreadable: ...%s", line + strlen(line) - 40);
}

/* key=value fields to JSON members, by table (log_fields_to_json reads what the logger writes). */
static void test_to_json(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "a=1 b=two", ",\"a\":\"1\",\"b\":\"two\"" },
		{ "error=\"invalid pod uid \\\"x\\\"\"", ",\"error\":\"invalid pod uid \\\"x\\\"\"" },
		{ "p=\"C:\\\\dir\"", ",\"p\":\"C:\\\\dir\"" },
		{ "e=\"a\\nb\\tc\\x01\\x7f\"", ",\"e\":\"a\\nb\\tc\\u0001\\u007f\"" },
		{ "u=\"\\xff\" v=é", ",\"u\":\"\\ufffd\",\"v\":\"é\"" },
		{ "raw=\xff", ",\"raw\":\"\\ufffd\"" },
		{ "q=\"unterminated", ",\"q\":\"unterminated\"" },
		{ "lone k=", ",\"lone\":\"\",\"k\":\"\"" },
		{ "odd=\"a\\qb\"", ",\"odd\":\"a\\\\qb\"" },
		{ "  ", "" },
	};
	char out[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = log_fields_to_json(cases[i].in, out, sizeof(out));

		CHECK(n == strlen(out) && !strcmp(out, cases[i].want), "to_json %zu: %s", i, out);
	}
	/* a small buffer: whole members only, each closed */
	size_t n = log_fields_to_json("a=\"0123456789\" b=1", out, 12);
	CHECK(n == strlen(out) && !strcmp(out, ",\"a\":\"0123\""), "to_json cut: %s", out);
	n = log_fields_to_json("a=1 bbbbbbbbbbbb=2", out, 14);
	CHECK(!strcmp(out, ",\"a\":\"1\""), "to_json cut in a key: %s", out);
}

static void test_json_lines(void)
{
	static char big[5000];
	const char *line;

	log_set_json(true);
	log_emit(LOG_WARN, "pod \"x\"", "error=\"%s\" reason=%s", "invalid pod uid \"x\"",
		 "a\nb");
	line = captured();
	CHECK(one_line(line) && strstr(line, "\"msg\":\"pod \\\"x\\\"\""), "json msg: %s", line);
	CHECK(strstr(line, ",\"error\":\"invalid pod uid \\\"x\\\"\",\"reason\":\"a\\nb\"}\n"),
	      "json fields: %s", line);
	memset(big, '"', sizeof(big) - 1);
	log_emit(LOG_INFO, "long", "k=\"%s\" after=1", big);
	line = captured();
	CHECK(one_line(line) && strlen(line) <= 4096 && !strcmp(line + strlen(line) - 5, "\\\"\"}\n"),
	      "json cut: ...%s", line + strlen(line) - 20);
	log_set_json(false);
}

int main(void)
{
	log_set_level_name("debug");
	capture_start();
	test_exact();
	test_round_trip();
	test_conversions();
	test_cut();
	test_to_json();
	test_json_lines();
	if (failures)
		printf("%d failure(s)\n", failures);
	else
		printf("log_test: ok\n");
	return failures ? 1 : 0;
}
