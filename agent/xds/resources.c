/* xds/resources.c: the resources held per type, delta application and snapshot building. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xds-int.h"

static const char *const type_urls[XDS_N_KINDS] = { XDS_TYPE_ADDRESS, XDS_TYPE_AUTHZ };

const char *xds_kind_type_url(enum xds_kind kind)
{
	return kind < XDS_N_KINDS ? type_urls[kind] : NULL;
}

int xds_kind_of(const char *type_url)
{
	for (int k = 0; type_url && k < XDS_N_KINDS; k++)
		if (strcmp(type_url, type_urls[k]) == 0)
			return k;
	return -1;
}

/* FNV-1a */
static size_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

static size_t slot_of(const struct xds_table *t, const char *name)
{
	size_t mask = t->cap - 1, i = name_hash(name) & mask;

	while (t->slots[i].name && strcmp(t->slots[i].name, name) != 0)
		i = (i + 1) & mask;
	return i;
}

struct xds_resource *xds_table_get(const struct xds_table *t, const char *name)
{
	size_t i;

	if (!t->cap || !name)
		return NULL;
	i = slot_of(t, name);
	return t->slots[i].name ? &t->slots[i] : NULL;
}

static void resource_free(struct xds_resource *r)
{
	free(r->name);
	free(r->version);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Keeps the load under 1/2 so probes stay short. */
static int table_grow(struct xds_table *t)
{
	struct xds_table bigger = { .cap = t->cap ? t->cap * 2 : 16 };

	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->slots[i].name)
			continue;
		bigger.slots[slot_of(&bigger, t->slots[i].name)] = t->slots[i];
		bigger.n++;
	}
	free(t->slots);
	*t = bigger;
	return 0;
}

int xds_table_put(struct xds_table *t, const char *name, const char *version, const uint8_t *body,
		  size_t len)
{
	struct xds_resource r = { 0 }, *slot;

	if ((t->n + 1) * 2 > t->cap && table_grow(t))
		return -ENOMEM;
	r.name = strdup(name);
	r.version = strdup(version ? version : "");
	r.body = len ? malloc(len) : NULL;
	r.len = len;
	if (!r.name || !r.version || (len && !r.body)) {
		resource_free(&r);
		return -ENOMEM;
	}
	if (len)
		memcpy(r.body, body, len);
	slot = &t->slots[slot_of(t, name)];
	if (slot->name)
		resource_free(slot);
	else
		t->n++;
	*slot = r;
	return 0;
}

bool xds_table_remove(struct xds_table *t, const char *name)
{
	size_t mask = t->cap - 1, i, j, home;

	if (!t->cap)
		return false;
	i = slot_of(t, name);
	if (!t->slots[i].name)
		return false;
	resource_free(&t->slots[i]);
	t->n--;
	/* backward shift: move later entries of the cluster into the hole when their home
	 * slot does not lie cyclically in (hole, j] */
	for (j = (i + 1) & mask; t->slots[j].name; j = (j + 1) & mask) {
		home = name_hash(t->slots[j].name) & mask;
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		memset(&t->slots[j], 0, sizeof(t->slots[j]));
		i = j;
	}
	return true;
}

void xds_table_clear(struct xds_table *t)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].name)
			resource_free(&t->slots[i]);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

typedef Envoy__Service__Discovery__V3__Resource xds_pb_resource;

/* Everything that can be wrong with one resource of a response, before anything changes. */
static int resource_check(enum xds_kind kind, const xds_pb_resource *r, char *err, size_t errlen)
{
	char why[256] = "";
	const char *name = r->name ? r->name : "";
	int ret = -EINVAL;

	/* both go back to the control plane (NACKs, initial_resource_versions): proto3 text */
	if (!*name || strnlen(name, XDS_MAX_NAME + 1) > XDS_MAX_NAME ||
	    !state_utf8_valid(name, strlen(name)))
		snprintf(why, sizeof(why), "bad resource name");
	else if (strnlen(r->version, XDS_MAX_NAME + 1) > XDS_MAX_NAME)
		snprintf(why, sizeof(why), "version longer than %d bytes", XDS_MAX_NAME);
	else if (!state_utf8_valid(r->version, strlen(r->version)))
		snprintf(why, sizeof(why), "version is not UTF-8");
	else if (!r->resource)
		snprintf(why, sizeof(why), "no resource body");
	else if (strcmp(r->resource->type_url, xds_kind_type_url(kind)) != 0)
		snprintf(why, sizeof(why), "body of type \"%.100s\"", r->resource->type_url);
	else if (r->resource->value.len > XDS_MAX_RESOURCE_BYTES)
		snprintf(why, sizeof(why), "body of %zu bytes", r->resource->value.len);
	else
		ret = xds_convert_check(kind, r->resource->value.data, r->resource->value.len, why,
					sizeof(why));
	if (ret == -EINVAL)
		xds_errf(err, errlen, "resource \"%.200s\": %s", name, why);
	return ret;
}

int xds_apply(struct xds_table *t, enum xds_kind kind,
	      const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *resp, char *err,
	      size_t errlen)
{
	size_t added = 0;
	int ret;

	if (resp->n_resources > XDS_MAX_RESOURCES || resp->n_removed_resources > XDS_MAX_RESOURCES)
		return xds_errf(err, errlen, "response with too many resources");
	for (size_t i = 0; i < resp->n_resources; i++) {
		ret = resource_check(kind, resp->resources[i], err, errlen);
		if (ret)
			return ret;
		added += !xds_table_get(t, resp->resources[i]->name);
	}
	if (t->n + added > XDS_MAX_RESOURCES + resp->n_removed_resources)
		return xds_errf(err, errlen, "more than %d resources of type %s", XDS_MAX_RESOURCES,
				xds_kind_type_url(kind));
	for (size_t i = 0; i < resp->n_removed_resources; i++)
		if (resp->removed_resources[i])
			xds_table_remove(t, resp->removed_resources[i]);
	for (size_t i = 0; i < resp->n_resources; i++) {
		const xds_pb_resource *r = resp->resources[i];

		ret = xds_table_put(t, r->name, r->version, r->resource->value.data,
				    r->resource->value.len);
		if (ret)
			return ret;
	}
	return 0;
}

static int build_kind(const struct xds_table *t, enum xds_kind kind, struct state_snapshot *snap,
		      char *err, size_t errlen)
{
	char why[256];
	int ret;

	for (size_t i = 0; i < t->cap; i++) {
		const struct xds_resource *r = &t->slots[i];

		if (!r->name)
			continue;
		ret = kind == XDS_KIND_ADDRESS ?
			      xds_convert_address(r->body, r->len, snap, why, sizeof(why)) :
			      xds_convert_authz(r->body, r->len, snap, why, sizeof(why));
		if (ret == -EINVAL)
			xds_errf(err, errlen, "resource \"%.200s\": %s", r->name, why);
		if (ret)
			return ret;
	}
	return 0;
}

struct state_snapshot *xds_snapshot_build(const struct xds_table tables[XDS_N_KINDS], char *err,
					  size_t errlen)
{
	const struct xds_table *addrs = &tables[XDS_KIND_ADDRESS], *authz = &tables[XDS_KIND_AUTHZ];
	struct state_snapshot *snap = state_snapshot_new();
	int ret = -ENOMEM;

	if (!snap)
		goto fail;
	/* each Address is a workload or a service: room for all of either */
	if (addrs->n) {
		snap->workloads = calloc(addrs->n, sizeof(*snap->workloads));
		snap->services = calloc(addrs->n, sizeof(*snap->services));
		if (!snap->workloads || !snap->services)
			goto fail;
	}
	if (authz->n && !(snap->policies = calloc(authz->n, sizeof(*snap->policies))))
		goto fail;
	ret = build_kind(addrs, XDS_KIND_ADDRESS, snap, err, errlen);
	if (!ret)
		ret = build_kind(authz, XDS_KIND_AUTHZ, snap, err, errlen);
	if (!ret)
		return snap;
fail:
	if (ret == -ENOMEM)
		xds_errf(err, errlen, "out of memory building the snapshot");
	state_snapshot_put(&snap);
	errno = -ret;
	return NULL;
}
