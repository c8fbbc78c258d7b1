// unit-standalone
/* state_test: IP parsing, look-ups, endpoint picking, identities, refcounts, the store and the
 * UTF-8 rule of snapshot strings. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/lookup.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/state/index.c"
#include "../../agent/state/store.c"
#include "../../agent/state/text.c"

#include "check.h"

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static struct state_ip ip(const char *text)
{
	struct state_ip a;

	if (state_ip_parse(text, &a))
		abort();
	return a;
}

/* A pointer to a parsed address, for look-up arguments. */
#define IPP(text) (&(struct state_ip[]){ ip(text) }[0])

/* Appends a workload; services is "ns/host" strings, each with one port pair (sp -> tp). */
struct ws_spec {
	const char *key;
	uint16_t sp, tp;
};

static struct state_workload *add_workload(struct state_snapshot *s, const char *uid,
					   const char *ns, const char *name, const char *ip1,
					   const char *ip2, const struct ws_spec *svcs, size_t n)
{
	struct state_workload *w;

	s->workloads = realloc(s->workloads, (s->n_workloads + 1) * sizeof(*w));
	if (!s->workloads)
		abort();
	w = &s->workloads[s->n_workloads++];
	memset(w, 0, sizeof(*w));
	w->uid = dup_or_null(uid);
	w->namespace_ = dup_or_null(ns);
	w->name = dup_or_null(name);
	w->ips = calloc(2, sizeof(*w->ips));
	w->ips[w->n_ips++] = ip(ip1);
	if (ip2)
		w->ips[w->n_ips++] = ip(ip2);
	w->services = n ? calloc(n, sizeof(*w->services)) : NULL;
	for (size_t i = 0; i < n; i++) {
		w->services[i].service_key = strdup(svcs[i].key);
		if (svcs[i].sp) {
			w->services[i].ports = calloc(1, sizeof(struct state_port));
			w->services[i].ports[0] = (struct state_port){ svcs[i].sp, svcs[i].tp };
			w->services[i].n_ports = 1;
		}
	}
	w->n_services = n;
	return w;
}

static struct state_service *add_service(struct state_snapshot *s, const char *ns,
					 const char *host, const char *vip1, const char *vip2,
					 const struct state_port *ports, size_t n_ports)
{
	struct state_service *svc;

	s->services = realloc(s->services, (s->n_services + 1) * sizeof(*svc));
	if (!s->services)
		abort();
	svc = &s->services[s->n_services++];
	memset(svc, 0, sizeof(*svc));
	svc->namespace_ = strdup(ns);
	svc->hostname = strdup(host);
	svc->name = strdup(host);
	svc->vips = calloc(2, sizeof(*svc->vips));
	svc->vips[svc->n_vips++] = ip(vip1);
	if (vip2)
		svc->vips[svc->n_vips++] = ip(vip2);
	svc->ports = calloc(n_ports, sizeof(*svc->ports));
	memcpy(svc->ports, ports, n_ports * sizeof(*ports));
	svc->n_ports = n_ports;
	return svc;
}

static void test_ip_parse(void)
{
	static const struct {
		const char *text;
		int ret, family;
		const char *formatted;
	} cases[] = {
		{ "10.0.0.1", 0, AF_INET, "10.0.0.1" },
		{ "::1", 0, AF_INET6, "::1" },
		{ "fd00::a:1", 0, AF_INET6, "fd00::a:1" },
		{ "net1/10.0.0.2", 0, AF_INET, "10.0.0.2" },
		{ "/127.10.0.1", 0, AF_INET, "127.10.0.1" },
		{ "/fd00::5", 0, AF_INET6, "fd00::5" },
		{ "10.0.0.256", -EINVAL, 0, NULL },
		{ "", -EINVAL, 0, NULL },
		{ "example.com", -EINVAL, 0, NULL },
		{ "10.0.0.0/8", -EINVAL, 0, NULL },
		{ " 10.0.0.1", -EINVAL, 0, NULL },
		{ "a/b/10.0.0.1", -EINVAL, 0, NULL },
	};
	char buf[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct state_ip a;
		int ret = state_ip_parse(cases[i].text, &a);

		CHECK(ret == cases[i].ret, "parse \"%s\" = %d, want %d", cases[i].text, ret,
		      cases[i].ret);
		if (ret || cases[i].ret)
			continue;
		CHECK(a.family == cases[i].family, "parse \"%s\" family %d", cases[i].text,
		      a.family);
		state_ip_format(&a, buf, sizeof(buf));
		CHECK(strcmp(buf, cases[i].formatted) == 0, "format \"%s\" = \"%s\"",
		      cases[i].text, buf);
	}
	CHECK(state_ip_parse(NULL, &(struct state_ip){ 0 }) == -EINVAL, "NULL text");
}

static void test_ip_equal(void)
{
	struct state_ip a = ip("10.1.2.3"), b = ip("net/10.1.2.3"), m = ip("::ffff:10.1.2.3");
	struct state_ip c = ip("10.1.2.4"), v6 = ip("fd00::1"), v6b = ip("fd00::0:1");
	struct state_ip bad = { 0 };
	char buf[INET6_ADDRSTRLEN];

	CHECK(state_ip_equal(&a, &b), "same v4 differs");
	CHECK(state_ip_equal(&a, &m) && state_ip_equal(&m, &a), "v4-mapped v6 differs from v4");
	CHECK(m.family == AF_INET && strcmp(state_ip_format(&m, buf, sizeof(buf)), "10.1.2.3") == 0,
	      "a parsed v4-mapped address is the IPv4 one: %s", buf);
	{
		struct state_ip raw = { .family = AF_INET6 }, keep = v6;

		inet_pton(AF_INET6, "::ffff:10.1.2.3", &raw.v6);
		state_ip_unmap(&raw);
		state_ip_unmap(&keep);
		CHECK(raw.family == AF_INET && raw.v4.s_addr == a.v4.s_addr, "state_ip_unmap");
		CHECK(keep.family == AF_INET6 && state_ip_equal(&keep, &v6), "IPv6 kept by unmap");
	}
	CHECK(!state_ip_equal(&a, &c), "different v4 equal");
	CHECK(state_ip_equal(&v6, &v6b), "same v6 differs");
	CHECK(!state_ip_equal(&a, &v6), "v4 equals v6");
	CHECK(!state_ip_equal(&bad, &bad), "family 0 equal");
	CHECK(!state_ip_equal(&a, NULL), "NULL equal");
	CHECK(strcmp(state_ip_format(&bad, buf, sizeof(buf)), "invalid") == 0, "bad format %s",
	      buf);
}

static struct state_snapshot *sample(void)
{
	static const struct state_port web_ports[] = { { 80, 8080 }, { 443, 0 }, { 9090, 0 } };
	static const struct state_port db_ports[] = { { 5432, 0 } };
	static const struct ws_spec a[] = { { "default/web.example.com", 80, 9000 } };
	static const struct ws_spec b[] = { { "default/web.example.com", 0, 0 },
					    { "db/db.example.com", 5432, 0 } };
	static const struct ws_spec c[] = { { "default/web.example.com", 80, 0 } };
	static const struct ws_spec lookalikes[] = { { "defaultx/web.example.com", 80, 1 },
						     { "default/web.example.comx", 80, 1 },
						     { "default", 80, 1 } };
	struct state_snapshot *s = state_snapshot_new();

	if (!s)
		abort();
	add_workload(s, "c1//v1/Pod/default/a", "default", "a", "10.0.0.1", "fd00::1", a, 1);
	add_workload(s, "c1//v1/Pod/default/b", "default", "b", "10.0.0.2", NULL, b, 2);
	add_workload(s, "c1//v1/Pod/other/decoy", "other", "decoy", "10.0.0.3", NULL, lookalikes,
		     3);
	add_workload(s, "c1//v1/Pod/default/c", "default", "c", "10.0.0.4", "10.0.1.4", c, 1);
	add_workload(s, "", "default", "nouid", "10.0.0.5", NULL, NULL, 0);
	add_service(s, "default", "web.example.com", "/10.96.0.1", "fd00:96::1", web_ports, 3);
	add_service(s, "db", "db.example.com", "10.96.0.2", NULL, db_ports, 1);
	add_service(s, "lonely", "lonely.example.com", "10.96.0.3", NULL, db_ports, 1);
	return s;
}

static void test_lookups(void)
{
	struct state_snapshot *s = sample();
	const struct state_workload *w;
	const struct state_service *svc;

	w = state_lookup_ip(s, &(struct state_ip){ 0 });
	CHECK(!w, "family-0 ip found a workload");
	w = state_lookup_ip(s, &(struct state_ip){ .family = AF_INET });
	CHECK(!w, "0.0.0.0 found a workload");
	w = state_lookup_ip(s, IPP("fd00::1"));
	CHECK(w && strcmp(w->name, "a") == 0, "second (v6) ip of a not found");
	w = state_lookup_ip(s, IPP("10.0.1.4"));
	CHECK(w && strcmp(w->name, "c") == 0, "second ip of c not found");
	w = state_lookup_ip(s, IPP("::ffff:10.0.0.2"));
	CHECK(w && strcmp(w->name, "b") == 0, "v4-mapped lookup of b failed");
	CHECK(!state_lookup_ip(s, IPP("10.0.0.99")), "unknown ip found");
	CHECK(!state_lookup_ip(NULL, IPP("10.0.0.1")), "NULL snap");

	svc = state_lookup_vip(s, IPP("fd00:96::1"));
	CHECK(svc && strcmp(svc->hostname, "web.example.com") == 0, "second vip not found");
	svc = state_lookup_vip(s, IPP("10.96.0.2"));
	CHECK(svc && strcmp(svc->hostname, "db.example.com") == 0, "db vip not found");
	CHECK(!state_lookup_vip(s, IPP("10.0.0.1")), "pod ip is a vip");

	svc = state_lookup_hostname(s, "db.example.com");
	CHECK(svc && strcmp(svc->namespace_, "db") == 0, "hostname lookup failed");
	svc = state_lookup_hostname(s, "default/web.example.com");
	CHECK(svc && strcmp(svc->hostname, "web.example.com") == 0, "ns/hostname lookup failed");
	CHECK(!state_lookup_hostname(s, "db/web.example.com"), "wrong namespace found");
	CHECK(!state_lookup_hostname(s, "web"), "partial hostname found");
	CHECK(!state_lookup_hostname(s, NULL), "NULL hostname found");

	w = state_lookup_pod(s, "c1//v1/Pod/default/b", NULL, NULL);
	CHECK(w && strcmp(w->name, "b") == 0, "pod by uid failed");
	w = state_lookup_pod(s, "c1//v1/Pod/default/gone", "default", "c");
	CHECK(w && strcmp(w->name, "c") == 0, "pod fallback to ns/name failed");
	w = state_lookup_pod(s, "", "default", "nouid");
	CHECK(w && strcmp(w->name, "nouid") == 0, "pod by ns/name with empty uid failed");
	CHECK(!state_lookup_pod(s, NULL, "other", "a"), "pod in wrong namespace found");
	CHECK(!state_lookup_pod(s, "nope", NULL, NULL), "unknown uid found");
	state_snapshot_put(&s);
}

static void test_service_pick(void)
{
	static const struct {
		const char *svc;
		uint16_t port;
		uint32_t hint;
		const char *want;	/* workload name, NULL for no pick */
		uint16_t target;
	} cases[] = {
		/* endpoints of web, in snapshot order: a, b, c (decoy's keys only look alike) */
		{ "web.example.com", 80, 0, "a", 9000 },	/* workload's own mapping */
		{ "web.example.com", 80, 1, "b", 8080 },	/* no mapping: service target */
		{ "web.example.com", 80, 2, "c", 8080 },	/* mapping to 0: service target */
		{ "web.example.com", 80, 3, "a", 9000 },	/* hint wraps */
		{ "web.example.com", 80, 0xffffffffu, "a", 9000 },	/* 2^32-1 % 3 == 0 */
		{ "web.example.com", 443, 0, "a", 443 },	/* no targets anywhere: port */
		{ "web.example.com", 9090, 1, "b", 9090 },
		{ "web.example.com", 8080, 0, NULL, 0 },	/* target port is not a service port */
		{ "db.example.com", 5432, 7, "b", 5432 },
		{ "db.example.com", 80, 0, NULL, 0 },
		{ "lonely.example.com", 5432, 0, NULL, 0 },	/* no endpoints */
	};
	struct state_snapshot *s = sample();

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct state_service *svc = state_lookup_hostname(s, cases[i].svc);
		uint16_t target = 1;
		const struct state_workload *w;

		w = state_service_pick(s, svc, cases[i].port, cases[i].hint, &target);
		if (!cases[i].want) {
			CHECK(!w, "pick %s:%u hint %u = %s, want none", cases[i].svc,
			      cases[i].port, cases[i].hint, w ? w->name : "");
			continue;
		}
		CHECK(w && strcmp(w->name, cases[i].want) == 0, "pick %s:%u hint %u = %s, want %s",
		      cases[i].svc, cases[i].port, cases[i].hint, w ? w->name : "none",
		      cases[i].want);
		CHECK(target == cases[i].target, "pick %s:%u hint %u target %u, want %u",
		      cases[i].svc, cases[i].port, cases[i].hint, target, cases[i].target);
	}
	CHECK(state_service_pick(s, &s->services[0], 80, 0, NULL) == &s->workloads[0],
	      "NULL target_port pointer");
	CHECK(!state_service_pick(s, NULL, 80, 0, NULL), "NULL service picked");
	state_snapshot_put(&s);
}

static void test_identity(void)
{
	static const struct {
		const char *td, *ns, *sa, *want;
	} cases[] = {
		{ "example.org", "prod", "api", "spiffe://example.org/ns/prod/sa/api" },
		{ NULL, "default", NULL, "spiffe://cluster.local/ns/default/sa/default" },
		{ "", "ns1", "", "spiffe://cluster.local/ns/ns1/sa/default" },
		{ "td", "ns1", "sa1", "spiffe://td/ns/ns1/sa/sa1" },
	};
	char buf[256], small[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct state_workload w = {
			.trust_domain = (char *)cases[i].td,
			.namespace_ = (char *)cases[i].ns,
			.service_account = (char *)cases[i].sa,
		};

		state_workload_identity(&w, buf, sizeof(buf));
		CHECK(strcmp(buf, cases[i].want) == 0, "identity %s, want %s", buf, cases[i].want);
	}
	state_workload_identity(&(struct state_workload){ .namespace_ = "x" }, small,
				sizeof(small));
	CHECK(strlen(small) == sizeof(small) - 1 && strncmp(small, "spiffe://", 9) == 0,
	      "truncated identity \"%s\"", small);
}

static void test_refcount(void)
{
	struct state_snapshot *s = sample(), *t;

	CHECK(s->refcount == 1, "new refcount %d", s->refcount);
	t = state_snapshot_get(s);
	CHECK(t == s && s->refcount == 2, "get refcount %d", s->refcount);
	state_snapshot_put(&t);
	CHECK(!t, "put did not clear the pointer");
	CHECK(s->refcount == 1, "refcount after put %d", s->refcount);
	CHECK(state_lookup_ip(s, IPP("10.0.0.1")), "snapshot gone early");
	state_snapshot_put(&s);	/* frees; ASan reports any leak or double free */
	CHECK(!s, "last put did not clear the pointer");
	state_snapshot_put(&s);	/* no-op on NULL */
	state_snapshot_put(NULL);
	CHECK(state_snapshot_get(NULL) == NULL, "get(NULL)");
}

static void test_store(void)
{
	struct state_store *store = state_store_new();
	struct state_snapshot *a = sample(), *b = state_snapshot_new(), *cur;

	CHECK(store != NULL, "store_new failed");
	CHECK(state_store_generation(store) == 0, "initial generation");
	CHECK(state_store_current(store) == NULL, "current before publish");
	state_store_publish(store, state_snapshot_get(a));
	CHECK(state_store_generation(store) == 1, "generation after publish");
	cur = state_store_current(store);
	CHECK(cur == a && a->refcount == 3, "current = published, refcount %d", a->refcount);
	state_snapshot_put(&cur);
	state_store_publish(store, b);
	CHECK(state_store_generation(store) == 2, "generation after second publish");
	CHECK(a->refcount == 1, "store kept its old reference: %d", a->refcount);
	/* The old snapshot stays valid for a worker still holding it. */
	CHECK(state_lookup_ip(a, IPP("10.0.0.4")), "old snapshot unusable");
	state_snapshot_put(&a);
	cur = state_store_current(store);
	CHECK(cur == b && b->n_workloads == 0, "current is not the new snapshot");
	state_store_publish(store, NULL);
	CHECK(state_store_generation(store) == 2, "NULL publish bumped the generation");
	state_store_free(&store);
	CHECK(!store, "store_free did not clear the pointer");
	CHECK(cur->refcount == 1, "reader's reference after store_free: %d", cur->refcount);
	state_snapshot_put(&cur);
	state_store_free(&store);
}

/* Readers take and drop references while a writer publishes: ASan catches use-after-free. */
#define PUBLISHES 2000
static int writer_done;

static void *reader(void *arg)
{
	struct state_store *store = arg;
	unsigned long reads = 0;

	while (!__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE) || reads < 100) {
		struct state_snapshot *s = state_store_current(store);

		if (s && s->n_workloads && !state_lookup_ip(s, IPP("10.0.0.1")))
			abort();
		state_snapshot_put(&s);
		reads++;
	}
	return NULL;
}

static void test_store_threads(void)
{
	struct state_store *store = state_store_new();
	pthread_t readers[4];

	for (size_t i = 0; i < 4; i++)
		pthread_create(&readers[i], NULL, reader, store);
	for (int i = 0; i < PUBLISHES; i++)
		state_store_publish(store, i % 2 ? sample() : state_snapshot_new());
	__atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
	for (size_t i = 0; i < 4; i++)
		pthread_join(readers[i], NULL);
	CHECK(state_store_generation(store) == PUBLISHES, "generation %lu, want %d",
	      state_store_generation(store), PUBLISHES);
	state_store_free(&store);
}

static void test_utf8(void)
{
	static const struct { const char *in; bool valid; const char *repaired; } cases[] = {
		{ "", true, "" },
		{ "cluster.local/ns/default/sa/x", true, "cluster.local/ns/default/sa/x" },
		{ "r\xc3\xa9seau \xe2\x98\x83 \xf0\x9f\x90\x99", true,
		  "r\xc3\xa9seau \xe2\x98\x83 \xf0\x9f\x90\x99" },
		{ "bad\xff", false, "bad?" },
		{ "cut\xc3", false, "cut?" },			/* a character cut by a length limit */
		{ "cut\xe2\x98", false, "cut??" },
		{ "\xc0\x80", false, "??" },			/* overlong NUL */
		{ "\xed\xa0\x80", false, "???" },		/* surrogate */
		{ "\xf4\x90\x80\x80", false, "????" },	/* past U+10FFFF */
		{ "\x80x", false, "?x" },			/* continuation first */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[64];

		CHECK(state_utf8_valid(cases[i].in, strlen(cases[i].in)) == cases[i].valid,
		      "utf8 case %zu", i);
		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		state_utf8_repair(buf);
		CHECK(strcmp(buf, cases[i].repaired) == 0, "utf8 repair case %zu: \"%s\"", i, buf);
		CHECK(state_utf8_valid(buf, strlen(buf)), "utf8 case %zu: repaired is valid", i);
	}
	CHECK(!state_utf8_valid("a\0b", 3), "a NUL inside is not text");
}

int main(void)
{
	test_ip_parse();
	test_ip_equal();
	test_lookups();
	test_service_pick();
	test_identity();
	test_refcount();
	test_store();
	test_store_threads();
	test_utf8();
	if (failures)
		printf("%d check(s) failed\n", failures);
	else
		printf("state_test: all checks passed\n");
	return failures ? 1 : 0;
}
