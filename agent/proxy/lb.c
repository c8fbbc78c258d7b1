/* proxy lb: picking a service endpoint as upstream's LoadBalancing says: Standard (random,
 * weighted by capacity), Strict and Failover (routing preferences), the health policy. */
#include <string.h>

#include "proxy-int.h"

static bool same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;	/* unset is "" as upstream */
}

static bool scope_matches(int scope, const struct state_workload *src,
			  const struct state_workload *w)
{
	switch (scope) {
	case STATE_LB_REGION: return same(src->locality.region, w->locality.region);
	case STATE_LB_ZONE: return same(src->locality.zone, w->locality.zone);
	case STATE_LB_SUBZONE: return same(src->locality.subzone, w->locality.subzone);
	case STATE_LB_NODE: return same(src->node, w->node);
	case STATE_LB_CLUSTER: return same(src->cluster_id, w->cluster_id);
	case STATE_LB_NETWORK: return same(src->network, w->network);
	default: return false;
	}
}

int proxy_lb_rank(const struct state_load_balancing *lb, const struct state_workload *src,
		  const struct state_workload *w)
{
	static const struct state_workload nobody;
	size_t n = lb->n_routing_preferences, adjust = 0;
	bool network_first = n && lb->routing_preferences[0] == STATE_LB_NETWORK;
	int rank = 0;

	if (lb->mode != STATE_LB_STRICT && lb->mode != STATE_LB_FAILOVER)
		return 0;
	if (!src)
		src = &nobody;
	/* upstream's ranking: preferences count in order until the first mismatch; a leading
	 * Network preference outranks all the others when it matches and is skipped when not */
	for (size_t i = 0; i < n; i++) {
		bool m = scope_matches(lb->routing_preferences[i], src, w);

		if (lb->routing_preferences[i] == STATE_LB_NETWORK && network_first) {
			if (!m)
				continue;
			adjust = n - 1;
		}
		if (!m)
			break;
		rank++;
	}
	if (lb->mode == STATE_LB_STRICT && (size_t)rank != n)
		return -1;
	return rank + (int)adjust;
}

/* The rank of endpoint w (ws: its entry for svc), or -1 when it cannot be picked at all. */
static int candidate(const struct state_service *svc, const struct state_workload *src,
		     const struct state_workload *w, const struct state_workload_service *ws)
{
	if (!ws || !w->n_ips || (w->unhealthy && !svc->load_balancing.allow_unhealthy))
		return -1;
	return proxy_lb_rank(&svc->load_balancing, src, w);
}

/* A walk over svc's endpoints: the snapshot's index when it has one (the service's own
 * endpoints only), else a scan of every workload. */
struct walk {
	bool indexed;
	struct state_endpoint_iter it;
	size_t i;
};

static void walk_begin(const struct state_snapshot *snap, const struct state_service *svc,
		       struct walk *wk)
{
	wk->i = 0;
	wk->indexed = state_endpoints_begin(snap, svc, &wk->it);
}

static const struct state_workload *walk_next(const struct state_snapshot *snap,
					      const struct state_service *svc, struct walk *wk,
					      const struct state_workload_service **ws)
{
	if (wk->indexed)
		return state_endpoints_next(snap, &wk->it, ws);
	while (wk->i < snap->n_workloads) {
		const struct state_workload *w = &snap->workloads[wk->i++];

		if ((*ws = state_endpoint_entry(w, svc)))
			return w;
	}
	return NULL;
}

const struct state_workload *proxy_lb_pick(const struct state_snapshot *snap,
					   const struct state_workload *src,
					   const struct state_service *svc, uint16_t port,
					   uint64_t rnd, uint16_t *target_port)
{
	const struct state_port *sp = NULL;
	const struct state_workload_service *ws;
	const struct state_workload *w;
	uint64_t total = 0, pick;
	struct walk wk;
	int best = -1;

	for (size_t i = 0; i < svc->n_ports && !sp; i++)
		if (svc->ports[i].service_port == port)
			sp = &svc->ports[i];
	if (!sp)
		return NULL;
	/* two passes over the endpoints, no allocation: the best rank and its total weight,
	 * then the weighted pick among the endpoints of that rank */
	for (walk_begin(snap, svc, &wk); (w = walk_next(snap, svc, &wk, &ws));) {
		int rank = candidate(svc, src, w, ws);

		if (rank > best) {
			best = rank;
			total = 0;
		}
		if (rank == best && rank >= 0)
			total += w->capacity;
	}
	if (best < 0 || total == 0)
		return NULL;
	pick = rnd % total;
	for (walk_begin(snap, svc, &wk); (w = walk_next(snap, svc, &wk, &ws));) {
		if (candidate(svc, src, w, ws) != best)
			continue;
		if (pick >= w->capacity) {
			pick -= w->capacity;
			continue;
		}
		*target_port = sp->target_port ? sp->target_port : port;
		for (size_t j = 0; j < ws->n_ports; j++)
			if (ws->ports[j].service_port == port && ws->ports[j].target_port)
				*target_port = ws->ports[j].target_port;
		return w;
	}
	return NULL;
}
