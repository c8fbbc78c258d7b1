// unit-standalone
/* policy_test: Istio L4 authorization and peer authentication verdicts, table-driven over YAML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/state/index.c"
#include "../../agent/localcfg/yaml.c"
#include "../../agent/localcfg/fields.c"
#include "../../agent/localcfg/objects.c"
#include "../../agent/localcfg/policy.c"
#include "../../agent/localcfg/localcfg.c"
#include "../../agent/policy/match.c"
#include "../../agent/policy/peerauth.c"
#include "../../agent/policy/check.c"

#include "check.h"

/* server lists default/sel and other/xsel; web and db list nothing. */
static const char base_yaml[] =
	"workloads:\n"
	"- {uid: u-server, name: server, namespace: default, workloadIps: [10.0.1.1, \"fd00::1\"],\n"
	"   canonicalName: server, canonicalRevision: v1,\n"
	"   authorizationPolicies: [default/sel, other/xsel]}\n"
	"- {uid: u-web, name: web-abc, namespace: default, workloadIps: [10.0.1.2],\n"
	"   canonicalName: web}\n"
	"- {uid: u-db, name: db, namespace: prod, workloadIps: [10.0.2.1]}\n";

#define CL "cluster.local/ns/default/sa/client"
#define PROD "cluster.local/ns/prod/sa/api"
#define PT NULL	/* plaintext: no principal */

#define P "policies:\n"
/* A namespace-scoped policy of "default" with one rule, one clause, one match m. */
#define ALLOW(n, m) "- {name: " n ", namespace: default, scope: Namespace, action: Allow, " \
	"rules: [[[" m "]]]}\n"
#define DENY(n, m) "- {name: " n ", namespace: default, scope: Namespace, action: Deny, " \
	"rules: [[[" m "]]]}\n"
#define DENY_ALL "- {name: deny-all, namespace: default, scope: Namespace, action: Allow}\n"
#define PA "peerAuthentications:\n"
#define MESH(mode) "- {name: mesh, namespace: istio-system, mode: " mode "}\n"
#define NSPA(mode) "- {name: ns-" mode ", namespace: default, mode: " mode "}\n"
#define WLPA(mode, labels) "- {name: wl-" mode ", namespace: default, mode: " mode ", " \
	"selector: {matchLabels: {" labels "}}}\n"

struct pcase {
	const char *name;
	const char *yaml;	/* appended to base_yaml */
	const char *dst;	/* destination workload name; NULL: "server" */
	const char *principal;
	const char *src;	/* NULL: 10.0.0.5 */
	const char *dst_ip;	/* NULL: the workload's first IP */
	uint16_t port;		/* 0: 80 */
	enum policy_verdict want;
	const char *reason;	/* substring of the expected reason */
	bool dry;		/* expect dry_run_would_deny */
};

#define OK POLICY_ALLOW
#define NO POLICY_DENY

static const struct pcase cases[] = {
	/* nothing applies */
	{ "no policies mtls", "", .principal = CL, .want = OK, .reason = "no policy applies" },
	{ "no policies plaintext", "", .principal = PT, .want = OK, .reason = "no policy applies" },
	/* principals */
	{ "principal exact", P ALLOW("a", "{principals: [\"" CL "\"]}"), .principal = CL,
	  .want = OK, .reason = "allowed by policy default/a" },
	{ "principal exact other", P ALLOW("a", "{principals: [\"" CL "\"]}"), .principal = PROD,
	  .want = NO, .reason = "no ALLOW policy matched (policy " },
	{ "principal plaintext", P ALLOW("a", "{principals: [\"" CL "\"]}"), .principal = PT,
	  .want = NO, .reason = "no ALLOW policy matched" },
	{ "principal spiffe:// accepted", P ALLOW("a", "{principals: [\"" CL "\"]}"),
	  .principal = "spiffe://" CL, .want = OK, .reason = "allowed by policy default/a" },
	{ "principal prefix", P ALLOW("a", "{principals: [{Prefix: cluster.local/ns/default/}]}"),
	  .principal = CL, .want = OK, .reason = "allowed" },
	{ "principal prefix miss", P ALLOW("a", "{principals: [{Prefix: cluster.local/ns/def/}]}"),
	  .principal = CL, .want = NO, .reason = "no ALLOW policy matched" },
	{ "principal suffix", P ALLOW("a", "{principals: [{Suffix: /sa/api}]}"), .principal = PROD,
	  .want = OK, .reason = "allowed by policy default/a" },
	{ "principal suffix miss", P ALLOW("a", "{principals: [{Suffix: /sa/api}]}"),
	  .principal = CL, .want = NO, .reason = "no ALLOW policy matched" },
	{ "principal presence", P ALLOW("a", "{principals: [{Presence: {}}]}"), .principal = CL,
	  .want = OK, .reason = "allowed" },
	{ "principal presence plaintext", P ALLOW("a", "{principals: [{Presence: {}}]}"),
	  .principal = PT, .want = NO, .reason = "no ALLOW policy matched" },
	{ "principal values OR", P ALLOW("a", "{principals: [\"" PROD "\", \"" CL "\"]}"),
	  .principal = CL, .want = OK, .reason = "allowed by policy default/a" },
	{ "notPrincipals excludes", P ALLOW("a", "{notPrincipals: [\"" CL "\"]}"), .principal = CL,
	  .want = NO, .reason = "no ALLOW policy matched" },
	{ "notPrincipals other", P ALLOW("a", "{notPrincipals: [\"" CL "\"]}"), .principal = PROD,
	  .want = OK, .reason = "allowed" },
	{ "notPrincipals plaintext", P ALLOW("a", "{notPrincipals: [\"" CL "\"]}"),
	  .principal = PT, .want = OK, .reason = "allowed" },
	{ "static strict deny plaintext", P DENY("strict", "{notPrincipals: [{Presence: {}}]}"),
	  .principal = PT, .want = NO, .reason = "denied by policy default/strict" },
	{ "static strict pass mtls", P DENY("strict", "{notPrincipals: [{Presence: {}}]}"),
	  .principal = CL, .want = OK, .reason = "no ALLOW policy applies" },
	/* namespaces (from the principal) */
	{ "namespace exact", P ALLOW("a", "{namespaces: [default]}"), .principal = CL, .want = OK,
	  .reason = "allowed by policy default/a" },
	{ "namespace exact other", P ALLOW("a", "{namespaces: [default]}"), .principal = PROD,
	  .want = NO, .reason = "no ALLOW policy matched" },
	{ "namespace plaintext", P ALLOW("a", "{namespaces: [default]}"), .principal = PT,
	  .want = NO, .reason = "no ALLOW policy matched" },
	{ "namespace prefix", P ALLOW("a", "{namespaces: [{Prefix: pro}]}"), .principal = PROD,
	  .want = OK, .reason = "allowed" },
	{ "namespace suffix", P ALLOW("a", "{namespaces: [{Suffix: od}]}"), .principal = PROD,
	  .want = OK, .reason = "allowed" },
	{ "namespace suffix miss", P ALLOW("a", "{namespaces: [{Suffix: od}]}"), .principal = CL,
	  .want = NO, .reason = "no ALLOW policy matched" },
	{ "namespace presence plaintext", P ALLOW("a", "{namespaces: [{Presence: {}}]}"),
	  .principal = PT, .want = NO, .reason = "no ALLOW policy matched" },
	{ "namespace of odd principal", P ALLOW("a", "{namespaces: [{Presence: {}}]}"),
	  .principal = "cluster.local/weird/prod", .want = NO, .reason = "no ALLOW policy matched" },
	{ "notNamespaces excludes", P ALLOW("a", "{notNamespaces: [prod]}"), .principal = PROD,
	  .want = NO, .reason = "no ALLOW policy matched" },
	{ "notNamespaces other", P ALLOW("a", "{notNamespaces: [prod]}"), .principal = CL,
	  .want = OK, .reason = "allowed" },
	{ "notNamespaces plaintext", P ALLOW("a", "{notNamespaces: [prod]}"), .principal = PT,
	  .want = OK, .reason = "allowed" },
	/* source IPs */
	{ "sourceIps v4 in", P DENY("deny-cidr", "{sourceIps: [10.201.1.0/24]}"), .principal = CL,
	  .src = "10.201.1.7", .want = NO, .reason = "denied by policy default/deny-cidr" },
	{ "sourceIps v4 out", P DENY("deny-cidr", "{sourceIps: [10.201.1.0/24]}"), .principal = CL,
	  .src = "10.201.2.7", .want = OK, .reason = "no ALLOW policy applies" },
	{ "sourceIps odd prefix in", P DENY("d", "{sourceIps: [10.0.0.0/13]}"), .principal = PT,
	  .src = "10.7.255.255", .want = NO, .reason = "denied by policy default/d" },
	{ "sourceIps odd prefix out", P DENY("d", "{sourceIps: [10.0.0.0/13]}"), .principal = PT,
	  .src = "10.8.0.0", .want = OK, .reason = "no ALLOW policy applies" },
	{ "sourceIps bare address", P DENY("d", "{sourceIps: [10.0.0.5]}"), .principal = CL,
	  .want = NO, .reason = "denied" },
	{ "sourceIps v4 /0", P DENY("d", "{sourceIps: [0.0.0.0/0]}"), .principal = CL,
	  .src = "1.2.3.4", .want = NO, .reason = "denied" },
	{ "sourceIps v4-mapped source", P DENY("d", "{sourceIps: [10.201.1.0/24]}"),
	  .principal = CL, .src = "::ffff:10.201.1.7", .want = NO, .reason = "denied" },
	{ "sourceIps v6 in", P DENY("d6", "{sourceIps: [\"fd00:1::/32\"]}"), .principal = CL,
	  .src = "fd00:1:2::5", .dst_ip = "fd00::1", .want = NO, .reason = "default/d6" },
	{ "sourceIps v6 out", P DENY("d6", "{sourceIps: [\"fd00:1::/32\"]}"), .principal = CL,
	  .src = "fd00:2::5", .dst_ip = "fd00::1", .want = OK, .reason = "no ALLOW policy applies" },
	{ "v4 source vs v6 cidr", P DENY("d", "{sourceIps: [\"::/0\"]}"), .principal = CL,
	  .src = "10.0.0.5", .want = OK, .reason = "no ALLOW policy applies" },
	{ "v6 source vs v4 cidr", P DENY("d", "{sourceIps: [0.0.0.0/0]}"), .principal = CL,
	  .src = "fd00:1::5", .dst_ip = "fd00::1", .want = OK, .reason = "no ALLOW policy applies" },
	{ "notSourceIps outside", P DENY("d", "{notSourceIps: [10.0.0.0/8]}"), .principal = CL,
	  .src = "192.168.1.1", .want = NO, .reason = "denied by policy default/d" },
	{ "notSourceIps inside", P DENY("d", "{notSourceIps: [10.0.0.0/8]}"), .principal = CL,
	  .src = "10.1.1.1", .want = OK, .reason = "no ALLOW policy applies" },
	/* destination IPs */
	{ "destinationIps v4", P ALLOW("a", "{destinationIps: [10.0.1.1/32]}"), .principal = CL,
	  .want = OK, .reason = "allowed by policy default/a" },
	{ "destinationIps v6 dst", P ALLOW("a", "{destinationIps: [10.0.1.1/32]}"),
	  .principal = CL, .src = "fd00::9", .dst_ip = "fd00::1", .want = NO,
	  .reason = "no ALLOW policy matched" },
	{ "notDestinationIps v6 in", P ALLOW("a", "{notDestinationIps: [\"fd00::/64\"]}"),
	  .principal = CL, .src = "fd00::9", .dst_ip = "fd00::1", .want = NO,
	  .reason = "no ALLOW policy matched" },
	{ "notDestinationIps v4", P ALLOW("a", "{notDestinationIps: [\"fd00::/64\"]}"),
	  .principal = CL, .want = OK, .reason = "allowed" },
	/* ports */
	{ "deny port global", P "- {name: deny-port, namespace: default, scope: Global, "
	  "action: Deny, rules: [[[{destinationPorts: [9999]}]]]}\n", .principal = CL,
	  .port = 9999, .want = NO, .reason = "denied by policy default/deny-port" },
	{ "deny port other port", P "- {name: deny-port, namespace: default, scope: Global, "
	  "action: Deny, rules: [[[{destinationPorts: [9999]}]]]}\n", .principal = CL,
	  .want = OK, .reason = "no ALLOW policy applies" },
	{ "notDestinationPorts other", P ALLOW("a", "{notDestinationPorts: [9999]}"),
	  .principal = CL, .want = OK, .reason = "allowed" },
	{ "notDestinationPorts hit", P ALLOW("a", "{notDestinationPorts: [9999]}"),
	  .principal = CL, .port = 9999, .want = NO, .reason = "no ALLOW policy matched" },
	/* fields AND, matches OR, clauses AND, rules OR */
	{ "fields AND miss", P ALLOW("a", "{principals: [\"" CL "\"], destinationPorts: [80]}"),
	  .principal = CL, .port = 8080, .want = NO, .reason = "no ALLOW policy matched" },
	{ "fields AND hit", P ALLOW("a", "{principals: [\"" CL "\"], destinationPorts: [80]}"),
	  .principal = CL, .want = OK, .reason = "allowed" },
	{ "matches OR", P ALLOW("a", "{principals: [\"" PROD "\"]}, {destinationPorts: [80]}"),
	  .principal = CL, .want = OK, .reason = "allowed" },
	{ "clauses AND miss", P "- {name: a, namespace: default, scope: Namespace, action: Allow, "
	  "rules: [[[{principals: [\"" CL "\"]}], [{destinationPorts: [80]}]]]}\n",
	  .principal = CL, .port = 8080, .want = NO, .reason = "no ALLOW policy matched" },
	{ "clauses AND hit", P "- {name: a, namespace: default, scope: Namespace, action: Allow, "
	  "rules: [[[{principals: [\"" CL "\"]}], [{destinationPorts: [80]}]]]}\n",
	  .principal = CL, .want = OK, .reason = "allowed" },
	{ "rules OR", P "- {name: a, namespace: default, scope: Namespace, action: Allow, "
	  "rules: [[[{principals: [\"" PROD "\"]}]], [[{destinationPorts: [80]}]]]}\n",
	  .principal = CL, .want = OK, .reason = "allowed by policy default/a" },
	/* no rules, empty clause, empty match */
	{ "allow without rules denies", P DENY_ALL, .principal = CL, .want = NO,
	  .reason = "no ALLOW policy matched (policy " },
	{ "deny without rules never matches", P "- {name: d, namespace: default, "
	  "scope: Namespace, action: Deny, rules: []}\n", .principal = CL, .want = OK,
	  .reason = "no ALLOW policy applies" },
	{ "deny-all plus allow-ns hit", P DENY_ALL ALLOW("allow-ns", "{namespaces: [default]}"),
	  .principal = CL, .want = OK, .reason = "allowed by policy default/allow-ns" },
	{ "deny-all plus allow-ns miss", P DENY_ALL ALLOW("allow-ns", "{namespaces: [default]}"),
	  .principal = PROD, .want = NO, .reason = "no ALLOW policy matched (2 apply" },
	{ "empty clause matches", P "- {name: a, namespace: default, scope: Namespace, "
	  "action: Allow, rules: [[[]]]}\n", .principal = PT, .want = OK, .reason = "allowed" },
	{ "rule without clauses matches", P "- {name: a, namespace: default, scope: Namespace, "
	  "action: Allow, rules: [[]]}\n", .principal = PT, .want = OK, .reason = "allowed" },
	{ "deny empty clause", P "- {name: d, namespace: default, scope: Namespace, "
	  "action: Deny, rules: [[[]]]}\n", .principal = CL, .want = NO, .reason = "default/d" },
	{ "empty match skipped allow", P ALLOW("a", "{}"), .principal = CL, .want = NO,
	  .reason = "no ALLOW policy matched" },
	{ "empty match skipped deny", P DENY("d", "{}"), .principal = CL, .want = OK,
	  .reason = "no ALLOW policy applies" },
	{ "empty match beside real one", P ALLOW("a", "{}, {principals: [\"" CL "\"]}"),
	  .principal = CL, .want = OK, .reason = "allowed by policy default/a" },
	/* scopes */
	{ "other namespace's policy", P "- {name: x, namespace: prod, scope: Namespace, "
	  "action: Allow}\n", .principal = CL, .want = OK, .reason = "no policy applies" },
	{ "other namespace's policy applies there", P "- {name: x, namespace: prod, "
	  "scope: Namespace, action: Allow}\n", .dst = "db", .principal = CL, .want = NO,
	  .reason = "no ALLOW policy matched (policy " },
	{ "global from any namespace", P "- {name: g, namespace: prod, scope: Global, "
	  "action: Deny, rules: [[[{destinationPorts: [80]}]]]}\n", .principal = CL, .want = NO,
	  .reason = "denied by policy prod/g" },
	{ "selector listed", P "- {name: sel, namespace: default, scope: WorkloadSelector, "
	  "action: Allow, rules: [[[{principals: [\"" PROD "\"]}]]]}\n", .principal = CL,
	  .want = NO, .reason = "no ALLOW policy matched (policy " },
	{ "selector listed hit", P "- {name: sel, namespace: default, scope: WorkloadSelector, "
	  "action: Allow, rules: [[[{principals: [\"" PROD "\"]}]]]}\n", .principal = PROD,
	  .want = OK, .reason = "allowed by policy default/sel" },
	{ "selector not listed", P "- {name: other-sel, namespace: default, "
	  "scope: WorkloadSelector, action: Allow}\n", .principal = CL, .want = OK,
	  .reason = "no policy applies" },
	{ "selector listed by another workload", P "- {name: sel, namespace: default, "
	  "scope: WorkloadSelector, action: Allow}\n", .dst = "web-abc", .principal = CL,
	  .want = OK, .reason = "no policy applies" },
	{ "listed from another namespace", P "- {name: xsel, namespace: other, "
	  "scope: WorkloadSelector, action: Deny, rules: [[[{destinationPorts: [80]}]]]}\n",
	  .principal = CL, .want = NO, .reason = "denied by policy other/xsel" },
	/* DENY before ALLOW, whatever the order in the file */
	{ "deny wins over allow", P ALLOW("a", "{principals: [\"" CL "\"]}")
	  DENY("d", "{principals: [\"" CL "\"]}"), .principal = CL, .want = NO,
	  .reason = "denied by policy default/d" },
	{ "deny wins over global allow", P DENY("d", "{destinationPorts: [80]}")
	  "- {name: g, namespace: x, scope: Global, action: Allow, rules: [[[]]]}\n",
	  .principal = CL, .want = NO, .reason = "denied by policy default/d" },
	{ "allow after non-matching deny", P DENY("d", "{destinationPorts: [81]}")
	  ALLOW("a", "{destinationPorts: [80]}"), .principal = CL, .want = OK,
	  .reason = "allowed by policy default/a" },
	/* dry-run */
	{ "dry-run deny only logs", P "- {name: d, namespace: default, scope: Namespace, "
	  "action: Deny, dryRun: true, rules: [[[{sourceIps: [10.0.0.0/8]}]]]}\n",
	  .principal = CL, .want = OK, .reason = "dry-run: denied by policy default/d",
	  .dry = true },
	{ "dry-run deny not matching", P "- {name: d, namespace: default, scope: Namespace, "
	  "action: Deny, dryRun: true, rules: [[[{sourceIps: [192.168.0.0/16]}]]]}\n",
	  .principal = CL, .want = OK, .reason = "no policy applies" },
	{ "dry-run deny-all", P "- {name: a, namespace: default, scope: Namespace, "
	  "action: Allow, dryRun: true}\n", .principal = CL, .want = OK,
	  .reason = "no policy applies (dry-run: no ALLOW policy matched (policy default/a applies))", .dry = true },
	{ "dry-run allow does not allow", P DENY_ALL "- {name: a, namespace: default, "
	  "scope: Namespace, action: Allow, dryRun: true, rules: [[[]]]}\n", .principal = CL,
	  .want = NO, .reason = "no ALLOW policy matched (policy " },
	/* HTTP-level fields fail closed */
	{ "l7 only in deny matches", P DENY("d", "{methods: [GET]}"), .principal = CL,
	  .want = NO, .reason = "denied by policy default/d" },
	{ "l7 in deny keeps L4 miss", P DENY("d", "{methods: [GET], destinationPorts: [9999]}"),
	  .principal = CL, .want = OK, .reason = "no ALLOW policy applies" },
	{ "l7 in deny keeps L4 hit", P DENY("d", "{paths: [/admin], destinationPorts: [80]}"),
	  .principal = CL, .want = NO, .reason = "denied by policy default/d" },
	{ "l7 in allow never matches", P ALLOW("a", "{principals: [\"" CL "\"], methods: [GET]}"),
	  .principal = CL, .want = NO, .reason = "no ALLOW policy matched" },
	{ "l7 allow match beside L4 one", P ALLOW("a", "{hosts: [x.example]}, "
	  "{principals: [\"" CL "\"]}"), .principal = CL, .want = OK, .reason = "allowed" },
	{ "l7 not* only in allow", P ALLOW("a", "{notRequestPrincipals: [\"*\"]}"),
	  .principal = CL, .want = NO, .reason = "no ALLOW policy matched" },
	/* peer authentication */
	{ "mesh strict plaintext", PA MESH("STRICT"), .principal = PT, .want = NO,
	  .reason = "STRICT peer authentication requires mTLS" },
	{ "mesh strict mtls", PA MESH("STRICT"), .principal = CL, .want = OK,
	  .reason = "no policy applies" },
	{ "mesh strict ns permissive", PA MESH("STRICT") NSPA("PERMISSIVE"), .principal = PT,
	  .want = OK, .reason = "no policy applies" },
	{ "ns permissive workload strict", PA NSPA("PERMISSIVE") WLPA("STRICT", "app: server"),
	  .principal = PT, .want = NO, .reason = "STRICT peer authentication" },
	{ "ns strict workload permissive", PA NSPA("STRICT") WLPA("PERMISSIVE", "app: server"),
	  .principal = PT, .want = OK, .reason = "no policy applies" },
	{ "ns strict workload disable", PA NSPA("STRICT") WLPA("DISABLE", "app: server"),
	  .principal = PT, .want = OK, .reason = "no policy applies" },
	{ "mesh strict ns unset inherits", PA MESH("STRICT") NSPA("UNSET"), .principal = PT,
	  .want = NO, .reason = "STRICT peer authentication" },
	{ "mesh permissive ns strict", PA MESH("PERMISSIVE") NSPA("STRICT"), .principal = PT,
	  .want = NO, .reason = "STRICT peer authentication" },
	{ "mesh disable", PA MESH("DISABLE"), .principal = PT, .want = OK,
	  .reason = "no policy applies" },
	{ "two at ns level strict wins", PA NSPA("PERMISSIVE") NSPA("STRICT"), .principal = PT,
	  .want = NO, .reason = "STRICT peer authentication" },
	{ "two at ns level strict first", PA NSPA("STRICT") NSPA("PERMISSIVE"), .principal = PT,
	  .want = NO, .reason = "STRICT peer authentication" },
	{ "two at workload level strict first", PA NSPA("STRICT") WLPA("STRICT", "app: server")
	  WLPA("PERMISSIVE", "version: v1"), .principal = PT, .want = NO,
	  .reason = "STRICT peer authentication" },
	{ "workload strict other workload", PA WLPA("STRICT", "app: server"), .dst = "web-abc",
	  .principal = PT, .want = OK, .reason = "no policy applies" },
	{ "workload strict other namespace", PA "- {name: x, namespace: prod, mode: STRICT, "
	  "selector: {matchLabels: {app: server}}}\n", .principal = PT, .want = OK,
	  .reason = "no policy applies" },
	{ "ns strict other namespace", PA "- {name: x, namespace: prod, mode: STRICT}\n",
	  .principal = PT, .want = OK, .reason = "no policy applies" },
	{ "selector app and version", PA WLPA("STRICT", "app: server, version: v1"),
	  .principal = PT, .want = NO, .reason = "STRICT peer authentication" },
	{ "selector wrong version", PA WLPA("STRICT", "app: server, version: v2"),
	  .principal = PT, .want = OK, .reason = "no policy applies" },
	{ "selector name label", PA WLPA("STRICT", "name: web-abc"), .dst = "web-abc",
	  .principal = PT, .want = NO, .reason = "STRICT peer authentication" },
	{ "selector app is canonicalName", PA WLPA("STRICT", "app: web-abc"), .dst = "web-abc",
	  .principal = PT, .want = OK, .reason = "no policy applies" },
	{ "selector app falls back to name", PA "- {name: x, namespace: prod, mode: STRICT, "
	  "selector: {matchLabels: {app: db}}}\n", .dst = "db", .principal = PT, .want = NO,
	  .reason = "STRICT peer authentication" },
	{ "selector unknown label", PA WLPA("STRICT", "team: a"), .principal = PT, .want = OK,
	  .reason = "no policy applies" },
	{ "root namespace with selector is not mesh-wide", PA "- {name: x, "
	  "namespace: istio-system, mode: STRICT, selector: {matchLabels: {app: server}}}\n",
	  .principal = PT, .want = OK, .reason = "no policy applies" },
	{ "strict then policies for mtls", PA MESH("STRICT") P DENY_ALL, .principal = CL,
	  .want = NO, .reason = "no ALLOW policy matched (policy " },
	{ "permissive plaintext still judged", PA NSPA("PERMISSIVE") P
	  DENY("deny-cidr", "{sourceIps: [10.0.0.0/24]}"), .principal = PT, .want = NO,
	  .reason = "denied by policy default/deny-cidr" },
};

static const struct state_workload *find_workload(const struct state_snapshot *s,
						  const char *name)
{
	for (size_t i = 0; i < s->n_workloads; i++)
		if (strcmp(s->workloads[i].name, name) == 0)
			return &s->workloads[i];
	return NULL;
}

/* The deciding policy is the one the reason names. */
static void check_policy_named(const struct pcase *tc, const struct policy_result *res)
{
	char key[256];

	if (strstr(res->reason, "by policy") == res->reason + strlen("denied ") ||
	    strstr(res->reason, "by policy") == res->reason + strlen("allowed "))
		CHECK(res->policy, "%s: no deciding policy", tc->name);
	if (!res->policy)
		return;
	snprintf(key, sizeof(key), "%s/%s", res->policy->namespace_, res->policy->name);
	CHECK(strstr(res->reason, key), "%s: policy %s not in reason \"%s\"", tc->name, key,
	      res->reason);
}

static void run_case(const struct pcase *tc)
{
	char yaml[4096], err[512];
	struct policy_request req = { 0 };
	struct policy_result res;
	struct state_snapshot *s;
	enum policy_verdict v;

	snprintf(yaml, sizeof(yaml), "%s%s", base_yaml, tc->yaml);
	s = localcfg_load_buffer("case.yaml", yaml, strlen(yaml), err, sizeof(err));
	CHECK(s, "%s: YAML rejected: %s", tc->name, err);
	if (!s)
		return;
	req.dst = find_workload(s, tc->dst ? tc->dst : "server");
	req.principal = tc->principal;
	req.dst_port = tc->port ? tc->port : 80;
	CHECK(req.dst && state_ip_parse(tc->src ? tc->src : "10.0.0.5", &req.src_ip) == 0,
	      "%s: bad case", tc->name);
	if (req.dst && tc->dst_ip)
		CHECK(state_ip_parse(tc->dst_ip, &req.dst_ip) == 0, "%s: bad dst", tc->name);
	else if (req.dst)
		req.dst_ip = req.dst->ips[0];
	memset(&res, 0xa5, sizeof(res));
	v = policy_check(s, &req, &res);
	CHECK(v == tc->want && res.verdict == v, "%s: verdict %d (%s), want %d", tc->name, v,
	      res.reason, tc->want);
	CHECK(strstr(res.reason, tc->reason), "%s: reason \"%s\", want \"%s\"", tc->name,
	      res.reason, tc->reason);
	CHECK(res.dry_run_would_deny == tc->dry, "%s: dry_run_would_deny %d", tc->name,
	      res.dry_run_would_deny);
	check_policy_named(tc, &res);
	/* the same through the snapshot's index (as a published snapshot is looked up) */
	{
		struct policy_result idx;

		CHECK(state_snapshot_index(s) == 0 && s->index, "%s: index", tc->name);
		memset(&idx, 0x5a, sizeof(idx));
		CHECK(policy_check(s, &req, &idx) == v && idx.verdict == res.verdict &&
		      strcmp(idx.reason, res.reason) == 0 && idx.policy == res.policy &&
		      idx.dry_run_would_deny == res.dry_run_would_deny,
		      "%s: indexed verdict differs: \"%s\" vs \"%s\"", tc->name, idx.reason,
		      res.reason);
	}
	state_snapshot_put(&s);
}

/* The effective mode itself: narrowest level wins; DISABLE reads as PERMISSIVE. */
static void test_peer_auth_mode(void)
{
	static const struct {
		const char *yaml, *dst;
		enum state_peer_auth_mode want;
	} cases[] = {
		{ "", "server", STATE_PA_PERMISSIVE },
		{ PA MESH("STRICT"), "db", STATE_PA_STRICT },
		{ PA MESH("STRICT") NSPA("DISABLE"), "server", STATE_PA_PERMISSIVE },
		{ PA MESH("STRICT") NSPA("DISABLE"), "db", STATE_PA_STRICT },
		{ PA NSPA("PERMISSIVE") WLPA("STRICT", "app: server"), "server", STATE_PA_STRICT },
		{ PA NSPA("PERMISSIVE") WLPA("STRICT", "app: server"), "web-abc",
		  STATE_PA_PERMISSIVE },
		{ PA WLPA("PERMISSIVE", "app: server") WLPA("STRICT", "version: v1"), "server",
		  STATE_PA_STRICT },
		{ PA WLPA("UNSET", "app: server") NSPA("STRICT"), "server", STATE_PA_STRICT },
		{ PA WLPA("STRICT", "version: v1") WLPA("DISABLE", "app: server"), "server",
		  STATE_PA_STRICT },
		{ PA MESH("STRICT") MESH("PERMISSIVE"), "db", STATE_PA_STRICT },
	};
	char yaml[2048], err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct state_snapshot *s;
		enum state_peer_auth_mode m;

		snprintf(yaml, sizeof(yaml), "%s%s", base_yaml, cases[i].yaml);
		s = localcfg_load_buffer("pa.yaml", yaml, strlen(yaml), err, sizeof(err));
		CHECK(s, "peer auth case %zu: %s", i, err);
		if (!s)
			continue;
		m = policy_peer_auth_mode(s, find_workload(s, cases[i].dst));
		CHECK(m == cases[i].want, "peer auth case %zu: mode %d, want %d", i, m,
		      cases[i].want);
		state_snapshot_put(&s);
	}
}

/* Missing inputs fail closed and never crash; a NULL result is allowed. */
static void test_edges(void)
{
	struct state_snapshot *s = state_snapshot_new();
	struct policy_request req = { 0 };
	struct policy_result res;

	CHECK(policy_check(NULL, &req, &res) == POLICY_DENY, "NULL snapshot");
	CHECK(policy_check(s, NULL, &res) == POLICY_DENY, "NULL request");
	CHECK(policy_check(s, &req, &res) == POLICY_DENY && strstr(res.reason, "unknown"),
	      "NULL destination: %s", res.reason);
	CHECK(policy_peer_auth_mode(NULL, NULL) == STATE_PA_PERMISSIVE, "NULL peer auth");
	state_snapshot_put(&s);
}

int main(void)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	for (size_t i = 0; i < n; i++)
		run_case(&cases[i]);
	test_peer_auth_mode();
	test_edges();
	if (failures)
		printf("%d check(s) failed\n", failures);
	else
		printf("policy_test: all checks passed (%zu verdict cases)\n", n);
	return failures ? 1 : 0;
}
