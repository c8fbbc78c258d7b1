/* state/snapshot.c: snapshot life cycle (reference count, freeing) and workload identities. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <ztunnel/state.h>

#include "state-int.h"

/* Frees *p and clears the pointer, so no reachable pointer dangles. */
static void ptr_free(void *pp)
{
	void **p = pp;

	free(*p);
	*p = NULL;
}

static void strv_free(char ***v, size_t *n)
{
	for (size_t i = 0; *v && i < *n; i++)
		free((*v)[i]);
	ptr_free(v);
	*n = 0;
}

static void gateway_free(struct state_gateway *g)
{
	ptr_free(&g->hostname);
	g->present = false;
}

static void workload_free(struct state_workload *w)
{
	ptr_free(&w->uid);
	ptr_free(&w->name);
	ptr_free(&w->namespace_);
	ptr_free(&w->service_account);
	ptr_free(&w->trust_domain);
	ptr_free(&w->node);
	ptr_free(&w->network);
	ptr_free(&w->canonical_name);
	ptr_free(&w->canonical_revision);
	ptr_free(&w->workload_name);
	ptr_free(&w->cluster_id);
	ptr_free(&w->hostname);
	ptr_free(&w->ips);
	w->n_ips = 0;
	for (size_t i = 0; w->services && i < w->n_services; i++) {
		ptr_free(&w->services[i].service_key);
		ptr_free(&w->services[i].ports);
	}
	ptr_free(&w->services);
	w->n_services = 0;
	ptr_free(&w->locality.region);
	ptr_free(&w->locality.zone);
	ptr_free(&w->locality.subzone);
	gateway_free(&w->waypoint);
	strv_free(&w->authorization_policies, &w->n_authorization_policies);
}

static void service_free(struct state_service *s)
{
	ptr_free(&s->name);
	ptr_free(&s->namespace_);
	ptr_free(&s->hostname);
	ptr_free(&s->vips);
	s->n_vips = 0;
	ptr_free(&s->ports);
	s->n_ports = 0;
	strv_free(&s->subject_alt_names, &s->n_subject_alt_names);
	gateway_free(&s->waypoint);
}

static void string_list_free(struct state_string_list *l)
{
	for (size_t i = 0; l->v && i < l->n; i++)
		free(l->v[i].value);
	ptr_free(&l->v);
	l->n = 0;
}

static void match_free(struct state_match *m)
{
	string_list_free(&m->namespaces);
	string_list_free(&m->not_namespaces);
	string_list_free(&m->principals);
	string_list_free(&m->not_principals);
	ptr_free(&m->source_ips.v);
	ptr_free(&m->not_source_ips.v);
	ptr_free(&m->destination_ips.v);
	ptr_free(&m->not_destination_ips.v);
	ptr_free(&m->destination_ports.v);
	ptr_free(&m->not_destination_ports.v);
}

static void rule_free(struct state_rule *r)
{
	for (size_t i = 0; r->clauses && i < r->n_clauses; i++) {
		struct state_clause *c = &r->clauses[i];

		for (size_t j = 0; c->matches && j < c->n_matches; j++)
			match_free(&c->matches[j]);
		ptr_free(&c->matches);
	}
	ptr_free(&r->clauses);
	r->n_clauses = 0;
}

static void policy_free(struct state_policy *p)
{
	ptr_free(&p->name);
	ptr_free(&p->namespace_);
	for (size_t i = 0; p->rules && i < p->n_rules; i++)
		rule_free(&p->rules[i]);
	ptr_free(&p->rules);
	p->n_rules = 0;
}

static void peer_auth_free(struct state_peer_auth *pa)
{
	ptr_free(&pa->name);
	ptr_free(&pa->namespace_);
	for (size_t i = 0; i < pa->n_selector; i++) {
		if (pa->selector_keys)
			free(pa->selector_keys[i]);
		if (pa->selector_values)
			free(pa->selector_values[i]);
	}
	ptr_free(&pa->selector_keys);
	ptr_free(&pa->selector_values);
	pa->n_selector = 0;
}

static void snapshot_free(struct state_snapshot *snap)
{
	state_index_free(snap->index);
	snap->index = NULL;
	for (size_t i = 0; snap->workloads && i < snap->n_workloads; i++)
		workload_free(&snap->workloads[i]);
	ptr_free(&snap->workloads);
	for (size_t i = 0; snap->services && i < snap->n_services; i++)
		service_free(&snap->services[i]);
	ptr_free(&snap->services);
	for (size_t i = 0; snap->policies && i < snap->n_policies; i++)
		policy_free(&snap->policies[i]);
	ptr_free(&snap->policies);
	for (size_t i = 0; snap->peer_auths && i < snap->n_peer_auths; i++)
		peer_auth_free(&snap->peer_auths[i]);
	ptr_free(&snap->peer_auths);
	free(snap);
}

struct state_snapshot *state_snapshot_new(void)
{
	struct state_snapshot *snap = calloc(1, sizeof(*snap));

	if (!snap) {
		errno = ENOMEM;
		return NULL;
	}
	snap->refcount = 1;
	return snap;
}

struct state_snapshot *state_snapshot_get(struct state_snapshot *snap)
{
	if (snap)
		__atomic_add_fetch(&snap->refcount, 1, __ATOMIC_RELAXED);
	return snap;
}

void state_snapshot_put(struct state_snapshot **snap)
{
	if (!snap || !*snap)
		return;
	/* acq_rel: the last owner must see every other owner's reads finished. */
	if (__atomic_sub_fetch(&(*snap)->refcount, 1, __ATOMIC_ACQ_REL) == 0)
		snapshot_free(*snap);
	*snap = NULL;
}

const char *state_workload_identity(const struct state_workload *w, char *buf, size_t len)
{
	const char *td, *ns, *sa;

	if (!buf || !len)
		return buf;
	td = w && w->trust_domain && *w->trust_domain ? w->trust_domain : "cluster.local";
	ns = w && w->namespace_ ? w->namespace_ : "";
	sa = w && w->service_account && *w->service_account ? w->service_account : "default";
	snprintf(buf, len, "spiffe://%s/ns/%s/sa/%s", td, ns, sa);
	return buf;
}
