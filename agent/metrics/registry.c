/* metrics registry: shards, series find-or-create, lock-free counters and gauges. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "metrics-int.h"

#define LABEL_FIELD(f) offsetof(struct metrics_labels, f)

static const size_t metrics_label_offsets[METRICS_NLABELS] = {
	LABEL_FIELD(reporter),
	LABEL_FIELD(source_workload),
	LABEL_FIELD(source_canonical_service),
	LABEL_FIELD(source_canonical_revision),
	LABEL_FIELD(source_workload_namespace),
	LABEL_FIELD(source_principal),
	LABEL_FIELD(source_app),
	LABEL_FIELD(source_version),
	LABEL_FIELD(source_cluster),
	LABEL_FIELD(destination_service),
	LABEL_FIELD(destination_service_namespace),
	LABEL_FIELD(destination_service_name),
	LABEL_FIELD(destination_workload),
	LABEL_FIELD(destination_canonical_service),
	LABEL_FIELD(destination_canonical_revision),
	LABEL_FIELD(destination_workload_namespace),
	LABEL_FIELD(destination_principal),
	LABEL_FIELD(destination_app),
	LABEL_FIELD(destination_version),
	LABEL_FIELD(destination_cluster),
	LABEL_FIELD(request_protocol),
	LABEL_FIELD(response_flags),
	LABEL_FIELD(connection_security_policy),
};

const char *const metrics_label_names[METRICS_NLABELS] = {
	"reporter",
	"source_workload",
	"source_canonical_service",
	"source_canonical_revision",
	"source_workload_namespace",
	"source_principal",
	"source_app",
	"source_version",
	"source_cluster",
	"destination_service",
	"destination_service_namespace",
	"destination_service_name",
	"destination_workload",
	"destination_canonical_service",
	"destination_canonical_revision",
	"destination_workload_namespace",
	"destination_principal",
	"destination_app",
	"destination_version",
	"destination_cluster",
	"request_protocol",
	"response_flags",
	"connection_security_policy",
};

_Static_assert(sizeof(struct metrics_labels) == METRICS_NLABELS * sizeof(const char *),
	       "metrics_labels and the label tables disagree");

/* A label value as stored: NULL or "" is "unknown"; cut at METRICS_LABEL_MAX bytes on a UTF-8
 * character boundary. */
struct label_view {
	const char *s;
	size_t len;
};

static struct label_view label_normalize(const struct metrics_labels *l, int i)
{
	const char *s = *(const char *const *)((const char *)l + metrics_label_offsets[i]);
	struct label_view v;

	if (!s || !*s)
		s = "unknown";
	v.s = s;
	v.len = strnlen(s, METRICS_LABEL_MAX + 1);
	if (v.len > METRICS_LABEL_MAX) {
		v.len = METRICS_LABEL_MAX;
		/* do not split a multi-byte character: back up over continuation bytes */
		while (v.len > 0 && ((unsigned char)s[v.len] & 0xc0) == 0x80)
			v.len--;
	}
	return v;
}

static uint64_t label_hash(const struct label_view *v)
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a */

	for (int i = 0; i < METRICS_NLABELS; i++) {
		for (size_t k = 0; k < v[i].len; k++)
			h = (h ^ (unsigned char)v[i].s[k]) * 0x100000001b3ULL;
		h = (h ^ 0xff) * 0x100000001b3ULL;	/* separator: no byte of UTF-8 text */
	}
	return h;
}

static int series_matches(const struct metrics_series *x, uint64_t h, const struct label_view *v)
{
	if (x->hash != h)
		return 0;
	for (int i = 0; i < METRICS_NLABELS; i++)
		if (strlen(x->label[i]) != v[i].len || memcmp(x->label[i], v[i].s, v[i].len))
			return 0;
	return 1;
}

static struct metrics_series *series_alloc(uint64_t h, const struct label_view *v)
{
	struct metrics_series *x;
	size_t total = 0;
	char *p;

	for (int i = 0; i < METRICS_NLABELS; i++)
		total += v[i].len + 1;
	x = calloc(1, sizeof(*x) + total);
	if (!x)
		return NULL;
	x->hash = h;
	p = x->text;
	for (int i = 0; i < METRICS_NLABELS; i++) {
		memcpy(p, v[i].s, v[i].len);
		p[v[i].len] = '\0';
		x->label[i] = p;
		p += v[i].len + 1;
	}
	return x;
}

/* Doubles the owner's hash index; on ENOMEM the old one stays (only longer chains). */
static void shard_grow(struct metrics_shard *s)
{
	size_t n = s->nbuckets * 2;
	struct metrics_series **idx = calloc(n, sizeof(*idx));

	if (!idx)
		return;
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct metrics_series *x = s->index[b], *nx;

		for (; x; x = nx) {
			nx = x->hnext;
			x->hnext = idx[x->hash & (n - 1)];
			idx[x->hash & (n - 1)] = x;
		}
	}
	free(s->index);
	s->index = idx;
	s->nbuckets = n;
}

struct metrics_series *metrics_series_get(struct metrics_shard *s, const struct metrics_labels *l)
{
	struct label_view v[METRICS_NLABELS];
	struct metrics_series *x;
	uint64_t h;

	if (!s || !l) {
		errno = EINVAL;
		return NULL;
	}
	for (int i = 0; i < METRICS_NLABELS; i++)
		v[i] = label_normalize(l, i);
	h = label_hash(v);
	for (x = s->index[h & (s->nbuckets - 1)]; x; x = x->hnext)
		if (series_matches(x, h, v))
			return x;
	if (s->nseries >= METRICS_MAX_SERIES_PER_SHARD) {
		errno = ENOSPC;
		return NULL;
	}
	x = series_alloc(h, v);
	if (!x)
		return NULL;
	x->hnext = s->index[h & (s->nbuckets - 1)];
	s->index[h & (s->nbuckets - 1)] = x;
	/* labels are complete before the renderer can see the series */
	x->next = __atomic_load_n(&s->head, __ATOMIC_RELAXED);
	__atomic_store_n(&s->head, x, __ATOMIC_RELEASE);
	if (++s->nseries > s->nbuckets)
		shard_grow(s);
	return x;
}

struct metrics *metrics_new(void)
{
	return calloc(1, sizeof(struct metrics));
}

static void shard_free(struct metrics_shard *s)
{
	struct metrics_series *x, *nx;

	for (x = s->head; x; x = nx) {
		nx = x->next;
		free(x);
	}
	metrics_dns_shard_free(s);
	free(s->index);
	free(s);
}

void metrics_free(struct metrics **m)
{
	if (!m || !*m)
		return;
	for (int i = 0; i < METRICS_MAX_SHARDS; i++)
		if ((*m)->shard[i])
			shard_free((*m)->shard[i]);
	free(*m);
	*m = NULL;
}

struct metrics_shard *metrics_shard_new(struct metrics *m)
{
	struct metrics_shard *s;
	unsigned slot;

	if (!m) {
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->nbuckets = 64;
	s->index = calloc(s->nbuckets, sizeof(*s->index));
	if (!s->index)
		goto fail;
	slot = __atomic_fetch_add(&m->claimed, 1, __ATOMIC_RELAXED);
	if (slot >= METRICS_MAX_SHARDS) {
		errno = ENOSPC;
		goto fail;
	}
	__atomic_store_n(&m->shard[slot], s, __ATOMIC_RELEASE);
	return s;
fail:
	free(s->index);
	free(s);
	return NULL;
}

static void series_add(struct metrics_series *x, enum metrics_counter c, uint64_t n)
{
	if (x && n)
		__atomic_fetch_add(&x->count[c], n, __ATOMIC_RELAXED);
}

void metrics_conn_opened(struct metrics_series *x)
{
	series_add(x, METRICS_C_OPENED, 1);
}

void metrics_conn_closed(struct metrics_series *x)
{
	series_add(x, METRICS_C_CLOSED, 1);
}

void metrics_conn_failed(struct metrics_series *x)
{
	series_add(x, METRICS_C_FAILED, 1);
}

void metrics_bytes(struct metrics_series *x, uint64_t sent, uint64_t received)
{
	series_add(x, METRICS_C_SENT, sent);
	series_add(x, METRICS_C_RECEIVED, received);
}

void metrics_gauge_add(struct metrics *m, enum metrics_gauge g, int64_t delta)
{
	if (m && (unsigned)g < METRICS_GAUGES)
		__atomic_fetch_add(&m->gauge[g], delta, __ATOMIC_RELAXED);
}

void metrics_gauge_set(struct metrics *m, enum metrics_gauge g, int64_t value)
{
	if (m && (unsigned)g < METRICS_GAUGES)
		__atomic_store_n(&m->gauge[g], value, __ATOMIC_RELAXED);
}

int64_t metrics_gauge_get(struct metrics *m, enum metrics_gauge g)
{
	if (!m || (unsigned)g >= METRICS_GAUGES)
		return 0;
	return __atomic_load_n(&m->gauge[g], __ATOMIC_RELAXED);
}

void metrics_pod_started(struct metrics *m)
{
	if (m)
		__atomic_fetch_add(&m->pods_started, 1, __ATOMIC_RELAXED);
}

void metrics_set_redirect_backend(struct metrics *m, const char *name)
{
	if (m)
		m->redirect_backend = name;
}

void metrics_redirected(struct metrics *m, enum metrics_redirected direction)
{
	if (m && (unsigned)direction < METRICS_REDIRECTED_DIRECTIONS)
		__atomic_fetch_add(&m->redirected[direction], 1, __ATOMIC_RELAXED);
}
