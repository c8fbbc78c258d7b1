// unit-standalone
/* metrics_test: series identity, summing over shards, Prometheus text, concurrent counting. */
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/metrics/registry.c"
#include "../../agent/metrics/render.c"
#include "../../agent/metrics/dns.c"

#include "check.h"

/* Renders m into a malloc'd string (NULL on failure). */
static char *render(struct metrics *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	int err = metrics_render(m, f);
	fclose(f);
	if (err) {
		free(buf);
		return NULL;
	}
	return buf;
}

static size_t count_of(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* The value of the sample whose line starts with series + " ", or -1. */
static long long sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

static const struct metrics_labels inbound = {
	.reporter = "destination",
	.source_workload = "client",
	.source_workload_namespace = "default",
	.source_principal = "spiffe://cluster.local/ns/default/sa/client",
	.destination_service = "server.default.svc.cluster.local",
	.destination_service_namespace = "default",
	.destination_service_name = "server",
	.destination_workload = "server",
	.destination_canonical_service = "server",
	.destination_canonical_revision = "v1",
	.destination_workload_namespace = "default",
	.destination_principal = "spiffe://cluster.local/ns/default/sa/server",
	.destination_app = "server",
	.destination_version = "v1",
	.destination_cluster = "Kubernetes",
	.request_protocol = "tcp",
	.response_flags = "-",
	.connection_security_policy = "mutual_tls",
};

#define INBOUND_LABELS                                                                       \
	"{reporter=\"destination\",source_workload=\"client\",source_canonical_service=\"unknown\"," \
	"source_canonical_revision=\"unknown\",source_workload_namespace=\"default\","           \
	"source_principal=\"spiffe://cluster.local/ns/default/sa/client\",source_app=\"unknown\","  \
	"source_version=\"unknown\",source_cluster=\"unknown\","                                 \
	"destination_service=\"server.default.svc.cluster.local\","                              \
	"destination_service_namespace=\"default\",destination_service_name=\"server\","         \
	"destination_workload=\"server\",destination_canonical_service=\"server\","              \
	"destination_canonical_revision=\"v1\",destination_workload_namespace=\"default\","      \
	"destination_principal=\"spiffe://cluster.local/ns/default/sa/server\","                 \
	"destination_app=\"server\",destination_version=\"v1\",destination_cluster=\"Kubernetes\"," \
	"request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"mutual_tls\"}"

static void test_series_identity(void)
{
	struct metrics *m = metrics_new();
	struct metrics_shard *s = metrics_shard_new(m);
	struct metrics_labels a = inbound, b = inbound;
	char longv[400], longw[400];

	CHECK(m && s, "registry and shard");
	struct metrics_series *x = metrics_series_get(s, &a);
	CHECK(x && metrics_series_get(s, &b) == x, "equal labels give the same series");
	b.response_flags = "DENY";
	CHECK(metrics_series_get(s, &b) != x, "different labels give another series");
	b = inbound;
	b.source_app = "";
	CHECK(metrics_series_get(s, &b) == x, "\"\" is the same as NULL (unknown)");
	b.source_app = "unknown";
	CHECK(metrics_series_get(s, &b) == x, "\"unknown\" is the same as NULL");
	/* values are cut at 256 bytes: differences beyond do not make a new series */
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	memcpy(longw, longv, sizeof(longw));
	longw[300] = 'b';
	a.source_workload = longv;
	b = inbound;
	b.source_workload = longw;
	struct metrics_series *y = metrics_series_get(s, &a);
	CHECK(y && y != x && metrics_series_get(s, &b) == y, "long values cut at 256 bytes");
	CHECK(y && strlen(y->label[1]) == METRICS_LABEL_MAX, "stored length %zu",
	      y ? strlen(y->label[1]) : 0);
	/* many series: the private index grows and still finds every one */
	char name[32];
	struct metrics_series *first[300];
	for (int i = 0; i < 300; i++) {
		a = inbound;
		snprintf(name, sizeof(name), "w%d", i);
		a.source_workload = name;
		first[i] = metrics_series_get(s, &a);
	}
	int same = 1;
	for (int i = 0; i < 300; i++) {
		a = inbound;
		snprintf(name, sizeof(name), "w%d", i);
		a.source_workload = name;
		same &= first[i] && metrics_series_get(s, &a) == first[i];
	}
	CHECK(same, "300 series found again after the index grew (%zu buckets)", s->nbuckets);
	CHECK(metrics_series_get(NULL, &a) == NULL && metrics_series_get(s, NULL) == NULL,
	      "NULL arguments");
	metrics_conn_opened(NULL);
	metrics_bytes(NULL, 1, 2);
	metrics_free(&m);
	CHECK(m == NULL, "metrics_free clears the pointer");
	metrics_free(&m);
}

static void test_render(void)
{
	struct metrics *m = metrics_new();
	struct metrics_shard *s1 = metrics_shard_new(m), *s2 = metrics_shard_new(m);
	struct metrics_labels esc = inbound;
	char *text;

	metrics_conn_opened(metrics_series_get(s1, &inbound));
	metrics_conn_opened(metrics_series_get(s1, &inbound));
	metrics_conn_opened(metrics_series_get(s2, &inbound));
	metrics_conn_closed(metrics_series_get(s2, &inbound));
	metrics_bytes(metrics_series_get(s1, &inbound), 100, 7);
	metrics_bytes(metrics_series_get(s2, &inbound), 20, 3);
	esc.reporter = "source";
	esc.source_workload = "a\"b\\c\nd";
	esc.response_flags = "CONNECT";
	metrics_conn_failed(metrics_series_get(s2, &esc));
	metrics_gauge_set(m, METRICS_ACTIVE_CONNECTIONS, 5);
	metrics_gauge_add(m, METRICS_ACTIVE_CONNECTIONS, -2);
	metrics_gauge_set(m, METRICS_CERT_EXPIRY_SECONDS, 1900000000);
	metrics_gauge_add(m, METRICS_ENROLLED_PODS, 2);
	metrics_pod_started(m);
	metrics_pod_started(m);
	metrics_pod_started(m);

	text = render(m);
	CHECK(text, "render");
	if (!text)
		goto out;
	CHECK(strstr(text, "\nistio_tcp_connections_opened_total" INBOUND_LABELS " 3\n"),
	      "opened line summed over shards:\n%s", text);
	CHECK(sample(text, "istio_tcp_connections_closed_total" INBOUND_LABELS) == 1, "closed");
	CHECK(sample(text, "istio_tcp_sent_bytes_total" INBOUND_LABELS) == 120, "sent bytes");
	CHECK(sample(text, "istio_tcp_received_bytes_total" INBOUND_LABELS) == 10, "received");
	CHECK(sample(text, "istio_tcp_connections_failed_total" INBOUND_LABELS) == 0, "failed 0");
	CHECK(strstr(text, "istio_tcp_connections_failed_total{reporter=\"source\","
			   "source_workload=\"a\\\"b\\\\c\\nd\",source_canonical_service="),
	      "escaped label value");
	CHECK(strstr(text, "response_flags=\"CONNECT\",connection_security_policy=\"mutual_tls\"} 1\n"),
	      "failed count of the escaped series");
	CHECK(strstr(text, "\nztunnel_active_connections 3\n"), "active gauge");
	CHECK(sample(text, "ztunnel_pooled_connections") == 0, "pooled gauge");
	CHECK(sample(text, "active_proxy_count") == 2, "enrolled pods");
	CHECK(sample(text, "ztunnel_certificate_expiry_seconds") == 1900000000, "expiry");
	CHECK(sample(text, "proxies_started_total") == 3, "proxies started");
	CHECK(strstr(text, "\nistio_build{component=\"ztunnel\",tag=\"" ZTUNNEL_VERSION "\"} 1\n"),
	      "istio_build");
	static const char *const names[][2] = {
		{ "istio_tcp_connections_opened_total", "counter" },
		{ "istio_tcp_connections_closed_total", "counter" },
		{ "istio_tcp_sent_bytes_total", "counter" },
		{ "istio_tcp_received_bytes_total", "counter" },
		{ "istio_tcp_connections_failed_total", "counter" },
		{ "ztunnel_active_connections", "gauge" },
		{ "ztunnel_pooled_connections", "gauge" },
		{ "active_proxy_count", "gauge" },
		{ "ztunnel_certificate_expiry_seconds", "gauge" },
		{ "proxies_started_total", "counter" },
		{ "istio_build", "gauge" },
	};
	char line[128];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(line, sizeof(line), "# HELP %s ", names[i][0]);
		CHECK(count_of(text, line) == 1, "one HELP for %s", names[i][0]);
		snprintf(line, sizeof(line), "# TYPE %s %s\n", names[i][0], names[i][1]);
		CHECK(count_of(text, line) == 1, "one TYPE %s for %s", names[i][1], names[i][0]);
	}
	/* every line is a comment or "name{...} value" / "name value" */
	for (char *p = text; *p; p = strchr(p, '\n') + 1) {
		char *end = strchr(p, '\n');
		if (!end) {
			CHECK(0, "last line not terminated");
			break;
		}
		if (*p == '#')
			continue;
		char *sp = end;
		while (sp > p && sp[-1] != ' ')
			sp--;
		char *num_end;
		strtoll(sp, &num_end, 10);
		CHECK(sp > p + 1 && num_end == end, "sample line %.*s", (int)(end - p), p);
	}
	CHECK(count_of(text, "istio_tcp_connections_opened_total{") == 2, "two label sets");
	free(text);
out:
	CHECK(metrics_render(NULL, stdout) == -EINVAL, "NULL registry");
	metrics_free(&m);
}

static void test_shard_limit(void)
{
	struct metrics *m = metrics_new();
	int made = 0;

	for (int i = 0; i < METRICS_MAX_SHARDS + 3; i++)
		made += metrics_shard_new(m) != NULL;
	CHECK(made == METRICS_MAX_SHARDS, "%d shards made, limit %d", made, METRICS_MAX_SHARDS);
	CHECK(metrics_shard_new(m) == NULL && errno == ENOSPC, "ENOSPC past the limit");
	metrics_free(&m);
}

#define THREADS 4
#define ROUNDS 100000

struct worker {
	struct metrics *m;
	int id;
};

static int workers_done;

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct metrics_shard *s = metrics_shard_new(w->m);
	struct metrics_labels own = inbound;
	char name[16];

	snprintf(name, sizeof(name), "worker%d", w->id);
	own.source_workload = name;
	for (int i = 0; i < ROUNDS; i++) {
		/* look the series up every time, as a connection would; add new series as we go */
		metrics_conn_opened(metrics_series_get(s, &inbound));
		metrics_bytes(metrics_series_get(s, &inbound), 2, 3);
		if (i % 1000 == 0) {
			snprintf(name, sizeof(name), "w%d-%d", w->id, i / 1000);
			metrics_conn_closed(metrics_series_get(s, &own));
		}
		metrics_gauge_add(w->m, METRICS_ACTIVE_CONNECTIONS, 1);
	}
	__atomic_fetch_add(&workers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *renderer_run(void *arg)
{
	struct metrics *m = arg;
	int renders = 0;
	long long last = 0;

	while (__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE) < THREADS || renders < 3) {
		char *text = render(m);
		if (!text) {
			CHECK(0, "render during counting");
			break;
		}
		long long v = sample(text, "istio_tcp_connections_opened_total" INBOUND_LABELS);
		CHECK(v == -1 || v >= last, "counter went backwards %lld < %lld", v, last);
		if (v > last)
			last = v;
		free(text);
		renders++;
	}
	return NULL;
}

static void test_concurrent(void)
{
	struct metrics *m = metrics_new();
	struct worker w[THREADS];
	pthread_t t[THREADS], r;
	char *text;

	pthread_create(&r, NULL, renderer_run, m);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .m = m, .id = i };
		pthread_create(&t[i], NULL, worker_run, &w[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_join(r, NULL);
	text = render(m);
	CHECK(text, "final render");
	if (text) {
		CHECK(sample(text, "istio_tcp_connections_opened_total" INBOUND_LABELS) ==
			      THREADS * ROUNDS, "opened total exact");
		CHECK(sample(text, "istio_tcp_sent_bytes_total" INBOUND_LABELS) ==
			      2LL * THREADS * ROUNDS, "sent total exact");
		CHECK(sample(text, "istio_tcp_received_bytes_total" INBOUND_LABELS) ==
			      3LL * THREADS * ROUNDS, "received total exact");
		/* each worker made ROUNDS/1000 series of its own, each closed once */
		CHECK(count_of(text, "istio_tcp_connections_closed_total{") ==
			      1 + THREADS * ROUNDS / 1000, "series count %zu",
		      count_of(text, "istio_tcp_connections_closed_total{"));
		CHECK(sample(text, "ztunnel_active_connections") == THREADS * ROUNDS, "gauge");
		free(text);
	}
	metrics_free(&m);
}

/* Label values chosen by a peer (baggage) cannot grow a shard without bound. */
static void test_series_bound(void)
{
	struct metrics *m = metrics_new();
	struct metrics_shard *s = metrics_shard_new(m);
	struct metrics_labels l = inbound;
	struct metrics_series *first = NULL, *x = NULL;
	char v[32];
	int made = 0;

	for (int i = 0; i < METRICS_MAX_SERIES_PER_SHARD + 10; i++) {
		snprintf(v, sizeof(v), "w%d", i);
		l.source_workload = v;
		x = metrics_series_get(s, &l);
		if (x)
			made++;
		if (!first)
			first = x;
	}
	CHECK(made == METRICS_MAX_SERIES_PER_SHARD, "series made: %d, want the bound %d", made,
	      METRICS_MAX_SERIES_PER_SHARD);
	CHECK(!x && errno == ENOSPC, "past the bound: NULL (not counted), ENOSPC");
	l.source_workload = "w0";
	CHECK(first && metrics_series_get(s, &l) == first, "existing series still found");
	metrics_conn_opened(x);	/* a NULL series is a no-op */
	metrics_free(&m);
}

int main(void)
{
	test_series_bound();
	test_series_identity();
	test_render();
	test_shard_limit();
	test_concurrent();
	if (failures) {
		printf("metrics_test: %d failure(s)\n", failures);
		return 1;
	}
	printf("metrics_test: ok\n");
	return 0;
}
