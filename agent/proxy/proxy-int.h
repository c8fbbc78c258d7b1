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
	uint64_t rng;			/* xorshift state for endpoint picks; 0 until seeded */
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
	struct proxy_reuse *reuse;		/* owned: least-loaded placement, or NULL */
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

/* route.c: where a captured connection goes. */
enum proxy_route_kind {
	PROXY_ROUTE_PASSTHROUGH,	/* unknown destination: plain TCP to it */
	PROXY_ROUTE_DIRECT,		/* the workload itself (HBONE or plain TCP by its protocol) */
	PROXY_ROUTE_WAYPOINT,		/* HBONE to the destination's waypoint */
};

/* The connection's source: the sandwich rule and load balancing look at it. */
struct proxy_route_source {
	const char *identity;		/* the pod's SPIFFE id */
	struct state_ip ip;		/* the connection's source address */
	const struct state_workload *workload;	/* the pod's workload, or NULL */
};

/* Pointers live as long as the snapshot the route was picked from. */
struct proxy_route {
	enum proxy_route_kind kind;
	const struct state_workload *w;	/* next hop: the destination workload or the waypoint */
	const struct state_service *svc;	/* the service addressed, or NULL */
	const struct state_gateway *waypoint;	/* the reference followed, for WAYPOINT */
	struct state_ip ip;		/* next hop address */
	uint16_t port;			/* app port (DIRECT), the waypoint's HBONE port (WAYPOINT) */
	struct state_ip authority_ip;	/* HBONE :authority: the original VIP:port for a service */
	uint16_t authority_port;	/* or a waypoint, the endpoint's podIP:targetPort else */
};

/*
 * Routes a connection from src to dst:dport as upstream does: a workload with a waypoint goes
 * to the waypoint (unless src is that waypoint: the sandwich rule), a service with a waypoint
 * to the waypoint (:authority the VIP), other services to an endpoint picked by load balancing
 * with the random number rnd (a service in Passthrough mode: to the VIP itself). 0 with
 * r filled, 1 for an unknown destination (r->kind PASSTHROUGH), -ENOENT (waypoint not in the
 * state) or -EHOSTUNREACH (no endpoint) with why naming what is missing.
 */
int proxy_route_pick(const struct state_snapshot *snap, const struct proxy_route_source *src,
		     const struct state_ip *dst, uint16_t dport, uint64_t rnd,
		     struct proxy_route *r, char *why, size_t len);
/* lb.c */
/* Where endpoint w ranks for a connection from src under lb: 0 for Standard; for Strict and
 * Failover the routing preferences it shares with src, in order (upstream's ranking, a leading
 * Network first); -1 when Strict excludes it. src may be NULL (matches only unset fields). */
int proxy_lb_rank(const struct state_load_balancing *lb, const struct state_workload *src,
		  const struct state_workload *w);
/* An endpoint of svc for service port `port`: healthy (or any, with AllowAll), of the best
 * rank, picked at random (rnd) weighted by capacity. Writes its target port (the endpoint's
 * mapping, else the service's, else port). NULL when none qualifies. */
const struct state_workload *proxy_lb_pick(const struct state_snapshot *snap,
					   const struct state_workload *src,
					   const struct state_service *svc, uint16_t port,
					   uint64_t rnd, uint16_t *target_port);
/* Whether src (identity and address) is a workload of dst's waypoint. */
bool proxy_from_waypoint(const struct state_snapshot *snap, const struct state_workload *dst,
			 const char *src_identity, const struct state_ip *src_ip);
/* A waypoint reference as text: "namespace/hostname" or its address. Returns buf. */
const char *proxy_gateway_name(const struct state_gateway *g, char *buf, size_t len);

/* meta.c: upstream's HBONE metadata headers. */
/* What a peer's baggage says about its workload; each field a bounded copy holding only
 * baggage-octets (label- and log-safe), "" when absent or unusable. */
struct proxy_baggage {
	char cluster[64], namespace_[64], workload[128], service[128], revision[64];
	char region[64], zone[64];
};
/* The baggage header value for workload w (only non-empty members, values percent-encoded
 * where they hold more than baggage-octets; a member that does not fit is left out). Returns
 * its length; "" for NULL w. */
size_t proxy_baggage_encode(const struct state_workload *w, char *buf, size_t len);
/* Parses a received baggage header value (any bytes, NUL-terminated) into b. */
void proxy_baggage_parse(const char *value, struct proxy_baggage *b);
/* `for="<client ip:port>"`, with `;host=<host>` when host is a token (a service hostname). */
void proxy_forwarded(const struct sockaddr_storage *client, const char *host, char *buf,
		     size_t len);
/* A fresh W3C traceparent ("00-<trace id>-<span id>-00", random); len >= 56. 0 or -1. */
int proxy_traceparent(char *buf, size_t len);
/* A PROXY protocol v2 header (PROXY, TCP) from src to dst, with upstream's TLV 0xD0 holding
 * identity (none when NULL or ""). Both addresses of one family. Its length, or -1 (families
 * differ, buf too small). */
ssize_t proxy_ppv2_header(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
			  const char *identity, uint8_t *buf, size_t len);
/* proxy_count_open, with the labels of a source not in the state taken from its baggage. */
void proxy_count_open_peer(struct proxy_worker *pw, struct access_record *rec, const char *flags,
			   bool mtls, const struct proxy_baggage *peer);

/* reuseport.c: least-loaded worker placement. */
struct proxy_reuse;
/* Loads the SK_REUSEPORT program for n_workers; NULL (logged) when BPF is unavailable or
 * there is only one worker: the kernel's hash then places connections. */
struct proxy_reuse *proxy_reuse_open(unsigned n_workers);
void proxy_reuse_close(struct proxy_reuse **r);
/* Places the connections of pod's listener group of kind (fds: one per worker, in worker
 * order) by load. A socket given as -fd - 1 is known but not selectable: it sits in the ebpf
 * capture backend's sockmap, and a socket can be in only one of the two maps; a connection for
 * which that worker is the least loaded gets the kernel's hash. 0, or -errno (logged; that
 * group keeps the kernel's hash). r may be NULL. */
int proxy_reuse_add(struct proxy_reuse *r, struct proxy_pod *pod, enum proxy_port_kind kind,
		    const int *fds);
/* Forgets pod's groups (before its listeners close) and frees pod->reuse. r may be NULL. */
void proxy_reuse_del(struct proxy_reuse *r, struct proxy_pod *pod);
/* Worker `worker` has `load` open connections (a store into the program's array). */
void proxy_reuse_publish(struct proxy_reuse *r, unsigned worker, unsigned load);
/* The load the program sees for worker now (tests, admin). */
unsigned proxy_reuse_load(const struct proxy_reuse *r, unsigned worker);

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
/* The same for a record's packed address. */
void proxy_addr_ip(const struct io_addr *a, struct state_ip *ip, uint16_t *port);
/* Fills sockaddr from ip and port; returns its length. */
socklen_t proxy_sockaddr(const struct state_ip *ip, uint16_t port, struct sockaddr_storage *ss);
/* A socket in pod's netns bound to src (transparently, port 0), for connecting to the app. */
int proxy_app_socket(struct proxy_pod *pod, const struct sockaddr_storage *src, uint32_t mark);
/* Names rec's source workload and namespace after the workload owning rec->src, if any.
 * 0 or -ENOMEM. */
int proxy_record_source(struct state_snapshot *snap, struct access_record *rec);

#endif
