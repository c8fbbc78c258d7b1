/* state/lookup.c: finding workloads and services in a snapshot, and picking service endpoints. */
#include <string.h>
#include <ztunnel/state.h>

#include "state-int.h"

/*
 * A published snapshot has hash indexes (index.c) and is looked up through them. The linear
 * scans below answer for a snapshot without them (not published, or its index could not be
 * allocated) and are what the index is tested against.
 */

const struct state_workload *state_lookup_ip(const struct state_snapshot *snap,
					     const struct state_ip *ip)
{
	if (!snap || !ip)
		return NULL;
	if (snap->index)
		return state_index_ip(snap, ip);
	for (size_t i = 0; i < snap->n_workloads; i++) {
		const struct state_workload *w = &snap->workloads[i];

		for (size_t j = 0; j < w->n_ips; j++)
			if (state_ip_equal(&w->ips[j], ip))
				return w;
	}
	return NULL;
}

const struct state_service *state_lookup_vip(const struct state_snapshot *snap,
					     const struct state_ip *ip)
{
	if (!snap || !ip)
		return NULL;
	if (snap->index)
		return state_index_vip(snap, ip);
	for (size_t i = 0; i < snap->n_services; i++) {
		const struct state_service *s = &snap->services[i];

		for (size_t j = 0; j < s->n_vips; j++)
			if (state_ip_equal(&s->vips[j], ip))
				return s;
	}
	return NULL;
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* key == "<ns>/<hostname>" without building the string. */
static bool key_is(const char *key, const char *ns, const char *hostname)
{
	size_t nl;

	if (!key || !ns || !hostname)
		return false;
	nl = strlen(ns);
	return strncmp(key, ns, nl) == 0 && key[nl] == '/' && strcmp(key + nl + 1, hostname) == 0;
}

/* hostname is a bare hostname ("example.com") or "namespace/hostname". */
const struct state_service *state_lookup_hostname(const struct state_snapshot *snap,
						  const char *hostname)
{
	bool keyed;

	if (!snap || !hostname)
		return NULL;
	if (snap->index)
		return state_index_hostname(snap, hostname);
	keyed = strchr(hostname, '/') != NULL;
	for (size_t i = 0; i < snap->n_services; i++) {
		const struct state_service *s = &snap->services[i];

		if (keyed ? key_is(hostname, s->namespace_, s->hostname) :
			    str_eq(s->hostname, hostname))
			return s;
	}
	return NULL;
}

const struct state_workload *state_lookup_pod(const struct state_snapshot *snap, const char *uid,
					      const char *namespace_, const char *name)
{
	if (!snap)
		return NULL;
	if (snap->index)
		return state_index_pod(snap, uid, namespace_, name);
	if (uid && *uid)
		for (size_t i = 0; i < snap->n_workloads; i++)
			if (str_eq(snap->workloads[i].uid, uid))
				return &snap->workloads[i];
	if (!namespace_ || !name)
		return NULL;
	for (size_t i = 0; i < snap->n_workloads; i++) {
		const struct state_workload *w = &snap->workloads[i];

		if (str_eq(w->namespace_, namespace_) && str_eq(w->name, name))
			return w;
	}
	return NULL;
}

const struct state_workload_service *state_endpoint_entry(const struct state_workload *w,
							 const struct state_service *svc)
{
	for (size_t i = 0; i < w->n_services; i++)
		if (key_is(w->services[i].service_key, svc->namespace_, svc->hostname))
			return &w->services[i];
	return NULL;
}

static uint16_t pick_target_port(const struct state_workload_service *ws,
				 const struct state_port *sp, uint16_t port)
{
	for (size_t i = 0; i < ws->n_ports; i++)
		if (ws->ports[i].service_port == port && ws->ports[i].target_port)
			return ws->ports[i].target_port;
	return sp->target_port ? sp->target_port : port;
}

const struct state_workload *state_service_pick(const struct state_snapshot *snap,
						const struct state_service *svc, uint16_t port,
						uint32_t hint, uint16_t *target_port)
{
	struct state_endpoint_iter it;
	const struct state_port *sp = NULL;
	size_t n = 0, want;

	if (!snap || !svc)
		return NULL;
	for (size_t i = 0; i < svc->n_ports && !sp; i++)
		if (svc->ports[i].service_port == port)
			sp = &svc->ports[i];
	if (!sp)
		return NULL;
	if (state_endpoints_begin(snap, svc, &it)) {	/* the service's own endpoints */
		size_t k;

		if (!it.n)
			return NULL;
		k = hint % it.n;
		if (target_port)
			*target_port = pick_target_port(it.entry[k], sp, port);
		return &snap->workloads[it.at[k]];
	}
	for (size_t i = 0; i < snap->n_workloads; i++)
		if (state_endpoint_entry(&snap->workloads[i], svc))
			n++;
	if (!n)
		return NULL;
	want = hint % n;
	for (size_t i = 0; i < snap->n_workloads; i++) {
		const struct state_workload *w = &snap->workloads[i];
		const struct state_workload_service *ws = state_endpoint_entry(w, svc);

		if (!ws || want--)
			continue;
		if (target_port)
			*target_port = pick_target_port(ws, sp, port);
		return w;
	}
	return NULL;
}
