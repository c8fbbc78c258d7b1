/* access: the per-connection record behind the "connection complete" access log line. */
#ifndef ZTUNNEL_ACCESS_H
#define ZTUNNEL_ACCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ztunnel/addr.h>
#include <ztunnel/metrics.h>
#include <ztunnel/tls.h>

enum access_direction { ACCESS_OUTBOUND, ACCESS_INBOUND };

/* The texts a record names its two ends by (upstream's access-log keys). */
enum access_name_field {
	ACCESS_SRC_WORKLOAD,
	ACCESS_SRC_NAMESPACE,
	ACCESS_SRC_IDENTITY,
	ACCESS_DST_WORKLOAD,
	ACCESS_DST_NAMESPACE,
	ACCESS_DST_IDENTITY,
	ACCESS_DST_SERVICE,
	ACCESS_NAMES
};

struct access_record;
/* Closes the connection a tracked record belongs to (policy changed): reason for the log. */
typedef void (*access_abort_fn)(struct access_record *rec, const char *reason);

/* A worker's list of open inbound connections, re-checked when policies change. */
struct access_tracker {
	struct access_record *head;
	unsigned n;
};

/*
 * Filled by the proxy as it learns things. A record is a value that moves: whoever holds it
 * last ends it with access_log_complete (which releases its names), on the thread that filled
 * it. Copying one hands its names on; the copy left behind must not be ended too.
 */
struct access_record {
	uint8_t direction;		/* enum access_direction */
	bool counted;			/* by access_count_open, until completed */
	struct io_addr src;		/* the client */
	struct io_addr dst;		/* the app's address */
	struct io_addr hbone;		/* the HBONE peer (port 15008); family 0 if none */
	const char *names[ACCESS_NAMES];	/* interned by access_set; NULL when unknown */
	uint64_t bytes_sent;	/* towards the client */
	uint64_t bytes_recv;	/* from the client */
	uint64_t start_ms;
	struct metrics_series *series;	/* counted in it when opened; NULL: not counted */
	struct metrics *metrics;	/* for the active connections gauge; NULL: none */
	struct access_tracker *tracker;	/* set while tracked */
	struct access_record *tprev, *tnext;
	access_abort_fn abort;
};

/* Sets a name of rec to value (interned in this thread's table and shared with every record
 * naming the same text; cut at the length the log always had: 127 bytes for a workload, 63 a
 * namespace, 255 a service, TLS_SPIFFE_MAX - 1 an identity). NULL or "": unknown. 0, or
 * -ENOMEM with the field unchanged. */
int access_set(struct access_record *rec, enum access_name_field f, const char *value);
/* A name of rec, "" when unknown; valid while rec holds it. */
const char *access_get(const struct access_record *rec, enum access_name_field f);
/* Drops rec's names (access_log_complete does it). */
void access_names_release(struct access_record *rec);
/* Distinct names interned by this thread now (tests). */
unsigned access_names_count(void);

/* Adds rec to t (rec must stay alive until access_log_complete untracks it). */
void access_track(struct access_tracker *t, struct access_record *rec, access_abort_fn abort);
/* Counts rec as opened in series (and in the active connections gauge of m). */
void access_count_open(struct access_record *rec, struct metrics_series *series, struct metrics *m);
/* Records this thread counted open and has not completed: a worker's load. */
unsigned access_open_here(void);

/* Formats "ip:port" (v6 as [ip]:port) into buf; "-" for an empty address. Returns buf. */
const char *access_addr(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Ends the record: untracks it, counts it closed with its bytes, and logs "connection complete"
 * with upstream's keys; error NULL for a clean end. */
void access_log_complete(struct access_record *rec, const char *error);

#endif
