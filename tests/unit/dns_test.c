/* dns_test: the DNS proxy's answers (a table of queries against a local-config snapshot, replies
 * read back with ldns), truncation, bad input, the forwarding helpers and the settings. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include <ztunnel/dns.h>
#include <ztunnel/localcfg.h>

#include "check.h"

static const char *mesh_yaml =
	"workloads:\n"
	"- {uid: c//Pod/default/client, name: client, namespace: default, workloadIps: [10.1.0.2],\n"
	"   protocol: HBONE}\n"
	"- {uid: c//Pod/default/db-0, name: db-0, namespace: default, workloadIps: [10.1.0.5],\n"
	"   protocol: HBONE, services: {\"default/db.default.svc.cluster.local\": {5432: 5432}},\n"
	"   hostname: db-0.db.default.svc.cluster.local}\n"
	"- {uid: c//Pod/default/db-1, name: db-1, namespace: default, workloadIps: [10.1.0.6],\n"
	"   protocol: HBONE, services: {\"default/db.default.svc.cluster.local\": {5432: 5432}}}\n"
	"services:\n"
	"- {name: web, namespace: default, hostname: web.default.svc.cluster.local, vips: [/10.96.0.10],\n"
	"   ports: {80: 8080}}\n"
	"- {name: web, namespace: prod, hostname: web.prod.svc.cluster.local, vips: [/10.96.1.10],\n"
	"   ports: {80: 8080}}\n"
	"- {name: db, namespace: default, hostname: db.default.svc.cluster.local, vips: [],\n"
	"   ports: {5432: 5432}}\n"
	"- {name: ex, namespace: default, hostname: example.com, vips: [/240.0.0.1], ports: {80: 80}}\n"
	"- {name: ex, namespace: prod, hostname: shared.example, vips: [/240.0.0.3], ports: {80: 80}}\n"
	"- {name: ex, namespace: default, hostname: shared.example, vips: [/240.0.0.4], ports: {80: 80}}\n"
	"- {name: wild, namespace: default, hostname: \"*.wild.example\", vips: [/240.0.0.2],\n"
	"   ports: {443: 443}}\n"
	"- {name: novip, namespace: default, hostname: novip.example, vips: [], ports: {80: 80}}\n"
	"- {name: dual, namespace: default, hostname: dual.example, vips: [/240.0.0.5, /fd00::5],\n"
	"   ports: {80: 80}}\n";

static struct state_snapshot *snap;

/* A query for name/type as a resolver would send it (RD, optional EDNS size), in wire form. */
static uint8_t *query(const char *name, ldns_rr_type type, uint16_t edns, size_t *len)
{
	ldns_pkt *q = NULL;
	uint8_t *wire = NULL;

	if (ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN, LDNS_RD) !=
	    LDNS_STATUS_OK)
		abort();
	ldns_pkt_set_id(q, 0x4242);
	if (edns)
		ldns_pkt_set_edns_udp_size(q, edns);
	if (ldns_pkt2wire(&wire, q, len) != LDNS_STATUS_OK)
		abort();
	ldns_pkt_free(q);
	return wire;
}

/* The answer section as "owner TYPE rdata" lines, sorted by the caller's order of appearance. */
static void answers_text(const ldns_pkt *r, char *out, size_t len)
{
	ldns_rr_list *an = ldns_pkt_answer(r);

	out[0] = '\0';
	for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
		ldns_rr *rr = ldns_rr_list_rr(an, i);
		char *owner = ldns_rdf2str(ldns_rr_owner(rr));
		char *type = ldns_rr_type2str(ldns_rr_get_type(rr));
		char *rd = ldns_rdf2str(ldns_rr_rdf(rr, 0));
		size_t used = strlen(out);

		snprintf(out + used, len - used, "%s%s %s %s ttl=%u", i ? "; " : "", owner, type, rd,
			 ldns_rr_ttl(rr));
		free(owner);
		free(type);
		free(rd);
	}
}

struct answer_case {
	const char *what;
	const char *ns;			/* the client's namespace */
	const char *name;
	ldns_rr_type type;
	enum dns_verdict verdict;
	const char *answers;		/* exact, in order; NULL: not checked (shuffled) */
	int n_answers;			/* -1: not checked */
};

static const struct answer_case cases[] = {
	{ "FQDN", "default", "web.default.svc.cluster.local.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "web.default.svc.cluster.local. A 10.96.0.10 ttl=30", 1 },
	{ "short: svc in the client's namespace", "default", "web.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "web. A 10.96.0.10 ttl=30", 1 },
	{ "short: same name from prod", "prod", "web.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "web. A 10.96.1.10 ttl=30", 1 },
	{ "short: svc.ns", "default", "web.prod.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "web.prod. A 10.96.1.10 ttl=30", 1 },
	{ "short: svc.ns.svc", "prod", "web.default.svc.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "web.default.svc. A 10.96.0.10 ttl=30", 1 },
	{ "case-insensitive, case kept", "default", "WEB.Default.svc.cluster.local.",
	  LDNS_RR_TYPE_A, DNS_REPLY, "WEB.Default.svc.cluster.local. A 10.96.0.10 ttl=30", 1 },
	{ "search domain stripped: CNAME", "default", "example.com.default.svc.cluster.local.",
	  LDNS_RR_TYPE_A, DNS_REPLY,
	  "example.com.default.svc.cluster.local. CNAME example.com. ttl=30; "
	  "example.com. A 240.0.0.1 ttl=30", 2 },
	{ "search domain svc.cluster.local stripped: CNAME", "default",
	  "example.com.svc.cluster.local.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "example.com.svc.cluster.local. CNAME example.com. ttl=30; "
	  "example.com. A 240.0.0.1 ttl=30", 2 },
	{ "FQDN matched before stripping: no CNAME", "default",
	  "web.default.svc.cluster.local.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "web.default.svc.cluster.local. A 10.96.0.10 ttl=30", 1 },
	{ "ServiceEntry host", "default", "example.com.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "example.com. A 240.0.0.1 ttl=30", 1 },
	{ "the client's namespace wins", "default", "shared.example.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "shared.example. A 240.0.0.4 ttl=30", 1 },
	{ "the client's namespace wins (prod)", "prod", "shared.example.", LDNS_RR_TYPE_A,
	  DNS_REPLY, "shared.example. A 240.0.0.3 ttl=30", 1 },
	{ "wildcard", "default", "a.wild.example.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "a.wild.example. A 240.0.0.2 ttl=30", 1 },
	{ "wildcard, deeper", "default", "x.y.z.wild.example.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "x.y.z.wild.example. A 240.0.0.2 ttl=30", 1 },
	{ "wildcard through a stripped search domain: no CNAME", "default",
	  "a.wild.example.default.svc.cluster.local.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "a.wild.example.default.svc.cluster.local. A 240.0.0.2 ttl=30", 1 },
	{ "the wildcard's own base is not covered", "default", "wild.example.", LDNS_RR_TYPE_A,
	  DNS_FORWARD, NULL, -1 },
	{ "headless: endpoints", "default", "db.", LDNS_RR_TYPE_A, DNS_REPLY, NULL, 2 },
	{ "workload hostname: pod.subdomain", "default", "db-0.db.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "db-0.db. A 10.1.0.5 ttl=30", 1 },
	{ "workload hostname: pod.subdomain.ns from another namespace", "prod", "db-0.db.default.",
	  LDNS_RR_TYPE_A, DNS_REPLY, "db-0.db.default. A 10.1.0.5 ttl=30", 1 },
	{ "workload hostname: FQDN", "prod", "db-0.db.default.svc.cluster.local.", LDNS_RR_TYPE_A,
	  DNS_REPLY, "db-0.db.default.svc.cluster.local. A 10.1.0.5 ttl=30", 1 },
	{ "workload hostname: AAAA of a v4 pod", "default", "db-0.db.", LDNS_RR_TYPE_AAAA,
	  DNS_REPLY, "", 0 },
	{ "workload hostname in another namespace is not short for ours", "prod", "db-0.db.",
	  LDNS_RR_TYPE_A, DNS_FORWARD, NULL, -1 },
	{ "AAAA of a v4-only service: NOERROR, nothing", "default", "web.", LDNS_RR_TYPE_AAAA,
	  DNS_REPLY, "", 0 },
	{ "AAAA of a dual-stack service", "default", "dual.example.", LDNS_RR_TYPE_AAAA,
	  DNS_REPLY, "dual.example. AAAA fd00::5 ttl=30", 1 },
	{ "A of a dual-stack service", "default", "dual.example.", LDNS_RR_TYPE_A, DNS_REPLY,
	  "dual.example. A 240.0.0.5 ttl=30", 1 },
	{ "VIP-less ServiceEntry: forwarded", "default", "novip.example.", LDNS_RR_TYPE_A,
	  DNS_FORWARD, NULL, -1 },
	{ "unknown name: forwarded", "default", "www.debian.org.", LDNS_RR_TYPE_A, DNS_FORWARD,
	  NULL, -1 },
	{ "unknown service in the cluster: forwarded", "default", "nope.", LDNS_RR_TYPE_A,
	  DNS_FORWARD, NULL, -1 },
	{ "other types of known names: forwarded", "default", "web.", LDNS_RR_TYPE_SRV,
	  DNS_FORWARD, NULL, -1 },
	{ "TXT: forwarded", "default", "example.com.", LDNS_RR_TYPE_TXT, DNS_FORWARD, NULL, -1 },
	{ "the root: forwarded", "default", ".", LDNS_RR_TYPE_A, DNS_FORWARD, NULL, -1 },
};

static void test_answers(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct answer_case *c = &cases[i];
		struct dns_client client = { c->ns, "", false };
		struct dns_query_info info;
		size_t qlen, rlen;
		uint8_t *q = query(c->name, c->type, 0, &qlen), *reply;
		ldns_pkt *r = NULL;
		char got[2048];
		enum dns_verdict v = dns_answer(snap, &client, "cluster.local", q, qlen, 0, &reply,
						&rlen, &info);

		CHECK(v == c->verdict, "%s: verdict %d, want %d", c->what, v, c->verdict);
		CHECK(info.id == 0x4242 && info.qtype == c->type, "%s: info id %x qtype %u", c->what,
		      info.id, info.qtype);
		if (v == DNS_REPLY) {
			CHECK(ldns_wire2pkt(&r, reply, rlen) == LDNS_STATUS_OK, "%s: reply parses",
			      c->what);
		}
		if (r) {
			answers_text(r, got, sizeof(got));
			CHECK(ldns_pkt_id(r) == 0x4242 && ldns_pkt_qr(r) && ldns_pkt_aa(r) &&
			      ldns_pkt_rd(r) && ldns_pkt_ra(r) && !ldns_pkt_tc(r),
			      "%s: header id %x qr %d aa %d rd %d ra %d tc %d", c->what,
			      ldns_pkt_id(r), ldns_pkt_qr(r), ldns_pkt_aa(r), ldns_pkt_rd(r),
			      ldns_pkt_ra(r), ldns_pkt_tc(r));
			CHECK(ldns_pkt_get_rcode(r) == LDNS_RCODE_NOERROR, "%s: rcode %d", c->what,
			      ldns_pkt_get_rcode(r));
			CHECK(ldns_pkt_qdcount(r) == 1, "%s: question echoed", c->what);
			CHECK(c->n_answers < 0 || (int)ldns_pkt_ancount(r) == c->n_answers,
			      "%s: %u answers, want %d (%s)", c->what, ldns_pkt_ancount(r),
			      c->n_answers, got);
			CHECK(!c->answers || strcmp(got, c->answers) == 0, "%s: answers\n  got  %s\n  want %s",
			      c->what, got, c->answers);
		}
		ldns_pkt_free(r);
		free(reply);
		free(q);
	}
}

/* IPV6_ENABLED=false: a dual-stack name's AAAA is NOERROR without records, its A unchanged. */
static void test_no_ipv6(void)
{
	static const struct { uint16_t type; int n; const char *want; } q6[] = {
		{ LDNS_RR_TYPE_AAAA, 0, "" },
		{ LDNS_RR_TYPE_A, 1, "dual.example. A 240.0.0.5 ttl=30" },
	};
	struct dns_client client = { "default", "", true };

	for (size_t i = 0; i < sizeof(q6) / sizeof(q6[0]); i++) {
		struct dns_query_info info;
		size_t qlen, rlen;
		uint8_t *q = query("dual.example.", q6[i].type, 0, &qlen), *reply = NULL;
		ldns_pkt *r = NULL;
		char got[512] = "";
		enum dns_verdict v = dns_answer(snap, &client, "cluster.local", q, qlen, 0, &reply,
						&rlen, &info);

		CHECK(v == DNS_REPLY && ldns_wire2pkt(&r, reply, rlen) == LDNS_STATUS_OK,
		      "no IPv6, type %u: verdict %d", q6[i].type, v);
		if (r) {
			answers_text(r, got, sizeof(got));
			CHECK(ldns_pkt_get_rcode(r) == LDNS_RCODE_NOERROR &&
			      (int)ldns_pkt_ancount(r) == q6[i].n && strcmp(got, q6[i].want) == 0,
			      "no IPv6, type %u: rcode %d, answers '%s', want '%s'", q6[i].type,
			      ldns_pkt_get_rcode(r), got, q6[i].want);
		}
		ldns_pkt_free(r);
		free(reply);
		free(q);
	}
}

/* Headless answers: each endpoint once, in varying order. */
static void test_headless_shuffled(void)
{
	struct dns_client client = { "default", "", false };
	struct dns_query_info info;
	int first5 = 0, first6 = 0;

	for (int i = 0; i < 200; i++) {
		size_t qlen, rlen;
		uint8_t *q = query("db.default.svc.cluster.local.", LDNS_RR_TYPE_A, 0, &qlen), *reply;
		ldns_pkt *r = NULL;
		char got[512];

		dns_answer(snap, &client, "cluster.local", q, qlen, 0, &reply, &rlen, &info);
		if (reply && ldns_wire2pkt(&r, reply, rlen) == LDNS_STATUS_OK) {
			answers_text(r, got, sizeof(got));
			CHECK(strstr(got, "10.1.0.5") && strstr(got, "10.1.0.6"), "headless: %s", got);
			if (strncmp(got + strlen("db.default.svc.cluster.local. A "), "10.1.0.5", 8) == 0)
				first5++;
			else
				first6++;
		}
		ldns_pkt_free(r);
		free(reply);
		free(q);
	}
	CHECK(first5 > 20 && first6 > 20, "headless order never shuffled: %d/%d", first5, first6);
}

/* Many endpoints: over 512 bytes, UDP without EDNS gets TC and no records; with EDNS 4096 or
 * over TCP the whole set. */
static void test_truncation(void)
{
	char yaml[16384];
	size_t n = 0;
	struct state_snapshot *big;
	char err[256];
	struct dns_client client = { "default", "", false };
	struct dns_query_info info;
	const struct { uint16_t edns; size_t limit; bool tc; } runs[] = {
		{ 0, 0, true }, { 4096, 0, false }, { 0, DNS_TCP_LIMIT, false },
	};

	n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "workloads:\n");
	for (int i = 0; i < 50; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n,
				      "- {uid: u%d, name: p%d, namespace: default, "
				      "workloadIps: [10.2.0.%d], services: "
				      "{\"default/many.default.svc.cluster.local\": {80: 80}}}\n",
				      i, i, i + 1);
	snprintf(yaml + n, sizeof(yaml) - n,
		 "services:\n- {name: many, namespace: default, hostname: "
		 "many.default.svc.cluster.local, vips: [], ports: {80: 80}}\n");
	big = localcfg_load_buffer("big", yaml, strlen(yaml), err, sizeof(err));
	CHECK(big, "big config: %s", err);
	if (!big)
		return;
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		size_t qlen, rlen;
		uint8_t *q = query("many.", LDNS_RR_TYPE_A, runs[i].edns, &qlen), *reply;
		ldns_pkt *r = NULL;
		enum dns_verdict v = dns_answer(big, &client, "cluster.local", q, qlen,
						runs[i].limit, &reply, &rlen, &info);

		CHECK(v == DNS_REPLY && ldns_wire2pkt(&r, reply, rlen) == LDNS_STATUS_OK,
		      "many: run %zu", i);
		if (r) {
			CHECK(ldns_pkt_tc(r) == runs[i].tc, "many run %zu: tc %d", i, ldns_pkt_tc(r));
			CHECK(runs[i].tc ? ldns_pkt_ancount(r) == 0 : ldns_pkt_ancount(r) == 50,
			      "many run %zu: %u answers", i, ldns_pkt_ancount(r));
			CHECK(rlen <= (runs[i].edns ? runs[i].edns : runs[i].limit ? runs[i].limit : 512),
			      "many run %zu: %zu bytes", i, rlen);
			CHECK(runs[i].edns == 0 || ldns_pkt_edns(r), "many run %zu: EDNS answered", i);
		}
		ldns_pkt_free(r);
		free(reply);
		free(q);
	}
	state_snapshot_put(&big);
}

/* Bad input is dropped: never a reply, never a crash (ASan watches). */
static void test_bad_input(void)
{
	static const uint8_t hdr[12] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0 };
	struct { const char *what; uint8_t msg[600]; size_t len; } bad[] = {
		{ "empty", { 0 }, 0 },
		{ "short header", { 0x12, 0x34, 0x01 }, 3 },
		{ "header only, qdcount 1", { 0 }, 12 },
		{ "truncated name", { 0 }, 16 },
		{ "pointer to itself", { 0 }, 18 },
		{ "pointer loop", { 0 }, 22 },
		{ "label over 63", { 0 }, 12 + 1 + 64 + 5 },
		{ "a response", { 0 }, 0 },
	};
	struct dns_client client = { "default", "", false };
	struct dns_query_info info;
	size_t rlen;
	uint8_t *reply, big[DNS_MAX_QUERY + 10] = { 0 };

	memcpy(bad[2].msg, hdr, 12);
	memcpy(bad[3].msg, hdr, 12);
	memcpy(bad[3].msg + 12, "\x05www", 4);
	memcpy(bad[4].msg, hdr, 12);
	memcpy(bad[4].msg + 12, "\xc0\x0c\x00\x01\x00\x01", 6);
	memcpy(bad[5].msg, hdr, 12);
	memcpy(bad[5].msg + 12, "\x01" "a" "\xc0\x10" "\xc0\x0c" "\x00\x01\x00\x01", 10);
	memcpy(bad[6].msg, hdr, 12);
	bad[6].msg[12] = 64;
	memset(bad[6].msg + 13, 'a', 64);
	{
		size_t qlen;
		uint8_t *q = query("web.", LDNS_RR_TYPE_A, 0, &qlen);

		memcpy(bad[7].msg, q, qlen);
		bad[7].msg[2] |= 0x80;	/* QR */
		bad[7].len = qlen;
		free(q);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum dns_verdict v = dns_answer(snap, &client, "cluster.local", bad[i].msg, bad[i].len,
						0, &reply, &rlen, &info);

		CHECK(v == DNS_DROP && !reply, "%s: verdict %d", bad[i].what, v);
		free(reply);
	}
	memcpy(big, hdr, 12);
	CHECK(dns_answer(snap, &client, "cluster.local", big, sizeof(big), DNS_TCP_LIMIT, &reply,
			 &rlen, &info) == DNS_DROP, "oversized");
	/* a query with two questions: FORMERR; an opcode other than QUERY: NOTIMP */
	{
		size_t qlen;
		uint8_t *q = query("web.", LDNS_RR_TYPE_A, 0, &qlen);
		ldns_pkt *r = NULL;

		q[2] = (uint8_t)((q[2] & ~0x78) | (2 << 3));	/* opcode STATUS */
		CHECK(dns_answer(snap, &client, "cluster.local", q, qlen, 0, &reply, &rlen, &info) ==
		      DNS_REPLY && ldns_wire2pkt(&r, reply, rlen) == LDNS_STATUS_OK &&
		      ldns_pkt_get_rcode(r) == LDNS_RCODE_NOTIMPL, "opcode STATUS: NOTIMP");
		ldns_pkt_free(r);
		free(reply);
		free(q);
	}
}

static void test_forward_helpers(void)
{
	size_t qlen, rlen;
	uint8_t *q = query("www.debian.org.", LDNS_RR_TYPE_A, 0, &qlen), *reply;
	ldns_pkt *r = NULL;
	bool tc = true;

	CHECK(!dns_is_answer(q, qlen, 0x4242, &tc), "a query is not an answer");
	CHECK(dns_error_reply(q, qlen, LDNS_RCODE_SERVFAIL, &reply, &rlen) == 0, "servfail built");
	CHECK(dns_is_answer(reply, rlen, 0x4242, &tc) && !tc, "servfail answers the query");
	CHECK(!dns_is_answer(reply, rlen, 0x4243, &tc), "other id");
	CHECK(!dns_is_answer(reply, 11, 0x4242, &tc), "short");
	CHECK(ldns_wire2pkt(&r, reply, rlen) == LDNS_STATUS_OK &&
	      ldns_pkt_get_rcode(r) == LDNS_RCODE_SERVFAIL && ldns_pkt_qdcount(r) == 1,
	      "servfail: rcode and question");
	ldns_pkt_free(r);
	reply[2] |= 0x02;
	CHECK(dns_is_answer(reply, rlen, 0x4242, &tc) && tc, "TC seen");
	free(reply);
	CHECK(dns_error_reply(q, 5, LDNS_RCODE_SERVFAIL, &reply, &rlen) == -EINVAL, "short query");
	free(q);
	CHECK(strcmp(dns_qtype_name(LDNS_RR_TYPE_AAAA), "aaaa") == 0 &&
	      strcmp(dns_qtype_name(LDNS_RR_TYPE_SRV), "srv") == 0 &&
	      strcmp(dns_qtype_name(999), "unknown") == 0, "qtype names");
}

static void test_settings(void)
{
	struct dns_settings s;
	char err[200], path[] = "/tmp/dns_test_resolv.XXXXXX", ip[INET_ADDRSTRLEN];
	char ip6[INET6_ADDRSTRLEN];
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	CHECK(dns_settings_init(&s, true, "127.0.0.1:15053", "10.0.0.1,10.0.0.2:5353", "/none",
				"Cluster.Local.", 0x539, err, sizeof(err)) == 0, "upstreams: %s", err);
	CHECK(s.n_upstreams == 2 && ntohs(s.upstream[0].sin6_port) == 53 &&
	      ntohs(s.upstream[1].sin6_port) == 5353 && ntohs(s.listen.sin_port) == 15053,
	      "upstream ports");
	CHECK(IN6_IS_ADDR_V4MAPPED(&s.upstream[0].sin6_addr), "an IPv4 resolver is kept v4-mapped");
	CHECK(dns_settings_init(&s, true, "127.0.0.1:15053", "fd00::53, [fd00::54]:5353,10.0.0.1",
				"/none", "cluster.local", 0, err, sizeof(err)) == 0 &&
	      s.n_upstreams == 3, "IPv6 upstreams: %s", err);
	inet_ntop(AF_INET6, &s.upstream[1].sin6_addr, ip6, sizeof(ip6));
	CHECK(strcmp(ip6, "fd00::54") == 0 && ntohs(s.upstream[1].sin6_port) == 5353 &&
	      ntohs(s.upstream[0].sin6_port) == 53, "[v6]:port parsed: %s", ip6);
	dns_settings_ipv6(&s, false);
	CHECK(s.n_upstreams == 1 && IN6_IS_ADDR_V4MAPPED(&s.upstream[0].sin6_addr) && !s.ipv6,
	      "IPV6_ENABLED=false drops the IPv6 resolvers: %u left", s.n_upstreams);
	CHECK(dns_settings_init(&s, true, "127.0.0.1:15053", "[fd00::53", "/none",
				"cluster.local", 0, err, sizeof(err)) == -EINVAL &&
	      dns_settings_init(&s, true, "127.0.0.1:15053", "[fd00::53]x", "/none",
				"cluster.local", 0, err, sizeof(err)) == -EINVAL &&
	      dns_settings_init(&s, true, "127.0.0.1:15053", "10.0.0.1:99999", "/none",
				"cluster.local", 0, err, sizeof(err)) == -EINVAL,
	      "malformed upstreams refused");
	CHECK(strcmp(s.domain, "cluster.local") == 0, "domain normalised: %s", s.domain);
	CHECK(dns_settings_init(&s, true, "127.0.0.1:0", NULL, "/none", "cluster.local", 0, err,
				sizeof(err)) == -EINVAL && strstr(err, "DNS_PROXY_ADDR"), "port 0");
	CHECK(dns_settings_init(&s, true, "localhost:53", NULL, "/none", "cluster.local", 0, err,
				sizeof(err)) == -EINVAL, "a name is not an address");
	CHECK(dns_settings_init(&s, true, "127.0.0.1:15053", "10.0.0.1,nope", "/none",
				"cluster.local", 0, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "DNS_UPSTREAMS"), "bad upstream: %s", err);
	CHECK(dns_settings_init(&s, true, "127.0.0.1:15053", "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4",
				"/none", "cluster.local", 0, err, sizeof(err)) == -EINVAL,
	      "too many upstreams");
	fputs("# comment\nsearch a.b\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\n"
	      "nameserver fd00::10\n  nameserver\t10.96.0.11 # second\nnameserverx 1.2.3.4\n"
	      "options ndots:5\n", f);
	fclose(f);
	CHECK(dns_settings_init(&s, true, "127.0.0.1:15053", "", path, "cluster.local", 0, err,
				sizeof(err)) == 0 && s.n_upstreams == 3, "resolv.conf: %u", s.n_upstreams);
	inet_ntop(AF_INET6, &s.upstream[1].sin6_addr, ip6, sizeof(ip6));
	CHECK(strcmp(ip6, "fd00::10") == 0, "an IPv6 nameserver is kept (a zoned one is not): %s",
	      ip6);
	inet_ntop(AF_INET, &s.upstream[2].sin6_addr.s6_addr[12], ip, sizeof(ip));
	CHECK(strcmp(ip, "10.96.0.11") == 0, "third nameserver %s", ip);
	unlink(path);
}

int main(void)
{
	char err[256];

	snap = localcfg_load_buffer("mesh", mesh_yaml, strlen(mesh_yaml), err, sizeof(err));
	if (!snap) {
		printf("FAIL: config: %s\n", err);
		return 1;
	}
	test_answers();
	test_no_ipv6();
	test_headless_shuffled();
	test_truncation();
	test_bad_input();
	test_forward_helpers();
	test_settings();
	state_snapshot_put(&snap);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures != 0;
}
