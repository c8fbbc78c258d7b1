/* metrics render: Prometheus text exposition (0.0.4), summing each label set over shards. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "metrics-int.h"

#ifndef ZTUNNEL_VERSION
#define ZTUNNEL_VERSION "0.1.0-c"
#endif

/* One label tuple summed over the shards; labels borrowed from one of its series. */
struct render_group {
	const struct metrics_series *rep;
	uint64_t count[METRICS_COUNTERS];
};

struct render_family {
	const char *name, *help;
	enum metrics_counter counter;
};

static const struct render_family render_families[] = {
	{ "istio_tcp_connections_opened_total", "The total number of TCP connections opened",
	  METRICS_C_OPENED },
	{ "istio_tcp_connections_closed_total", "The total number of TCP connections closed",
	  METRICS_C_CLOSED },
	{ "istio_tcp_received_bytes_total",
	  "The size of total bytes received during request in case of a TCP connection",
	  METRICS_C_RECEIVED },
	{ "istio_tcp_sent_bytes_total",
	  "The size of total bytes sent during response in case of a TCP connection",
	  METRICS_C_SENT },
	{ "istio_tcp_connections_failed_total", "The total number of TCP connections that failed",
	  METRICS_C_FAILED },
};

static const struct {
	const char *name, *help;
} render_gauges[METRICS_GAUGES] = {
	[METRICS_ACTIVE_CONNECTIONS] = { "ztunnel_active_connections",
					 "The number of proxied connections currently open" },
	[METRICS_POOLED_CONNECTIONS] = { "ztunnel_pooled_connections",
					 "The number of HBONE connections in the client pools" },
	[METRICS_ENROLLED_PODS] = { "active_proxy_count",
				    "The number of pods the agent currently proxies" },
	[METRICS_CERT_EXPIRY_SECONDS] = { "ztunnel_certificate_expiry_seconds",
					  "The earliest workload certificate expiry, unix time" },
};

static int render_cmp(const void *a, const void *b)
{
	const struct metrics_series *x = *(const struct metrics_series *const *)a;
	const struct metrics_series *y = *(const struct metrics_series *const *)b;

	for (int i = 0; i < METRICS_NLABELS; i++) {
		int c = strcmp(x->label[i], y->label[i]);

		if (c)
			return c;
	}
	return 0;
}

/* Snapshots every published series (acquire loads); the caller frees *out. */
static int render_collect(struct metrics *m, const struct metrics_series ***out, size_t *n)
{
	const struct metrics_series **v = NULL, **nv;
	size_t len = 0, cap = 0;

	for (int i = 0; i < METRICS_MAX_SHARDS; i++) {
		struct metrics_shard *s = __atomic_load_n(&m->shard[i], __ATOMIC_ACQUIRE);
		const struct metrics_series *x;

		if (!s)
			continue;
		for (x = __atomic_load_n(&s->head, __ATOMIC_ACQUIRE); x; x = x->next) {
			if (len == cap) {
				cap = cap ? cap * 2 : 64;
				nv = realloc(v, cap * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[len++] = x;
		}
	}
	*out = v;
	*n = len;
	return 0;
}

/* Sorts the series by label tuple and sums equal tuples into groups (in place of the input). */
static int render_group_series(const struct metrics_series **v, size_t n,
			       struct render_group **out, size_t *ngroups)
{
	struct render_group *g;
	size_t k = 0;

	*out = NULL;
	*ngroups = 0;
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), render_cmp);
	g = calloc(n, sizeof(*g));
	if (!g)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || render_cmp(&v[i - 1], &v[i]) != 0)
			g[k++].rep = v[i];
		for (int c = 0; c < METRICS_COUNTERS; c++)
			g[k - 1].count[c] += __atomic_load_n(&v[i]->count[c], __ATOMIC_RELAXED);
	}
	*out = g;
	*ngroups = k;
	return 0;
}

/* Writes a label value escaped as the text format wants: \\, \" and \n. */
static void render_escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '"')
			fputs("\\\"", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			putc(*s, out);
	}
}

static void render_header(FILE *out, const char *name, const char *help, const char *type)
{
	fprintf(out, "# HELP %s %s.\n# TYPE %s %s\n", name, help, name, type);
}

static void render_family(FILE *out, const struct render_family *f, const struct render_group *g,
			  size_t n)
{
	render_header(out, f->name, f->help, "counter");
	for (size_t i = 0; i < n; i++) {
		fputs(f->name, out);
		for (int l = 0; l < METRICS_NLABELS; l++) {
			fprintf(out, "%c%s=\"", l ? ',' : '{', metrics_label_names[l]);
			render_escaped(out, g[i].rep->label[l]);
			putc('"', out);
		}
		fprintf(out, "} %" PRIu64 "\n", g[i].count[f->counter]);
	}
}

static void render_agent(struct metrics *m, FILE *out)
{
	for (int i = 0; i < METRICS_GAUGES; i++) {
		render_header(out, render_gauges[i].name, render_gauges[i].help, "gauge");
		fprintf(out, "%s %" PRId64 "\n", render_gauges[i].name, metrics_gauge_get(m, i));
	}
	render_header(out, "proxies_started_total", "The total number of pods enrolled since start",
		      "counter");
	fprintf(out, "proxies_started_total %" PRIu64 "\n",
		__atomic_load_n(&m->pods_started, __ATOMIC_RELAXED));
	if (m->redirect_backend) {
		static const char *const dir[METRICS_REDIRECTED_DIRECTIONS] = { "outbound",
										"inbound" };

		render_header(out, "ztunnel_redirected_connections_total",
			      "Connections the capture backend delivered to the pod listeners "
			      "(outbound 15001, inbound 15006)", "counter");
		for (int i = 0; i < METRICS_REDIRECTED_DIRECTIONS; i++)
			fprintf(out, "ztunnel_redirected_connections_total{backend=\"%s\","
				"direction=\"%s\"} %" PRIu64 "\n", m->redirect_backend, dir[i],
				__atomic_load_n(&m->redirected[i], __ATOMIC_RELAXED));
	}
	render_header(out, "istio_build", "Istio component build info", "gauge");
	fputs("istio_build{component=\"ztunnel\",tag=\"", out);
	render_escaped(out, ZTUNNEL_VERSION);
	fputs("\"} 1\n", out);
}

int metrics_render(struct metrics *m, FILE *out)
{
	const struct metrics_series **v = NULL;
	struct render_group *g = NULL;
	size_t n = 0, ng = 0;
	int err;

	if (!m || !out)
		return -EINVAL;
	err = render_collect(m, &v, &n);
	if (err)
		return err;
	err = render_group_series(v, n, &g, &ng);
	if (err)
		goto out;
	for (size_t i = 0; i < sizeof(render_families) / sizeof(render_families[0]); i++)
		render_family(out, &render_families[i], g, ng);
	render_agent(m, out);
	err = metrics_dns_render(m, out);
	if (!err && (fflush(out) != 0 || ferror(out)))
		err = -EIO;
out:
	free(g);
	free(v);
	return err;
}
