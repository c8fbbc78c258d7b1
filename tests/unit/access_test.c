/* access_test: the access record's interned names: shared text, the old length caps, release
 * on completion, and a table that empties when its last record goes. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/access.h>
#include <ztunnel/log.h>

#include "check.h"

static void test_shared_and_released(void)
{
	struct access_record a = { 0 }, b = { 0 };
	unsigned base = access_names_count();

	CHECK(access_get(&a, ACCESS_SRC_IDENTITY)[0] == '\0', "an unset name reads as \"\"");
	CHECK(access_set(&a, ACCESS_SRC_IDENTITY, "spiffe://td/ns/a/sa/x") == 0, "set");
	CHECK(access_set(&b, ACCESS_SRC_IDENTITY, "spiffe://td/ns/a/sa/x") == 0, "set");
	CHECK(a.names[ACCESS_SRC_IDENTITY] == b.names[ACCESS_SRC_IDENTITY],
	      "two records naming the same identity share one copy");
	CHECK(access_names_count() == base + 1, "one entry, got %u", access_names_count() - base);
	/* the same text in another field is the same entry: the table holds texts, not fields */
	CHECK(access_set(&b, ACCESS_DST_IDENTITY, "spiffe://td/ns/a/sa/x") == 0, "set");
	CHECK(access_names_count() == base + 1, "still one entry");
	CHECK(access_set(&a, ACCESS_SRC_IDENTITY, "spiffe://td/ns/b/sa/y") == 0, "replace");
	CHECK(strcmp(access_get(&a, ACCESS_SRC_IDENTITY), "spiffe://td/ns/b/sa/y") == 0,
	      "replaced: %s", access_get(&a, ACCESS_SRC_IDENTITY));
	CHECK(strcmp(access_get(&b, ACCESS_SRC_IDENTITY), "spiffe://td/ns/a/sa/x") == 0,
	      "replacing one record's name leaves the other's");
	CHECK(access_set(&a, ACCESS_SRC_IDENTITY, "") == 0 && !a.names[ACCESS_SRC_IDENTITY],
	      "\"\" clears");
	CHECK(access_names_count() == base + 1, "the replaced text went with its last record");
	access_names_release(&a);
	access_names_release(&b);
	CHECK(access_names_count() == base, "all released: %u left", access_names_count() - base);
	for (int f = 0; f < ACCESS_NAMES; f++)
		CHECK(!b.names[f], "released names are cleared");
}

static void test_caps(void)
{
	static const struct { enum access_name_field f; size_t max; } caps[] = {
		{ ACCESS_SRC_WORKLOAD, 127 }, { ACCESS_SRC_NAMESPACE, 63 },
		{ ACCESS_SRC_IDENTITY, TLS_SPIFFE_MAX - 1 }, { ACCESS_DST_WORKLOAD, 127 },
		{ ACCESS_DST_NAMESPACE, 63 }, { ACCESS_DST_IDENTITY, TLS_SPIFFE_MAX - 1 },
		{ ACCESS_DST_SERVICE, 255 },
	};
	char long_text[2048];
	struct access_record r = { 0 };

	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		CHECK(access_set(&r, caps[i].f, long_text) == 0, "set");
		CHECK(strlen(access_get(&r, caps[i].f)) == caps[i].max,
		      "field %d cut at %zu bytes as its old buffer, got %zu", caps[i].f,
		      caps[i].max, strlen(access_get(&r, caps[i].f)));
	}
	/* a prefix of an interned text is its own entry, not the longer one */
	CHECK(access_set(&r, ACCESS_SRC_WORKLOAD, "aaa") == 0, "set");
	CHECK(strcmp(access_get(&r, ACCESS_SRC_WORKLOAD), "aaa") == 0, "prefix: %s",
	      access_get(&r, ACCESS_SRC_WORKLOAD));
	access_names_release(&r);
}

static void test_log_complete_releases(void)
{
	unsigned base = access_names_count();
	/* many records of a few workload pairs: the table holds the few texts */
	struct access_record *recs = calloc(1000, sizeof(*recs));
	char name[32];

	CHECK(recs != NULL, "calloc");
	if (!recs)
		return;
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "client-%d", i % 10);
		access_set(&recs[i], ACCESS_SRC_WORKLOAD, name);
		access_set(&recs[i], ACCESS_SRC_NAMESPACE, "default");
		access_set(&recs[i], ACCESS_DST_SERVICE, "echo.default.svc.cluster.local");
	}
	CHECK(access_names_count() == base + 12, "10 workloads, 1 namespace, 1 service: %u",
	      access_names_count() - base);
	for (int i = 0; i < 1000; i++)
		access_log_complete(&recs[i], NULL);
	CHECK(access_names_count() == base, "completion released every name: %u left",
	      access_names_count() - base);
	free(recs);
}

/* access_addr's own IPv4 writing agrees with inet_ntop at every digit count and port size */
static void test_addr(void)
{
	static const char *const ips[] = { "0.0.0.0", "10.201.1.2", "255.255.255.255",
					   "1.22.103.9", "99.100.9.10" };
	static const unsigned ports[] = { 0, 9, 10, 99, 100, 999, 1000, 15008, 65535 };
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	char got[64], want[64];

	in->sin_family = AF_INET;
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
		for (size_t j = 0; j < sizeof(ports) / sizeof(ports[0]); j++) {
			inet_pton(AF_INET, ips[i], &in->sin_addr);
			in->sin_port = htons((uint16_t)ports[j]);
			snprintf(want, sizeof(want), "%s:%u", ips[i], ports[j]);
			CHECK(!strcmp(access_addr(&ss, got, sizeof(got)), want), "%s: %s", want, got);
		}
	}
	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &in6->sin6_addr);
	in6->sin6_port = htons(80);
	CHECK(!strcmp(access_addr(&ss, got, sizeof(got)), "10.0.0.1:80"), "v4-mapped: %s", got);
	inet_pton(AF_INET6, "fd00::1", &in6->sin6_addr);
	CHECK(!strcmp(access_addr(&ss, got, sizeof(got)), "[fd00::1]:80"), "v6: %s", got);
	ss.ss_family = 0;
	CHECK(!strcmp(access_addr(&ss, got, sizeof(got)), "-"), "none: %s", got);
}

int main(void)
{
	log_set_level_name("error");	/* the completions need not print */
	test_shared_and_released();
	test_caps();
	test_log_complete_releases();
	test_addr();
	printf("%s\n", failures ? "FAILED" : "access_test: ok");
	return failures ? 1 : 0;
}
