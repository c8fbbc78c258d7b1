// unit-standalone
/* localcfg_test: upstream-format local config into snapshots; every rejection names line and key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/lookup.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/state/index.c"
#include "../../agent/localcfg/yaml.c"
#include "../../agent/localcfg/fields.c"
#include "../../agent/localcfg/balance.c"
#include "../../agent/localcfg/objects.c"
#include "../../agent/localcfg/policy.c"
#include "../../agent/localcfg/localcfg.c"

#include "check.h"

#define STREQ(got, want) CHECK((got) && strcmp((got), (want)) == 0, "%s = \"%s\", want \"%s\"", \
			       #got, (got) ? (got) : "(null)", (want))

static struct state_snapshot *load(const char *yaml, char *err, size_t errlen)
{
	return localcfg_load_buffer("test.yaml", yaml, strlen(yaml), err, errlen);
}

static bool ip_is(const struct state_ip *ip, const char *text)
{
	struct state_ip want;

	return state_ip_parse(text, &want) == 0 && state_ip_equal(ip, &want);
}

static const char full_yaml[] =
	"workloads:\n"
	"- uid: cluster1//v1/Pod/default/local\n"
	"  name: local\n"
	"  namespace: default\n"
	"  serviceAccount: sa-local\n"
	"  trustDomain: example.org\n"
	"  workloadIps: [\"127.0.0.1\", \"fd00::1\"]\n"
	"  protocol: HBONE\n"
	"  node: node-a\n"
	"  network: \"\"\n"
	"  canonicalName: x\n"
	"  canonicalRevision: v1\n"
	"  workloadName: x-deploy\n"
	"  workloadType: pod\n"
	"  clusterId: Kubernetes\n"
	"  status: Healthy\n"
	"  authorizationPolicies: [\"default/allow-x\", \"default/deny-y\"]\n"
	"  services: {\"default/example.com\": {80: 8080, 443: 0}, \"other/b.example\": {}}\n"
	"  waypoint: {destination: \"/10.0.0.5\", hboneMtlsPort: 15009}\n"
	"- uid: cluster1//v1/Pod/default/plain\n"
	"  namespace: default\n"
	"  workloadIps: [\"127.0.0.2\"]\n"
	"  protocol: TCP\n"
	"  waypoint: {destination: \"istio-system/waypoint.example\"}\n"
	"policies:\n"
	"- name: deny-9999\n"
	"  namespace: default\n"
	"  scope: Namespace\n"
	"  action: Deny\n"
	"  dryRun: true\n"
	"  rules:\n"
	"  - - - notDestinationPorts: [9999]\n"
	"        destinationPorts: [80, 443]\n"
	"      - namespaces: [\"prod\", {Prefix: \"dev-\"}]\n"
	"        notNamespaces: [{Suffix: \"-test\"}, {Exact: \"kube-system\"}]\n"
	"        principals: [!Exact cluster.local/ns/a/sa/b, {Presence: {}}]\n"
	"        notPrincipals: [!Presence [], {Presence: []}, {Presence: null}]\n"
	"    - - sourceIps: [\"10.0.0.0/8\", \"10.1.2.3\", \"fd00::/16\", \"::1\",\n"
	"                    \"::ffff:172.16.0.0/108\", \"::ffff:172.16.0.9\"]\n"
	"        notSourceIps: [\"192.168.0.0/16\"]\n"
	"        destinationIps: [\"0.0.0.0/0\"]\n"
	"        notDestinationIps: [\"10.0.0.1/32\"]\n"
	"  - []\n"
	"- name: allow-all\n"
	"  namespace: \"\"\n"
	"  scope: Global\n"
	"  action: Allow\n"
	"  rules: [[[{}]]]\n"
	"- {name: sel, namespace: ns, scope: WorkloadSelector, action: Allow}\n"
	"services:\n"
	"- name: local\n"
	"  namespace: default\n"
	"  hostname: example.com\n"
	"  vips: [\"/127.10.0.1\", \"net2/fd00:10::1\"]\n"
	"  ports: {80: 8080, 443: 0}\n"
	"  subjectAltNames: [\"spiffe://cluster.local/ns/default/sa/local\"]\n"
	"  waypoint: {destination: \"/10.0.0.5\", hboneMtlsPort: 15008}\n"
	"  canonical: true\n";

static void check_full_workloads(const struct state_snapshot *s)
{
	const struct state_workload *w = &s->workloads[0], *p = &s->workloads[1];
	char id[256];

	STREQ(w->uid, "cluster1//v1/Pod/default/local");
	STREQ(w->name, "local");
	STREQ(w->namespace_, "default");
	STREQ(w->service_account, "sa-local");
	STREQ(w->trust_domain, "example.org");
	CHECK(w->n_ips == 2 && ip_is(&w->ips[0], "127.0.0.1") && ip_is(&w->ips[1], "fd00::1"),
	      "workload ips");
	CHECK(w->protocol == STATE_PROTO_HBONE, "protocol %d", w->protocol);
	STREQ(w->node, "node-a");
	STREQ(w->network, "");
	STREQ(w->canonical_name, "x");
	STREQ(w->canonical_revision, "v1");
	STREQ(w->workload_name, "x-deploy");
	STREQ(w->cluster_id, "Kubernetes");
	CHECK(w->n_authorization_policies == 2, "policies %zu", w->n_authorization_policies);
	STREQ(w->authorization_policies[1], "default/deny-y");
	CHECK(w->n_services == 2, "services %zu", w->n_services);
	STREQ(w->services[0].service_key, "default/example.com");
	CHECK(w->services[0].n_ports == 2 && w->services[0].ports[0].service_port == 80 &&
	      w->services[0].ports[0].target_port == 8080 &&
	      w->services[0].ports[1].service_port == 443 &&
	      w->services[0].ports[1].target_port == 0, "services map ports");
	STREQ(w->services[1].service_key, "other/b.example");
	CHECK(w->services[1].n_ports == 0, "empty port map");
	CHECK(w->waypoint.present && ip_is(&w->waypoint.address, "10.0.0.5") &&
	      !w->waypoint.hostname && w->waypoint.hbone_mtls_port == 15009, "address waypoint");
	STREQ(state_workload_identity(w, id, sizeof(id)), "spiffe://example.org/ns/default/sa/sa-local");

	CHECK(p->protocol == STATE_PROTO_NONE, "TCP protocol %d", p->protocol);
	STREQ(p->service_account, "default");
	STREQ(p->trust_domain, "cluster.local");
	STREQ(p->name, "");
	STREQ(p->cluster_id, "");
	CHECK(p->waypoint.present && p->waypoint.hbone_mtls_port == 15008, "hostname waypoint");
	STREQ(p->waypoint.hostname, "istio-system/waypoint.example");
	STREQ(state_workload_identity(p, id, sizeof(id)), "spiffe://cluster.local/ns/default/sa/default");
}

static bool smatch_is(const struct state_string_match *m, enum state_string_match_kind kind,
		      const char *value)
{
	if (m->kind != kind)
		return false;
	return value ? m->value && strcmp(m->value, value) == 0 : !m->value;
}

static bool cidr_is(const struct state_cidr *c, const char *ip, unsigned len)
{
	return ip_is(&c->addr, ip) && c->length == len;
}

static void check_full_policies(const struct state_snapshot *s)
{
	const struct state_policy *p = &s->policies[0];
	const struct state_match *m, *m2, *m3;

	CHECK(s->n_policies == 3, "n_policies %zu", s->n_policies);
	STREQ(p->name, "deny-9999");
	CHECK(p->scope == STATE_SCOPE_NAMESPACE && p->action == STATE_ACTION_DENY && p->dry_run,
	      "scope/action/dryRun %d %d %d", p->scope, p->action, p->dry_run);
	CHECK(p->n_rules == 2 && p->rules[0].n_clauses == 2 && p->rules[1].n_clauses == 0,
	      "rule shape");
	if (p->n_rules != 2 || p->rules[0].n_clauses != 2 || p->rules[0].clauses[0].n_matches != 2)
		return;
	m = &p->rules[0].clauses[0].matches[0];
	m2 = &p->rules[0].clauses[0].matches[1];
	m3 = &p->rules[0].clauses[1].matches[0];
	CHECK(m->not_destination_ports.n == 1 && m->not_destination_ports.v[0] == 9999, "notPorts");
	CHECK(m->destination_ports.n == 2 && m->destination_ports.v[1] == 443, "ports");
	CHECK(m2->namespaces.n == 2 && smatch_is(&m2->namespaces.v[0], STATE_MATCH_EXACT, "prod") &&
	      smatch_is(&m2->namespaces.v[1], STATE_MATCH_PREFIX, "dev-"), "namespaces");
	CHECK(m2->not_namespaces.n == 2 &&
	      smatch_is(&m2->not_namespaces.v[0], STATE_MATCH_SUFFIX, "-test") &&
	      smatch_is(&m2->not_namespaces.v[1], STATE_MATCH_EXACT, "kube-system"), "notNamespaces");
	CHECK(m2->principals.n == 2 &&
	      smatch_is(&m2->principals.v[0], STATE_MATCH_EXACT, "cluster.local/ns/a/sa/b") &&
	      smatch_is(&m2->principals.v[1], STATE_MATCH_PRESENCE, NULL), "principals");
	CHECK(m2->not_principals.n == 3 &&
	      smatch_is(&m2->not_principals.v[0], STATE_MATCH_PRESENCE, NULL) &&
	      smatch_is(&m2->not_principals.v[2], STATE_MATCH_PRESENCE, NULL), "notPrincipals");
	CHECK(m3->source_ips.n == 6 && cidr_is(&m3->source_ips.v[0], "10.0.0.0", 8) &&
	      cidr_is(&m3->source_ips.v[1], "10.1.2.3", 32) &&
	      cidr_is(&m3->source_ips.v[2], "fd00::", 16) &&
	      cidr_is(&m3->source_ips.v[3], "::1", 128) &&
	      m3->source_ips.v[4].addr.family == AF_INET && m3->source_ips.v[5].addr.family == AF_INET &&
	      cidr_is(&m3->source_ips.v[4], "172.16.0.0", 12) &&
	      cidr_is(&m3->source_ips.v[5], "172.16.0.9", 32), "sourceIps (v4-mapped ones as IPv4)");
	CHECK(m3->not_source_ips.n == 1 && cidr_is(&m3->not_source_ips.v[0], "192.168.0.0", 16) &&
	      m3->destination_ips.n == 1 && cidr_is(&m3->destination_ips.v[0], "0.0.0.0", 0) &&
	      m3->not_destination_ips.n == 1 &&
	      cidr_is(&m3->not_destination_ips.v[0], "10.0.0.1", 32), "other ips");
	p = &s->policies[1];
	CHECK(p->scope == STATE_SCOPE_GLOBAL && p->action == STATE_ACTION_ALLOW && !p->dry_run &&
	      p->n_rules == 1 && p->rules[0].n_clauses == 1 && p->rules[0].clauses[0].n_matches == 1,
	      "allow-all shape");
	p = &s->policies[2];
	CHECK(p->scope == STATE_SCOPE_WORKLOAD && p->n_rules == 0, "selector policy");
	STREQ(p->namespace_, "ns");
}

static void check_full(const struct state_snapshot *s)
{
	const struct state_service *svc = &s->services[0];
	const struct state_workload *w;
	uint16_t target = 0;

	CHECK(s->n_workloads == 2 && s->n_services == 1, "counts %zu %zu", s->n_workloads,
	      s->n_services);
	if (s->n_workloads != 2 || s->n_services != 1 || s->n_policies != 3)
		return;
	check_full_workloads(s);
	check_full_policies(s);
	STREQ(svc->hostname, "example.com");
	CHECK(svc->n_vips == 2 && ip_is(&svc->vips[0], "127.10.0.1") &&
	      ip_is(&svc->vips[1], "fd00:10::1"), "vips");
	CHECK(svc->n_ports == 2 && svc->ports[0].service_port == 80 &&
	      svc->ports[0].target_port == 8080, "service ports");
	CHECK(svc->n_subject_alt_names == 1, "sans");
	CHECK(svc->waypoint.present && ip_is(&svc->waypoint.address, "10.0.0.5"), "svc waypoint");
	/* The loaded snapshot works with the look-ups: the services map makes endpoints. */
	CHECK(state_lookup_vip(s, &svc->vips[1]) == svc, "lookup vip");
	w = state_service_pick(s, svc, 80, 5, &target);
	CHECK(w == &s->workloads[0] && target == 8080, "pick -> local:%u", target);
}

static void check_localhost(const struct state_snapshot *s)
{
	CHECK(s->n_workloads == 2 && s->n_policies == 1 && s->n_services == 2, "counts");
	if (s->n_workloads != 2 || s->n_policies != 1 || s->n_services != 2)
		return;
	CHECK(s->workloads[1].protocol == STATE_PROTO_NONE, "local-tcp protocol");
	CHECK(s->workloads[0].n_services == 2, "services map");
	CHECK(ip_is(&s->services[1].vips[0], "127.10.0.2"), "remote vip");
	CHECK(s->policies[0].rules[0].clauses[0].matches[0].not_destination_ports.v[0] == 9999,
	      "policy");
}

static void check_empty(const struct state_snapshot *s)
{
	CHECK(!s->n_workloads && !s->n_services && !s->n_policies && !s->workloads &&
	      !s->n_peer_auths && !s->peer_auths, "not empty");
}

static void check_flow_and_aliases(const struct state_snapshot *s)
{
	CHECK(s->n_workloads == 2, "n_workloads %zu", s->n_workloads);
	if (s->n_workloads != 2)
		return;
	CHECK(s->workloads[1].n_ips == 1 && ip_is(&s->workloads[1].ips[0], "10.0.0.9"),
	      "aliased ips");
	STREQ(s->workloads[1].uid, "b");
	CHECK(s->workloads[0].protocol == STATE_PROTO_NONE, "NONE protocol");
}

static void check_peer_auths(const struct state_snapshot *s)
{
	const struct state_peer_auth *pa = s->peer_auths;

	CHECK(s->n_peer_auths == 5, "n_peer_auths %zu", s->n_peer_auths);
	if (s->n_peer_auths != 5)
		return;
	STREQ(pa[0].name, "default");
	STREQ(pa[0].namespace_, "istio-system");
	CHECK(pa[0].mode == STATE_PA_STRICT && pa[0].n_selector == 0 && !pa[0].selector_keys,
	      "mesh-wide STRICT");
	CHECK(pa[1].mode == STATE_PA_PERMISSIVE && pa[1].n_selector == 0, "ns PERMISSIVE");
	CHECK(pa[2].mode == STATE_PA_STRICT && pa[2].n_selector == 2, "workload STRICT");
	if (pa[2].n_selector == 2) {
		STREQ(pa[2].selector_keys[0], "app");
		STREQ(pa[2].selector_values[0], "server");
		STREQ(pa[2].selector_keys[1], "version");
		STREQ(pa[2].selector_values[1], "v1");
	}
	CHECK(pa[3].mode == STATE_PA_DISABLE && pa[3].n_selector == 0, "DISABLE, empty labels");
	CHECK(pa[4].mode == STATE_PA_UNSET && pa[4].n_selector == 0, "no mode: UNSET");
	STREQ(pa[4].name, "");
}

/* HTTP-level keys set has_l7 (only when non-empty) and nothing else. */
static void check_l7(const struct state_snapshot *s)
{
	const struct state_clause *cl;

	CHECK(s->n_policies == 1 && s->policies[0].n_rules == 1 &&
	      s->policies[0].rules[0].n_clauses == 1 &&
	      s->policies[0].rules[0].clauses[0].n_matches == 4, "l7 shape");
	if (s->n_policies != 1 || s->policies[0].n_rules != 1 ||
	    s->policies[0].rules[0].n_clauses != 1 ||
	    s->policies[0].rules[0].clauses[0].n_matches != 4)
		return;
	cl = &s->policies[0].rules[0].clauses[0];
	CHECK(cl->matches[0].has_l7 && cl->matches[0].destination_ports.n == 1, "methods+ports");
	CHECK(cl->matches[1].has_l7, "every l7 key");
	CHECK(!cl->matches[2].has_l7, "empty l7 lists");
	CHECK(!cl->matches[3].has_l7 && cl->matches[3].principals.n == 1, "plain match");
}

static void check_ignored_keys(const struct state_snapshot *s)
{
	CHECK(s->n_workloads == 1 && s->n_services == 1, "counts");
}

static void test_good(void)
{
	static const struct {
		const char *name, *yaml;
		void (*check)(const struct state_snapshot *s);
	} cases[] = {
		{ "full", full_yaml, check_full },
		{ "explicit empty mesh", "workloads: []\n", check_empty },
		{ "explicit empty mesh, commented", "# drained\nworkloads: [] # on purpose\n",
		  check_empty },
		{ "empty mapping", "{}\n", check_empty },
		{ "null lists", "workloads:\nservices: ~\npolicies: []\npeerAuthentications: []\n",
		  check_empty },
		{ "peer authentications",
		  "peerAuthentications:\n"
		  "- {name: default, namespace: istio-system, mode: STRICT}\n"
		  "- {name: ns, namespace: default, mode: PERMISSIVE, selector: ~}\n"
		  "- name: one\n  namespace: default\n  mode: STRICT\n"
		  "  selector:\n    matchLabels: {app: server, version: v1}\n"
		  "- {name: off, namespace: default, mode: DISABLE, selector: {matchLabels: {}}}\n"
		  "- {namespace: default}\n", check_peer_auths },
		{ "http-level keys",
		  "policies:\n- {name: p, namespace: default, scope: Namespace, action: Deny,\n"
		  "   rules: [[[{methods: [GET], destinationPorts: [80]},\n"
		  "     {notMethods: [PUT], paths: [/a], notPaths: [/b], hosts: [h],\n"
		  "      notHosts: [i], requestPrincipals: [\"*\"], notRequestPrincipals: [x]},\n"
		  "     {methods: [], paths: ~, destinationPorts: [81]},\n"
		  "     {principals: [a]}]]]}\n", check_l7 },
		{ "flow and aliases",
		  "{workloads: [{uid: a, protocol: NONE, workloadIps: &ips [10.0.0.9]},\n"
		  "             {uid: b, workloadIps: *ips}]}\n", check_flow_and_aliases },
		{ "upstream keys accepted",
		  "workloads:\n- uid: a\n  hostname: a.example\n  networkMode: HostNetwork\n"
		  "  nativeTunnel: false\n  capacity: 3\n  locality: {region: r, zone: z}\n"
		  "  applicationTunnel: {protocol: PROXY, port: 15088}\n  status: Unhealthy\n"
		  "  networkGateway: {destination: \"net/10.9.9.9\", hboneMtlsPort: 15008}\n"
		  "services:\n- hostname: h\n  ipFamilies: IPv4\n  visibility: Public\n"
		  "  endpoints: {}\n  canonical: false\n", check_ignored_keys },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct state_snapshot *s = load(cases[i].yaml, err, sizeof(err));

		CHECK(s != NULL, "good case \"%s\" rejected: %s", cases[i].name, err);
		if (!s)
			continue;
		CHECK(s->refcount == 1, "refcount %d", s->refcount);
		cases[i].check(s);
		state_snapshot_put(&s);
	}
}

/* Each bad input must fail with "test.yaml:<line>:" and a message naming the cause. */
static void test_bad(void)
{
	static const struct {
		const char *yaml;
		int line;
		const char *want;
	} cases[] = {
		{ "workloads:\n- name: a\n  namespace: [x\n", 4, "YAML syntax error" },
		{ "workloads:\n\t- name: a\n", 2, "YAML syntax error" },
		{ "workloads:\n- name: \"\xff\"\n", 2, "invalid leading UTF-8" },
		{ "workload: []\n", 1, "unknown key \"workload\" in config" },
		{ "workloads:\n- name: a\n  nmespace: b\n", 3, "unknown key \"nmespace\" in workload" },
		{ "workloads:\n- name: a\n  name: b\n", 3, "duplicate key \"name\" in workload" },
		{ "workloads:\n- uid: a\n  workloadIps: 127.0.0.1\n", 3,
		  "workloadIps: expected a sequence, got a scalar" },
		{ "workloads:\n- uid: a\n  name: [a]\n", 3, "name: expected a scalar, got a sequence" },
		{ "workloads: {uid: a}\n", 1, "workloads: expected a sequence, got a mapping" },
		{ "workloads:\n- uid: a\n  workloadIps:\n  - 127.0.0.1\n  - 300.1.1.1\n", 5,
		  "workloadIps: bad IP address \"300.1.1.1\"" },
		{ "workloads:\n- uid: a\n  protocol: QUIC\n", 3,
		  "protocol: unknown value \"QUIC\" (want one of HBONE, TCP, NONE)" },
		{ "workloads:\n- uid: a\n  services:\n    \"default/x\":\n      80: 70000\n", 5,
		  "services: bad port \"70000\"" },
		{ "workloads:\n- uid: a\n  services:\n    nohost: {80: 80}\n", 4,
		  "services: bad service key \"nohost\"" },
		{ "workloads:\n- uid: a\n- uid: b\n- uid: a\n", 4, "duplicate uid \"a\"" },
		{ "workloads:\n- uid: a\n  waypoint: {destination: nowhere}\n", 3,
		  "destination: bad destination \"nowhere\"" },
		{ "workloads:\n- uid: a\n  waypoint:\n    hboneMtlsPort: 15008\n", 4,
		  "missing key \"destination\" in waypoint" },
		{ "workloads:\n- uid: a\n  waypoint: {destination: /1.2.3.4, hboneMtlsPort: 0}\n", 3,
		  "hboneMtlsPort: bad port \"0\"" },
		{ "services:\n- name: s\n  ports:\n    0: 80\n", 4, "ports: bad port \"0\"" },
		{ "services:\n- name: s\n  ports: {80: 81, 80: 82}\n", 3, "ports: duplicate port 80" },
		{ "services:\n- name: s\n  ports: {http: 80}\n", 3, "ports: bad port \"http\"" },
		{ "services:\n- name: s\n  vips: [\"net/not-an-ip\"]\n", 3, "vips: bad IP address" },
		{ "services:\n- name: s\n  cidrVips: []\n", 3, "unknown key \"cidrVips\" in service" },
		{ "policies:\n- name: p\n  scope: Cluster\n  action: Allow\n", 3,
		  "scope: unknown value \"Cluster\"" },
		{ "policies:\n- name: p\n  scope: Global\n", 2, "missing key \"action\" in policy" },
		{ "policies:\n- name: p\n  scope: Global\n  action: Allow\n  dryRun: maybe\n", 5,
		  "dryRun: expected true or false, got \"maybe\"" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {notDestinationPort: [1]}]]]}\n", 3, "unknown key \"notDestinationPort\" in match" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {sourceIps: [10.0.0.0/33]}]]]}\n", 3, "sourceIps: bad CIDR \"10.0.0.0/33\"" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {sourceIps: [\"::ffff:10.0.0.0/95\"]}]]]}\n", 3,
		  "sourceIps: bad CIDR \"::ffff:10.0.0.0/95\"" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {sourceIps: [\"fd00::/129\"]}]]]}\n", 3, "sourceIps: bad CIDR \"fd00::/129\"" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {principals: [{Regex: a.*}]}]]]}\n", 3, "principals: unknown string match \"Regex\"" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {principals: [{Presence: x}]}]]]}\n", 3, "principals: Presence takes no value" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {serviceAccounts: []}]]]}\n", 3, "serviceAccounts: not supported" },
		{ "policies:\n- {name: p, scope: Global, action: Deny,\n"
		  "   rules: [{destinationPorts: [1]}]}\n", 3,
		  "rules: expected a sequence, got a mapping" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {destinationPorts: [65536]}]]]}\n", 3, "destinationPorts: bad port \"65536\"" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {methods: GET}]]]}\n", 3, "methods: expected a sequence, got a scalar" },
		{ "policies:\n- {name: p, scope: Global, action: Deny, rules: [[[\n"
		  "    {paths: [{Prefix: /a}]}]]]}\n", 3, "paths: expected a scalar, got a mapping" },
		{ "policies:\n- {name: p, namespace: a, scope: Global, action: Deny}\n"
		  "- {name: q, namespace: a, scope: Global, action: Deny}\n"
		  "- {name: p, namespace: a, scope: Global, action: Allow}\n", 4,
		  "policies: duplicate policy \"a/p\"" },
		{ "peerAuthentications:\n- name: x\n  mtls: {mode: STRICT}\n", 3,
		  "unknown key \"mtls\" in peerAuthentication" },
		{ "peerAuthentications:\n- name: x\n  mode: strict\n", 3,
		  "mode: unknown value \"strict\" (want one of UNSET, PERMISSIVE, STRICT, DISABLE)" },
		{ "peerAuthentications:\n- name: x\n  selector: {app: a}\n", 3,
		  "unknown key \"app\" in selector" },
		{ "peerAuthentications:\n- name: x\n  selector:\n    matchLabels: [app]\n", 4,
		  "matchLabels: expected a mapping, got a sequence" },
		{ "peerAuthentications:\n- name: x\n  selector:\n    matchLabels:\n"
		  "      app: a\n      app: b\n", 6, "matchLabels: duplicate label \"app\"" },
		{ "peerAuthentications:\n- name: x\n  selector:\n    matchLabels:\n"
		  "      app: [a]\n", 5, "matchLabels: expected a scalar, got a sequence" },
		{ "peerAuthentications: {name: x}\n", 1,
		  "peerAuthentications: expected a sequence, got a mapping" },
		{ "- workloads\n", 1, "config: expected a mapping, got a sequence" },
		{ "workloads: []\n---\nservices: []\n", 3, "more than one YAML document" },
		{ "workloads:\n- uid: \"a\\0b\"\n", 2, "uid: string contains a NUL byte" },
		{ "workloads:\n- uid: a\n  capacity: -1\n", 3, "capacity: expected an unsigned integer" },
		{ "workloads:\n- uid: a\n  status: Sick\n", 3, "status: unknown value \"Sick\"" },
		{ "workloads:\n- [a]: b\n", 2, "workload: keys must be strings" },
		{ "services:\n- {name: s, loadBalancer: {mode: Random}}\n", 2,
		  "mode: unknown value \"Random\" (want one of Standard, Strict, Failover, Passthrough)" },
		{ "services:\n- {name: s, loadBalancer: {routingPreferences: [Zone, Planet]}}\n", 2,
		  "routingPreferences: unknown value \"Planet\"" },
		{ "services:\n- {name: s, loadBalancer: {routingPreferences: [Zone, Zone, Zone, Zone, "
		  "Zone, Zone, Zone, Zone, Zone]}}\n", 2, "more than 8 routing preferences" },
		{ "services:\n- {name: s, loadBalancer: {healthPolicy: Some}}\n", 2,
		  "healthPolicy: unknown value \"Some\"" },
		{ "workloads:\n- {uid: a, locality: {region: r, planet: p}}\n", 2, "planet" },
		{ "workloads:\n- {uid: a, applicationTunnel: {port: 15088}}\n", 2, "protocol" },
		{ "workloads:\n- {uid: a, applicationTunnel: {protocol: HTTP}}\n", 2,
		  "protocol: unknown value \"HTTP\" (want one of NONE, PROXY)" },
	};
	char err[512], prefix[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct state_snapshot *s = load(cases[i].yaml, err, sizeof(err));

		CHECK(!s, "bad case %zu accepted:\n%s", i, cases[i].yaml);
		state_snapshot_put(&s);
		snprintf(prefix, sizeof(prefix), "test.yaml:%d:", cases[i].line);
		CHECK(strncmp(err, prefix, strlen(prefix)) == 0, "case %zu: \"%s\", want line %d", i,
		      err, cases[i].line);
		CHECK(strstr(err, cases[i].want), "case %zu: \"%s\", want \"%s\"", i, err,
		      cases[i].want);
	}
}

/*
 * A file with no document (empty, blank, only comments) or a null one is what a config tool
 * leaves mid-update: refused like a syntax error, never an empty mesh.
 */
static void test_no_document(void)
{
	static const struct {
		const char *name, *yaml;
		int line;
	} cases[] = {
		{ "empty", "", 1 },
		{ "blank", "  \n\n \n", 1 },
		{ "comments only", "# nothing here\n\n  # nor here\n", 1 },
		{ "null document", "~\n", 1 },
		{ "null word", "\nnull\n", 2 },
		{ "bare document marker", "---\n", 2 },
		{ "marker and end", "--- # c\n...\n", 2 },
	};
	char err[256], prefix[32];
	struct state_snapshot *s;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = load(cases[i].yaml, err, sizeof(err));
		CHECK(!s, "%s: accepted as an empty mesh", cases[i].name);
		state_snapshot_put(&s);
		snprintf(prefix, sizeof(prefix), "test.yaml:%d:", cases[i].line);
		CHECK(strncmp(err, prefix, strlen(prefix)) == 0 &&
		      strstr(err, "no configuration (") &&
		      strstr(err, "'workloads: []' for an empty mesh"), "%s: \"%s\"",
		      cases[i].name, err);
		CHECK(errno == EINVAL, "%s: errno %d", cases[i].name, errno);
	}
	s = localcfg_load_buffer("LOCAL_XDS", NULL, 0, err, sizeof(err));
	CHECK(!s && strncmp(err, "LOCAL_XDS:1:1: no configuration", 31) == 0, "NULL buffer: %s",
	      err);
	state_snapshot_put(&s);
}

/* Positions are 1-based line:column of the offending node. */
static void test_column(void)
{
	char err[256];
	struct state_snapshot *s = load("workloads:\n- uid: a\n  protocol:   QUIC\n", err,
					sizeof(err));

	CHECK(!s && strncmp(err, "test.yaml:3:15: ", 16) == 0, "column: %s", err);
	state_snapshot_put(&s);
}

/*
 * Aliases of aliases make a naive walk exponential: 10 policies x 10 rules x 10 clauses x 10
 * matches x 10 ports from about 60 nodes. The walk is bounded by the node count and refused.
 */
static void test_alias_bomb(void)
{
	static const char bomb[] =
		"policies:\n"
		"- &p {name: p, scope: Global, action: Deny, rules: [&r [&c [&m {destinationPorts:\n"
		"    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}, *m, *m, *m, *m, *m, *m, *m, *m, *m],\n"
		"    *c, *c, *c, *c, *c, *c, *c, *c, *c], *r, *r, *r, *r, *r, *r, *r, *r, *r]}\n"
		"- *p\n- *p\n- *p\n- *p\n- *p\n- *p\n- *p\n- *p\n- *p\n";
	char err[256];
	struct state_snapshot *s = load(bomb, err, sizeof(err));

	CHECK(!s, "alias bomb accepted");
	state_snapshot_put(&s);
	CHECK(strstr(err, "too large after alias expansion") != NULL, "alias bomb: %s", err);
	s = load("policies:\n- {name: p, scope: Global, action: Deny, rules: &r [[[{}]]]}\n"
		 "- {name: q, scope: Global, action: Deny, rules: *r}\n", err, sizeof(err));
	CHECK(s && s->n_policies == 2 && s->policies[1].n_rules == 1, "small alias reuse: %s",
	      err);
	state_snapshot_put(&s);
	s = load(bomb, err, 0);	/* no room for a message: still fails cleanly */
	CHECK(!s, "errlen 0");
	s = load(bomb, NULL, 0);
	CHECK(!s && errno == EINVAL, "NULL err");
}

static void test_files(void)
{
	char path[] = "/tmp/localcfg_test_XXXXXX", err[256];
	struct state_snapshot *s;
	FILE *f;
	int fd = mkstemp(path);

	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	f = fdopen(fd, "w");
	fputs("workloads:\n- uid: a\n  workloadIps: [10.0.0.1]\n  bogus: 1\n", f);
	fclose(f);
	s = localcfg_load_file(path, err, sizeof(err));
	CHECK(!s, "file with bogus key accepted");
	CHECK(strncmp(err, path, strlen(path)) == 0 && strstr(err, ":4:3: unknown key \"bogus\""),
	      "file error: %s", err);
	f = fopen(path, "w");
	CHECK(f != NULL, "reopen %s", path);
	if (f)
		fclose(f);
	s = localcfg_load_file(path, err, sizeof(err));
	CHECK(!s && strncmp(err, path, strlen(path)) == 0 && strstr(err, ":1:1: no configuration"),
	      "empty file: %s", err);
	state_snapshot_put(&s);
	unlink(path);
	s = localcfg_load_file(path, err, sizeof(err));
	CHECK(!s && errno == ENOENT && strstr(err, "cannot read"), "missing file: %s", err);
	s = localcfg_load_file("tests/e2e/testdata/localhost.yaml", err, sizeof(err));
	CHECK(s != NULL, "testdata/localhost.yaml: %s", err);
	if (s)
		check_localhost(s);
	state_snapshot_put(&s);
}

int main(void)
{
	test_good();
	test_bad();
	test_no_document();
	test_column();
	test_alias_bomb();
	test_files();
	if (failures)
		printf("%d check(s) failed\n", failures);
	else
		printf("localcfg_test: all checks passed\n");
	return failures ? 1 : 0;
}
