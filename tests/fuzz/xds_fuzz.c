/* xds_fuzz: libFuzzer target for the xDS resource conversion (protobuf-c bytes into snapshots).
 *
 * Input: one selector byte, then
 *   0: an istio.workload.Address          (xds_convert_check, then a one-resource snapshot)
 *   1: an istio.security.Authorization    (the same)
 *   2, 3: DeltaDiscoveryResponses, each as a 2-byte big-endian length and the message, applied
 *      in turn to the table of their type_url (xds_apply), then one snapshot of all tables.
 * Every snapshot is walked (look-ups, verdicts, config dump); nothing may leak.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/xds/xds-int.h"
#include "walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NACK's reason: not empty, and UTF-8 (it goes back to the control plane in a proto3 string). */
static bool nack_text(const char *err)
{
	return err[0] && state_utf8_valid(err, strlen(err));
}

/* A snapshot built from tables holds one entry per resource, and is walkable. */
static void build_and_walk(const struct xds_table tables[XDS_N_KINDS], bool must_build)
{
	const struct xds_table *addrs = &tables[XDS_KIND_ADDRESS];
	struct state_snapshot *s;
	char err[512];

	s = xds_snapshot_build(tables, err, sizeof(err));
	if (!s) {
		if (must_build || errno != EINVAL || !nack_text(err))
			abort();	/* only a resource that fails conversion fails the build */
		return;
	}
	if (s->n_workloads + s->n_services != addrs->n ||
	    s->n_policies != tables[XDS_KIND_AUTHZ].n)
		abort();
	fuzz_walk_lookups(s);
	fuzz_walk_policies(s);
	fuzz_walk_dump(s);
	state_snapshot_put(&s);
}

/* One resource: the NACK check and the snapshot build agree. */
static void one_resource(enum xds_kind kind, const uint8_t *body, size_t len)
{
	struct xds_table tables[XDS_N_KINDS] = { 0 };
	char err[256] = "";
	int ret = xds_convert_check(kind, body, len, err, sizeof(err));

	if (ret != 0 && (ret != -EINVAL || !nack_text(err)))
		abort();	/* a refusal says why (-ENOMEM aside, which the fuzzer does not do) */
	if (xds_table_put(&tables[kind], "fuzz", "1", body, len) == 0)
		build_and_walk(tables, ret == 0);
	xds_table_clear(&tables[kind]);
}

/* After an accepted response its resources are present and its removals gone; after a NACK
 * nothing changed. */
static void check_applied(const struct xds_table *t, size_t n_before, int ret, const char *err,
			  const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r)
{
	if (ret) {
		if (ret != -EINVAL || t->n != n_before || !nack_text(err))
			abort();
		return;
	}
	for (size_t i = 0; i < r->n_removed_resources; i++) {
		bool added = !r->removed_resources[i];

		for (size_t j = 0; j < r->n_resources && !added; j++)
			added = !strcmp(r->resources[j]->name, r->removed_resources[i]);
		if (!added && xds_table_get(t, r->removed_resources[i]))
			abort();
	}
	for (size_t i = 0; i < r->n_resources; i++)
		if (!xds_table_get(t, r->resources[i]->name))
			abort();
}

static void responses(const uint8_t *p, size_t size)
{
	struct xds_table tables[XDS_N_KINDS] = { 0 };
	char err[512];

	while (size >= 2) {
		size_t len = (size_t)p[0] << 8 | p[1], n_before;
		Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r;
		int kind, ret;

		p += 2;
		size -= 2;
		if (len > size)
			len = size;
		r = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, p);
		p += len;
		size -= len;
		if (!r)
			continue;
		kind = xds_kind_of(r->type_url);
		if (kind >= 0) {
			n_before = tables[kind].n;
			err[0] = '\0';
			ret = xds_apply(&tables[kind], (enum xds_kind)kind, r, err, sizeof(err));
			check_applied(&tables[kind], n_before, ret, err, r);
		}
		envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
	}
	/* what xds_apply let in always builds: a NACKed response left no trace */
	build_and_walk(tables, true);
	for (int k = 0; k < XDS_N_KINDS; k++)
		xds_table_clear(&tables[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		one_resource(XDS_KIND_ADDRESS, data + 1, size - 1);
		break;
	case 1:
		one_resource(XDS_KIND_AUTHZ, data + 1, size - 1);
		break;
	default:
		responses(data + 1, size - 1);
	}
	return 0;
}
