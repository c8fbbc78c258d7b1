/* state: workloads, services and policies the agent knows, as immutable snapshots. */
#ifndef ZTUNNEL_STATE_H
#define ZTUNNEL_STATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* An IP address, v4 or v6. family is AF_INET or AF_INET6; unused bytes are zero. */
struct state_ip {
	int family;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

/* Parses "10.0.0.1", "::1" or "net/10.0.0.1" (the network prefix is dropped). 0 or -EINVAL. */
int state_ip_parse(const char *text, struct state_ip *out);
bool state_ip_equal(const struct state_ip *a, const struct state_ip *b);
/* Makes a v4-mapped IPv6 address (::ffff:a.b.c.d) the IPv4 one, in place; others unchanged.
 * state_ip_parse does it already: look-ups by IP (keyed on family and bytes) see one form. */
void state_ip_unmap(struct state_ip *ip);
/* Formats as text ("10.0.0.1", "fd00::1"); returns buf. len >= INET6_ADDRSTRLEN. */
const char *state_ip_format(const struct state_ip *ip, char *buf, size_t len);

enum state_protocol {
	STATE_PROTO_NONE = 0,	/* plaintext: not in the mesh (upstream TCP/NONE) */
	STATE_PROTO_HBONE = 1,
};

struct state_port {
	uint16_t service_port;
	uint16_t target_port;	/* 0: same as service_port */
};

/* One "namespace/hostname": {port: targetPort} entry of a workload's services map. */
struct state_workload_service {
	char *service_key;	/* "namespace/hostname" */
	struct state_port *ports;
	size_t n_ports;
};

/* A waypoint reference: {destination: "/10.0.0.5", hboneMtlsPort: 15008} or a hostname. */
struct state_gateway {
	bool present;
	struct state_ip address;	/* set when the destination is an address */
	char *hostname;			/* "namespace/hostname" form, or NULL */
	uint16_t hbone_mtls_port;	/* default 15008 */
};

/* Where a workload runs (upstream's Locality); strings owned by the snapshot, NULL if unset. */
struct state_locality {
	char *region;
	char *zone;
	char *subzone;
};

/* Upstream's ApplicationTunnel: how the destination agent hands connections to this workload. */
struct state_app_tunnel {
	bool present;
	bool proxy;		/* protocol PROXY: a PROXY v2 header (source identity TLV) first */
	uint16_t port;		/* 0: the connection's own port */
};

/* All strings and arrays are owned by the snapshot that holds the workload. */
struct state_workload {
	char *uid;
	char *name;
	char *namespace_;
	char *service_account;	/* default "default" */
	char *trust_domain;	/* default "cluster.local" */
	char *node;
	char *network;
	char *canonical_name;
	char *canonical_revision;
	char *workload_name;
	char *cluster_id;
	char *hostname;		/* e.g. a pod's <hostname>.<subdomain>.<ns>.svc.<domain>, or NULL */
	struct state_ip *ips;
	size_t n_ips;
	enum state_protocol protocol;
	struct state_workload_service *services;
	size_t n_services;
	struct state_gateway waypoint;
	char **authorization_policies;	/* "namespace/name" of policies selecting this workload */
	size_t n_authorization_policies;
	struct state_locality locality;
	uint32_t capacity;		/* load-balancing weight; upstream's default 1 */
	bool unhealthy;			/* status Unhealthy: skipped unless the service allows all */
	struct state_app_tunnel application_tunnel;
};

/* Service load balancing (upstream's LoadBalancing). */
enum state_lb_mode {
	STATE_LB_STANDARD = 0,		/* random, weighted by capacity */
	STATE_LB_STRICT = 1,		/* only endpoints matching every routing preference */
	STATE_LB_FAILOVER = 2,		/* the endpoints matching the most preferences, in order */
	STATE_LB_PASSTHROUGH = 3,	/* no endpoint picking: to the original destination */
};
enum state_lb_scope {
	STATE_LB_REGION = 1, STATE_LB_ZONE, STATE_LB_SUBZONE, STATE_LB_NODE,
	STATE_LB_CLUSTER, STATE_LB_NETWORK,
};
#define STATE_LB_MAX_PREFS 8
struct state_load_balancing {
	enum state_lb_mode mode;
	int routing_preferences[STATE_LB_MAX_PREFS];	/* enum state_lb_scope, in order */
	size_t n_routing_preferences;
	bool allow_unhealthy;		/* health policy AllowAll (else OnlyHealthy) */
};

struct state_service {
	char *name;
	char *namespace_;
	char *hostname;
	struct state_ip *vips;
	size_t n_vips;
	struct state_port *ports;
	size_t n_ports;
	char **subject_alt_names;
	size_t n_subject_alt_names;
	struct state_gateway waypoint;
	struct state_load_balancing load_balancing;	/* zero: Standard, OnlyHealthy */
};

/* Authorization policy in upstream's shape (istio.security.Authorization). */
enum state_policy_scope { STATE_SCOPE_GLOBAL = 0, STATE_SCOPE_NAMESPACE = 1, STATE_SCOPE_WORKLOAD = 2 };
enum state_policy_action { STATE_ACTION_ALLOW = 0, STATE_ACTION_DENY = 1 };
enum state_string_match_kind { STATE_MATCH_EXACT, STATE_MATCH_PREFIX, STATE_MATCH_SUFFIX, STATE_MATCH_PRESENCE };

struct state_string_match {
	enum state_string_match_kind kind;
	char *value;	/* NULL for presence */
};

struct state_cidr {
	struct state_ip addr;
	uint8_t length;
};

struct state_string_list { struct state_string_match *v; size_t n; };
struct state_cidr_list { struct state_cidr *v; size_t n; };
struct state_port_list { uint16_t *v; size_t n; };

struct state_match {
	/* the match named HTTP-level fields (methods, paths, hosts, ...) that L4 cannot check:
	 * in a DENY policy they count as matching, in an ALLOW policy the match never matches */
	bool has_l7;
	struct state_string_list namespaces, not_namespaces;
	struct state_string_list principals, not_principals;
	struct state_cidr_list source_ips, not_source_ips;
	struct state_cidr_list destination_ips, not_destination_ips;
	struct state_port_list destination_ports, not_destination_ports;
};

struct state_clause { struct state_match *matches; size_t n_matches; };
struct state_rule { struct state_clause *clauses; size_t n_clauses; };

struct state_policy {
	char *name;
	char *namespace_;
	enum state_policy_scope scope;
	enum state_policy_action action;
	bool dry_run;
	struct state_rule *rules;
	size_t n_rules;
};

/* PeerAuthentication (an extension of the local YAML; xDS sends converted policies instead). */
enum state_peer_auth_mode {
	STATE_PA_UNSET = 0,	/* inherit from the wider level */
	STATE_PA_PERMISSIVE = 1,
	STATE_PA_STRICT = 2,
	STATE_PA_DISABLE = 3,	/* treated as PERMISSIVE at L4 */
};
#define STATE_ROOT_NAMESPACE "istio-system"	/* a selector-less one here is mesh-wide */

struct state_peer_auth {
	char *name;
	char *namespace_;
	enum state_peer_auth_mode mode;
	/* selector.matchLabels; labels of a workload: app = canonicalName (else name),
	 * version = canonicalRevision, and name = its name. None: the whole namespace. */
	char **selector_keys;
	char **selector_values;
	size_t n_selector;
};

/*
 * An immutable view of everything known. Created by a loader (localcfg, xds), then only read.
 * Shared by reference count between the control thread and the workers.
 */
struct state_index;

struct state_snapshot {
	int refcount;	/* atomic */
	struct state_index *index;	/* hash indexes, built at publish; NULL: look-ups scan */
	struct state_workload *workloads;
	size_t n_workloads;
	struct state_service *services;
	size_t n_services;
	struct state_policy *policies;
	size_t n_policies;
	struct state_peer_auth *peer_auths;
	size_t n_peer_auths;
};

/* An empty snapshot with refcount 1, or NULL with errno set. */
struct state_snapshot *state_snapshot_new(void);
/* Takes one more reference; returns snap. */
struct state_snapshot *state_snapshot_get(struct state_snapshot *snap);
/* Drops a reference; frees everything it owns at zero and clears *snap. */
void state_snapshot_put(struct state_snapshot **snap);

/* Builds the snapshot's hash indexes (state_store_publish does it; after that the snapshot
 * must not change). 0, or -errno: the look-ups then scan, with the same answers. */
int state_snapshot_index(struct state_snapshot *snap);

/* The authorization policies that apply to a workload, in snapshot order, from the index:
 * the GLOBAL ones, the NAMESPACE ones of its namespace, and those it lists. */
struct state_policy_iter {
	const uint32_t *global, *listed, *ns_next;
	size_t n_global, n_listed;
	uint32_t ns_at;
};
/* false when snap has no index (or w is not its workload): the caller scans instead. */
bool state_policies_begin(const struct state_snapshot *snap, const struct state_workload *w,
			  struct state_policy_iter *it);
/* The next one, or NULL at the end. */
const struct state_policy *state_policies_next(const struct state_snapshot *snap,
					       struct state_policy_iter *it);

/* The entry of w's services map for svc ("<namespace>/<hostname>"), or NULL when w is not an
 * endpoint of svc. */
const struct state_workload_service *state_endpoint_entry(const struct state_workload *w,
							 const struct state_service *svc);

/* A service's endpoints from the index, in workload order (a workload is one endpoint even if
 * its services map names the service twice). */
struct state_endpoint_iter {
	const uint32_t *at;
	const struct state_workload_service *const *entry;
	size_t n;
};
/* false when snap has no index (or svc is not its service): the caller scans instead. */
bool state_endpoints_begin(const struct state_snapshot *snap, const struct state_service *svc,
			   struct state_endpoint_iter *it);
/* The next endpoint and its services-map entry for the service, or NULL at the end. */
const struct state_workload *state_endpoints_next(const struct state_snapshot *snap,
						  struct state_endpoint_iter *it,
						  const struct state_workload_service **entry);

/* Look-ups. Returned pointers live as long as the caller's reference to the snapshot. With
 * the indexes they cost the same for a snapshot of 10 entries as for one of 10,000. */
const struct state_workload *state_lookup_ip(const struct state_snapshot *snap, const struct state_ip *ip);
const struct state_service *state_lookup_vip(const struct state_snapshot *snap, const struct state_ip *ip);
const struct state_service *state_lookup_hostname(const struct state_snapshot *snap, const char *hostname);
/* A pod enrolled by the CNI: matched by uid, else by namespace and name. */
const struct state_workload *state_lookup_pod(const struct state_snapshot *snap, const char *uid,
					      const char *namespace_, const char *name);
/*
 * Picks an endpoint of svc for service port `port`: a workload whose services map lists the
 * service. hint spreads choices (e.g. a connection counter). Writes the workload's target port
 * to *target_port (the workload's mapping, else the service's target_port, else port).
 * NULL when the service has no endpoint or does not expose port.
 */
const struct state_workload *state_service_pick(const struct state_snapshot *snap,
						const struct state_service *svc, uint16_t port,
						uint32_t hint, uint16_t *target_port);

/* "spiffe://<td>/ns/<ns>/sa/<sa>" of a workload into buf; returns buf. */
const char *state_workload_identity(const struct state_workload *w, char *buf, size_t len);

/*
 * The current snapshot, swapped atomically. Writers publish a new snapshot; readers (workers)
 * keep their own reference and refresh it when the generation moved.
 */
struct state_store;
struct state_store *state_store_new(void);
void state_store_free(struct state_store **store);
/* Takes over the caller's reference to snap. */
void state_store_publish(struct state_store *store, struct state_snapshot *snap);
/* A new reference to the current snapshot (never NULL after the first publish). */
struct state_snapshot *state_store_current(struct state_store *store);
/* Monotonic counter bumped by every publish. */
unsigned long state_store_generation(const struct state_store *store);

/* Writes "workloads", "services", "policies" and "peerAuthentications" as JSON object members
 * (no braces around them), in the local config's camelCase spelling. */
void state_dump_json(const struct state_snapshot *snap, FILE *out);
/* Whether the n bytes at s are UTF-8 without NUL, as a proto3 string and JSON text must be. */
bool state_utf8_valid(const void *s, size_t n);
/* Makes s UTF-8 in place: each byte that starts no valid sequence (a text cut in the middle of
 * a character, bytes from outside) becomes '?'. */
void state_utf8_repair(char *s);
/* Writes s as a JSON string literal (quoted, escaped); NULL as null. */
void state_json_string(FILE *out, const char *s);

#endif
