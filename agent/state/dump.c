/* state dump: a snapshot as JSON for the admin port's /config_dump. */
#include <stdio.h>

#include <ztunnel/state.h>

void state_json_string(FILE *out, const char *s)
{
	if (!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void ips(FILE *out, const struct state_ip *v, size_t n)
{
	char buf[INET6_ADDRSTRLEN];

	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? "," : "", out);
		state_json_string(out, state_ip_format(&v[i], buf, sizeof(buf)));
	}
	fputc(']', out);
}

static void ports(FILE *out, const struct state_port *p, size_t n)
{
	fputc('{', out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s\"%u\":%u", i ? "," : "", p[i].service_port, p[i].target_port);
	fputc('}', out);
}

static void strings(FILE *out, char *const *v, size_t n)
{
	fputc('[', out);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? "," : "", out);
		state_json_string(out, v[i]);
	}
	fputc(']', out);
}

/* ,"waypoint":{"destination":"/10.0.0.5" or "ns/host","hboneMtlsPort":15008}, when set */
static void gateway(FILE *out, const struct state_gateway *g)
{
	char ip[INET6_ADDRSTRLEN + 1] = "/";

	if (!g->present)
		return;
	fputs(",\"waypoint\":{\"destination\":", out);
	if (g->hostname)
		state_json_string(out, g->hostname);
	else
		state_json_string(out, state_ip_format(&g->address, ip + 1, sizeof(ip) - 1) - 1);
	fprintf(out, ",\"hboneMtlsPort\":%u}", g->hbone_mtls_port);
}

/* What load balancing and the application tunnel read of a workload. */
static void workload_extras(FILE *out, const struct state_workload *w)
{
	fprintf(out, ",\"capacity\":%u,\"status\":\"%s\"", w->capacity,
		w->unhealthy ? "Unhealthy" : "Healthy");
	if (w->locality.region || w->locality.zone || w->locality.subzone) {
		fputs(",\"locality\":{\"region\":", out);
		state_json_string(out, w->locality.region);
		fputs(",\"zone\":", out);
		state_json_string(out, w->locality.zone);
		fputs(",\"subzone\":", out);
		state_json_string(out, w->locality.subzone);
		fputc('}', out);
	}
	if (w->application_tunnel.present)
		fprintf(out, ",\"applicationTunnel\":{\"protocol\":\"%s\",\"port\":%u}",
			w->application_tunnel.proxy ? "PROXY" : "NONE", w->application_tunnel.port);
	gateway(out, &w->waypoint);
}

static void load_balancer(FILE *out, const struct state_load_balancing *lb)
{
	static const char *const modes[] = { "Standard", "Strict", "Failover", "Passthrough" };
	static const char *const scopes[] = { "?", "Region", "Zone", "Subzone", "Node", "Cluster",
					      "Network" };

	fprintf(out, ",\"loadBalancer\":{\"mode\":\"%s\",\"routingPreferences\":[",
		lb->mode <= STATE_LB_PASSTHROUGH ? modes[lb->mode] : "?");
	for (size_t i = 0; i < lb->n_routing_preferences; i++) {
		int sc = lb->routing_preferences[i];

		fprintf(out, "%s\"%s\"", i ? "," : "",
			sc >= STATE_LB_REGION && sc <= STATE_LB_NETWORK ? scopes[sc] : "?");
	}
	fprintf(out, "],\"healthPolicy\":\"%s\"}", lb->allow_unhealthy ? "AllowAll" : "OnlyHealthy");
}

static void workload(FILE *out, const struct state_workload *w)
{
	char id[600];

	fputs("{\"uid\":", out);
	state_json_string(out, w->uid);
	fputs(",\"name\":", out);
	state_json_string(out, w->name);
	fputs(",\"namespace\":", out);
	state_json_string(out, w->namespace_);
	fputs(",\"serviceAccount\":", out);
	state_json_string(out, w->service_account);
	fputs(",\"identity\":", out);
	state_json_string(out, state_workload_identity(w, id, sizeof(id)));
	fputs(",\"node\":", out);
	state_json_string(out, w->node);
	if (w->hostname) {
		fputs(",\"hostname\":", out);
		state_json_string(out, w->hostname);
	}
	fprintf(out, ",\"protocol\":\"%s\",\"workloadIps\":",
		w->protocol == STATE_PROTO_HBONE ? "HBONE" : "TCP");
	ips(out, w->ips, w->n_ips);
	fputs(",\"services\":{", out);
	for (size_t i = 0; i < w->n_services; i++) {
		fputs(i ? "," : "", out);
		state_json_string(out, w->services[i].service_key);
		fputc(':', out);
		ports(out, w->services[i].ports, w->services[i].n_ports);
	}
	fputs("},\"authorizationPolicies\":", out);
	strings(out, w->authorization_policies, w->n_authorization_policies);
	workload_extras(out, w);
	fputc('}', out);
}

static void service(FILE *out, const struct state_service *s)
{
	fputs("{\"name\":", out);
	state_json_string(out, s->name);
	fputs(",\"namespace\":", out);
	state_json_string(out, s->namespace_);
	fputs(",\"hostname\":", out);
	state_json_string(out, s->hostname);
	fputs(",\"vips\":", out);
	ips(out, s->vips, s->n_vips);
	fputs(",\"ports\":", out);
	ports(out, s->ports, s->n_ports);
	fputs(",\"subjectAltNames\":", out);
	strings(out, s->subject_alt_names, s->n_subject_alt_names);
	gateway(out, &s->waypoint);
	load_balancer(out, &s->load_balancing);
	fputc('}', out);
}

static void policy(FILE *out, const struct state_policy *p)
{
	static const char *const scopes[] = { "Global", "Namespace", "WorkloadSelector" };

	fputs("{\"name\":", out);
	state_json_string(out, p->name);
	fputs(",\"namespace\":", out);
	state_json_string(out, p->namespace_);
	fprintf(out, ",\"scope\":\"%s\",\"action\":\"%s\",\"dryRun\":%s,\"rules\":%zu}",
		p->scope <= STATE_SCOPE_WORKLOAD ? scopes[p->scope] : "?",
		p->action == STATE_ACTION_DENY ? "Deny" : "Allow", p->dry_run ? "true" : "false",
		p->n_rules);
}

static void peer_auth(FILE *out, const struct state_peer_auth *pa)
{
	static const char *const modes[] = { "UNSET", "PERMISSIVE", "STRICT", "DISABLE" };

	fputs("{\"name\":", out);
	state_json_string(out, pa->name);
	fputs(",\"namespace\":", out);
	state_json_string(out, pa->namespace_);
	fprintf(out, ",\"mode\":\"%s\",\"selector\":{", pa->mode <= STATE_PA_DISABLE ?
		modes[pa->mode] : "?");
	for (size_t i = 0; i < pa->n_selector; i++) {
		fputs(i ? "," : "", out);
		state_json_string(out, pa->selector_keys[i]);
		fputc(':', out);
		state_json_string(out, pa->selector_values[i]);
	}
	fputs("}}", out);
}

void state_dump_json(const struct state_snapshot *snap, FILE *out)
{
	size_t i;

	fputs("\"workloads\":[", out);
	for (i = 0; i < snap->n_workloads; i++) {
		fputs(i ? "," : "", out);
		workload(out, &snap->workloads[i]);
	}
	fputs("],\"services\":[", out);
	for (i = 0; i < snap->n_services; i++) {
		fputs(i ? "," : "", out);
		service(out, &snap->services[i]);
	}
	fputs("],\"policies\":[", out);
	for (i = 0; i < snap->n_policies; i++) {
		fputs(i ? "," : "", out);
		policy(out, &snap->policies[i]);
	}
	fputs("],\"peerAuthentications\":[", out);
	for (i = 0; i < snap->n_peer_auths; i++) {
		fputs(i ? "," : "", out);
		peer_auth(out, &snap->peer_auths[i]);
	}
	fputc(']', out);
}
