// unit-standalone
/* state_index_test: the snapshot's hash indexes give the same answers as the linear scans for
 * every workload IP, uid, namespace/name, service VIP, hostname and key, for absent keys, and
 * for endpoint picks, on a 10-workload and a 10,000-workload snapshot; then prints what one
 * look-up costs in each (a figure, not asserted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/lookup.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/state/index.c"
#include "../../agent/state/store.c"
#include "../../agent/state/text.c"

#include "check.h"

static char *fmt(const char *f, unsigned a, unsigned b)
{
	char buf[128];

	snprintf(buf, sizeof(buf), f, a, b);
	return strdup(buf);
}

static struct state_ip v4(unsigned a, unsigned b)
{
	struct state_ip ip = { .family = AF_INET };

	ip.v4.s_addr = htonl((10u << 24) | ((a & 0xff) << 16) | ((b >> 8 & 0xff) << 8) | (b & 0xff));
	return ip;
}

/* n workloads in n/10 services (ns-k/svc-k.ns-k.svc.cluster.local, VIP 10.96.x.y); workload i
 * has a v4 and a v6 address; every 7th is an endpoint of two services; one service has none. */
static struct state_snapshot *make(unsigned n)
{
	struct state_snapshot *s = state_snapshot_new();
	unsigned n_svc = n / 10 + 2;

	s->workloads = calloc(n, sizeof(*s->workloads));
	s->services = calloc(n_svc, sizeof(*s->services));
	for (unsigned k = 0; k < n_svc; k++) {
		struct state_service *svc = &s->services[s->n_services++];

		svc->namespace_ = fmt("ns-%u", k % 5, 0);
		svc->name = fmt("svc-%u", k, 0);
		svc->hostname = fmt("svc-%u.ns-%u.svc.cluster.local", k, k % 5);
		svc->vips = calloc(1, sizeof(*svc->vips));
		svc->vips[svc->n_vips++] = v4(96, k);
		svc->ports = calloc(1, sizeof(*svc->ports));
		svc->ports[svc->n_ports++] = (struct state_port){ 80, 8080 };
	}
	for (unsigned i = 0; i < n; i++) {
		struct state_workload *w = &s->workloads[s->n_workloads++];
		unsigned k = i % (n_svc - 1);	/* the last service has no endpoint */

		w->uid = fmt("uid-%u", i, 0);
		w->namespace_ = fmt("ns-%u", i % 5, 0);
		w->name = fmt("pod-%u", i, 0);
		w->ips = calloc(2, sizeof(*w->ips));
		w->ips[w->n_ips++] = v4(1, i);
		w->ips[w->n_ips].family = AF_INET6;
		w->ips[w->n_ips].v6.s6_addr[0] = 0xfd;
		w->ips[w->n_ips].v6.s6_addr[14] = (uint8_t)(i >> 8);
		w->ips[w->n_ips++].v6.s6_addr[15] = (uint8_t)i;
		w->services = calloc(2, sizeof(*w->services));
		w->services[w->n_services++].service_key =
			fmt("ns-%u/svc-%u.ns-", k % 5, k);
		{	/* finish the key: "ns-K/svc-K.ns-K.svc.cluster.local" */
			char buf[160];

			snprintf(buf, sizeof(buf), "%s%u.svc.cluster.local",
				 w->services[0].service_key, k % 5);
			free(w->services[0].service_key);
			w->services[0].service_key = strdup(buf);
		}
		if (i % 7 == 0)
			w->services[w->n_services++].service_key =
				strdup(w->services[0].service_key);	/* the same one twice */
	}
	return s;
}

/* Each look-up with and without the index (every step-th entry: the scans are slow). */
static void compare(struct state_snapshot *s, size_t step)
{
	struct state_index *x = s->index;
	unsigned mismatches = 0;
	char key[200];

#define BOTH(call, out_idx, out_scan)       \
	do {                                \
		s->index = x;               \
		out_idx = (call);           \
		s->index = NULL;            \
		out_scan = (call);          \
		s->index = x;               \
	} while (0)
	for (size_t i = 0; i < s->n_workloads + 3; i += i + step < s->n_workloads ? step : 1) {
		const struct state_workload *a, *b;
		struct state_ip probe = v4(1, (unsigned)i);

		BOTH(state_lookup_ip(s, &probe), a, b);
		mismatches += a != b;
		if (i < s->n_workloads) {
			BOTH(state_lookup_ip(s, &s->workloads[i].ips[1]), a, b);
			mismatches += a != b || a != &s->workloads[i];
			BOTH(state_lookup_pod(s, s->workloads[i].uid, NULL, NULL), a, b);
			mismatches += a != b || a != &s->workloads[i];
			BOTH(state_lookup_pod(s, "nope", s->workloads[i].namespace_,
					      s->workloads[i].name), a, b);
			mismatches += a != b || a != &s->workloads[i];
		}
	}
	for (size_t k = 0; k < s->n_services + 3; k += k + step < s->n_services ? step : 1) {
		const struct state_service *a, *b;
		const struct state_workload *wa, *wb;
		struct state_ip probe = v4(96, (unsigned)k);
		uint16_t ta = 0, tb = 0;

		BOTH(state_lookup_vip(s, &probe), a, b);
		mismatches += a != b;
		if (k >= s->n_services)
			continue;
		BOTH(state_lookup_hostname(s, s->services[k].hostname), a, b);
		mismatches += a != b || a != &s->services[k];
		snprintf(key, sizeof(key), "%s/%s", s->services[k].namespace_, s->services[k].hostname);
		BOTH(state_lookup_hostname(s, key), a, b);
		mismatches += a != b || a != &s->services[k];
		snprintf(key, sizeof(key), "other/%s", s->services[k].hostname);
		BOTH(state_lookup_hostname(s, key), a, b);
		mismatches += a != b || a != NULL;
		for (uint32_t hint = 0; hint < 25; hint++) {
			BOTH(state_service_pick(s, &s->services[k], 80, hint, &ta), wa, wb);
			s->index = NULL;
			state_service_pick(s, &s->services[k], 80, hint, &tb);
			s->index = x;
			mismatches += wa != wb || ta != tb;
		}
		BOTH(state_service_pick(s, &s->services[k], 81, 0, NULL), wa, wb);
		mismatches += wa != wb || wa != NULL;
	}
	CHECK(mismatches == 0, "%u look-ups differ between the index and the scans (%zu workloads)",
	      mismatches, s->n_workloads);
#undef BOTH
}

static double ns_per_lookup(struct state_snapshot *s, unsigned rounds)
{
	struct timespec a, b;
	size_t found = 0;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (unsigned r = 0; r < rounds; r++) {
		struct state_ip probe = v4(1, (r * 7919u) % (unsigned)s->n_workloads);

		found += state_lookup_ip(s, &probe) != NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	CHECK(found == rounds, "every probed IP found");
	return ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / rounds;
}

int main(void)
{
	const unsigned sizes[] = { 10, 10000 };
	double cost[2] = { 0 }, scan[2] = { 0 };

	for (int i = 0; i < 2; i++) {
		struct state_snapshot *s = make(sizes[i]);
		struct state_store *store = state_store_new();
		struct state_snapshot *cur;

		state_store_publish(store, s);	/* builds the index */
		cur = state_store_current(store);
		CHECK(cur && cur->index, "a published snapshot has its index");
		compare(cur, sizes[i] > 100 ? 37 : 1);
		cost[i] = ns_per_lookup(cur, 200000);
		{	/* the same without the index, for comparison */
			struct state_index *x = cur->index;

			cur->index = NULL;
			scan[i] = ns_per_lookup(cur, sizes[i] > 100 ? 200 : 200000);
			cur->index = x;
		}
		state_snapshot_put(&cur);
		state_store_free(&store);
	}
	printf("state look-up by IP, indexed: %.0f ns with %u workloads, %.0f ns with %u "
	       "(scanning: %.0f and %.0f ns)\n", cost[0], sizes[0], cost[1], sizes[1], scan[0],
	       scan[1]);
	printf("%s\n", failures ? "FAILED" : "state_index_test: ok");
	return failures ? 1 : 0;
}
