/* xds_demand_test: the on-demand bookkeeping (pending names, what is sent when, what a response
 * answers by name, alias or removal), the subscribe/unsubscribe requests, and the client's
 * refusal when not on demand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/state.h>
#include <ztunnel/xds.h>

#include "../../agent/xds/xds-int.h"

#include "check.h"

static bool str_is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void test_add(void)
{
	struct xds_demands d = { 0 };
	char long_name[XDS_MAX_NAME + 2], name[32];
	int ret = 0;

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	CHECK(xds_demands_add(&d, "/10.0.0.1") == 1, "new name");
	CHECK(xds_demands_add(&d, "/10.0.0.1") == 0, "same name again");
	CHECK(xds_demands_add(&d, "") == -EINVAL, "empty name");
	CHECK(xds_demands_add(&d, NULL) == -EINVAL, "no name");
	CHECK(xds_demands_add(&d, "*") == -EINVAL, "wildcard is not a name");
	CHECK(xds_demands_add(&d, long_name) == -EINVAL, "name over %d bytes", XDS_MAX_NAME);
	CHECK(d.n == 1 && xds_demands_pending(&d, "/10.0.0.1") && !xds_demands_pending(&d, "x"),
	      "one pending");
	for (int i = 1; i < XDS_MAX_DEMANDS && ret >= 0; i++) {
		snprintf(name, sizeof(name), "/10.1.%d.%d", i / 256, i % 256);
		ret = xds_demands_add(&d, name);
	}
	CHECK(ret == 1 && d.n == XDS_MAX_DEMANDS, "filled to %d (%zu, ret %d)", XDS_MAX_DEMANDS,
	      d.n, ret);
	CHECK(xds_demands_add(&d, "/10.2.0.1") == -ENOSPC, "bounded");
	CHECK(xds_demands_add(&d, "/10.0.0.1") == 0, "a pending name is still accepted when full");
	xds_demands_clear(&d);
	CHECK(d.n == 0 && !d.names, "cleared");
}

static void test_send(void)
{
	struct xds_demands d = { 0 };
	const char **names;
	size_t n;

	CHECK(xds_demands_to_send(&d, false, &n) == NULL && n == 0, "nothing to send");
	xds_demands_add(&d, "a");
	xds_demands_add(&d, "b");
	names = xds_demands_to_send(&d, false, &n);
	CHECK(n == 2 && names && str_is(names[0], "a") && str_is(names[1], "b"), "both unsent");
	free(names);
	CHECK(xds_demands_to_send(&d, false, &n) == NULL && n == 0, "sent once only");
	xds_demands_add(&d, "c");
	names = xds_demands_to_send(&d, false, &n);
	CHECK(n == 1 && names && str_is(names[0], "c"), "only the new one");
	free(names);
	names = xds_demands_to_send(&d, true, &n);	/* a new stream resends all */
	CHECK(n == 3, "a new stream sends every pending name (%zu)", n);
	free(names);
	xds_demands_clear(&d);
}

static void test_answer(void)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryResponse resp =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_RESPONSE__INIT;
	Envoy__Service__Discovery__V3__Resource r1 = ENVOY__SERVICE__DISCOVERY__V3__RESOURCE__INIT,
						r2 = ENVOY__SERVICE__DISCOVERY__V3__RESOURCE__INIT;
	Envoy__Service__Discovery__V3__Resource *rs[] = { &r1, &r2 };
	char *aliases1[] = { "/10.0.0.1", "net2/10.0.0.1" }, *aliases2[] = { NULL };
	char *removed[] = { "/10.9.9.9", "never-asked" };
	struct xds_demands d = { 0 };
	const char *want[] = { "uid-1", "/10.0.0.1", "/10.9.9.9" };
	char **got;
	size_t n, hits = 0;

	r1.name = "uid-1";
	r1.n_aliases = 2;
	r1.aliases = aliases1;
	r2.name = "ns/svc.example";
	r2.n_aliases = 1;
	r2.aliases = aliases2;	/* a NULL alias is skipped */
	resp.n_resources = 2;
	resp.resources = rs;
	resp.n_removed_resources = 2;
	resp.removed_resources = removed;
	CHECK(xds_demands_answer(&d, &resp, &n) == NULL && n == 0, "nothing pending");
	for (size_t i = 0; i < 3; i++)
		xds_demands_add(&d, want[i]);
	xds_demands_add(&d, "/10.0.0.2");
	got = xds_demands_answer(&d, &resp, &n);
	for (size_t i = 0; got && i < n; i++)
		for (size_t j = 0; j < 3; j++)
			hits += str_is(got[i], want[j]);
	CHECK(n == 3 && hits == 3, "answered by name, alias and removal (%zu, %zu)", n, hits);
	CHECK(d.n == 1 && xds_demands_pending(&d, "/10.0.0.2"), "the unanswered one stays");
	xds_names_free(got, n);
	got = xds_demands_answer(&d, &resp, &n);
	CHECK(!got && n == 0, "answered once");
	xds_demands_clear(&d);
}

static void test_requests(void)
{
	static const char *const sub[] = { "*", "/10.0.0.1" }, *const unsub[] = { "*" };
	struct xds_config cfg = { .address = "http://x", .on_demand = true };
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req;
	struct xds_table t = { 0 };
	uint8_t *buf;
	size_t len;

	xds_table_put(&t, "uid-1", "v1", NULL, 0);
	CHECK(xds_request_pack(&cfg, &t, XDS_KIND_ADDRESS,
			       &(struct xds_request){ .first = true, .subscribe = sub,
						      .n_subscribe = 2, .unsubscribe = unsub,
						      .n_unsubscribe = 1 },
			       &buf, &len) == 0, "pack");
	req = envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, buf);
	CHECK(req && req->node && req->n_resource_names_subscribe == 2 &&
		      str_is(req->resource_names_subscribe[0], "*") &&
		      str_is(req->resource_names_subscribe[1], "/10.0.0.1") &&
		      req->n_resource_names_unsubscribe == 1 &&
		      str_is(req->resource_names_unsubscribe[0], "*") &&
		      req->n_initial_resource_versions == 1,
	      "first on-demand request: * in and out, the pending name, what is held");
	envoy__service__discovery__v3__delta_discovery_request__free_unpacked(req, NULL);
	free(buf);
	xds_table_clear(&t);
}

static void test_client(void)
{
	struct state_store *store = state_store_new();
	struct xds_client *c = xds_client_start(
		&(struct xds_config){ .address = "http://127.0.0.1:1" }, store);

	CHECK(c, "client started");
	CHECK(xds_client_demand(c, "/10.0.0.1") == -ENOTSUP, "no demands unless on demand");
	CHECK(!xds_client_demand_wait(c, "/10.0.0.1", 10), "no wait unless on demand");
	CHECK(!xds_client_synced(c), "not synced without a control plane");
	xds_client_stop(&c);
	c = xds_client_start(&(struct xds_config){ .address = "http://127.0.0.1:1",
						   .on_demand = true }, store);
	CHECK(xds_client_demand(c, "") == -EINVAL, "bad name refused");
	CHECK(xds_client_demand(c, "/10.0.0.1") == 0, "demand queued while disconnected");
	CHECK(!xds_client_demand_wait(c, "/10.0.0.1", 100), "no answer without a control plane");
	xds_client_stop(&c);
	state_store_free(&store);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	test_add();
	test_send();
	test_answer();
	test_requests();
	test_client();
	if (failures)
		printf("%d failures\n", failures);
	else
		printf("xds_demand_test: all passed\n");
	return failures ? 1 : 0;
}
