/* proxy route: where a captured connection goes: a workload, a service endpoint, a waypoint in
 * front of either, or nowhere known (passthrough). Pure functions over a snapshot. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy-int.h"

static bool has_ip(const struct state_workload *w, const struct state_ip *ip)
{
	for (size_t i = 0; i < w->n_ips; i++)
		if (state_ip_equal(&w->ips[i], ip))
			return true;
	return false;
}

/* The address of w to connect to for a connection that asked for orig: as upstream, the first
 * one of orig's family (a dual-stack pod behind a VIP is reached over the VIP's family), else
 * the first. w has at least one. */
static struct state_ip family_ip(const struct state_workload *w, const struct state_ip *orig)
{
	for (size_t i = 0; i < w->n_ips; i++)
		if (w->ips[i].family == orig->family)
			return w->ips[i];
	return w->ips[0];
}

const char *proxy_gateway_name(const struct state_gateway *g, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (g->hostname)
		snprintf(buf, len, "%s", g->hostname);
	else
		snprintf(buf, len, "%s", state_ip_format(&g->address, ip, sizeof(ip)));
	return buf;
}

bool proxy_from_waypoint(const struct state_snapshot *snap, const struct state_workload *dst,
			 const char *src_identity, const struct state_ip *src_ip)
{
	const struct state_gateway *g = &dst->waypoint;
	const struct state_workload *sw;
	const struct state_service *svc;
	char id[TLS_SPIFFE_MAX];

	if (!g->present || !src_identity || !src_ip)
		return false;
	/* upstream's test: the source's identity and address are those of a waypoint workload */
	sw = state_lookup_ip(snap, src_ip);
	if (!sw || strcmp(state_workload_identity(sw, id, sizeof(id)), src_identity) != 0)
		return false;
	if (g->hostname) {
		svc = state_lookup_hostname(snap, g->hostname);
	} else {
		if (has_ip(sw, &g->address))
			return true;
		svc = state_lookup_vip(snap, &g->address);
	}
	return svc && state_endpoint_entry(sw, svc);
}

/* Follows the waypoint reference g for a connection to orig: fills the next hop. 0, or -ENOENT
 * (not in the state) / -EHOSTUNREACH (no endpoint with an address) with why filled. */
static int resolve_waypoint(const struct state_snapshot *snap, const struct state_gateway *g,
			    const struct proxy_route_source *src, const struct state_ip *orig,
			    uint64_t rnd, struct proxy_route *r, char *why, size_t len)
{
	const struct state_service *svc = NULL;
	const struct state_workload *w = NULL;
	uint16_t port = g->hbone_mtls_port ? g->hbone_mtls_port : HBONE_PORT;
	char name[300];

	proxy_gateway_name(g, name, sizeof(name));
	if (g->hostname) {
		svc = state_lookup_hostname(snap, g->hostname);
	} else {
		w = state_lookup_ip(snap, &g->address);
		if (w)
			r->ip = g->address;	/* referenced by a pod address: that address */
		else
			svc = state_lookup_vip(snap, &g->address);
	}
	if (!w && !svc) {
		snprintf(why, len, "waypoint %s not found", name);
		return -ENOENT;
	}
	if (svc) {
		w = proxy_lb_pick(snap, src->workload, svc, port, rnd, &port);
		if (!w || !w->n_ips) {
			snprintf(why, len, "waypoint %s has no endpoint for port %u", name,
				 g->hbone_mtls_port);
			return -EHOSTUNREACH;
		}
		r->ip = family_ip(w, orig);
	}
	r->kind = PROXY_ROUTE_WAYPOINT;
	r->w = w;
	r->port = port;
	r->waypoint = g;
	return 0;
}

int proxy_route_pick(const struct state_snapshot *snap, const struct proxy_route_source *src,
		     const struct state_ip *dst, uint16_t dport, uint64_t rnd,
		     struct proxy_route *r, char *why, size_t len)
{
	const struct state_service *svc;

	memset(r, 0, sizeof(*r));
	r->ip = *dst;
	r->port = dport;
	r->authority_ip = *dst;
	r->authority_port = dport;
	r->w = state_lookup_ip(snap, dst);
	if (r->w) {
		/* a workload's own waypoint, unless the traffic comes from it (the sandwich) */
		if (r->w->waypoint.present &&
		    !proxy_from_waypoint(snap, r->w, src->identity, &src->ip))
			return resolve_waypoint(snap, &r->w->waypoint, src, dst, rnd, r, why, len);
		r->kind = PROXY_ROUTE_DIRECT;
		return 0;
	}
	svc = state_lookup_vip(snap, dst);
	if (!svc) {
		r->kind = PROXY_ROUTE_PASSTHROUGH;
		return 1;
	}
	r->svc = svc;
	if (svc->waypoint.present)	/* :authority stays the VIP: the waypoint load balances */
		return resolve_waypoint(snap, &svc->waypoint, src, dst, rnd, r, why, len);
	if (svc->load_balancing.mode == STATE_LB_PASSTHROUGH) {	/* to the VIP as it is */
		r->kind = PROXY_ROUTE_PASSTHROUGH;
		return 0;
	}
	/* a service-addressed connection skips its endpoint's workload waypoint, as upstream */
	r->w = proxy_lb_pick(snap, src->workload, svc, dport, rnd, &r->port);
	if (!r->w || r->w->n_ips == 0) {
		snprintf(why, len, "service has no healthy endpoint for this port");
		return -EHOSTUNREACH;
	}
	r->ip = family_ip(r->w, dst);
	r->authority_ip = r->ip;
	r->authority_port = r->port;
	r->kind = PROXY_ROUTE_DIRECT;
	return 0;
}
