/* dns: the in-pod DNS proxy on 15053: answers for the mesh's hostnames, forwards the rest. */
#ifndef ZTUNNEL_DNS_H
#define ZTUNNEL_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ztunnel/io.h>
#include <ztunnel/metrics.h>
#include <ztunnel/state.h>

#define DNS_MAX_UPSTREAMS 3		/* as glibc's MAXNS */
#define DNS_TTL 30			/* seconds, upstream's DEFAULT_TTL_SECONDS */
#define DNS_MAX_QUERY 4096		/* a longer query (UDP or TCP) is dropped as oversized */
#define DNS_UDP_MIN 512			/* a UDP answer without EDNS */
#define DNS_TCP_LIMIT 65535		/* a message over TCP */
#define DNS_MAX_FORWARDS_PER_POD 64	/* per pod and worker: forwarded queries in flight */
#define DNS_MAX_TCP_PER_POD 16		/* per pod and worker: client TCP connections */
#define DNS_ATTEMPT_MS 2000		/* one try at one upstream resolver over UDP */
#define DNS_MAX_ATTEMPTS 4		/* UDP tries over all resolvers before SERVFAIL */
#define DNS_TCP_TIMEOUT_MS 5000		/* a TCP exchange (client idle, or upstream answer) */

/* The proxy's settings (ISTIO_META_DNS_CAPTURE, DNS_PROXY_ADDR, DNS_UPSTREAMS, CLUSTER_DOMAIN). */
struct dns_settings {
	bool enabled;
	struct sockaddr_in listen;	/* in each pod netns; 127.0.0.1:15053 */
	struct sockaddr_in6 upstream[DNS_MAX_UPSTREAMS];	/* IPv4 ones v4-mapped */
	unsigned n_upstreams;
	char domain[128];		/* cluster domain, lower case, no trailing dot */
	uint32_t mark;			/* SO_MARK of the forwarding sockets (the agent's mark) */
	bool ipv6;			/* IPV6_ENABLED: [::1] on the same port too, AAAA */
};

/*
 * Fills set: enabled, listen from addr ("ip:port", IPv4), upstreams from upstreams ("ip[:port]",
 * "v6", "[v6]" or "[v6]:port", comma-separated, up to DNS_MAX_UPSTREAMS) or else the nameserver lines of resolv_conf (port 53), the
 * cluster domain and mark. 0, or -EINVAL with "VARIABLE: what is wrong" in err. With DNS off
 * only the rest is checked; no resolver is needed then.
 */
int dns_settings_init(struct dns_settings *set, bool enabled, const char *addr,
		      const char *upstreams, const char *resolv_conf, const char *domain,
		      uint32_t mark, char *err, size_t errlen);
/* Sets IPV6_ENABLED (the kernel has IPv6): off, the IPv6 resolvers are dropped from the
 * upstreams (the proxy then forwards from IPv4 sockets only); on, it forwards from dual-stack
 * sockets to resolvers of both families. */
void dns_settings_ipv6(struct dns_settings *set, bool on);
/* "dns":{"enabled":...,"address":...,"upstreams":[...]} for /config_dump. */
void dns_dump_json(const struct dns_settings *set, FILE *out);

/* ---- answers (pure: a snapshot and a query in, a reply out; unit-tested and fuzzed) ---- */

/* The pod that asked, as the answers need it. */
struct dns_client {
	const char *namespace_;
	const char *network;	/* "" for the default network */
	bool no_ipv6;		/* IPV6_ENABLED=false: AAAA of mesh names answer no records */
};

enum dns_verdict {
	DNS_DROP,	/* not a DNS query we can answer at all (garbage, truncated, a response) */
	DNS_REPLY,	/* answered here: *reply holds the wire message */
	DNS_FORWARD,	/* not ours (other types, unknown names): relay to the upstream resolvers */
};

/* What the query was, for counting and the forwarder. */
struct dns_query_info {
	uint16_t id;
	uint16_t qtype;		/* 0 when the query did not parse */
	size_t udp_limit;	/* largest UDP answer the client takes (512 or its EDNS size) */
};

/*
 * Parses one query message (msg, len: outside input, any bytes) and decides. limit is the
 * largest reply the transport carries: 0 for UDP (the client's info->udp_limit), DNS_TCP_LIMIT
 * for TCP; a longer answer is sent truncated (TC, no records). On DNS_REPLY *reply is a malloc'ed message of *reply_len
 * bytes the caller frees. domain is the cluster domain. snap may be NULL (nothing is known).
 */
enum dns_verdict dns_answer(const struct state_snapshot *snap, const struct dns_client *client,
			    const char *domain, const uint8_t *msg, size_t len, size_t limit,
			    uint8_t **reply, size_t *reply_len, struct dns_query_info *info);
/* A reply to msg (a query whose header parsed) with rcode and no records: SERVFAIL after the
 * upstream resolvers failed. Same ownership as dns_answer. 0 or -EINVAL / -ENOMEM. */
int dns_error_reply(const uint8_t *msg, size_t len, int rcode, uint8_t **reply,
		    size_t *reply_len);
/* Whether msg (len bytes from an upstream resolver) answers query id: a response with that id
 * and its TC bit in *truncated. */
bool dns_is_answer(const uint8_t *msg, size_t len, uint16_t id, bool *truncated);
/* The lower-case name of a query type for metrics labels ("a", "aaaa", "srv", ...). */
const char *dns_qtype_name(uint16_t qtype);

/* ---- the proxy on the workers ---- */

struct dns;
struct proxy_pod;

/* The proxy on n workers (ws[i] is worker i, borrowed, running); store and metrics borrowed,
 * settings copied. NULL on ENOMEM. */
struct dns *dns_new(const struct dns_settings *set, struct io_worker *const *ws, unsigned n_workers,
		    struct state_store *store, struct metrics *metrics);
bool dns_enabled(const struct dns *d);
/*
 * Opens the pod's UDP and TCP listeners on set->listen inside its netns, one SO_REUSEPORT pair
 * per worker, and starts serving them; takes references to pod. Sets pod->capture.dns_udp_fd,
 * dns_tcp_fd and dns_port (the first pair; -1, -1, 0 when DNS is off or d is NULL).
 * 0 or -errno (nothing left open).
 */
int dns_listen_pod(struct dns *d, struct proxy_pod *pod);
/* Closes the pod's listeners and client connections on every worker; forwards in flight end
 * without an answer. */
void dns_unlisten_pod(struct dns *d, struct proxy_pod *pod);

#endif
