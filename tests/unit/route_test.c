/* route_test: outbound routing by a table: direct, passthrough, service endpoints, waypoints by
 * address (pod or VIP) and by hostname, the sandwich rule, and waypoints that cannot be found. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/localcfg.h>

#include "../../agent/proxy/proxy-int.h"

#include "check.h"

/* dual: a dual-stack pod behind the dual-stack service web6 (a v4 and a v6 VIP).
 * client -> server (no waypoint), wlserver (workload waypoint by pod address), vipserver
 * (workload waypoint by the waypoint service's VIP), hostserver (by hostname); services web (no
 * waypoint), web-wp (waypoint by pod address), web-host (by hostname), web-gone (a waypoint not
 * in the state), web-empty (a waypoint service without endpoints). */
static const char mesh[] =
	"workloads:\n"
	"- {uid: c, name: client, namespace: default, serviceAccount: client,"
	"   workloadIps: [\"10.0.1.2\"], protocol: HBONE}\n"
	"- {uid: s, name: server, namespace: default, serviceAccount: server,"
	"   workloadIps: [\"10.0.2.2\"], protocol: HBONE,"
	"   services: {\"default/web.default.svc\": {80: 8080}, \"default/web-wp.default.svc\": {80: 8080},"
	"              \"default/web-host.default.svc\": {80: 8080}, \"default/web-gone.default.svc\": {80: 8080},"
	"              \"default/web-empty.default.svc\": {80: 8080}}}\n"
	"- {uid: ws, name: wlserver, namespace: default, serviceAccount: server,"
	"   workloadIps: [\"10.0.2.3\"], protocol: HBONE,"
	"   waypoint: {destination: \"/10.0.2.7\", hboneMtlsPort: 15008}}\n"
	"- {uid: vs, name: vipserver, namespace: default, serviceAccount: server,"
	"   workloadIps: [\"10.0.2.4\"], protocol: HBONE, waypoint: {destination: \"/10.96.0.20\"}}\n"
	"- {uid: hs, name: hostserver, namespace: default, serviceAccount: server,"
	"   workloadIps: [\"10.0.2.5\"], protocol: HBONE,"
	"   waypoint: {destination: \"default/waypoint.default.svc\", hboneMtlsPort: 15009}}\n"
	"- {uid: w, name: waypoint, namespace: default, serviceAccount: waypoint,"
	"   workloadIps: [\"10.0.2.7\"], protocol: HBONE,"
	"   services: {\"default/waypoint.default.svc\": {15008: 15008, 15009: 15019}}}\n"
	"- {uid: p, name: plain, namespace: default, workloadIps: [\"10.0.2.9\"], protocol: TCP}\n"
	"- {uid: d, name: dual, namespace: default, serviceAccount: server,"
	"   workloadIps: [\"10.0.3.2\", \"fd00::3:2\"], protocol: HBONE,"
	"   services: {\"default/web6.default.svc\": {80: 8080}}}\n"
	"services:\n"
	"- {name: web6, namespace: default, hostname: web6.default.svc,"
	"   vips: [\"/10.96.0.30\", \"/fd00:96::30\"], ports: {80: 8080}}\n"
	"- {name: web, namespace: default, hostname: web.default.svc, vips: [\"/10.96.0.10\"],"
	"   ports: {80: 8080}}\n"
	"- {name: web-wp, namespace: default, hostname: web-wp.default.svc, vips: [\"/10.96.0.11\"],"
	"   ports: {80: 8080}, waypoint: {destination: \"/10.0.2.7\", hboneMtlsPort: 15008}}\n"
	"- {name: web-host, namespace: default, hostname: web-host.default.svc,"
	"   vips: [\"/10.96.0.12\"], ports: {80: 8080},"
	"   waypoint: {destination: \"default/waypoint.default.svc\"}}\n"
	"- {name: web-gone, namespace: default, hostname: web-gone.default.svc,"
	"   vips: [\"/10.96.0.13\"], ports: {80: 8080}, waypoint: {destination: \"/10.0.9.9\"}}\n"
	"- {name: web-empty, namespace: default, hostname: web-empty.default.svc,"
	"   vips: [\"/10.96.0.14\"], ports: {80: 8080},"
	"   waypoint: {destination: \"default/nobody.default.svc\"}}\n"
	"- {name: nobody, namespace: default, hostname: nobody.default.svc, vips: [\"/10.96.0.21\"],"
	"   ports: {15008: 15008}}\n"
	"- {name: waypoint, namespace: default, hostname: waypoint.default.svc,"
	"   vips: [\"/10.96.0.20\"], ports: {15008: 15008, 15009: 0}}\n";

#define CLIENT "spiffe://cluster.local/ns/default/sa/client"
#define WAYPOINT "spiffe://cluster.local/ns/default/sa/waypoint"

static void test_routes(struct state_snapshot *snap)
{
	static const struct {
		const char *what;
		const char *src_id, *src_ip, *dst;
		uint16_t dport;
		int ret;
		enum proxy_route_kind kind;
		const char *hop_workload, *hop_ip;	/* next hop */
		uint16_t hop_port;
		const char *authority;			/* "ip:port" of the CONNECT */
		const char *why;			/* substring of the refusal */
	} cases[] = {
		{ "pod without waypoint: direct", CLIENT, "10.0.1.2", "10.0.2.2", 8080, 0,
		  PROXY_ROUTE_DIRECT, "server", "10.0.2.2", 8080, "10.0.2.2:8080", NULL },
		{ "plaintext workload: direct", CLIENT, "10.0.1.2", "10.0.2.9", 80, 0,
		  PROXY_ROUTE_DIRECT, "plain", "10.0.2.9", 80, "10.0.2.9:80", NULL },
		{ "unknown address: passthrough", CLIENT, "10.0.1.2", "192.0.2.1", 443, 1,
		  PROXY_ROUTE_PASSTHROUGH, NULL, "192.0.2.1", 443, NULL, NULL },
		{ "service without waypoint: endpoint, authority podIP:targetPort", CLIENT,
		  "10.0.1.2", "10.96.0.10", 80, 0, PROXY_ROUTE_DIRECT, "server", "10.0.2.2", 8080,
		  "10.0.2.2:8080", NULL },
		{ "service port not exposed", CLIENT, "10.0.1.2", "10.96.0.10", 81, -EHOSTUNREACH,
		  PROXY_ROUTE_PASSTHROUGH, NULL, NULL, 0, NULL, "endpoint for this port" },
		{ "service waypoint by pod address: authority stays VIP:port", CLIENT, "10.0.1.2",
		  "10.96.0.11", 80, 0, PROXY_ROUTE_WAYPOINT, "waypoint", "10.0.2.7", 15008,
		  "10.96.0.11:80", NULL },
		{ "service waypoint by hostname: an endpoint of the waypoint service", CLIENT,
		  "10.0.1.2", "10.96.0.12", 80, 0, PROXY_ROUTE_WAYPOINT, "waypoint", "10.0.2.7", 15008,
		  "10.96.0.12:80", NULL },
		{ "workload waypoint by pod address: authority podIP:port", CLIENT, "10.0.1.2",
		  "10.0.2.3", 8080, 0, PROXY_ROUTE_WAYPOINT, "waypoint", "10.0.2.7", 15008,
		  "10.0.2.3:8080", NULL },
		{ "workload waypoint by the waypoint service's VIP", CLIENT, "10.0.1.2", "10.0.2.4",
		  8080, 0, PROXY_ROUTE_WAYPOINT, "waypoint", "10.0.2.7", 15008, "10.0.2.4:8080",
		  NULL },
		{ "workload waypoint by hostname, hboneMtlsPort mapped by the service", CLIENT,
		  "10.0.1.2", "10.0.2.5", 8080, 0, PROXY_ROUTE_WAYPOINT, "waypoint", "10.0.2.7",
		  15019, "10.0.2.5:8080", NULL },
		{ "sandwich: the waypoint's own traffic goes direct", WAYPOINT, "10.0.2.7",
		  "10.0.2.3", 8080, 0, PROXY_ROUTE_DIRECT, "wlserver", "10.0.2.3", 8080,
		  "10.0.2.3:8080", NULL },
		{ "sandwich by VIP reference", WAYPOINT, "10.0.2.7", "10.0.2.4", 8080, 0,
		  PROXY_ROUTE_DIRECT, "vipserver", "10.0.2.4", 8080, "10.0.2.4:8080", NULL },
		{ "sandwich by hostname reference", WAYPOINT, "10.0.2.7", "10.0.2.5", 8080, 0,
		  PROXY_ROUTE_DIRECT, "hostserver", "10.0.2.5", 8080, "10.0.2.5:8080", NULL },
		{ "the waypoint's identity from another address is no sandwich", WAYPOINT,
		  "10.0.1.2", "10.0.2.3", 8080, 0, PROXY_ROUTE_WAYPOINT, "waypoint", "10.0.2.7",
		  15008, "10.0.2.3:8080", NULL },
		{ "the waypoint's address with another identity is no sandwich", CLIENT, "10.0.2.7",
		  "10.0.2.3", 8080, 0, PROXY_ROUTE_WAYPOINT, "waypoint", "10.0.2.7", 15008,
		  "10.0.2.3:8080", NULL },
		{ "dual-stack service by its v6 VIP: the endpoint's IPv6 address", CLIENT,
		  "10.0.1.2", "fd00:96::30", 80, 0, PROXY_ROUTE_DIRECT, "dual", "fd00::3:2", 8080,
		  "fd00::3:2:8080", NULL },
		{ "dual-stack service by its v4 VIP: the endpoint's IPv4 address", CLIENT,
		  "10.0.1.2", "10.96.0.30", 80, 0, PROXY_ROUTE_DIRECT, "dual", "10.0.3.2", 8080,
		  "10.0.3.2:8080", NULL },
		{ "dual-stack pod by its IPv6 address: that address", CLIENT, "10.0.1.2",
		  "fd00::3:2", 9000, 0, PROXY_ROUTE_DIRECT, "dual", "fd00::3:2", 9000,
		  "fd00::3:2:9000", NULL },
		{ "a waypoint not in the state is a refusal naming it", CLIENT, "10.0.1.2",
		  "10.96.0.13", 80, -ENOENT, PROXY_ROUTE_PASSTHROUGH, NULL, NULL, 0, NULL,
		  "waypoint 10.0.9.9 not found" },
		{ "a waypoint service without endpoints is a refusal naming it", CLIENT, "10.0.1.2",
		  "10.96.0.14", 80, -EHOSTUNREACH, PROXY_ROUTE_PASSTHROUGH, NULL, NULL, 0, NULL,
		  "waypoint default/nobody.default.svc has no endpoint" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proxy_route_source src = { .identity = cases[i].src_id };
		struct proxy_route r;
		struct state_ip dst, want;
		char why[300] = "", a[80], ip[INET6_ADDRSTRLEN];
		int ret;

		state_ip_parse(cases[i].src_ip, &src.ip);
		state_ip_parse(cases[i].dst, &dst);
		ret = proxy_route_pick(snap, &src, &dst, cases[i].dport, 0, &r, why, sizeof(why));
		CHECK(ret == cases[i].ret, "%s: ret %d, want %d (%s)", cases[i].what, ret,
		      cases[i].ret, why);
		if (cases[i].why)
			CHECK(strstr(why, cases[i].why), "%s: why \"%s\"", cases[i].what, why);
		if (ret < 0 || ret != cases[i].ret)
			continue;
		CHECK(r.kind == cases[i].kind, "%s: kind %d", cases[i].what, r.kind);
		CHECK(cases[i].hop_workload ? r.w && strcmp(r.w->name, cases[i].hop_workload) == 0 :
					      !r.w, "%s: next hop %s", cases[i].what,
		      r.w ? r.w->name : "none");
		state_ip_parse(cases[i].hop_ip, &want);
		CHECK(state_ip_equal(&r.ip, &want) && r.port == cases[i].hop_port,
		      "%s: next hop %s:%u", cases[i].what, state_ip_format(&r.ip, ip, sizeof(ip)),
		      r.port);
		if (!cases[i].authority)
			continue;
		snprintf(a, sizeof(a), "%s:%u", state_ip_format(&r.authority_ip, ip, sizeof(ip)),
			 r.authority_port);
		CHECK(strcmp(a, cases[i].authority) == 0, "%s: authority %s", cases[i].what, a);
	}
}

static void test_gateway_name(struct state_snapshot *snap)
{
	char buf[64];
	const struct state_workload *w;
	struct state_ip ip;

	state_ip_parse("10.0.2.3", &ip);
	w = state_lookup_ip(snap, &ip);
	CHECK(w && strcmp(proxy_gateway_name(&w->waypoint, buf, sizeof(buf)), "10.0.2.7") == 0,
	      "name of an address reference: %s", w ? buf : "-");
	state_ip_parse("10.0.2.5", &ip);
	w = state_lookup_ip(snap, &ip);
	CHECK(w && strcmp(proxy_gateway_name(&w->waypoint, buf, sizeof(buf)),
			  "default/waypoint.default.svc") == 0, "name of a hostname reference");
	CHECK(!proxy_from_waypoint(snap, w, NULL, NULL), "no source: not from the waypoint");
}

/* Load balancing: the client in region r1 zone z1 on node n1; endpoints a (r1/z1, capacity 1),
 * b (r1/z2, capacity 1), c (r2/z3, capacity 2), d (r1/z1, unhealthy). */
static const char lb_mesh[] =
	"workloads:\n"
	"- {uid: c, name: client, namespace: default, workloadIps: [\"10.0.1.2\"],"
	"   protocol: HBONE, node: n1, locality: {region: r1, zone: z1}}\n"
	"- {uid: a, name: a, namespace: default, workloadIps: [\"10.0.2.1\"], protocol: HBONE,"
	"   node: n2, locality: {region: r1, zone: z1}, services: &all {\"default/std\": {80: 8080},"
	"   \"default/strict\": {80: 8080}, \"default/failover\": {80: 8080},"
	"   \"default/all\": {80: 8080}, \"default/pass\": {80: 8080}}}\n"
	"- {uid: b, name: b, namespace: default, workloadIps: [\"10.0.2.2\"], protocol: HBONE,"
	"   node: n2, locality: {region: r1, zone: z2}, services: *all}\n"
	"- {uid: cc, name: c, namespace: default, workloadIps: [\"10.0.2.3\"], protocol: HBONE,"
	"   node: n3, capacity: 2, locality: {region: r2, zone: z3}, services: *all}\n"
	"- {uid: d, name: d, namespace: default, workloadIps: [\"10.0.2.4\"], protocol: HBONE,"
	"   node: n1, status: Unhealthy, locality: {region: r1, zone: z1}, services: *all}\n"
	"services:\n"
	"- {name: std, namespace: default, hostname: std, vips: [\"/10.96.1.1\"], ports: {80: 8080}}\n"
	"- {name: strict, namespace: default, hostname: strict, vips: [\"/10.96.1.2\"],"
	"   ports: {80: 8080}, loadBalancer: {mode: Strict, routingPreferences: [Region, Zone]}}\n"
	"- {name: failover, namespace: default, hostname: failover, vips: [\"/10.96.1.3\"],"
	"   ports: {80: 8080}, loadBalancer: {mode: Failover, routingPreferences: [Region, Zone]}}\n"
	"- {name: all, namespace: default, hostname: all, vips: [\"/10.96.1.4\"], ports: {80: 8080},"
	"   loadBalancer: {mode: Failover, routingPreferences: [Node], healthPolicy: AllowAll}}\n"
	"- {name: pass, namespace: default, hostname: pass, vips: [\"/10.96.1.5\"],"
	"   ports: {80: 8080}, loadBalancer: {mode: Passthrough}}\n";

/* Picks for rnd = 0..n-1 counted by endpoint name (a, b, c, d; e = none). */
static void count_picks(struct state_snapshot *snap, const char *vip, unsigned n,
			unsigned counts[5])
{
	struct state_ip ip, dst;
	struct proxy_route_source src = { .identity = CLIENT };
	struct proxy_route r;
	char why[200];

	memset(counts, 0, 5 * sizeof(*counts));
	state_ip_parse("10.0.1.2", &ip);
	src.ip = ip;
	src.workload = state_lookup_ip(snap, &ip);
	state_ip_parse(vip, &dst);
	for (unsigned i = 0; i < n; i++) {
		int ret = proxy_route_pick(snap, &src, &dst, 80, i, &r, why, sizeof(why));

		if (ret == 0 && r.kind == PROXY_ROUTE_DIRECT && r.w && r.w->name[0] >= 'a' &&
		    r.w->name[0] <= 'd')
			counts[r.w->name[0] - 'a']++;
		else
			counts[4]++;
	}
}

/* indexed: the snapshot's hash indexes on, as a published snapshot has them */
static void test_load_balancing(bool indexed)
{
	char err[256];
	struct state_snapshot *snap = localcfg_load_buffer("lb", lb_mesh, strlen(lb_mesh), err,
							   sizeof(err));
	unsigned n[5];
	struct state_ip ip, dst;
	struct proxy_route r;
	struct proxy_route_source src = { .identity = CLIENT };

	CHECK(snap, "lb mesh parses: %s", err);
	if (!snap)
		return;
	CHECK(!indexed || (state_snapshot_index(snap) == 0 && snap->index), "lb mesh indexed");
	count_picks(snap, "10.96.1.1", 4000, n);
	CHECK(n[0] == 1000 && n[1] == 1000 && n[2] == 2000 && n[3] == 0 && n[4] == 0,
	      "Standard: weighted by capacity, unhealthy skipped: a=%u b=%u c=%u d=%u none=%u",
	      n[0], n[1], n[2], n[3], n[4]);
	count_picks(snap, "10.96.1.2", 100, n);
	CHECK(n[0] == 100, "Strict [Region, Zone]: only the full match a (a=%u b=%u c=%u)", n[0],
	      n[1], n[2]);
	count_picks(snap, "10.96.1.3", 100, n);
	CHECK(n[0] == 100, "Failover: the best rank a while it is healthy (a=%u b=%u)", n[0], n[1]);
	count_picks(snap, "10.96.1.4", 100, n);
	CHECK(n[3] == 100, "AllowAll: the unhealthy endpoint on the client's node (d=%u)", n[3]);

	/* a leaves: Strict has nothing, Failover moves to b (same region), then to c */
	snap->workloads[1].unhealthy = true;
	count_picks(snap, "10.96.1.2", 10, n);
	CHECK(n[4] == 10, "Strict without a full match: no endpoint (none=%u)", n[4]);
	count_picks(snap, "10.96.1.3", 100, n);
	CHECK(n[1] == 100, "Failover: next best rank b (b=%u c=%u)", n[1], n[2]);
	snap->workloads[2].unhealthy = true;
	count_picks(snap, "10.96.1.3", 100, n);
	CHECK(n[2] == 100, "Failover: then c in another region (c=%u)", n[2]);
	snap->workloads[3].capacity = 0;
	count_picks(snap, "10.96.1.1", 10, n);
	CHECK(n[4] == 10, "all weights zero: no endpoint (none=%u)", n[4]);

	state_ip_parse("10.0.1.2", &src.ip);
	state_ip_parse("10.96.1.5", &dst);
	CHECK(proxy_route_pick(snap, &src, &dst, 80, 0, &r, err, sizeof(err)) == 0 &&
	      r.kind == PROXY_ROUTE_PASSTHROUGH && state_ip_equal(&r.ip, &dst) && r.port == 80,
	      "Passthrough: to the VIP itself");
	state_ip_parse("10.0.2.1", &ip);
	CHECK(proxy_lb_rank(&snap->services[2].load_balancing, NULL, state_lookup_ip(snap, &ip)) ==
	      0, "no source workload: ranks as unset");
	state_snapshot_put(&snap);
}

static void test_network_rank(void)
{
	struct state_workload src = { .network = "n1", .locality = { .region = "r1" } };
	struct state_workload same_net = { .network = "n1", .locality = { .region = "r2" } };
	struct state_workload other_net = { .network = "n2", .locality = { .region = "r1" } };
	struct state_load_balancing lb = { .mode = STATE_LB_FAILOVER, .n_routing_preferences = 2,
					   .routing_preferences = { STATE_LB_NETWORK,
								    STATE_LB_REGION } };

	CHECK(proxy_lb_rank(&lb, &src, &same_net) > proxy_lb_rank(&lb, &src, &other_net),
	      "a leading Network preference outranks the rest: %d vs %d",
	      proxy_lb_rank(&lb, &src, &same_net), proxy_lb_rank(&lb, &src, &other_net));
	lb.mode = STATE_LB_STANDARD;
	CHECK(proxy_lb_rank(&lb, &src, &other_net) == 0, "Standard ignores preferences");
}

int main(void)
{
	char err[256];
	struct state_snapshot *snap = localcfg_load_buffer("mesh", mesh, strlen(mesh), err,
							   sizeof(err));

	CHECK(snap, "mesh parses: %s", err);
	if (!snap)
		return 1;
	test_routes(snap);
	test_gateway_name(snap);
	CHECK(state_snapshot_index(snap) == 0 && snap->index, "mesh indexed");
	test_routes(snap);	/* the same answers through the index */
	test_gateway_name(snap);
	state_snapshot_put(&snap);
	test_load_balancing(false);
	test_load_balancing(true);
	test_network_rank();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("route_test: all checks passed\n");
	return 0;
}
