/* log: one-line key=value logs to stderr (upstream ztunnel's field names where they exist). */
#ifndef ZTUNNEL_LOG_H
#define ZTUNNEL_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* The level named "error", "warn", "info" or "debug", or -1 for any other name. */
int log_level_from_name(const char *name);
/* Parses "error", "warn", "info", "debug" (NULL or unknown: info). */
void log_set_level_name(const char *name);
bool log_enabled(enum log_level level);
/* The name of the current level. */
const char *log_level_name(void);
/* LOG_FORMAT=json: each line one JSON object with the same keys. */
void log_set_json(bool json);
/* Converts fields as log_emit writes them, k=v k2="v \"2\"" (quoted values with \" \\ \n \t
 * \r \xNN escapes), into JSON members ,"k":"v","k2":"v \"2\"" written to out (cap bytes,
 * always NUL-terminated; cut at a member's end, or inside its value which is still closed).
 * Returns the length written. */
size_t log_fields_to_json(const char *fields, char *out, size_t cap);
/*
 * Writes "ts=<rfc3339> level=<l> msg=\"<msg>\" <fields>" as one line with one write(2).
 * fields is a printf format producing space-separated key=value pairs (may be NULL); put a
 * value's quotes in the format (key=\"%s\"), never in an argument. Arguments are escaped by
 * where they land: in a quoted value \" \\ \n \t \r \xNN; a bare value (key=%s) stays bare
 * when harmless and is quoted and escaped when it is not (a space, '"', '\\', '=', a control
 * character, invalid UTF-8). msg is escaped the same way. With LOG_FORMAT=json the same fields
 * become JSON members.
 */
void log_emit(enum log_level level, const char *msg, const char *fields, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(msg, ...) log_emit(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_emit(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...) log_emit(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) \
	do { if (log_enabled(LOG_DEBUG)) log_emit(LOG_DEBUG, msg, __VA_ARGS__); } while (0)

#endif
