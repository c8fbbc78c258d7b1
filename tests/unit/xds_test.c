/* xds_test: Address/Authorization conversion into snapshots, NACK cases, delta apply
 * (add, update, remove, re-add), the resource table, and the requests (node, versions, NACK). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/xds.h>

#include "../../agent/xds/xds-int.h"
#include "authorization.pb-c.h"
#include "workload.pb-c.h"

#include "check.h"

static bool str_is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Packed bodies live until the end of the test. */
static void *bodies[4096];
static size_t n_bodies;

static ProtobufCBinaryData pack(const ProtobufCMessage *m)
{
	ProtobufCBinaryData b = { protobuf_c_message_get_packed_size(m), NULL };

	b.data = malloc(b.len ? b.len : 1);
	protobuf_c_message_pack(m, b.data);
	bodies[n_bodies++] = b.data;
	return b;
}

static ProtobufCBinaryData bytes(const void *p, size_t n)
{
	return (ProtobufCBinaryData){ n, (uint8_t *)p };
}

#define MAXR 16
struct response {
	Envoy__Service__Discovery__V3__DeltaDiscoveryResponse resp;
	Envoy__Service__Discovery__V3__Resource res[MAXR], *res_ptrs[MAXR];
	Google__Protobuf__Any any[MAXR];
	char *removed[MAXR];
};

static void response_init(struct response *r, const char *type_url)
{
	memset(r, 0, sizeof(*r));
	envoy__service__discovery__v3__delta_discovery_response__init(&r->resp);
	r->resp.type_url = (char *)type_url;
	r->resp.resources = r->res_ptrs;
	r->resp.removed_resources = r->removed;
	r->resp.nonce = "n1";
}

static void response_add(struct response *r, const char *name, const char *version,
			 const char *type_url, ProtobufCBinaryData body)
{
	size_t i = r->resp.n_resources++;

	envoy__service__discovery__v3__resource__init(&r->res[i]);
	google__protobuf__any__init(&r->any[i]);
	r->any[i].type_url = (char *)type_url;
	r->any[i].value = body;
	r->res[i].name = (char *)name;
	r->res[i].version = (char *)version;
	r->res[i].resource = &r->any[i];
	r->res_ptrs[i] = &r->res[i];
}

static void response_remove(struct response *r, const char *name)
{
	r->removed[r->resp.n_removed_resources++] = (char *)name;
}

static const uint8_t ip_client[4] = { 10, 201, 1, 2 }, ip_v6[16] = { 0xfd, [15] = 1 };
static const uint8_t ip_vip[4] = { 10, 96, 0, 10 }, ip_bad[5] = { 1, 2, 3, 4, 5 };

/* An Address{workload} with uid, name and one address. */
static ProtobufCBinaryData workload_body(const char *uid, const char *name, const uint8_t *ip,
					 size_t iplen, int proto)
{
	Istio__Workload__Workload w = ISTIO__WORKLOAD__WORKLOAD__INIT;
	Istio__Workload__Address a = ISTIO__WORKLOAD__ADDRESS__INIT;
	ProtobufCBinaryData addr = bytes(ip, iplen);

	w.uid = (char *)uid;
	w.name = (char *)name;
	w.namespace_ = "default";
	w.n_addresses = ip ? 1 : 0;
	w.addresses = &addr;
	w.tunnel_protocol = proto;
	a.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD;
	a.workload = &w;
	return pack(&a.base);
}

/* A full workload: two addresses, services map, waypoint, policies, identity. */
static ProtobufCBinaryData workload_full_body(void)
{
	Istio__Workload__Workload w = ISTIO__WORKLOAD__WORKLOAD__INIT;
	Istio__Workload__Address a = ISTIO__WORKLOAD__ADDRESS__INIT;
	ProtobufCBinaryData addrs[2] = { bytes(ip_client, 4), bytes(ip_v6, 16) };
	Istio__Workload__Port port = ISTIO__WORKLOAD__PORT__INIT, *portp = &port;
	Istio__Workload__PortList pl = ISTIO__WORKLOAD__PORT_LIST__INIT;
	Istio__Workload__Workload__ServicesEntry se = ISTIO__WORKLOAD__WORKLOAD__SERVICES_ENTRY__INIT;
	Istio__Workload__Workload__ServicesEntry *sep = &se;
	Istio__Workload__GatewayAddress gw = ISTIO__WORKLOAD__GATEWAY_ADDRESS__INIT;
	Istio__Workload__NetworkAddress gwa = ISTIO__WORKLOAD__NETWORK_ADDRESS__INIT;
	char *pols[] = { "default/p1", "default/p2" };
	Istio__Workload__Locality loc = ISTIO__WORKLOAD__LOCALITY__INIT;
	Google__Protobuf__UInt32Value cap = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;

	loc.region = "r1";
	loc.zone = "z1";
	cap.value = 7;
	w.locality = &loc;
	w.capacity = &cap;
	w.status = ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY;
	port.service_port = 80;
	port.target_port = 8080;
	pl.n_ports = 1;
	pl.ports = &portp;
	se.key = "default/server.default.svc.cluster.local";
	se.value = &pl;
	gwa.address = bytes(ip_vip, 4);
	gw.destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_ADDRESS;
	gw.address = &gwa;
	w.uid = "c1//Pod/default/client";
	w.name = "client";
	w.namespace_ = "default";
	w.n_addresses = 2;
	w.addresses = addrs;
	w.tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE;
	w.trust_domain = "example.org";
	w.service_account = "sa1";
	w.node = "node1";
	w.canonical_name = "client-app";
	w.n_services = 1;
	w.services = &sep;
	w.waypoint = &gw;
	w.n_authorization_policies = 2;
	w.authorization_policies = pols;
	a.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_WORKLOAD;
	a.workload = &w;
	return pack(&a.base);
}

static ProtobufCBinaryData service_body(const char *hostname, const uint8_t *vip, size_t viplen,
					uint32_t port_number)
{
	Istio__Workload__Service s = ISTIO__WORKLOAD__SERVICE__INIT;
	Istio__Workload__Address a = ISTIO__WORKLOAD__ADDRESS__INIT;
	Istio__Workload__NetworkAddress na = ISTIO__WORKLOAD__NETWORK_ADDRESS__INIT, *nap = &na;
	Istio__Workload__Port port = ISTIO__WORKLOAD__PORT__INIT, *portp = &port;
	Istio__Workload__GatewayAddress gw = ISTIO__WORKLOAD__GATEWAY_ADDRESS__INIT;
	Istio__Workload__NamespacedHostname nh = ISTIO__WORKLOAD__NAMESPACED_HOSTNAME__INIT;
	char *sans[] = { "spiffe://cluster.local/ns/default/sa/server" };
	Istio__Workload__LoadBalancing lb = ISTIO__WORKLOAD__LOAD_BALANCING__INIT;
	Istio__Workload__LoadBalancing__Scope prefs[] = {
		ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__REGION,
		ISTIO__WORKLOAD__LOAD_BALANCING__SCOPE__ZONE };

	lb.mode = ISTIO__WORKLOAD__LOAD_BALANCING__MODE__FAILOVER;
	lb.n_routing_preference = 2;
	lb.routing_preference = prefs;
	lb.health_policy = ISTIO__WORKLOAD__LOAD_BALANCING__HEALTH_POLICY__ALLOW_ALL;
	s.load_balancing = &lb;
	na.address = bytes(vip, viplen);
	port.service_port = port_number;
	port.target_port = 8080;
	nh.namespace_ = "istio-system";
	nh.hostname = "waypoint.istio-system.svc.cluster.local";
	gw.destination_case = ISTIO__WORKLOAD__GATEWAY_ADDRESS__DESTINATION_HOSTNAME;
	gw.hostname = &nh;
	gw.hbone_mtls_port = 15009;
	s.name = "server";
	s.namespace_ = "default";
	s.hostname = (char *)hostname;
	s.n_addresses = 1;
	s.addresses = &nap;
	s.n_ports = 1;
	s.ports = &portp;
	s.n_subject_alt_names = 1;
	s.subject_alt_names = sans;
	s.waypoint = &gw;
	a.type_case = ISTIO__WORKLOAD__ADDRESS__TYPE_SERVICE;
	a.service = &s;
	return pack(&a.base);
}

/* An Authorization with one rule / clause / match holding one of each field kind. */
struct policy_spec {
	int scope, action, match_type, prefix_len;
	uint32_t port;
	size_t iplen;
};

static ProtobufCBinaryData policy_body(const char *name, const struct policy_spec *ps)
{
	Istio__Security__Authorization p = ISTIO__SECURITY__AUTHORIZATION__INIT;
	Istio__Security__Rule r = ISTIO__SECURITY__RULE__INIT, *rp = &r;
	Istio__Security__Clause c = ISTIO__SECURITY__CLAUSE__INIT, *cp = &c;
	Istio__Security__Match m = ISTIO__SECURITY__MATCH__INIT, *mp = &m;
	Istio__Security__StringMatch sm[2] = { ISTIO__SECURITY__STRING_MATCH__INIT,
					       ISTIO__SECURITY__STRING_MATCH__INIT };
	Istio__Security__StringMatch *smp[2] = { &sm[0], &sm[1] };
	Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
	Istio__Security__Address cidr = ISTIO__SECURITY__ADDRESS__INIT, *cidrp = &cidr;
	Istio__Security__ServiceAccountMatch sa = ISTIO__SECURITY__SERVICE_ACCOUNT_MATCH__INIT;
	Istio__Security__ServiceAccountMatch *sap = &sa;
	uint32_t port = ps->port;

	sm[0].match_type_case = ps->match_type;
	sm[0].prefix = "cluster.local/ns/default/";	/* union: same slot for exact/suffix */
	sm[1].match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE;
	sm[1].presence = &empty;
	cidr.address = bytes(ip_client, ps->iplen);
	cidr.length = ps->prefix_len;
	sa.namespace_ = "other";
	sa.serviceaccount = "bad";
	m.n_principals = 1;
	m.principals = &smp[0];
	m.n_not_namespaces = 1;
	m.not_namespaces = &smp[1];
	m.n_source_ips = 1;
	m.source_ips = &cidrp;
	m.n_destination_ports = 1;
	m.destination_ports = &port;
	m.n_not_service_accounts = 1;
	m.not_service_accounts = &sap;
	c.n_matches = 1;
	c.matches = &mp;
	r.n_clauses = 1;
	r.clauses = &cp;
	p.name = (char *)name;
	p.namespace_ = "default";
	p.scope = ps->scope;
	p.action = ps->action;
	p.n_rules = 1;
	p.rules = &rp;
	return pack(&p.base);
}

static const struct policy_spec good_policy = {
	ISTIO__SECURITY__SCOPE__NAMESPACE, ISTIO__SECURITY__ACTION__DENY,
	ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX, 24, 9090, 4,
};

static const struct state_workload *find_workload(const struct state_snapshot *s, const char *uid)
{
	for (size_t i = 0; s && i < s->n_workloads; i++)
		if (str_is(s->workloads[i].uid, uid))
			return &s->workloads[i];
	return NULL;
}

static struct state_snapshot *apply_build(struct xds_table *tables, enum xds_kind kind,
					  struct response *r, int want)
{
	char err[512] = "";
	int ret = xds_apply(&tables[kind], kind, &r->resp, err, sizeof(err));

	CHECK(ret == want, "xds_apply = %d, want %d (%s)", ret, want, err);
	if (ret)
		return NULL;
	return xds_snapshot_build(tables, err, sizeof(err));
}

static void test_workload_conversion(void)
{
	struct xds_table t[XDS_N_KINDS] = { 0 };
	struct state_snapshot *s;
	const struct state_workload *w;
	struct response r;
	char id[256];

	response_init(&r, XDS_TYPE_ADDRESS);
	response_add(&r, "c1//Pod/default/client", "v1", XDS_TYPE_ADDRESS, workload_full_body());
	response_add(&r, "plain", "v1", XDS_TYPE_ADDRESS,
		     workload_body("plain", "plain", ip_vip, 4, 0));
	s = apply_build(t, XDS_KIND_ADDRESS, &r, 0);
	CHECK(s && s->n_workloads == 2 && s->n_services == 0, "two workloads");
	w = find_workload(s, "c1//Pod/default/client");
	CHECK(w != NULL, "workload by uid");
	if (w) {
		CHECK(str_is(w->name, "client") && str_is(w->namespace_, "default"), "name/ns");
		CHECK(w->n_ips == 2 && w->ips[0].family == AF_INET &&
			      memcmp(&w->ips[0].v4, ip_client, 4) == 0 &&
			      w->ips[1].family == AF_INET6 && memcmp(&w->ips[1].v6, ip_v6, 16) == 0,
		      "ips");
		CHECK(w->protocol == STATE_PROTO_HBONE, "HBONE");
		CHECK(str_is(state_workload_identity(w, id, sizeof(id)),
			     "spiffe://example.org/ns/default/sa/sa1"), "identity %s", id);
		CHECK(str_is(w->node, "node1") && str_is(w->canonical_name, "client-app"), "node");
		CHECK(w->n_services == 1 &&
			      str_is(w->services[0].service_key,
				     "default/server.default.svc.cluster.local") &&
			      w->services[0].n_ports == 1 && w->services[0].ports[0].service_port == 80 &&
			      w->services[0].ports[0].target_port == 8080,
		      "services map");
		CHECK(w->waypoint.present && w->waypoint.address.family == AF_INET &&
			      w->waypoint.hbone_mtls_port == 15008 && !w->waypoint.hostname,
		      "waypoint address, default port");
		CHECK(w->n_authorization_policies == 2 &&
			      str_is(w->authorization_policies[1], "default/p2"), "policies");
		CHECK(str_is(w->locality.region, "r1") && str_is(w->locality.zone, "z1") &&
			      !w->locality.subzone && w->capacity == 7 && w->unhealthy,
		      "locality, capacity, status");
	}
	w = find_workload(s, "plain");
	CHECK(w && w->protocol == STATE_PROTO_NONE && str_is(w->service_account, "default") &&
		      str_is(w->trust_domain, "cluster.local") && !w->node && !w->waypoint.present &&
		      w->capacity == 1 && !w->unhealthy,
	      "defaults");
	state_snapshot_put(&s);
	xds_table_clear(&t[0]);
}

static void test_service_and_policy_conversion(void)
{
	struct xds_table t[XDS_N_KINDS] = { 0 };
	struct state_snapshot *s;
	const struct state_service *sv;
	const struct state_match *m;
	struct response r;

	response_init(&r, XDS_TYPE_ADDRESS);
	response_add(&r, "default/server.default.svc.cluster.local", "1", XDS_TYPE_ADDRESS,
		     service_body("server.default.svc.cluster.local", ip_vip, 4, 80));
	state_snapshot_put((struct state_snapshot *[]){ apply_build(t, XDS_KIND_ADDRESS, &r, 0) });
	response_init(&r, XDS_TYPE_AUTHZ);
	response_add(&r, "default/deny", "1", XDS_TYPE_AUTHZ, policy_body("deny", &good_policy));
	s = apply_build(t, XDS_KIND_AUTHZ, &r, 0);
	CHECK(s && s->n_services == 1 && s->n_workloads == 0 && s->n_policies == 1, "counts");
	if (!s || s->n_services != 1 || s->n_policies != 1)
		goto out;
	sv = &s->services[0];
	CHECK(str_is(sv->hostname, "server.default.svc.cluster.local") && sv->n_vips == 1 &&
		      memcmp(&sv->vips[0].v4, ip_vip, 4) == 0 && sv->n_ports == 1 &&
		      sv->ports[0].service_port == 80 && sv->ports[0].target_port == 8080,
	      "service vip and ports");
	CHECK(sv->n_subject_alt_names == 1 &&
		      str_is(sv->subject_alt_names[0], "spiffe://cluster.local/ns/default/sa/server"),
	      "sans");
	CHECK(sv->waypoint.present &&
		      str_is(sv->waypoint.hostname,
			     "istio-system/waypoint.istio-system.svc.cluster.local") &&
		      sv->waypoint.hbone_mtls_port == 15009,
	      "service waypoint hostname");
	CHECK(sv->load_balancing.mode == STATE_LB_FAILOVER &&
		      sv->load_balancing.n_routing_preferences == 2 &&
		      sv->load_balancing.routing_preferences[0] == STATE_LB_REGION &&
		      sv->load_balancing.routing_preferences[1] == STATE_LB_ZONE &&
		      sv->load_balancing.allow_unhealthy,
	      "service load balancing");
	CHECK(str_is(s->policies[0].name, "deny") && s->policies[0].scope == STATE_SCOPE_NAMESPACE &&
		      s->policies[0].action == STATE_ACTION_DENY && s->policies[0].n_rules == 1,
	      "policy header");
	if (s->policies[0].n_rules != 1 || s->policies[0].rules[0].n_clauses != 1 ||
	    s->policies[0].rules[0].clauses[0].n_matches != 1) {
		CHECK(0, "policy shape");
		goto out;
	}
	m = &s->policies[0].rules[0].clauses[0].matches[0];
	CHECK(m->principals.n == 1 && m->principals.v[0].kind == STATE_MATCH_PREFIX &&
		      str_is(m->principals.v[0].value, "cluster.local/ns/default/"), "principals");
	CHECK(m->not_namespaces.n == 1 && m->not_namespaces.v[0].kind == STATE_MATCH_PRESENCE &&
		      !m->not_namespaces.v[0].value, "presence");
	CHECK(m->source_ips.n == 1 && m->source_ips.v[0].length == 24 &&
		      m->source_ips.v[0].addr.family == AF_INET, "cidr");
	CHECK(m->destination_ports.n == 1 && m->destination_ports.v[0] == 9090, "ports");
	CHECK(m->not_principals.n == 1 && m->not_principals.v[0].kind == STATE_MATCH_SUFFIX &&
		      str_is(m->not_principals.v[0].value, "/ns/other/sa/bad"),
	      "not_service_accounts as principal suffix");
	CHECK(!m->has_l7, "no l7");
out:
	state_snapshot_put(&s);
	xds_table_clear(&t[0]);
	xds_table_clear(&t[1]);
}

/* Every bad resource NACKs the whole response, names the resource, changes nothing. */
static void test_nack(void)
{
	static const struct policy_spec bad_scope = { 7, 0, 1, 24, 80, 4 },
					bad_action = { 0, 5, 1, 24, 80, 4 },
					bad_len = { 0, 0, 1, 33, 80, 4 },
					bad_port = { 0, 0, 1, 24, 70000, 4 },
					bad_cidr = { 0, 0, 1, 24, 80, 3 },
					bad_match = { 0, 0, 0, 24, 80, 4 };
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff };
	struct {
		const char *name;
		int kind;
		const char *type_url;
		ProtobufCBinaryData body;
		const char *want;
	} cases[] = {
		{ "w5", 0, XDS_TYPE_ADDRESS, workload_body("w5", "w5", ip_bad, 5, 1), "5 bytes" },
		{ "wproto", 0, XDS_TYPE_ADDRESS, workload_body("w", "w", ip_vip, 4, 9),
		  "tunnel_protocol" },
		{ "svc", 0, XDS_TYPE_ADDRESS, service_body("h", ip_vip, 4, 70000), "port 70000" },
		{ "svcip", 0, XDS_TYPE_ADDRESS, service_body("h", ip_vip, 0, 80), "0 bytes" },
		{ "nohost", 0, XDS_TYPE_ADDRESS, service_body("", ip_vip, 4, 80), "hostname" },
		{ "junk", 0, XDS_TYPE_ADDRESS, bytes(junk, 4), "not a valid" },
		{ "empty", 0, XDS_TYPE_ADDRESS, bytes(NULL, 0), "neither" },
		{ "wrongtype", 0, XDS_TYPE_AUTHZ, workload_body("a", "a", ip_vip, 4, 1), "type" },
		{ "", 0, XDS_TYPE_ADDRESS, workload_body("a", "a", ip_vip, 4, 1), "name" },
		{ "p-scope", 1, XDS_TYPE_AUTHZ, policy_body("p", &bad_scope), "scope" },
		{ "p-action", 1, XDS_TYPE_AUTHZ, policy_body("p", &bad_action), "action" },
		{ "p-len", 1, XDS_TYPE_AUTHZ, policy_body("p", &bad_len), "prefix length 33" },
		{ "p-port", 1, XDS_TYPE_AUTHZ, policy_body("p", &bad_port), "port 70000" },
		{ "p-cidr", 1, XDS_TYPE_AUTHZ, policy_body("p", &bad_cidr), "3 bytes" },
		{ "p-match", 1, XDS_TYPE_AUTHZ, policy_body("p", &bad_match), "without a type" },
		{ "p-noname", 1, XDS_TYPE_AUTHZ, policy_body("", &good_policy), "name" },
		/* proto3 strings are UTF-8: upstream's decoder refuses the rest, so do we */
		{ "w-utf8", 0, XDS_TYPE_ADDRESS, workload_body("w", "bad\xff", ip_vip, 4, 1),
		  "name is not UTF-8" },
		{ "svc-utf8", 0, XDS_TYPE_ADDRESS, service_body("web.\xc3", ip_vip, 4, 80),
		  "hostname is not UTF-8" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xds_table t = { 0 };
		struct response r;
		char err[512] = "", quoted[64];
		int ret;

		response_init(&r, xds_kind_type_url(cases[i].kind));
		/* a good resource in front must not be applied either */
		response_add(&r, "good", "1", xds_kind_type_url(cases[i].kind),
			     cases[i].kind ? policy_body("g", &good_policy) :
					     workload_body("g", "g", ip_vip, 4, 1));
		response_add(&r, cases[i].name, "1", cases[i].type_url, cases[i].body);
		ret = xds_apply(&t, cases[i].kind, &r.resp, err, sizeof(err));
		snprintf(quoted, sizeof(quoted), "\"%s\"", cases[i].name);
		CHECK(ret == -EINVAL, "case %zu (%s): ret %d, want -EINVAL", i, cases[i].name, ret);
		CHECK(strstr(err, quoted) && strstr(err, cases[i].want),
		      "case %zu: error \"%s\" should name %s and say \"%s\"", i, err, quoted,
		      cases[i].want);
		CHECK(t.n == 0, "case %zu: table changed (%zu)", i, t.n);
		xds_table_clear(&t);
	}
}

/* A NACK's text goes back to the control plane in a proto3 string: it stays UTF-8 when a quoted
 * name is not, or is cut in the middle of a character. */
static void test_nack_text_is_utf8(void)
{
	char long_name[256];
	struct {
		const char *name, *version, *want;
	} cases[] = {
		{ "r\xff", "1", "\"r?\": bad resource name" },
		{ "r", "v\xe2\x82", "\"r\": version is not UTF-8" },
		{ long_name, "1", "not a valid" },
	};
	static const uint8_t junk[] = { 0xff, 0xff };

	/* 199 bytes then "é": the error quotes 200 bytes of the name, half of the character */
	memset(long_name, 'n', 199);
	strcpy(long_name + 199, "\xc3\xa9");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct xds_table t = { 0 };
		struct response r;
		char err[512] = "";
		int ret;

		response_init(&r, XDS_TYPE_ADDRESS);
		response_add(&r, cases[i].name, cases[i].version, XDS_TYPE_ADDRESS,
			     i == 2 ? bytes(junk, 2) : workload_body("a", "a", ip_vip, 4, 1));
		ret = xds_apply(&t, XDS_KIND_ADDRESS, &r.resp, err, sizeof(err));
		CHECK(ret == -EINVAL && strstr(err, cases[i].want), "case %zu: %d \"%s\"", i, ret,
		      err);
		CHECK(state_utf8_valid(err, strlen(err)), "case %zu: NACK text is not UTF-8", i);
		CHECK(t.n == 0, "case %zu: table changed", i);
		xds_table_clear(&t);
	}
}

static void test_delta_apply(void)
{
	struct xds_table t[XDS_N_KINDS] = { 0 };
	struct state_snapshot *s;
	const struct state_workload *w;
	struct response r;

	response_init(&r, XDS_TYPE_ADDRESS);
	response_add(&r, "a", "1", XDS_TYPE_ADDRESS, workload_body("a", "a", ip_client, 4, 1));
	response_add(&r, "b", "1", XDS_TYPE_ADDRESS, workload_body("b", "b", ip_vip, 4, 1));
	s = apply_build(t, XDS_KIND_ADDRESS, &r, 0);
	CHECK(s && s->n_workloads == 2, "add two");
	state_snapshot_put(&s);
	/* update a (new name, HBONE -> NONE), b untouched */
	response_init(&r, XDS_TYPE_ADDRESS);
	response_add(&r, "a", "2", XDS_TYPE_ADDRESS, workload_body("a", "a2", ip_client, 4, 0));
	s = apply_build(t, XDS_KIND_ADDRESS, &r, 0);
	w = find_workload(s, "a");
	CHECK(s && s->n_workloads == 2 && w && str_is(w->name, "a2") &&
		      w->protocol == STATE_PROTO_NONE && find_workload(s, "b"), "update a");
	CHECK(str_is(xds_table_get(&t[0], "a")->version, "2"), "version updated");
	state_snapshot_put(&s);
	/* remove b (and an unknown name, ignored) */
	response_init(&r, XDS_TYPE_ADDRESS);
	response_remove(&r, "b");
	response_remove(&r, "never-seen");
	s = apply_build(t, XDS_KIND_ADDRESS, &r, 0);
	CHECK(s && s->n_workloads == 1 && find_workload(s, "a") && !find_workload(s, "b"),
	      "remove b");
	state_snapshot_put(&s);
	/* re-add b; a NACKed response in between changes nothing */
	response_init(&r, XDS_TYPE_ADDRESS);
	response_remove(&r, "a");
	response_add(&r, "x", "1", XDS_TYPE_ADDRESS, workload_body("x", "x", ip_bad, 5, 1));
	CHECK(apply_build(t, XDS_KIND_ADDRESS, &r, -EINVAL) == NULL && t[0].n == 1 &&
		      xds_table_get(&t[0], "a"), "NACK keeps the set");
	response_init(&r, XDS_TYPE_ADDRESS);
	response_add(&r, "b", "3", XDS_TYPE_ADDRESS, workload_body("b", "b3", ip_vip, 4, 1));
	s = apply_build(t, XDS_KIND_ADDRESS, &r, 0);
	w = find_workload(s, "b");
	CHECK(s && s->n_workloads == 2 && w && str_is(w->name, "b3"), "re-add b");
	state_snapshot_put(&s);
	xds_table_clear(&t[0]);
}

/* The hash table against a plain array model, with many removals (backward shift). */
static void test_table(void)
{
	enum { N = 3000 };
	static bool present[N];
	struct xds_table t = { 0 };
	unsigned int seed = 1;
	char name[32];
	size_t n = 0, bad = 0;

	for (int round = 0; round < 20000; round++) {
		int k = rand_r(&seed) % N;

		snprintf(name, sizeof(name), "res-%d", k);
		if (rand_r(&seed) % 3 == 0) {
			CHECK(xds_table_remove(&t, name) == present[k], "remove %s", name);
			n -= present[k];
			present[k] = false;
		} else {
			CHECK(xds_table_put(&t, name, "v", (const uint8_t *)name, 4) == 0, "put");
			n += !present[k];
			present[k] = true;
		}
	}
	for (int k = 0; k < N; k++) {
		snprintf(name, sizeof(name), "res-%d", k);
		bad += !!xds_table_get(&t, name) != present[k];
	}
	CHECK(bad == 0 && t.n == n, "table agrees with the model (%zu wrong, n %zu/%zu)", bad, t.n,
	      n);
	xds_table_clear(&t);
}

static void test_requests(void)
{
	struct xds_config cfg = { .address = "http://x", .cluster_id = "c1", .node_name = "node1",
				  .pod_name = "zt-abc", .pod_namespace = "istio-system",
				  .instance_ip = "10.0.0.7" };
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req;
	struct xds_table t = { 0 };
	uint8_t *buf;
	size_t len, found = 0;

	xds_table_put(&t, "a", "v7", NULL, 0);
	CHECK(xds_request_pack(&cfg, &t, XDS_KIND_ADDRESS, &(struct xds_request){ .first = true },
			       &buf, &len) == 0, "pack");
	req = envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, buf);
	CHECK(req && req->node && str_is(req->type_url, XDS_TYPE_ADDRESS), "first request");
	if (req && req->node) {
		CHECK(str_is(req->node->id,
			     "ztunnel~10.0.0.7~zt-abc.istio-system~istio-system.svc.cluster.local"),
		      "node id %s", req->node->id);
		for (size_t i = 0; req->node->metadata && i < req->node->metadata->n_fields; i++) {
			Google__Protobuf__Struct__FieldsEntry *e = req->node->metadata->fields[i];

			found += (str_is(e->key, "NODE_NAME") &&
				  str_is(e->value->string_value, "node1")) ||
				 (str_is(e->key, "CLUSTER_ID") && str_is(e->value->string_value, "c1"));
		}
		CHECK(found == 2, "metadata NODE_NAME and CLUSTER_ID");
		CHECK(req->n_initial_resource_versions == 1 &&
			      str_is(req->initial_resource_versions[0]->key, "a") &&
			      str_is(req->initial_resource_versions[0]->value, "v7"),
		      "initial_resource_versions");
		CHECK(req->n_resource_names_subscribe == 0, "wildcard");
	}
	envoy__service__discovery__v3__delta_discovery_request__free_unpacked(req, NULL);
	free(buf);
	CHECK(xds_request_pack(&cfg, &t, XDS_KIND_AUTHZ,
			       &(struct xds_request){ .nonce = "n9", .error = "resource \"x\": bad" },
			       &buf, &len) == 0, "pack nack");
	req = envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, buf);
	CHECK(req && !req->node && str_is(req->response_nonce, "n9") && req->error_detail &&
		      req->error_detail->code == 3 &&
		      str_is(req->error_detail->message, "resource \"x\": bad") &&
		      req->n_initial_resource_versions == 0 && str_is(req->type_url, XDS_TYPE_AUTHZ),
	      "NACK request");
	envoy__service__discovery__v3__delta_discovery_request__free_unpacked(req, NULL);
	free(buf);
	xds_table_clear(&t);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	test_workload_conversion();
	test_service_and_policy_conversion();
	test_nack();
	test_nack_text_is_utf8();
	test_delta_apply();
	test_table();
	test_requests();
	for (size_t i = 0; i < n_bodies; i++)
		free(bodies[i]);
	if (failures)
		printf("%d failures\n", failures);
	else
		printf("xds_test: all passed\n");
	return failures ? 1 : 0;
}
