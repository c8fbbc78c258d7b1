/* metrics-int: the registry's private layout, shared by registry.c and render.c. */
#ifndef ZTUNNEL_METRICS_INT_H
#define ZTUNNEL_METRICS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <ztunnel/metrics.h>

#define METRICS_MAX_SHARDS 64
#define METRICS_LABEL_MAX 256	/* label values are cut at this many bytes */
/* Series per shard: label values a peer chooses (its baggage) cannot grow memory past this;
 * a connection with labels beyond it is not counted in a series. */
#define METRICS_MAX_SERIES_PER_SHARD 20000
#define METRICS_NLABELS 23

enum metrics_counter {
	METRICS_C_OPENED,
	METRICS_C_CLOSED,
	METRICS_C_FAILED,
	METRICS_C_SENT,
	METRICS_C_RECEIVED,
	METRICS_COUNTERS
};

/*
 * One label set in one shard. Allocated once with its label strings behind it; owned by the
 * shard and freed only by metrics_free. The owning worker writes count[] with relaxed atomics;
 * the renderer reads them the same way.
 */
struct metrics_series {
	struct metrics_series *next;	/* shard list, newest first; published with release */
	struct metrics_series *hnext;	/* owner-only hash chain */
	uint64_t hash;
	uint64_t count[METRICS_COUNTERS];
	const char *label[METRICS_NLABELS];	/* normalized values, point into text[] */
	char text[];
};

/* Owned by the registry; only the creating worker adds series or touches index. */
struct metrics_shard {
	struct metrics_series *head;	/* release store by owner, acquire load by renderer */
	struct metrics_series **index;	/* owner-only hash buckets */
	size_t nbuckets, nseries;
	struct metrics_dns_series *dns_head;	/* same publication rule as head */
	size_t n_dns;
};

#define METRICS_DNS_BUCKETS 6	/* upstream's 0.5 ms, 1 ms, 10 ms, 100 ms, 1 s, 5 s; then +Inf */

/* One DNS label set in one shard; owned by the shard, freed by metrics_free. */
struct metrics_dns_series {
	struct metrics_dns_series *next;
	uint64_t count[METRICS_DNS_COUNTERS];
	uint64_t bucket[METRICS_DNS_BUCKETS + 1];	/* not cumulative; the last is +Inf */
	uint64_t duration_us;				/* the histogram's sum */
	const char *label[4];	/* point into text[] */
	char text[];
};

struct metrics {
	struct metrics_shard *shard[METRICS_MAX_SHARDS];	/* slots published with release */
	unsigned claimed;	/* next free slot, claimed with fetch_add */
	int64_t gauge[METRICS_GAUGES];
	uint64_t pods_started;
	uint64_t dns_dropped[METRICS_DNS_DROPS];
	const char *redirect_backend;	/* static; NULL: not set */
	uint64_t redirected[METRICS_REDIRECTED_DIRECTIONS];
};

/* dns.c */
void metrics_dns_shard_free(struct metrics_shard *s);
int metrics_dns_render(struct metrics *m, FILE *out);

/* Label names in upstream's order (the order of struct metrics_labels). */
extern const char *const metrics_label_names[METRICS_NLABELS];

#endif
