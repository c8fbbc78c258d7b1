/* log format: printf for key=value fields, each argument escaped by where it lands. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "log-int.h"

/* One conversion of the format: %[flags][width][.precision][length]conversion. */
struct conv_spec {
	char flags[8];
	int width, prec;	/* -1 when absent */
	char len[3];		/* "", "hh", "h", "l", "ll", "z", "j", "t" or "L" */
	char conv;
};

/* Where the formatter is in the line it writes. */
struct fields {
	struct log_buf *b;
	bool quoted;		/* between the format's own quotes: key="..." */
	bool in_value;		/* after the '=' of the current field */
	bool auto_quoted;	/* a bare value this formatter quoted because of an argument */
	size_t value_start;	/* where the current value begins in b */
};

static const char *parse_spec(const char *f, struct conv_spec *sp, va_list *ap)
{
	size_t n = 0;

	memset(sp, 0, sizeof(*sp));
	sp->width = sp->prec = -1;
	while (*f && strchr("-+ #0'", *f) && n < sizeof(sp->flags) - 1)
		sp->flags[n++] = *f++;
	if (*f == '*') {
		sp->width = va_arg(*ap, int);
		f++;
		if (sp->width < 0) {	/* as printf: a negative width is '-' and its size */
			sp->width = -sp->width;
			if (n < sizeof(sp->flags) - 1)
				sp->flags[n++] = '-';
		}
	} else {
		for (sp->width = *f >= '0' && *f <= '9' ? 0 : -1; *f >= '0' && *f <= '9'; f++)
			sp->width = sp->width * 10 + (*f - '0');
	}
	if (*f == '.') {
		f++;
		sp->prec = 0;
		if (*f == '*') {
			sp->prec = va_arg(*ap, int);
			f++;
		}
		for (; *f >= '0' && *f <= '9'; f++)
			sp->prec = sp->prec * 10 + (*f - '0');
	}
	n = 0;
	while (*f && strchr("hlzjtL", *f) && n < sizeof(sp->len) - 1)
		sp->len[n++] = *f++;
	sp->conv = *f;
	return *f ? f + 1 : NULL;
}

/* Decimal digits of v (with a '-' if neg) into out, which has room for 21 bytes. */
static size_t put_decimal(char *out, unsigned long long v, bool neg)
{
	char d[24];
	size_t n = 0, i = 0;

	do
		d[n++] = (char)('0' + v % 10);
	while (v /= 10);
	if (neg)
		d[n++] = '-';
	for (; i < n; i++)
		out[i] = d[n - 1 - i];
	out[n] = '\0';
	return n;
}

/* A plain %d, %i or %u (no flags, width or precision; int, long, long long, size_t, intmax_t
 * or ptrdiff_t), the log's most common numbers, without printf. false: not one of those. */
static bool plain_integer(const struct conv_spec *sp, va_list *ap, char *out, size_t cap,
			  size_t *len)
{
	const char *l = sp->len;
	unsigned long long v;
	bool neg = false;

	if (sp->flags[0] || sp->width >= 0 || sp->prec >= 0 || !strchr("diu", sp->conv) ||
	    cap < 22 || l[0] == 'h' || l[0] == 'L')
		return false;
	if (sp->conv == 'u') {
		v = !strcmp(l, "l")			? va_arg(*ap, unsigned long) :
		    !strcmp(l, "ll")			? va_arg(*ap, unsigned long long) :
		    !strcmp(l, "z") || !strcmp(l, "t")	? va_arg(*ap, size_t) :
		    !strcmp(l, "j")			? va_arg(*ap, uintmax_t) :
							  va_arg(*ap, unsigned int);
	} else {
		long long s = !strcmp(l, "l")  ? va_arg(*ap, long) :
			      !strcmp(l, "ll") ? va_arg(*ap, long long) :
			      !strcmp(l, "z")  ? va_arg(*ap, ssize_t) :
			      !strcmp(l, "j")  ? va_arg(*ap, intmax_t) :
			      !strcmp(l, "t")  ? va_arg(*ap, ptrdiff_t) :
						 va_arg(*ap, int);

		neg = s < 0;
		v = neg ? 0ULL - (unsigned long long)s : (unsigned long long)s;
	}
	*len = put_decimal(out, v, neg);
	return true;
}

/* snprintf of one numeric, character or pointer conversion; the argument is taken by type. */
static size_t render_scalar(const struct conv_spec *sp, va_list *ap, char *out, size_t cap)
{
	char f[40];
	const char *l = sp->len;
	size_t plain;
	int n;

	if (plain_integer(sp, ap, out, cap, &plain))
		return plain;
	n = snprintf(f, sizeof(f), "%%%s", sp->flags);

	if (sp->width >= 0)
		n += snprintf(f + n, sizeof(f) - (size_t)n, "%d", sp->width);
	if (sp->prec >= 0)
		n += snprintf(f + n, sizeof(f) - (size_t)n, ".%d", sp->prec);
	snprintf(f + n, sizeof(f) - (size_t)n, "%s%c", l, sp->conv);
	if (strchr("di", sp->conv)) {
		if (!strcmp(l, "l"))
			n = snprintf(out, cap, f, va_arg(*ap, long));
		else if (!strcmp(l, "ll"))
			n = snprintf(out, cap, f, va_arg(*ap, long long));
		else if (!strcmp(l, "z"))
			n = snprintf(out, cap, f, va_arg(*ap, ssize_t));
		else if (!strcmp(l, "j"))
			n = snprintf(out, cap, f, va_arg(*ap, intmax_t));
		else if (!strcmp(l, "t"))
			n = snprintf(out, cap, f, va_arg(*ap, ptrdiff_t));
		else
			n = snprintf(out, cap, f, va_arg(*ap, int));
	} else if (strchr("ouxX", sp->conv)) {
		if (!strcmp(l, "l"))
			n = snprintf(out, cap, f, va_arg(*ap, unsigned long));
		else if (!strcmp(l, "ll"))
			n = snprintf(out, cap, f, va_arg(*ap, unsigned long long));
		else if (!strcmp(l, "z") || !strcmp(l, "t"))
			n = snprintf(out, cap, f, va_arg(*ap, size_t));
		else if (!strcmp(l, "j"))
			n = snprintf(out, cap, f, va_arg(*ap, uintmax_t));
		else
			n = snprintf(out, cap, f, va_arg(*ap, unsigned int));
	} else if (sp->conv == 'c') {
		n = snprintf(out, cap, f, va_arg(*ap, int));
	} else if (sp->conv == 'p') {
		n = snprintf(out, cap, f, va_arg(*ap, void *));
	} else if (!strcmp(l, "L")) {
		n = snprintf(out, cap, f, va_arg(*ap, long double));
	} else {
		n = snprintf(out, cap, f, va_arg(*ap, double));
	}
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* Quotes the current bare value from its start: what follows is escaped until it ends. */
static void start_quote(struct fields *fs)
{
	struct log_buf *b = fs->b;

	if (b->full || b->len + 1 >= b->cap) {
		b->full = true;
		return;
	}
	memmove(b->p + fs->value_start + 1, b->p + fs->value_start, b->len - fs->value_start);
	b->p[fs->value_start] = '"';
	b->len++;
	fs->auto_quoted = true;
}

/* Writes an argument's text: escaped in a quoted value; in a bare one as is when harmless,
 * else the value becomes quoted. In a key (no '=' yet) it is escaped in place. */
static void put_arg(struct fields *fs, const char *s, size_t n)
{
	if (fs->in_value && !fs->quoted && !fs->auto_quoted) {
		if (!log_needs_quotes(s, n)) {
			log_buf_put(fs->b, s, n);
			return;
		}
		start_quote(fs);
	}
	log_escape_quoted(fs->b, s, n);
}

static void end_value(struct fields *fs)
{
	if (fs->auto_quoted) {
		log_buf_putc(fs->b, '"');
		if (fs->b->full)
			return;	/* log_format_fields closes it in the room it kept */
	}
	fs->auto_quoted = false;
	fs->in_value = false;
}

/* A character of the format itself: its quotes, spaces and '=' give the line its shape. */
static void put_literal(struct fields *fs, char c)
{
	if (fs->quoted) {
		fs->quoted = c != '"';
		log_buf_putc(fs->b, c);
		return;
	}
	if (c == ' ')
		end_value(fs);
	else if (c == '"' && !fs->auto_quoted)
		fs->quoted = true;
	else if (c == '=' && !fs->in_value)
		fs->in_value = true, fs->value_start = fs->b->len + 1;
	if (fs->auto_quoted)
		log_escape_quoted(fs->b, &c, 1);
	else
		log_buf_putc(fs->b, c);
}

static void put_string(struct fields *fs, const struct conv_spec *sp, const char *s)
{
	size_t n, pad = 0;
	bool left = strchr(sp->flags, '-') != NULL;

	if (!s)
		s = "(null)";
	n = sp->prec >= 0 ? strnlen(s, (size_t)sp->prec) : strlen(s);
	if (sp->width > 0 && (size_t)sp->width > n)
		pad = (size_t)sp->width - n;
	for (; !left && pad; pad--)
		put_arg(fs, " ", 1);
	put_arg(fs, s, n);
	for (; pad; pad--)
		put_arg(fs, " ", 1);
}

static const char *put_conversion(struct fields *fs, const char *f, va_list *ap)
{
	struct conv_spec sp;
	const char *next = parse_spec(f, &sp, ap);
	char tmp[512];

	if (!next || !strchr("diouxXcpsfFeEgGaA%", sp.conv)) {
		put_literal(fs, '%');	/* not a conversion we know: the text as written */
		return f;
	}
	if (sp.conv == '%')
		put_literal(fs, '%');
	else if (sp.conv == 's')
		put_string(fs, &sp, va_arg(*ap, const char *));
	else
		put_arg(fs, tmp, render_scalar(&sp, ap, tmp, sizeof(tmp)));
	return next;
}

void log_format_fields(struct log_buf *b, const char *fmt, va_list ap)
{
	struct fields fs = { .b = b };
	va_list aq;

	if (b->cap < 2)
		return;
	b->cap--;	/* room to close a value left quoted */
	va_copy(aq, ap);
	while (fmt && *fmt && !b->full) {
		if (*fmt == '%')
			fmt = put_conversion(&fs, fmt + 1, &aq);
		else
			put_literal(&fs, *fmt++);
	}
	va_end(aq);
	b->cap++;
	/* the last value quoted by an argument ends here; a line cut in a quoted value too */
	if (fs.quoted || fs.auto_quoted)
		b->p[b->len++] = '"';
}
