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
};

struct metrics {
	struct metrics_shard *shard[METRICS_MAX_SHARDS];	/* slots published with release */
	unsigned claimed;	/* next free slot, claimed with fetch_add */
	int64_t gauge[METRICS_GAUGES];
	uint64_t pods_started;
	const char *redirect_backend;	/* static; NULL: not set */
	uint64_t redirected[METRICS_REDIRECTED_DIRECTIONS];
};

/* Label names in upstream's order (the order of struct metrics_labels). */
extern const char *const metrics_label_names[METRICS_NLABELS];

#endif
