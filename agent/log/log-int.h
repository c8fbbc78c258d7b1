/* log-int: the log module's private pieces, shared by log.c, format.c and escape.c. */
#ifndef ZTUNNEL_LOG_INT_H
#define ZTUNNEL_LOG_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * A bounded output buffer (p is borrowed; len < cap always, p[len] is not written until
 * log_buf_end). A piece that does not fit whole is dropped and sets full: a line is cut
 * between escape sequences, never inside one.
 */
struct log_buf {
	char *p;
	size_t len, cap;
	bool full;
};

void log_buf_put(struct log_buf *b, const char *s, size_t n);
void log_buf_putc(struct log_buf *b, char c);
/* NUL-terminates the buffer and returns its length. */
size_t log_buf_end(struct log_buf *b);

/* Length of the valid UTF-8 sequence starting at s (n bytes available), 0 if it is not one. */
size_t log_utf8_len(const unsigned char *s, size_t n);
/* True when a bare (unquoted) key=value value holding s[0..n) must be quoted to stay one
 * value: a space, '"', '\', '=', a control character or invalid UTF-8. */
bool log_needs_quotes(const char *s, size_t n);
/* Appends s[0..n) as the inside of a quoted key=value value: \" \\ \n \t \r, other control
 * characters and invalid UTF-8 bytes as \xNN; valid UTF-8 as is. */
void log_escape_quoted(struct log_buf *b, const char *s, size_t n);
/* Appends s[0..n) as the inside of a JSON string: \" \\ \n \t \r, other control characters
 * as \u00NN, invalid UTF-8 bytes as U+FFFD. */
void log_escape_json(struct log_buf *b, const char *s, size_t n);

/*
 * Formats fields, a printf format of space-separated key=value pairs, into b. Arguments are
 * escaped by where they land in the format: inside a quoted value (key="...%s...") with
 * log_escape_quoted; in a bare value (key=%s), as is when harmless, else the whole value is
 * quoted and escaped. Supports the C99 conversions except %n.
 */
void log_format_fields(struct log_buf *b, const char *fmt, va_list ap);

#endif
