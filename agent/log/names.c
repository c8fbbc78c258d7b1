/* access names: the text of access records, interned per thread and shared between records. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/access.h>
#include <ztunnel/hash.h>

/*
 * One text (a workload name, namespace, SPIFFE identity or service hostname) held by every
 * record of this thread that names it: a stream carries pointers, not 1.6 KiB of fixed
 * buffers. Records never leave the worker thread that made them (a connection never
 * migrates), so the table and its counts need no lock. Entries go when their last record does.
 */
struct access_name {
	struct access_name *next;	/* in its bucket */
	uint32_t hash;
	uint32_t refs;
	char text[];			/* NUL-terminated */
};

#define NAME_BUCKETS 1024	/* chains stay short up to thousands of distinct names */

static __thread struct access_name *names[NAME_BUCKETS];
static __thread unsigned names_n;

/* the caps of the fixed buffers these replace: what the log and labels showed is unchanged */
static const size_t field_max[ACCESS_NAMES] = {
	[ACCESS_SRC_WORKLOAD] = 127,	[ACCESS_SRC_NAMESPACE] = 63,
	[ACCESS_SRC_IDENTITY] = TLS_SPIFFE_MAX - 1,	[ACCESS_DST_WORKLOAD] = 127,
	[ACCESS_DST_NAMESPACE] = 63,	[ACCESS_DST_IDENTITY] = TLS_SPIFFE_MAX - 1,
	[ACCESS_DST_SERVICE] = 255,
};

static struct access_name *of(const char *text)
{
	return (struct access_name *)(text - offsetof(struct access_name, text));
}

/* The interned copy of s[0..len), one reference taken; NULL when out of memory. */
static const char *name_get(const char *s, size_t len)
{
	uint32_t h = hash_fnv1a(HASH_FNV_INIT, s, len);
	struct access_name **b = &names[h % NAME_BUCKETS], *n;

	for (n = *b; n; n = n->next)
		if (n->hash == h && strncmp(n->text, s, len) == 0 && !n->text[len]) {
			n->refs++;
			return n->text;
		}
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		return NULL;
	n->hash = h;
	n->refs = 1;
	memcpy(n->text, s, len);
	n->text[len] = '\0';
	n->next = *b;
	*b = n;
	names_n++;
	return n->text;
}

static void name_put(const char **text)
{
	struct access_name *n, **pp;

	if (!*text)
		return;
	n = of(*text);
	*text = NULL;
	if (--n->refs)
		return;
	for (pp = &names[n->hash % NAME_BUCKETS]; *pp != n; pp = &(*pp)->next)
		;
	*pp = n->next;
	names_n--;
	free(n);
}

int access_set(struct access_record *rec, enum access_name_field f, const char *value)
{
	size_t len = value ? strnlen(value, field_max[f]) : 0;
	const char *text = len ? name_get(value, len) : NULL;

	if (len && !text)
		return -ENOMEM;
	name_put(&rec->names[f]);
	rec->names[f] = text;
	return 0;
}

const char *access_get(const struct access_record *rec, enum access_name_field f)
{
	return rec->names[f] ? rec->names[f] : "";
}

void access_names_release(struct access_record *rec)
{
	for (int f = 0; f < ACCESS_NAMES; f++)
		name_put(&rec->names[f]);
}

unsigned access_names_count(void)
{
	return names_n;
}
