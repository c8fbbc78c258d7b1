/* proxy internals shared by the listener, outbound, inbound and relay files. */
#ifndef ZTUNNEL_PROXY_INT_H
#define ZTUNNEL_PROXY_INT_H

#include <ztunnel/access.h>
#include <ztunnel/proxy.h>

/* What a worker refused under overload: counts since the last log line. */
struct proxy_shed {
	uint64_t next_log_ms;
	unsigned long fd_pauses, fd_dropped, gate_busy, gate_source;
	int reserve_fd;		/* given up for a moment to shed a connection at fd exhaustion */
};

/* Per-worker datapath state; owned by the worker's struct proxy slot. */
struct proxy_worker {
	struct io_worker io;
	struct proxy *px;
	struct hbone_pool *pool;
	struct state_snapshot *snap;	/* this worker's reference */
	unsigned long gen;
	uint32_t counter;		/* spreads service endpoint picks */
	struct proxy_listener *listeners;
	struct metrics_shard *shard;	/* this worker's counters */
	struct access_tracker inbound;	/* open inbound connections, re-checked on change */
	unsigned long authz_gen;	/* snapshot generation they were last checked against */
	struct proxy_parked *parked;	/* outbound connections waiting for an on-demand answer */
	unsigned n_parked;
	struct proxy_shed shed;
};

struct proxy {
	struct proxy_worker *workers;
	unsigned n_workers;
	struct state_store *store;
	struct metrics *metrics;	/* borrowed */
	struct hbone_settings set;
	struct hbone_gate *gate;	/* owned: pending handshakes, bytes queued to apps */
	int draining;			/* atomic: refuse new inbound streams */
	bool count_connections;		/* false: ZTUNNEL_METRICS=off, no per-connection series */
	int (*demand)(void *ctx, const char *name);	/* on-demand look-ups, or NULL */
	const struct redirect *redirect;	/* borrowed: original destinations; NULL: conntrack */
	struct dns *dns;			/* borrowed: the DNS proxy, or NULL */
	void *demand_ctx;
};

enum proxy_port_kind { PROXY_OUTBOUND, PROXY_INBOUND_PLAIN, PROXY_INBOUND_HBONE, PROXY_KINDS };

struct proxy_listener {
	struct io_op accept_op;
	int fd;
	enum proxy_port_kind kind;
	struct proxy_pod *pod;		/* reference */
	struct proxy_worker *pw;
	struct proxy_listener *next;
	struct io_timer pause;		/* accept paused at fd exhaustion until it fires */
	bool paused;
	bool closing;
};

/* shed.c */
void proxy_shed_init(struct proxy_shed *s);
/* An accept failed with res: is it the kind that a pause fixes (out of fds or memory)? */
bool proxy_accept_overloaded(int res);
/* Pauses l's accept for a moment, shedding one waiting connection; logs once per interval. */
void proxy_shed_accept(struct proxy_listener *l);
/* hbone_server_start refused a connection at the gate with err (-EBUSY, -EMLINK). */
void proxy_shed_gate(struct proxy_worker *pw, int err);

/* The worker's current snapshot (refreshed when the store moved). */
struct state_snapshot *proxy_snapshot(struct proxy_worker *pw);

void proxy_outbound_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd);
void proxy_inbound_plain_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd);
void proxy_inbound_hbone_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd);

/* Relays between the accepted client fd and a new socket upfd connecting to sa. Owns both.
 * track: the connection is inbound and re-checked when policies change. */
void proxy_relay_tcp(struct proxy_worker *pw, int fd, int upfd, const struct sockaddr *sa,
		     socklen_t salen, const struct access_record *rec, bool track);

/* Response flags of a connection for its metrics. */
#define PROXY_FLAGS_OK "-"
#define PROXY_FLAGS_DENY "DENY"

/* Judges an inbound connection described by rec (src, dst, src_identity) against the
 * policies of the current snapshot. Fills why. */
bool proxy_authorized(struct proxy_worker *pw, const struct access_record *rec, char *why,
		      size_t len);
/* Counts rec as an opened connection with its labels (reporter from its direction). */
void proxy_count_open(struct proxy_worker *pw, struct access_record *rec, const char *flags,
		      bool mtls);
/* Goes on with parked outbound connections whose on-demand wait is over (tick). */
void proxy_parked_tick(struct proxy_worker *pw);
/* Re-checks the worker's open inbound connections if the snapshot changed (tick). */
void proxy_recheck(struct io_worker *w);

/* The destination the app asked for, of a socket accepted on 15001/15006 (from the capture
 * backend). 0 or -errno. */
int proxy_original_dst(struct proxy_worker *pw, int fd, struct sockaddr_storage *dst);
/* Splits a socket address into ip and port. */
void proxy_ip_of(const struct sockaddr_storage *ss, struct state_ip *ip, uint16_t *port);
/* Fills sockaddr from ip and port; returns its length. */
socklen_t proxy_sockaddr(const struct state_ip *ip, uint16_t port, struct sockaddr_storage *ss);
/* A socket in pod's netns bound to src (transparently, port 0), for connecting to the app. */
int proxy_app_socket(struct proxy_pod *pod, const struct sockaddr_storage *src, uint32_t mark);
/* Fills the workload fields of rec from the workload owning ip, if any. */
void proxy_record_workload(struct state_snapshot *snap, const struct sockaddr_storage *ss,
			   char *workload, size_t wl, char *ns, size_t nl, char *identity, size_t il);

#endif
