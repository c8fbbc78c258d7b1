/* log: formats and writes one-line key=value log records. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/log.h>

static int log_level = LOG_INFO;
static bool log_json;	/* set once at start-up, before any thread */
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level_name(const char *name)
{
	__atomic_store_n(&log_level, LOG_INFO, __ATOMIC_RELAXED);
	if (!name)
		return;
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			__atomic_store_n(&log_level, i, __ATOMIC_RELAXED);
}

const char *log_level_name(void)
{
	return level_names[__atomic_load_n(&log_level, __ATOMIC_RELAXED)];
}

void log_set_json(bool json)
{
	log_json = json;
}

static size_t put_escaped(char *out, size_t n, size_t cap, const char *s, size_t len)
{
	for (size_t i = 0; i < len && n + 7 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	return n;
}

size_t log_fields_to_json(const char *f, char *out, size_t cap)
{
	size_t n = 0;

	while (f && *f && n + 8 < cap) {
		const char *eq, *v, *end;

		while (*f == ' ')
			f++;
		eq = strchr(f, '=');
		if (!*f || !eq)
			break;
		v = eq + 1;
		if (*v == '"') {
			v++;
			end = strchr(v, '"');
			if (!end)
				end = v + strlen(v);
		} else {
			end = strchr(v, ' ');
			if (!end)
				end = v + strlen(v);
		}
		out[n++] = ',';
		out[n++] = '"';
		n = put_escaped(out, n, cap, f, (size_t)(eq - f));
		out[n++] = '"';
		out[n++] = ':';
		out[n++] = '"';
		n = put_escaped(out, n, cap, v, (size_t)(end - v));
		out[n++] = '"';
		f = *end == '"' ? end + 1 : end;
	}
	out[n < cap ? n : cap - 1] = '\0';
	return n;
}

static void emit_json(const char *ts, const char *level, const char *msg, const char *fields)
{
	char line[4096];
	size_t n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
				    ts, level);

	n = put_escaped(line, n, sizeof(line) - 64, msg, strlen(msg));
	line[n++] = '"';
	n += log_fields_to_json(fields, line + n, sizeof(line) - n - 3);
	line[n++] = '}';
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

bool log_enabled(enum log_level level)
{
	return (int)level <= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void log_emit(enum log_level level, const char *msg, const char *fields, ...)
{
	char line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	if (!log_enabled(level))
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	if (log_json) {
		char ts[40], fbuf[2048] = "";

		n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + n, sizeof(ts) - n, ".%06ldZ", (long)tv.tv_usec);
		if (fields) {
			va_start(ap, fields);
			vsnprintf(fbuf, sizeof(fbuf), fields, ap);
			va_end(ap);
		}
		emit_json(ts, level_names[level], msg, fbuf);
		return;
	}
	n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - n, ".%06ldZ level=%s msg=\"%s\"", (long)tv.tv_usec,
		      level_names[level], msg);
	if (fields && n < sizeof(line) - 1) {
		line[n++] = ' ';
		va_start(ap, fields);
		int k = vsnprintf(line + n, sizeof(line) - n, fields, ap);
		va_end(ap);
		n = k < 0 ? n - 1 : n + (size_t)k;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
