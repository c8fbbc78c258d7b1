/* xds: delta ADS from istiod for istio.workload.Address and istio.security.Authorization. */
#ifndef ZTUNNEL_XDS_H
#define ZTUNNEL_XDS_H

#include <stdbool.h>
#include <stddef.h>

#include <ztunnel/state.h>

struct xds_config {
	const char *address;		/* XDS_ADDRESS: "https://istiod.istio-system.svc:15012" or
					 * "http://127.0.0.1:15010" (plaintext, tests) */
	const char *root_ca_path;	/* XDS_ROOT_CA */
	const char *token_path;		/* bearer token file, re-read per connection */
	const char *cluster_id;		/* CLUSTER_ID */
	const char *node_name;		/* NODE_NAME */
	const char *pod_name;		/* POD_NAME */
	const char *pod_namespace;	/* POD_NAMESPACE */
	const char *instance_ip;	/* INSTANCE_IP */
	const char *cluster_domain;	/* CLUSTER_DOMAIN, cluster.local */
	bool on_demand;			/* XDS_ON_DEMAND: addresses only when asked for */
};

struct xds_client;

/*
 * Starts the client on its own thread: connects, subscribes (Address first, then Authorization),
 * applies each response to its resource set and publishes a new snapshot to store (policies and
 * peer authentications from the local config are not used in this mode), ACKs it, or NACKs it
 * with the reason and keeps the last good state. Reconnects with jittered backoff (10 ms to
 * 15 s) and resubscribes with initial_resource_versions. NULL with errno on failure to start.
 */
struct xds_client *xds_client_start(const struct xds_config *cfg, struct state_store *store);
/* True once a first response of each type has been applied (readiness). Thread-safe. */
bool xds_client_synced(struct xds_client *c);
void xds_client_stop(struct xds_client **c);

/*
 * On demand (cfg.on_demand), as upstream: the Address subscription starts empty ("*" subscribed
 * and unsubscribed at once) and readiness waits for policies only. An address is asked for by
 * name when needed: "<network>/<ip>" (an alias, answered with the workload or service that has
 * that address) or a workload uid. A name is answered by the first Address response that names
 * it (as a resource, an alias or a removal), once the state with it has been published.
 */
/* Asks for name unless it is already pending; never blocks. Thread-safe. 0, -ENOTSUP (not on
 * demand), -EINVAL (bad name), -ENOSPC (too many pending) or -ENOMEM. */
int xds_client_demand(struct xds_client *c, const char *name);
/* Asks for name and waits up to timeout_ms for its answer. Whether it was answered. */
bool xds_client_demand_wait(struct xds_client *c, const char *name, int timeout_ms);
/* fn(arg, name) runs on the xDS thread for each answered name (set before asking). */
void xds_client_on_answer(struct xds_client *c, void (*fn)(void *arg, const char *name), void *arg);

#endif
