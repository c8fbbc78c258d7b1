/* access: the per-connection record behind the "connection complete" access log line. */
#ifndef ZTUNNEL_ACCESS_H
#define ZTUNNEL_ACCESS_H

#include <stdint.h>
#include <sys/socket.h>

#include <ztunnel/metrics.h>
#include <ztunnel/tls.h>

enum access_direction { ACCESS_OUTBOUND, ACCESS_INBOUND };

struct access_record;
/* Closes the connection a tracked record belongs to (policy changed): reason for the log. */
typedef void (*access_abort_fn)(struct access_record *rec, const char *reason);

/* A worker's list of open inbound connections, re-checked when policies change. */
struct access_tracker {
	struct access_record *head;
	unsigned n;
};

/* Filled by the proxy as it learns things; strings empty when unknown. */
struct access_record {
	enum access_direction direction;
	struct sockaddr_storage src;		/* the client */
	struct sockaddr_storage dst;		/* the app's address */
	struct sockaddr_storage hbone;		/* the HBONE peer (port 15008); family 0 if none */
	char src_workload[128], src_namespace[64], src_identity[TLS_SPIFFE_MAX];
	char dst_workload[128], dst_namespace[64], dst_identity[TLS_SPIFFE_MAX];
	char dst_service[256];
	uint64_t bytes_sent;	/* towards the client */
	uint64_t bytes_recv;	/* from the client */
	uint64_t start_ms;
	struct metrics_series *series;	/* counted in it when opened; NULL: not counted */
	struct metrics *metrics;	/* for the active connections gauge; NULL: none */
	struct access_tracker *tracker;	/* set while tracked */
	struct access_record *tprev, *tnext;
	access_abort_fn abort;
};

/* Adds rec to t (rec must stay alive until access_log_complete untracks it). */
void access_track(struct access_tracker *t, struct access_record *rec, access_abort_fn abort);
/* Counts rec as opened in series (and in the active connections gauge of m). */
void access_count_open(struct access_record *rec, struct metrics_series *series, struct metrics *m);

/* Formats "ip:port" (v6 as [ip]:port) into buf; "-" for an empty address. Returns buf. */
const char *access_addr(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Ends the record: untracks it, counts it closed with its bytes, and logs "connection complete"
 * with upstream's keys; error NULL for a clean end. */
void access_log_complete(struct access_record *rec, const char *error);

#endif
