/* log: the level, and one-line key=value or JSON records written with one write(2). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/log.h>

#include "log-int.h"

static int log_level = LOG_INFO;
static bool log_json;	/* set once at start-up, before any thread */
static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_from_name(const char *name)
{
	for (int i = 0; name && i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

void log_set_level_name(const char *name)
{
	int level = log_level_from_name(name);

	__atomic_store_n(&log_level, level < 0 ? LOG_INFO : level, __ATOMIC_RELAXED);
}

const char *log_level_name(void)
{
	return level_names[__atomic_load_n(&log_level, __ATOMIC_RELAXED)];
}

void log_set_json(bool json)
{
	log_json = json;
}

/* The time as RFC 3339 with microseconds, UTC. */
/* RFC 3339 in UTC with microseconds; the date and time of day are made once a second per
 * thread, the rest by hand (a line per connection is logged: this is on the hot path). */
static void timestamp(char *ts, size_t len)
{
	static __thread time_t cached_sec = -1;
	static __thread char cached[32];
	static __thread size_t cached_len;
	struct timeval tv;
	long us;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != cached_sec) {
		struct tm tm;

		gmtime_r(&tv.tv_sec, &tm);
		cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_sec = tv.tv_sec;
	}
	if (len < cached_len + 9) {
		if (len)
			ts[0] = '\0';
		return;
	}
	memcpy(ts, cached, cached_len);
	ts += cached_len;
	*ts++ = '.';
	us = (long)tv.tv_usec;
	for (int i = 5; i >= 0; i--, us /= 10)
		ts[i] = (char)('0' + us % 10);
	ts[6] = 'Z';
	ts[7] = '\0';
}

static void write_line(const char *line, size_t n)
{
	ssize_t w = write(STDERR_FILENO, line, n);

	(void)w;
}

/* {"ts":...,"level":...,"msg":...,<fields as members>} from the key=value fields. */
static void emit_json(const char *ts, const char *level, const char *msg, const char *fields)
{
	char line[4096];
	struct log_buf b = { .p = line, .cap = sizeof(line) - 3 };	/* room for "}\n */

	b.len = (size_t)snprintf(line, b.cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
				 level);
	log_escape_json(&b, msg, strlen(msg));
	line[b.len++] = '"';
	b.len += log_fields_to_json(fields, line + b.len, sizeof(line) - 2 - b.len);
	line[b.len++] = '}';
	line[b.len++] = '\n';
	write_line(line, b.len);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void log_emit(enum log_level level, const char *msg, const char *fields, ...)
{
	char line[2048], ts[40];
	struct log_buf b = { .p = line, .cap = sizeof(line) - 1 };	/* room for the newline */
	va_list ap;

	if (!log_enabled(level))
		return;
	timestamp(ts, sizeof(ts));
	if (log_json) {
		char fbuf[2048];
		struct log_buf fb = { .p = fbuf, .cap = sizeof(fbuf) };

		if (fields) {
			va_start(ap, fields);
			log_format_fields(&fb, fields, ap);
			va_end(ap);
		}
		log_buf_end(&fb);
		emit_json(ts, level_names[level], msg, fbuf);
		return;
	}
	b.len = (size_t)snprintf(line, b.cap, "ts=%s level=%s msg=\"", ts, level_names[level]);
	b.cap--;	/* room for the closing quote */
	log_escape_quoted(&b, msg, strlen(msg));
	b.cap++;
	line[b.len++] = '"';
	if (fields) {
		log_buf_putc(&b, ' ');
		va_start(ap, fields);
		log_format_fields(&b, fields, ap);
		va_end(ap);
	}
	line[b.len++] = '\n';
	write_line(line, b.len);
}
