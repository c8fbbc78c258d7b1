/* log: formats and writes one-line key=value log records. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/log.h>

static int log_level = LOG_INFO;
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
