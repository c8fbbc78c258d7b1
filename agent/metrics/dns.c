/* metrics/dns: the DNS proxy's counters and upstream latency histogram, per worker shard. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "metrics-int.h"

static const char *const dns_label_names[4] = {
	"request_query_type", "request_protocol", "source_canonical_service",
	"source_canonical_revision",
};

static const uint64_t dns_bucket_us[METRICS_DNS_BUCKETS] = { 500, 1000, 10000, 100000, 1000000,
							     5000000 };
static const char *const dns_bucket_le[METRICS_DNS_BUCKETS + 1] = { "0.0005", "0.001", "0.01",
								    "0.1", "1.0", "5.0", "+Inf" };

static const char *value(const char *s)
{
	return s && *s ? s : "unknown";
}

static bool dns_matches(const struct metrics_dns_series *x, const char *const v[4])
{
	for (int i = 0; i < 4; i++)
		if (strcmp(x->label[i], v[i]) != 0)
			return false;
	return true;
}

static struct metrics_dns_series *dns_find_or_add(struct metrics_shard *s, const char *const v[4])
{
	struct metrics_dns_series *x;
	size_t len[4], total = 0;
	char *p;

	/* a shard has a few label sets (query types x protocols x the node's apps): a list */
	for (x = s->dns_head; x; x = x->next)
		if (dns_matches(x, v))
			return x;
	for (int i = 0; i < 4; i++) {
		len[i] = strnlen(v[i], METRICS_LABEL_MAX);
		total += len[i] + 1;
	}
	x = calloc(1, sizeof(*x) + total);
	if (!x)
		return NULL;
	p = x->text;
	for (int i = 0; i < 4; i++) {
		memcpy(p, v[i], len[i]);
		p[len[i]] = '\0';
		x->label[i] = p;
		p += len[i] + 1;
	}
	x->next = s->dns_head;
	__atomic_store_n(&s->dns_head, x, __ATOMIC_RELEASE);
	s->n_dns++;
	return x;
}

struct metrics_dns_series *metrics_dns_series_get(struct metrics_shard *s,
						  const struct metrics_dns_labels *l)
{
	static const char *const unknown[4] = { "unknown", "unknown", "unknown", "unknown" };
	const char *v[4];
	struct metrics_dns_series *x;

	if (!s || !l) {
		errno = EINVAL;
		return NULL;
	}
	v[0] = value(l->request_query_type);
	v[1] = value(l->request_protocol);
	v[2] = value(l->source_canonical_service);
	v[3] = value(l->source_canonical_revision);
	for (x = s->dns_head; x; x = x->next)
		if (dns_matches(x, v))
			return x;
	if (s->n_dns >= METRICS_DNS_MAX_SERIES)
		return dns_find_or_add(s, unknown);	/* bounded: the rest counts as unknown */
	return dns_find_or_add(s, v);
}

void metrics_dns_count(struct metrics_dns_series *x, enum metrics_dns_counter c)
{
	if (x && (unsigned)c < METRICS_DNS_COUNTERS)
		__atomic_fetch_add(&x->count[c], 1, __ATOMIC_RELAXED);
}

void metrics_dns_duration(struct metrics_dns_series *x, uint64_t ms)
{
	uint64_t us = ms * 1000;
	int b = 0;

	if (!x)
		return;
	while (b < METRICS_DNS_BUCKETS && us > dns_bucket_us[b])
		b++;
	__atomic_fetch_add(&x->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&x->duration_us, us, __ATOMIC_RELAXED);
}

void metrics_dns_drop(struct metrics *m, enum metrics_dns_drop why)
{
	if (m && (unsigned)why < METRICS_DNS_DROPS)
		__atomic_fetch_add(&m->dns_dropped[why], 1, __ATOMIC_RELAXED);
}

void metrics_dns_shard_free(struct metrics_shard *s)
{
	struct metrics_dns_series *x, *nx;

	for (x = s->dns_head; x; x = nx) {
		nx = x->next;
		free(x);
	}
	s->dns_head = NULL;
}

/* A label set summed over the shards. */
struct dns_group {
	const struct metrics_dns_series *rep;
	uint64_t count[METRICS_DNS_COUNTERS];
	uint64_t bucket[METRICS_DNS_BUCKETS + 1];
	uint64_t duration_us;
};

static void load_into(struct dns_group *g, const struct metrics_dns_series *x)
{
	for (int c = 0; c < METRICS_DNS_COUNTERS; c++)
		g->count[c] += __atomic_load_n(&x->count[c], __ATOMIC_RELAXED);
	for (int b = 0; b <= METRICS_DNS_BUCKETS; b++)
		g->bucket[b] += __atomic_load_n(&x->bucket[b], __ATOMIC_RELAXED);
	g->duration_us += __atomic_load_n(&x->duration_us, __ATOMIC_RELAXED);
}

static int dns_collect(struct metrics *m, struct dns_group **out, size_t *n)
{
	struct dns_group *g = NULL;
	size_t cap = 0, ng = 0;

	for (int i = 0; i < METRICS_MAX_SHARDS; i++) {
		struct metrics_shard *s = __atomic_load_n(&m->shard[i], __ATOMIC_ACQUIRE);

		if (!s)
			continue;
		for (const struct metrics_dns_series *x = __atomic_load_n(&s->dns_head,
									  __ATOMIC_ACQUIRE);
		     x; x = x->next) {
			size_t k;

			for (k = 0; k < ng && !dns_matches(g[k].rep, x->label); k++)
				;
			if (k == ng) {
				if (ng == cap) {
					size_t nc = cap ? cap * 2 : 16;
					struct dns_group *ngp = realloc(g, nc * sizeof(*g));

					if (!ngp) {
						free(g);
						return -ENOMEM;
					}
					g = ngp;
					cap = nc;
				}
				memset(&g[ng], 0, sizeof(g[ng]));
				g[ng++].rep = x;
			}
			load_into(&g[k], x);
		}
	}
	*out = g;
	*n = ng;
	return 0;
}

static void escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', out);
		if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

static void labels(FILE *out, const struct metrics_dns_series *x, const char *le)
{
	for (int i = 0; i < 4; i++) {
		fprintf(out, "%c%s=\"", i ? ',' : '{', dns_label_names[i]);
		escaped(out, x->label[i]);
		fputc('"', out);
	}
	if (le)
		fprintf(out, ",le=\"%s\"", le);
	fputc('}', out);
}

int metrics_dns_render(struct metrics *m, FILE *out)
{
	static const struct {
		const char *name, *help;
	} fam[METRICS_DNS_COUNTERS] = {
		{ "istio_dns_requests_total", "Total number of DNS requests (unstable)" },
		{ "istio_dns_upstream_requests_total",
		  "Total number of DNS requests forwarded to upstream (unstable)" },
		{ "istio_dns_upstream_failures_total",
		  "Total number of DNS requests that failed to forward upstream (unstable)" },
	};
	static const char *const drop_reason[METRICS_DNS_DROPS] = { "malformed", "oversized",
								    "overload" };
	const char *hname = "istio_dns_upstream_request_duration_seconds";
	struct dns_group *g;
	size_t ng;
	int err = dns_collect(m, &g, &ng);

	if (err)
		return err;
	for (int c = 0; c < METRICS_DNS_COUNTERS; c++) {
		fprintf(out, "# HELP %s %s.\n# TYPE %s counter\n", fam[c].name, fam[c].help,
			fam[c].name);
		for (size_t k = 0; k < ng; k++) {
			fputs(fam[c].name, out);
			labels(out, g[k].rep, NULL);
			fprintf(out, " %" PRIu64 "\n", g[k].count[c]);
		}
	}
	fprintf(out, "# HELP %s Total time in seconds Istio takes to get DNS response from upstream "
		     "(unstable).\n# TYPE %s histogram\n", hname, hname);
	for (size_t k = 0; k < ng; k++) {
		uint64_t cum = 0;

		if (!g[k].count[METRICS_DNS_UPSTREAM_REQUESTS])
			continue;
		for (int b = 0; b <= METRICS_DNS_BUCKETS; b++) {
			cum += g[k].bucket[b];
			fprintf(out, "%s_bucket", hname);
			labels(out, g[k].rep, dns_bucket_le[b]);
			fprintf(out, " %" PRIu64 "\n", cum);
		}
		fprintf(out, "%s_sum", hname);
		labels(out, g[k].rep, NULL);
		fprintf(out, " %" PRIu64 ".%06" PRIu64 "\n", g[k].duration_us / 1000000,
			g[k].duration_us % 1000000);
		fprintf(out, "%s_count", hname);
		labels(out, g[k].rep, NULL);
		fprintf(out, " %" PRIu64 "\n", cum);
	}
	fputs("# HELP ztunnel_dns_dropped_total DNS messages the proxy dropped, by reason.\n"
	      "# TYPE ztunnel_dns_dropped_total counter\n", out);
	for (int r = 0; r < METRICS_DNS_DROPS; r++)
		fprintf(out, "ztunnel_dns_dropped_total{reason=\"%s\"} %" PRIu64 "\n", drop_reason[r],
			__atomic_load_n(&m->dns_dropped[r], __ATOMIC_RELAXED));
	free(g);
	return 0;
}
