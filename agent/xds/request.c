/* xds/request.c: DeltaDiscoveryRequests (subscribe, ACK, NACK) and the node identity. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/xds.h>

#include "xds-int.h"

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

void xds_node_id(const struct xds_config *cfg, char *buf, size_t len)
{
	const char *ns = or_empty(cfg->pod_namespace);
	const char *domain = cfg->cluster_domain && *cfg->cluster_domain ? cfg->cluster_domain :
									  "cluster.local";

	snprintf(buf, len, "ztunnel~%s~%s.%s~%s.svc.%s", or_empty(cfg->instance_ip),
		 or_empty(cfg->pod_name), ns, ns, domain);
}

#define N_META 5

struct node_meta {
	Google__Protobuf__Struct__FieldsEntry entries[N_META];
	Google__Protobuf__Struct__FieldsEntry *entry_ptrs[N_META];
	Google__Protobuf__Value values[N_META];
	Google__Protobuf__Struct metadata;
	Envoy__Config__Core__V3__Node node;
	char id[1024];
};

/* Fills m (all storage inside m; strings borrowed from cfg). */
static void node_fill(const struct xds_config *cfg, struct node_meta *m)
{
	const char *kv[N_META][2] = {
		{ "NAME", cfg->pod_name },
		{ "NAMESPACE", cfg->pod_namespace },
		{ "INSTANCE_IPS", cfg->instance_ip },
		{ "NODE_NAME", cfg->node_name },
		{ "CLUSTER_ID", cfg->cluster_id && *cfg->cluster_id ? cfg->cluster_id : "Kubernetes" },
	};
	size_t n = 0;

	google__protobuf__struct__init(&m->metadata);
	envoy__config__core__v3__node__init(&m->node);
	for (size_t i = 0; i < N_META; i++) {
		if (!kv[i][1] || !*kv[i][1])
			continue;
		google__protobuf__struct__fields_entry__init(&m->entries[n]);
		google__protobuf__value__init(&m->values[n]);
		m->values[n].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		m->values[n].string_value = (char *)kv[i][1];
		m->entries[n].key = (char *)kv[i][0];
		m->entries[n].value = &m->values[n];
		m->entry_ptrs[n] = &m->entries[n];
		n++;
	}
	m->metadata.n_fields = n;
	m->metadata.fields = m->entry_ptrs;
	xds_node_id(cfg, m->id, sizeof(m->id));
	m->node.id = m->id;
	m->node.metadata = &m->metadata;
}

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry
	xds_pb_version;

/* initial_resource_versions: what the table holds (strings borrowed from it). */
static int versions_fill(const struct xds_table *t,
			 Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req,
			 xds_pb_version **entries, xds_pb_version ***ptrs)
{
	size_t n = 0;

	*entries = NULL;
	*ptrs = NULL;
	if (!t || !t->n)
		return 0;
	*entries = calloc(t->n, sizeof(**entries));
	*ptrs = calloc(t->n, sizeof(**ptrs));
	if (!*entries || !*ptrs)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap && n < t->n; i++) {
		if (!t->slots[i].name)
			continue;
		envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(
			&(*entries)[n]);
		(*entries)[n].key = t->slots[i].name;
		(*entries)[n].value = t->slots[i].version;
		(*ptrs)[n] = &(*entries)[n];
		n++;
	}
	req->n_initial_resource_versions = n;
	req->initial_resource_versions = *ptrs;
	return 0;
}

int xds_request_pack(const struct xds_config *cfg, const struct xds_table *t, enum xds_kind kind,
		     const struct xds_request *r, uint8_t **out, size_t *len)
{
	Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req =
		ENVOY__SERVICE__DISCOVERY__V3__DELTA_DISCOVERY_REQUEST__INIT;
	Google__Rpc__Status status = GOOGLE__RPC__STATUS__INIT;
	xds_pb_version *entries = NULL, **ptrs = NULL;
	struct node_meta *meta = NULL;
	int ret = -ENOMEM;

	*out = NULL;
	req.type_url = (char *)xds_kind_type_url(kind);
	if (r->first) {
		meta = calloc(1, sizeof(*meta));
		if (!meta || versions_fill(t, &req, &entries, &ptrs))
			goto out;
		node_fill(cfg, meta);
		req.node = &meta->node;
	}
	req.n_resource_names_subscribe = r->n_subscribe;
	req.resource_names_subscribe = (char **)r->subscribe;
	req.n_resource_names_unsubscribe = r->n_unsubscribe;
	req.resource_names_unsubscribe = (char **)r->unsubscribe;
	if (r->nonce)
		req.response_nonce = (char *)r->nonce;
	if (r->error) {
		status.code = 3;	/* INVALID_ARGUMENT */
		status.message = (char *)r->error;
		req.error_detail = &status;
	}
	*len = envoy__service__discovery__v3__delta_discovery_request__get_packed_size(&req);
	*out = malloc(*len ? *len : 1);
	if (!*out)
		goto out;
	envoy__service__discovery__v3__delta_discovery_request__pack(&req, *out);
	ret = 0;
out:
	free(entries);
	free(ptrs);
	free(meta);
	return ret;
}
