/* metrics: Istio's TCP metrics and the agent's gauges, counted per worker without locks. */
#ifndef ZTUNNEL_METRICS_H
#define ZTUNNEL_METRICS_H

#include <stdint.h>
#include <stdio.h>

/* Upstream's label set for istio_tcp_* metrics. NULL or "" is rendered "unknown". */
struct metrics_labels {
	const char *reporter;	/* "source" (outbound) or "destination" (inbound) */
	const char *source_workload, *source_canonical_service, *source_canonical_revision;
	const char *source_workload_namespace, *source_principal, *source_app, *source_version;
	const char *source_cluster;
	const char *destination_service, *destination_service_namespace, *destination_service_name;
	const char *destination_workload, *destination_canonical_service;
	const char *destination_canonical_revision, *destination_workload_namespace;
	const char *destination_principal, *destination_app, *destination_version;
	const char *destination_cluster;
	const char *request_protocol;		/* "tcp" */
	const char *response_flags;		/* "-", "DENY", "CONNECT", "TLS_FAILURE"... */
	const char *connection_security_policy;	/* "mutual_tls" or "unknown" */
};

struct metrics;		/* the registry: one per process */
struct metrics_shard;	/* one per worker thread; only that thread writes it */
struct metrics_series;	/* counters of one label set in one shard */

struct metrics *metrics_new(void);
void metrics_free(struct metrics **m);
/* A new shard owned by the calling worker. */
struct metrics_shard *metrics_shard_new(struct metrics *m);

/* Finds or creates the series for labels (strings copied) in the shard. NULL on ENOMEM. */
struct metrics_series *metrics_series_get(struct metrics_shard *s, const struct metrics_labels *l);
/* Counter updates: relaxed atomics, no locks. Safe with a NULL series (no-op). */
void metrics_conn_opened(struct metrics_series *x);
void metrics_conn_closed(struct metrics_series *x);
void metrics_conn_failed(struct metrics_series *x);
void metrics_bytes(struct metrics_series *x, uint64_t sent, uint64_t received);

/* Gauges of the agent (set or added from any thread). */
enum metrics_gauge {
	METRICS_ACTIVE_CONNECTIONS,	/* istio_tcp_sockets_open-like: proxied connections open */
	METRICS_POOLED_CONNECTIONS,	/* HBONE client connections in the pools */
	METRICS_ENROLLED_PODS,		/* active_proxy_count */
	METRICS_CERT_EXPIRY_SECONDS,	/* earliest certificate expiry, unix time */
	METRICS_GAUGES
};
void metrics_gauge_add(struct metrics *m, enum metrics_gauge g, int64_t delta);
void metrics_gauge_set(struct metrics *m, enum metrics_gauge g, int64_t value);
int64_t metrics_gauge_get(struct metrics *m, enum metrics_gauge g);
/* Counter of pods enrolled since start (proxies_started_total). */
void metrics_pod_started(struct metrics *m);

/*
 * Upstream's DNS proxy metrics (istio_dns_*), with its labels. A shard keeps at most
 * METRICS_DNS_MAX_SERIES label sets; past that, requests count under all-"unknown" labels.
 */
struct metrics_dns_labels {
	const char *request_query_type;		/* "a", "aaaa", "srv", ... */
	const char *request_protocol;		/* "udp" or "tcp" */
	const char *source_canonical_service, *source_canonical_revision;
};
enum metrics_dns_counter {
	METRICS_DNS_REQUESTS,		/* istio_dns_requests_total */
	METRICS_DNS_UPSTREAM_REQUESTS,	/* istio_dns_upstream_requests_total */
	METRICS_DNS_UPSTREAM_FAILURES,	/* istio_dns_upstream_failures_total */
	METRICS_DNS_COUNTERS
};
/* Why a DNS message was thrown away (ztunnel_dns_dropped_total{reason}). */
enum metrics_dns_drop {
	METRICS_DNS_DROP_MALFORMED,	/* did not parse as a query */
	METRICS_DNS_DROP_OVERSIZED,	/* longer than the proxy takes */
	METRICS_DNS_DROP_OVERLOAD,	/* over the pod's bound of queries in flight or connections */
	METRICS_DNS_DROPS
};
#define METRICS_DNS_MAX_SERIES 256
struct metrics_dns_series;
/* Finds or creates the series (strings copied) in the worker's shard. NULL on ENOMEM. */
struct metrics_dns_series *metrics_dns_series_get(struct metrics_shard *s,
						  const struct metrics_dns_labels *l);
/* Safe with a NULL series (no-op). */
void metrics_dns_count(struct metrics_dns_series *x, enum metrics_dns_counter c);
/* One upstream exchange took ms milliseconds (istio_dns_upstream_request_duration_seconds). */
void metrics_dns_duration(struct metrics_dns_series *x, uint64_t ms);
void metrics_dns_drop(struct metrics *m, enum metrics_dns_drop why);
/* Connections the capture backend delivered to the pod listeners 15001 (outbound) and 15006
 * (inbound): ztunnel_redirected_connections_total{backend,direction}. The backend's name
 * (static) is set once at start-up. */
enum metrics_redirected { METRICS_REDIRECTED_OUTBOUND, METRICS_REDIRECTED_INBOUND,
			  METRICS_REDIRECTED_DIRECTIONS };
void metrics_set_redirect_backend(struct metrics *m, const char *name);
void metrics_redirected(struct metrics *m, enum metrics_redirected direction);

/* Writes every metric in Prometheus text format (HELP/TYPE, sums over shards). 0 or -errno. */
int metrics_render(struct metrics *m, FILE *out);

#endif
