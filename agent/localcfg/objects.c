/* localcfg/objects.c: keyword tables for workloads, services and waypoint (gateway) references. */
#include <errno.h>
#include <string.h>
#include "parse.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))

/* "network/1.2.3.4" (an address) or "namespace/hostname", as upstream's untagged enum. */
static int gw_destination(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_gateway *g = obj;
	const char *t = localcfg_text(c, v), *slash;

	if (!t)
		return -EINVAL;
	slash = strchr(t, '/');
	if (slash && state_ip_parse(t, &g->address) == 0) {
		g->present = true;
		return 0;
	}
	if (!slash || slash == t || !slash[1])
		return localcfg_fail(c, v, "%s: bad destination \"%.64s\" (want network/IP or "
				     "namespace/hostname)", c->key, t);
	g->present = true;
	return localcfg_strdup(c, v, &g->hostname);
}

static const struct lc_field gateway_fields[] = {
	{ "destination", gw_destination, 0, 0, NULL, true },
	LC_FIELD("hboneMtlsPort", localcfg_f_port, struct state_gateway, hbone_mtls_port),
};

/* waypoint / networkGateway: {destination: ..., hboneMtlsPort: 15008}. */
int localcfg_f_gateway(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_gateway discarded = { 0 };
	struct state_gateway *g = f->off == LC_DISCARD ? &discarded : LC_FIELD_PTR(obj, f);
	int ret;

	if (localcfg_is_null(v))
		return 0;
	ret = localcfg_fields(c, v, gateway_fields, N(gateway_fields), g, c->key);
	if (!g->hbone_mtls_port)
		g->hbone_mtls_port = 15008;
	free(discarded.hostname);
	return ret;
}

/* A workload's services map: {"namespace/hostname": {port: targetPort}}. */
static int f_workload_services(struct lc_ctx *c, yaml_node_t *v, void *obj,
			       const struct lc_field *f)
{
	struct state_workload *w = obj;
	size_t count;

	if (localcfg_map_len(c, v, &count))
		return -EINVAL;
	if (!count)
		return 0;
	w->services = calloc(count, sizeof(*w->services));
	if (!w->services)
		return localcfg_oom(c, v);
	w->n_services = count;
	for (size_t i = 0; i < count; i++) {
		yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
		struct state_workload_service *ws = &w->services[i];
		yaml_node_t *k = localcfg_node(c, p->key), *pv = localcfg_node(c, p->value);
		const char *slash;

		if (!k || !pv || localcfg_strdup(c, k, &ws->service_key))
			return -EINVAL;
		slash = strchr(ws->service_key, '/');
		if (!slash || slash == ws->service_key || !slash[1])
			return localcfg_fail(c, k, "%s: bad service key \"%.64s\" (want "
					     "namespace/hostname)", c->key, ws->service_key);
		for (size_t j = 0; j < i; j++)
			if (strcmp(w->services[j].service_key, ws->service_key) == 0)
				return localcfg_fail(c, k, "%s: duplicate service \"%.64s\"",
						     c->key, ws->service_key);
		if (localcfg_portmap(c, pv, &ws->ports, &ws->n_ports))
			return -EINVAL;
	}
	return 0;
}

static int f_tunnel_protocol(struct lc_ctx *c, yaml_node_t *v, void *obj,
			     const struct lc_field *f)
{
	static const struct lc_enum names = { { "NONE", "PROXY" }, { 0, 1 } };

	return localcfg_enum_bool(c, v, f->key, &names, &((struct state_app_tunnel *)obj)->proxy);
}

static const struct lc_field app_tunnel_fields[] = {
	{ "protocol", f_tunnel_protocol, 0, 0, NULL, true },
	LC_FIELD("port", localcfg_f_port, struct state_app_tunnel, port),
};

/* applicationTunnel: {protocol: NONE | PROXY, port: 15088}. */
static int f_app_tunnel(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_app_tunnel *t = LC_FIELD_PTR(obj, f);

	if (localcfg_is_null(v))
		return 0;
	t->present = true;
	return localcfg_fields(c, v, app_tunnel_fields, N(app_tunnel_fields), t, c->key);
}

static const struct lc_enum protocols = {
	{ "HBONE", "TCP", "NONE" }, { STATE_PROTO_HBONE, STATE_PROTO_NONE, STATE_PROTO_NONE } };
static const struct lc_enum network_modes = { { "Standard", "HostNetwork" }, { 0, 1 } };

#define W struct state_workload
static const struct lc_field workload_fields[] = {
	LC_FIELD("uid", localcfg_f_str, W, uid),
	LC_FIELD("name", localcfg_f_str, W, name),
	LC_FIELD("namespace", localcfg_f_str, W, namespace_),
	LC_FIELD("serviceAccount", localcfg_f_str, W, service_account),
	LC_FIELD("trustDomain", localcfg_f_str, W, trust_domain),
	LC_ARRAY("workloadIps", localcfg_f_ips, W, ips, n_ips),
	LC_ENUM("protocol", W, protocol, &protocols, false),
	LC_FIELD("node", localcfg_f_str, W, node),
	LC_FIELD("network", localcfg_f_str, W, network),
	LC_FIELD("canonicalName", localcfg_f_str, W, canonical_name),
	LC_FIELD("canonicalRevision", localcfg_f_str, W, canonical_revision),
	LC_FIELD("workloadName", localcfg_f_str, W, workload_name),
	LC_FIELD("clusterId", localcfg_f_str, W, cluster_id),
	LC_FIELD("hostname", localcfg_f_str, W, hostname),
	LC_ARRAY("authorizationPolicies", localcfg_f_strv, W, authorization_policies,
		 n_authorization_policies),
	LC_FIELD("services", f_workload_services, W, services),
	LC_FIELD("waypoint", localcfg_f_gateway, W, waypoint),
	/* Upstream fields this agent does not use yet: checked, then dropped. */
	LC_IGNORED("workloadType", localcfg_f_str),
	LC_FIELD("status", localcfg_f_status, W, unhealthy),
	LC_IGNORED_ENUM("networkMode", &network_modes),
	LC_IGNORED("networkGateway", localcfg_f_gateway),
	LC_IGNORED("nativeTunnel", localcfg_f_bool),
	LC_FIELD("capacity", localcfg_f_uint, W, capacity),
	LC_FIELD("applicationTunnel", f_app_tunnel, W, application_tunnel),
	LC_FIELD("locality", localcfg_f_locality, W, locality),
};
#undef W

static int default_string(struct lc_ctx *c, yaml_node_t *n, char **s, const char *def)
{
	if (*s && **s)
		return 0;
	free(*s);
	*s = strdup(def);
	return *s ? 0 : localcfg_oom(c, n);
}

int localcfg_workload(struct lc_ctx *c, yaml_node_t *item, void *elem)
{
	struct state_workload *w = elem;
	int ret;

	w->capacity = 1;	/* upstream's default */
	ret = localcfg_fields(c, item, workload_fields, N(workload_fields), w, "workload");
	if (!ret)
		ret = default_string(c, item, &w->service_account, "default");
	if (!ret)
		ret = default_string(c, item, &w->trust_domain, "cluster.local");
	return ret;
}

static const struct lc_enum ip_families = { { "Dual", "IPv4", "IPv6" }, { 0, 1, 2 } };
static const struct lc_enum visibilities = { { "Public", "Namespace" }, { 0, 1 } };

#define S struct state_service
static const struct lc_field service_fields[] = {
	LC_FIELD("name", localcfg_f_str, S, name),
	LC_FIELD("namespace", localcfg_f_str, S, namespace_),
	LC_FIELD("hostname", localcfg_f_str, S, hostname),
	LC_ARRAY("vips", localcfg_f_ips, S, vips, n_vips),
	LC_ARRAY("ports", localcfg_f_ports, S, ports, n_ports),
	LC_ARRAY("subjectAltNames", localcfg_f_strv, S, subject_alt_names, n_subject_alt_names),
	LC_FIELD("waypoint", localcfg_f_gateway, S, waypoint),
	LC_IGNORED("canonical", localcfg_f_bool),
	LC_IGNORED_ENUM("ipFamilies", &ip_families),
	LC_IGNORED_ENUM("visibility", &visibilities),
	LC_IGNORED("endpoints", localcfg_f_any),
	LC_FIELD("loadBalancer", localcfg_f_load_balancer, S, load_balancing),
};
#undef S

int localcfg_service(struct lc_ctx *c, yaml_node_t *item, void *elem)
{
	return localcfg_fields(c, item, service_fields, N(service_fields), elem, "service");
}
