/* proxy: the datapath: per-worker state, pod listeners, outbound, inbound HBONE and plaintext. */
#ifndef ZTUNNEL_PROXY_H
#define ZTUNNEL_PROXY_H

#include <openssl/ssl.h>
#include <stdint.h>

#include <ztunnel/hbone.h>
#include <ztunnel/io.h>
#include <ztunnel/metrics.h>
#include <ztunnel/redirect.h>
#include <ztunnel/state.h>
#include <ztunnel/tls.h>

#define PROXY_MAX_POD_IPS 4

/* An enrolled pod as the datapath sees it. Shared by reference count (listeners, connections). */
struct proxy_reuse_groups;

struct proxy_pod {
	int refcount;			/* atomic */
	char uid[256];
	char name[128];
	char namespace_[64];
	char service_account[128];
	char trust_domain[128];
	char identity[TLS_SPIFFE_MAX];
	char network[64];		/* the workload's network ("" for the default one) */
	struct state_ip ips[PROXY_MAX_POD_IPS];
	size_t n_ips;
	int netns_fd;			/* owned */
	SSL_CTX *server_ctx;		/* owned reference */
	SSL_CTX *client_ctx;		/* owned reference */
	struct redirect_pod capture;	/* the capture backend's view: listeners (proxy_listen_pod),
					 * addresses and state (inpod) */
	struct proxy_reuse_groups *reuse;	/* owned: its listener groups' placement, from
						 * proxy_listen_pod to proxy_unlisten_pod */
};

struct proxy_pod *proxy_pod_get(struct proxy_pod *pod);
/* Drops a reference; the last one closes the netns fd, frees the contexts and the pod. */
void proxy_pod_put(struct proxy_pod *pod);

struct proxy;

/* Starts n workers (each with its ring, HBONE pool and metrics shard) reading state from
 * store and counting into metrics (borrowed). count_connections false (ZTUNNEL_METRICS=off):
 * only the open-connections gauge, no per-connection series. */
struct proxy *proxy_new(unsigned n_workers, struct state_store *store,
			const struct hbone_settings *set, struct metrics *metrics,
			bool count_connections);
void proxy_free(struct proxy **px);
/* New connections of pods enrolled from now on are placed by the kernel's reuseport hash, not
 * on the least-loaded worker (ZTUNNEL_LEAST_LOADED_WORKER=false). */
void proxy_set_hash_placement(struct proxy *px);

/*
 * On-demand look-ups (XDS_ON_DEMAND): with demand set, an outbound connection whose destination
 * is neither a known workload nor a service VIP waits on its worker, for up to
 * PROXY_DEMAND_TIMEOUT_MS, while demand(ctx, "<network>/<ip>") asks the control plane; it then
 * goes on with whatever the state says (a passthrough when still unknown). Set before serving.
 */
#define PROXY_DEMAND_TIMEOUT_MS 5000
#define PROXY_MAX_PARKED 1024		/* per worker; beyond, connections do not wait */
void proxy_set_demand(struct proxy *px, int (*demand)(void *ctx, const char *name), void *ctx);
struct redirect;
/* The capture backend (borrowed) that tells accepted sockets' original destinations; before
 * any, conntrack's (SO_ORIGINAL_DST) is used. Call before pods are enrolled. */
void proxy_set_redirect(struct proxy *px, const struct redirect *r);
struct dns;
/* The DNS proxy (borrowed) whose listeners open and close with the pods' (proxy_listen_pod,
 * proxy_unlisten_pod). Call before pods are enrolled. */
void proxy_set_dns(struct proxy *px, struct dns *dns);
/* Worker i's io loop (i < the number of workers), e.g. for the DNS proxy. */
struct io_worker *proxy_io_worker(struct proxy *px, unsigned i);
/* The control plane answered name (the state with the answer is published): connections
 * waiting for it go on. Safe from any thread. */
void proxy_demand_answered(struct proxy *px, const char *name);

/*
 * Opens the pod's listeners (15001 outbound, 15006 inbound plaintext, 15008 inbound HBONE, and
 * the DNS proxy's when set) inside its netns, one SO_REUSEPORT socket per worker, and starts
 * accepting. Takes references to pod. 0 or -errno (nothing left open on failure).
 */
int proxy_listen_pod(struct proxy *px, struct proxy_pod *pod);
/* Drain: new streams on open inbound HBONE connections are refused (503 + GOAWAY). */
void proxy_drain(struct proxy *px);
/* Closes the pod's listeners on every worker; connections already open run on. */
void proxy_unlisten_pod(struct proxy *px, struct proxy_pod *pod);

/* Parses an HBONE :authority "ip:port" or "[v6]:port" (no hostnames; the port in decimal,
 * 1..65535, without sign, space or leading zero). 0 or -EINVAL (ip and port then untouched). */
int proxy_parse_authority(const char *authority, struct state_ip *ip, uint16_t *port);
/* Whether port is one of the agent's own (15001, 15006, 15008, 15053, 15000, 15020, 15021):
 * never a destination inside a pod. */
bool proxy_agent_port(uint16_t port);
/*
 * The checks of an inbound CONNECT's :authority before policy: it parses, its IP is one of the
 * pod's n_ips pod_ips, its port is not the agent's. NULL when it passes, else the reason for a
 * 400. ip and port are filled whenever the authority parses (the access log names them).
 */
const char *proxy_check_authority(const char *authority, const struct state_ip *pod_ips,
				  size_t n_ips, struct state_ip *ip, uint16_t *port);

#endif
