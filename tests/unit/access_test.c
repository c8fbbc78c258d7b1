/* access_test: the access record's interned names: shared text, the old length caps, release
 * on completion, and a table that empties when its last record goes. */
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

int main(void)
{
	log_set_level_name("error");	/* the completions need not print */
	test_shared_and_released();
	test_caps();
	test_log_complete_releases();
	printf("%s\n", failures ? "FAILED" : "access_test: ok");
	return failures ? 1 : 0;
}
