/* xds/convert.c: istio.workload.Address (Workload, Service) into state snapshot entries. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workload.pb-c.h"
#include "xds-int.h"

int xds_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		state_utf8_repair(err);	/* a cut quote is still text: it goes back in the NACK */
	}
	return -EINVAL;
}

int xds_str(const char *s, char **out, const char *field, char *err, size_t errlen)
{
	size_t n;

	*out = NULL;
	if (!s || !*s)
		return 0;
	n = strnlen(s, XDS_MAX_STRING + 1);
	if (n > XDS_MAX_STRING)
		return xds_errf(err, errlen, "%s longer than %d bytes", field, XDS_MAX_STRING);
	/* protobuf-c does not check proto3's rule (upstream's decoder refuses the message) */
	if (!state_utf8_valid(s, n))
		return xds_errf(err, errlen, "%s is not UTF-8", field);
	*out = strndup(s, n);
	return *out ? 0 : -ENOMEM;
}

static int str_default(const char *s, const char *def, char **out, const char *field, char *err,
		       size_t errlen)
{
	int ret = xds_str(s, out, field, err, errlen);

	if (ret || *out)
		return ret;
	*out = strdup(def);
	return *out ? 0 : -ENOMEM;
}

int xds_ip(const ProtobufCBinaryData *b, struct state_ip *out, const char *field, char *err,
	   size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (b->len == 4) {
		out->family = AF_INET;
		memcpy(&out->v4, b->data, 4);
	} else if (b->len == 16) {
		out->family = AF_INET6;
		memcpy(&out->v6, b->data, 16);
		state_ip_unmap(out);	/* ::ffff:a.b.c.d is a.b.c.d, for the look-ups by IP */
	} else {
		return xds_errf(err, errlen, "%s: IP address of %zu bytes (want 4 or 16)", field,
				b->len);
	}
	return 0;
}

int xds_port(uint32_t v, bool zero_ok, uint16_t *out, const char *field, char *err, size_t errlen)
{
	if (v > 65535 || (!v && !zero_ok))
		return xds_errf(err, errlen, "%s: port %u out of range", field, v);
	*out = (uint16_t)v;
	return 0;
}

int xds_array(size_t n, size_t size, void *out, const char *field, char *err, size_t errlen)
{
	void **p = out;

	*p = NULL;
	if (!n)
		return 0;
	if (n > XDS_MAX_LIST)
		return xds_errf(err, errlen, "%s: %zu entries (at most %d)", field, n, XDS_MAX_LIST);
	*p = calloc(n, size);
	return *p ? 0 : -ENOMEM;
}

static int ports_convert(Istio__Workload__Port **in, size_t n, struct state_port **out,
			 size_t *n_out, const char *field, char *err, size_t errlen)
{
	int ret = xds_array(n, sizeof(**out), out, field, err, errlen);

	for (size_t i = 0; !ret && i < n; i++) {
		ret = xds_port(in[i]->service_port, false, &(*out)[i].service_port, field, err,
			       errlen);
		if (!ret)
			ret = xds_port(in[i]->target_port, true, &(*out)[i].target_port, field,
				       err, errlen);
	}
	*n_out = ret ? 0 : n;
	return ret;
}

static int strv_convert(char **in, size_t n, char ***out, size_t *n_out, const char *field,
			char *err, size_t errlen)
{
	int ret = xds_array(n, sizeof(char *), out, field, err, errlen);

	*n_out = 0;
	for (size_t i = 0; !ret && i < n; i++) {
		ret = xds_str(in[i], &(*out)[i], field, err, errlen);
		if (!ret && !(*out)[i])
			ret = xds_errf(err, errlen, "%s: empty entry", field);
		if (!ret)
			*n_out = i + 1;
	}
	return ret;
}

/* A waypoint: NamespacedHostname -> "namespace/hostname", NetworkAddress -> an address. */
static int gateway_convert(const Istio__Workload__GatewayAddress *in, struct state_gateway *g,
			   char *err, size_t errlen)
{
	const Istio__Workload__NamespacedHostname *h;
	int ret;

	if (!in)
		return 0;
	ret = xds_port(in->hbone_mtls_port, true, &g->hbone_mtls_port, "waypoint", err, errlen);
	if (ret)
		return ret;
	if (!g->hbone_mtls_port)
		g->hbone_mtls_port = 15008;
	g->present = true;
	switch (in->destination_case) {
	case ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_ADDRESS:
		return xds_ip(&in->address->address, &g->address, "waypoint", err, errlen);
	case ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_HOSTNAME:
		h = in->hostname;
		if (!h->hostname || !*h->hostname ||
		    strnlen(h->hostname, XDS_MAX_STRING) + strnlen(h->namespace_, XDS_MAX_STRING) >=
			    XDS_MAX_STRING ||
		    !state_utf8_valid(h->hostname, strlen(h->hostname)) ||
		    !state_utf8_valid(h->namespace_, strlen(h->namespace_)))
			return xds_errf(err, errlen, "waypoint: bad hostname");
		if (asprintf(&g->hostname, "%s/%s", h->namespace_, h->hostname) < 0) {
			g->hostname = NULL;
			return -ENOMEM;
		}
		return 0;
	default:
		return xds_errf(err, errlen, "waypoint without a destination");
	}
}

static int workload_services(const Istio__Workload__Workload *pw, struct state_workload *w,
			     char *err, size_t errlen)
{
	int ret = xds_array(pw->n_services, sizeof(*w->services), &w->services, "services", err,
			    errlen);

	for (size_t i = 0; !ret && i < pw->n_services; i++) {
		const Istio__Workload__Workload__ServicesEntry *e = pw->services[i];
		struct state_workload_service *ws = &w->services[i];

		w->n_services = i + 1;
		ret = xds_str(e->key, &ws->service_key, "services key", err, errlen);
		if (!ret && (!ws->service_key || !strchr(ws->service_key, '/')))
			ret = xds_errf(err, errlen, "services key \"%.64s\" is not namespace/hostname",
				       e->key ? e->key : "");
		if (!ret && e->value)
			ret = ports_convert(e->value->ports, e->value->n_ports, &ws->ports,
					    &ws->n_ports, "services ports", err, errlen);
	}
	return ret;
}

static int workload_protocol(const Istio__Workload__Workload *pw, struct state_workload *w,
			     char *err, size_t errlen)
{
	switch (pw->tunnel_protocol) {
	case ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE:
		w->protocol = STATE_PROTO_HBONE;
		return 0;
	case ISTIO__WORKLOAD__TUNNEL_PROTOCOL__NONE:
	/* a sidecar's own mTLS: this agent cannot originate it; plaintext reaches it in
	 * PERMISSIVE mode, as upstream ztunnel without the legacy feature flag */
	case ISTIO__WORKLOAD__TUNNEL_PROTOCOL__LEGACY_ISTIO_MTLS:
		w->protocol = STATE_PROTO_NONE;
		return 0;
	default:
		return xds_errf(err, errlen, "unknown tunnel_protocol %d", (int)pw->tunnel_protocol);
	}
}

static int workload_strings(const Istio__Workload__Workload *pw, struct state_workload *w,
			    char *err, size_t errlen)
{
	const struct {
		const char *in;
		char **out;
		const char *field;
	} s[] = {
		{ pw->uid, &w->uid, "uid" },
		{ pw->name, &w->name, "name" },
		{ pw->namespace_, &w->namespace_, "namespace" },
		{ pw->node, &w->node, "node" },
		{ pw->network, &w->network, "network" },
		{ pw->canonical_name, &w->canonical_name, "canonical_name" },
		{ pw->canonical_revision, &w->canonical_revision, "canonical_revision" },
		{ pw->workload_name, &w->workload_name, "workload_name" },
		{ pw->cluster_id, &w->cluster_id, "cluster_id" },
		{ pw->hostname, &w->hostname, "hostname" },
	};
	int ret = 0;

	for (size_t i = 0; !ret && i < sizeof(s) / sizeof(s[0]); i++)
		ret = xds_str(s[i].in, s[i].out, s[i].field, err, errlen);
	if (!ret)
		ret = str_default(pw->service_account, "default", &w->service_account,
				  "service_account", err, errlen);
	if (!ret)
		ret = str_default(pw->trust_domain, "cluster.local", &w->trust_domain,
				  "trust_domain", err, errlen);
	return ret;
}

/* What load balancing reads of a workload: status, locality, capacity (default 1). */
static int workload_balancing(const Istio__Workload__Workload *pw, struct state_workload *w,
			      char *err, size_t errlen)
{
	const Istio__Workload__Locality *l = pw->locality;
	int ret = 0;

	w->unhealthy = pw->status == ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY;
	if (pw->application_tunnel) {
		w->application_tunnel.present = true;
		w->application_tunnel.proxy = pw->application_tunnel->protocol ==
			ISTIO__WORKLOAD__APPLICATION_TUNNEL__PROTOCOL__PROXY;
		ret = xds_port(pw->application_tunnel->port, true, &w->application_tunnel.port,
			       "application_tunnel.port", err, errlen);
		if (ret)
			return ret;
	}
	w->capacity = pw->capacity ? pw->capacity->value : 1;
	if (l) {
		ret = xds_str(l->region, &w->locality.region, "locality.region", err, errlen);
		if (!ret)
			ret = xds_str(l->zone, &w->locality.zone, "locality.zone", err, errlen);
		if (!ret)
			ret = xds_str(l->subzone, &w->locality.subzone, "locality.subzone", err,
				      errlen);
	}
	return ret;
}

/* A service's LoadBalancing; unknown scopes are refused as upstream does. */
static int balancing_convert(const Istio__Workload__LoadBalancing *in,
			     struct state_load_balancing *lb, char *err, size_t errlen)
{
	if (!in)
		return 0;
	if (in->n_routing_preference > STATE_LB_MAX_PREFS)
		return xds_errf(err, errlen, "load_balancing: more than %d routing preferences",
				STATE_LB_MAX_PREFS);
	for (size_t i = 0; i < in->n_routing_preference; i++) {
		int sc = (int)in->routing_preference[i];

		if (sc < STATE_LB_REGION || sc > STATE_LB_NETWORK)
			return xds_errf(err, errlen, "load_balancing: invalid scope %d", sc);
		lb->routing_preferences[i] = sc;	/* the proto's numbers are ours */
	}
	lb->n_routing_preferences = in->n_routing_preference;
	switch (in->mode) {
	case ISTIO__WORKLOAD__LOAD_BALANCING__MODE__STRICT: lb->mode = STATE_LB_STRICT; break;
	case ISTIO__WORKLOAD__LOAD_BALANCING__MODE__FAILOVER: lb->mode = STATE_LB_FAILOVER; break;
	case ISTIO__WORKLOAD__LOAD_BALANCING__MODE__PASSTHROUGH:
		lb->mode = STATE_LB_PASSTHROUGH;
		break;
	default: lb->mode = STATE_LB_STANDARD; break;
	}
	lb->allow_unhealthy =
		in->health_policy == ISTIO__WORKLOAD__LOAD_BALANCING__HEALTH_POLICY__ALLOW_ALL;
	return 0;
}

/* Fills w (zeroed by the caller); on failure w may hold partial allocations to free. */
static int workload_convert(const Istio__Workload__Workload *pw, struct state_workload *w,
			    char *err, size_t errlen)
{
	int ret = workload_strings(pw, w, err, errlen);

	if (!ret)
		ret = workload_protocol(pw, w, err, errlen);
	if (!ret)
		ret = xds_array(pw->n_addresses, sizeof(*w->ips), &w->ips, "addresses", err, errlen);
	for (size_t i = 0; !ret && i < pw->n_addresses; i++) {
		ret = xds_ip(&pw->addresses[i], &w->ips[i], "addresses", err, errlen);
		w->n_ips = i + 1;
	}
	if (!ret)
		ret = workload_services(pw, w, err, errlen);
	if (!ret)
		ret = gateway_convert(pw->waypoint, &w->waypoint, err, errlen);
	if (!ret)
		ret = strv_convert(pw->authorization_policies, pw->n_authorization_policies,
				   &w->authorization_policies, &w->n_authorization_policies,
				   "authorization_policies", err, errlen);
	if (!ret)
		ret = workload_balancing(pw, w, err, errlen);
	return ret;
}

static int service_convert(const Istio__Workload__Service *ps, struct state_service *s,
			   char *err, size_t errlen)
{
	int ret = xds_str(ps->name, &s->name, "name", err, errlen);

	if (!ret)
		ret = xds_str(ps->namespace_, &s->namespace_, "namespace", err, errlen);
	if (!ret)
		ret = xds_str(ps->hostname, &s->hostname, "hostname", err, errlen);
	if (!ret && !s->hostname)
		ret = xds_errf(err, errlen, "service without a hostname");
	if (!ret)
		ret = xds_array(ps->n_addresses, sizeof(*s->vips), &s->vips, "addresses", err, errlen);
	for (size_t i = 0; !ret && i < ps->n_addresses; i++) {
		ret = xds_ip(&ps->addresses[i]->address, &s->vips[i], "addresses", err, errlen);
		s->n_vips = i + 1;
	}
	if (!ret)
		ret = ports_convert(ps->ports, ps->n_ports, &s->ports, &s->n_ports, "ports", err,
				    errlen);
	if (!ret)
		ret = strv_convert(ps->subject_alt_names, ps->n_subject_alt_names,
				   &s->subject_alt_names, &s->n_subject_alt_names,
				   "subject_alt_names", err, errlen);
	if (!ret)
		ret = gateway_convert(ps->waypoint, &s->waypoint, err, errlen);
	if (!ret)
		ret = balancing_convert(ps->load_balancing, &s->load_balancing, err, errlen);
	return ret;
}

/*
 * The entry is converted in place at the end of the snapshot's array and counted even when
 * conversion fails, so that state_snapshot_put frees its partial allocations: the caller
 * then discards the whole snapshot.
 */
int xds_convert_address(const uint8_t *body, size_t len, struct state_snapshot *snap, char *err,
			size_t errlen)
{
	Istio__Workload__Address *a;
	int ret;

	a = istio__workload__address__unpack(NULL, len, body);
	if (!a)
		return xds_errf(err, errlen, "not a valid istio.workload.Address message");
	switch (a->type_case) {
	case ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD:
		ret = workload_convert(a->workload, &snap->workloads[snap->n_workloads++], err,
				       errlen);
		break;
	case ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE:
		ret = service_convert(a->service, &snap->services[snap->n_services++], err, errlen);
		break;
	default:
		ret = xds_errf(err, errlen, "Address with neither workload nor service");
	}
	istio__workload__address__free_unpacked(a, NULL);
	return ret;
}

int xds_convert_check(enum xds_kind kind, const uint8_t *body, size_t len, char *err,
		      size_t errlen)
{
	struct state_snapshot *snap = state_snapshot_new();
	int ret = -ENOMEM;

	if (!snap)
		return -ENOMEM;
	snap->workloads = calloc(1, sizeof(*snap->workloads));
	snap->services = calloc(1, sizeof(*snap->services));
	snap->policies = calloc(1, sizeof(*snap->policies));
	if (snap->workloads && snap->services && snap->policies)
		ret = kind == XDS_KIND_ADDRESS ? xds_convert_address(body, len, snap, err, errlen) :
						 xds_convert_authz(body, len, snap, err, errlen);
	state_snapshot_put(&snap);
	return ret;
}
