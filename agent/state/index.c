/* state/index.c: hash indexes of a snapshot (workloads by IP, uid and namespace/name; services
 * by VIP, hostname and namespace/hostname; each service's endpoints; the authorization policies
 * that apply to each workload), built once when the snapshot is published, so a look-up costs
 * the same for 10 workloads as for 10,000. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/hash.h>
#include <ztunnel/state.h>

#include "state-int.h"

#define EMPTY UINT32_MAX

/* Open addressing, linear probing; a slot holds an index into the snapshot's array. */
struct table {
	uint32_t *slot;
	uint32_t mask;
};

struct state_index {
	struct table wl_ip, wl_uid, wl_name, svc_vip, svc_host, svc_key;
	/* endpoints of service i: ep[ep_start[i] .. ep_start[i + 1]) (workload indexes, in
	 * workload order) and the workload's services-map entry for it */
	uint32_t *ep_start, *ep;
	const struct state_workload_service **ep_entry;
	/* policies, by snapshot order: the GLOBAL ones; NAMESPACE ones by namespace (the table
	 * holds the first, pol_ns_next chains the rest); those each workload lists (sorted) */
	uint32_t *pol_global, n_pol_global;
	struct table pol_ns, pol_key;
	uint32_t *pol_ns_next;
	uint32_t *wl_pol_start, *wl_pol;
};

static uint32_t hash_str(const char *s)
{
	return hash_fnv1a(HASH_FNV_INIT, s, strlen(s));
}

static uint32_t hash_pair(const char *a, const char *b)
{
	uint32_t h = hash_fnv1a(HASH_FNV_INIT, a, strlen(a));

	return hash_fnv1a(hash_fnv1a(h, "/", 1), b, strlen(b));	/* as "a/b" whole */
}

static uint32_t hash_ip(const struct state_ip *ip)
{
	return ip->family == AF_INET6 ? hash_fnv1a(HASH_FNV_INIT ^ 6, &ip->v6, sizeof(ip->v6)) :
					hash_fnv1a(HASH_FNV_INIT ^ 4, &ip->v4, sizeof(ip->v4));
}

static int table_init(struct table *t, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n)
		cap <<= 1;
	if (cap > UINT32_MAX)
		return -ENOMEM;
	t->slot = malloc(cap * sizeof(*t->slot));
	if (!t->slot)
		return -ENOMEM;
	memset(t->slot, 0xff, cap * sizeof(*t->slot));
	t->mask = (uint32_t)cap - 1;
	return 0;
}

/* Probes for key: returns the slot holding a matching entry, or the empty slot where it goes.
 * same(snap, entry, key) says whether an entry matches. */
typedef bool (*same_fn)(const struct state_snapshot *snap, uint32_t entry, const void *key);

static uint32_t *probe(const struct table *t, uint32_t h, const struct state_snapshot *snap,
		       same_fn same, const void *key)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask)
		if (t->slot[i] == EMPTY || same(snap, t->slot[i], key))
			return &t->slot[i];
}

/* The first entry of a key wins (as the linear scans did). */
static void insert(struct table *t, uint32_t h, const struct state_snapshot *snap, same_fn same,
		   const void *key, uint32_t entry)
{
	uint32_t *s = probe(t, h, snap, same, key);

	if (*s == EMPTY)
		*s = entry;
}

static uint32_t find(const struct table *t, uint32_t h, const struct state_snapshot *snap,
		     same_fn same, const void *key)
{
	return *probe(t, h, snap, same, key);
}

/* ---- what each table compares ---- */

struct pair { const char *a, *b; };	/* namespace and name or hostname */

static bool eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool wl_has_ip(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	const struct state_workload *w = &snap->workloads[e];

	for (size_t j = 0; j < w->n_ips; j++)
		if (state_ip_equal(&w->ips[j], key))
			return true;
	return false;
}

static bool svc_has_vip(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	const struct state_service *s = &snap->services[e];

	for (size_t j = 0; j < s->n_vips; j++)
		if (state_ip_equal(&s->vips[j], key))
			return true;
	return false;
}

static bool wl_uid_is(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	return eq(snap->workloads[e].uid, key);
}

static bool wl_name_is(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	const struct pair *p = key;

	return eq(snap->workloads[e].namespace_, p->a) && eq(snap->workloads[e].name, p->b);
}

static bool svc_host_is(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	return eq(snap->services[e].hostname, key);
}

static bool svc_key_is(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	const struct pair *p = key;

	return eq(snap->services[e].namespace_, p->a) && eq(snap->services[e].hostname, p->b);
}

static bool pol_ns_is(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	return eq(snap->policies[e].namespace_, key);
}

static bool pol_key_is(const struct state_snapshot *snap, uint32_t e, const void *key)
{
	const struct pair *p = key;

	return eq(snap->policies[e].namespace_, p->a) && eq(snap->policies[e].name, p->b);
}

/* "namespace/rest" split at the first '/' into p (pointing into buf). false if no '/'. */
static bool split_key(const char *key, char *buf, size_t len, struct pair *p)
{
	const char *slash = strchr(key, '/');
	size_t nl;

	if (!slash || (nl = (size_t)(slash - key)) >= len)
		return false;
	memcpy(buf, key, nl);
	buf[nl] = '\0';
	p->a = buf;
	p->b = slash + 1;
	return true;
}

/* ---- building ---- */

static int build_endpoints(struct state_index *x, const struct state_snapshot *snap)
{
	size_t total = 0, n = snap->n_services;
	uint32_t *fill, *last;
	char ns[256];

	for (size_t i = 0; i < snap->n_workloads; i++)
		total += snap->workloads[i].n_services;
	x->ep_start = calloc(n + 1, sizeof(*x->ep_start));
	x->ep = malloc((total ? total : 1) * sizeof(*x->ep));
	x->ep_entry = malloc((total ? total : 1) * sizeof(*x->ep_entry));
	fill = calloc(n ? n : 1, sizeof(*fill));
	last = malloc((n ? n : 1) * sizeof(*last));
	if (!x->ep_start || !x->ep || !x->ep_entry || !fill || !last) {
		free(fill);
		free(last);
		return -ENOMEM;
	}
	/* two passes: count per service, then place (workload order within a service; a
	 * workload that names a service twice is one endpoint, its first entry) */
	for (int pass = 0; pass < 2; pass++) {
		memset(last, 0xff, (n ? n : 1) * sizeof(*last));
		for (size_t i = 0; i < snap->n_workloads; i++) {
			const struct state_workload *w = &snap->workloads[i];

			for (size_t k = 0; k < w->n_services; k++) {
				struct pair p;
				uint32_t s;

				if (!w->services[k].service_key ||
				    !split_key(w->services[k].service_key, ns, sizeof(ns), &p))
					continue;
				s = find(&x->svc_key, hash_pair(p.a, p.b), snap, svc_key_is, &p);
				if (s == EMPTY || last[s] == i)
					continue;
				last[s] = (uint32_t)i;
				if (pass == 0) {
					x->ep_start[s + 1]++;
				} else {
					uint32_t at = x->ep_start[s] + fill[s]++;

					x->ep[at] = (uint32_t)i;
					x->ep_entry[at] = &w->services[k];
				}
			}
		}
		if (pass == 0)
			for (size_t s = 0; s < n; s++)
				x->ep_start[s + 1] += x->ep_start[s];
	}
	free(fill);
	free(last);
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int build_policies(struct state_index *x, const struct state_snapshot *snap)
{
	size_t n = snap->n_policies, listed = 0;
	uint32_t *tail;
	char ns[256];

	if (table_init(&x->pol_ns, n) || table_init(&x->pol_key, n))
		return -ENOMEM;
	x->pol_global = malloc((n ? n : 1) * sizeof(*x->pol_global));
	x->pol_ns_next = malloc((n ? n : 1) * sizeof(*x->pol_ns_next));
	tail = malloc((n ? n : 1) * sizeof(*tail));	/* per chain head: its last entry */
	for (size_t i = 0; i < snap->n_workloads; i++)
		listed += snap->workloads[i].n_authorization_policies;
	x->wl_pol_start = calloc(snap->n_workloads + 1, sizeof(*x->wl_pol_start));
	x->wl_pol = malloc((listed ? listed : 1) * sizeof(*x->wl_pol));
	if (!x->pol_global || !x->pol_ns_next || !tail || !x->wl_pol_start || !x->wl_pol) {
		free(tail);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct state_policy *p = &snap->policies[i];

		x->pol_ns_next[i] = EMPTY;
		if (p->namespace_ && p->name) {
			struct pair k = { p->namespace_, p->name };

			insert(&x->pol_key, hash_pair(k.a, k.b), snap, pol_key_is, &k, i);
		}
		if (p->scope == STATE_SCOPE_GLOBAL) {
			x->pol_global[x->n_pol_global++] = i;
		} else if (p->scope == STATE_SCOPE_NAMESPACE && p->namespace_) {
			uint32_t *s = probe(&x->pol_ns, hash_str(p->namespace_), snap, pol_ns_is,
					    p->namespace_);

			if (*s == EMPTY)
				*s = i;
			else
				x->pol_ns_next[tail[*s]] = i;
			tail[*s] = i;
		}
	}
	free(tail);
	for (size_t w = 0; w < snap->n_workloads; w++) {
		const struct state_workload *wl = &snap->workloads[w];
		uint32_t start = x->wl_pol_start[w], k = start;

		for (size_t j = 0; j < wl->n_authorization_policies; j++) {
			struct pair p;
			uint32_t e;

			if (!wl->authorization_policies[j] ||
			    !split_key(wl->authorization_policies[j], ns, sizeof(ns), &p))
				continue;
			e = find(&x->pol_key, hash_pair(p.a, p.b), snap, pol_key_is, &p);
			if (e != EMPTY)
				x->wl_pol[k++] = e;
		}
		qsort(x->wl_pol + start, k - start, sizeof(*x->wl_pol), cmp_u32);
		x->wl_pol_start[w + 1] = k;
	}
	return 0;
}

static int build(struct state_index *x, const struct state_snapshot *snap)
{
	size_t n_ips = 0, n_vips = 0;

	for (size_t i = 0; i < snap->n_workloads; i++)
		n_ips += snap->workloads[i].n_ips;
	for (size_t i = 0; i < snap->n_services; i++)
		n_vips += snap->services[i].n_vips;
	if (table_init(&x->wl_ip, n_ips) || table_init(&x->wl_uid, snap->n_workloads) ||
	    table_init(&x->wl_name, snap->n_workloads) || table_init(&x->svc_vip, n_vips) ||
	    table_init(&x->svc_host, snap->n_services) || table_init(&x->svc_key, snap->n_services))
		return -ENOMEM;
	for (uint32_t i = 0; i < snap->n_workloads; i++) {
		const struct state_workload *w = &snap->workloads[i];

		for (size_t j = 0; j < w->n_ips; j++)
			insert(&x->wl_ip, hash_ip(&w->ips[j]), snap, wl_has_ip, &w->ips[j], i);
		if (w->uid && *w->uid)
			insert(&x->wl_uid, hash_str(w->uid), snap, wl_uid_is, w->uid, i);
		if (w->namespace_ && w->name) {
			struct pair p = { w->namespace_, w->name };

			insert(&x->wl_name, hash_pair(p.a, p.b), snap, wl_name_is, &p, i);
		}
	}
	for (uint32_t i = 0; i < snap->n_services; i++) {
		const struct state_service *s = &snap->services[i];

		for (size_t j = 0; j < s->n_vips; j++)
			insert(&x->svc_vip, hash_ip(&s->vips[j]), snap, svc_has_vip, &s->vips[j], i);
		if (s->hostname)
			insert(&x->svc_host, hash_str(s->hostname), snap, svc_host_is, s->hostname, i);
		if (s->namespace_ && s->hostname) {
			struct pair p = { s->namespace_, s->hostname };

			insert(&x->svc_key, hash_pair(p.a, p.b), snap, svc_key_is, &p, i);
		}
	}
	return build_endpoints(x, snap) < 0 ? -ENOMEM : build_policies(x, snap);
}

void state_index_free(struct state_index *x)
{
	if (!x)
		return;
	free(x->wl_ip.slot);
	free(x->wl_uid.slot);
	free(x->wl_name.slot);
	free(x->svc_vip.slot);
	free(x->svc_host.slot);
	free(x->svc_key.slot);
	free(x->ep_start);
	free(x->ep);
	free(x->ep_entry);
	free(x->pol_global);
	free(x->pol_ns.slot);
	free(x->pol_key.slot);
	free(x->pol_ns_next);
	free(x->wl_pol_start);
	free(x->wl_pol);
	free(x);
}

int state_snapshot_index(struct state_snapshot *snap)
{
	struct state_index *x;

	if (!snap)
		return -EINVAL;
	if (snap->index)
		return 0;
	if (snap->n_workloads >= EMPTY || snap->n_services >= EMPTY ||
	    snap->n_policies >= EMPTY)
		return -E2BIG;
	x = calloc(1, sizeof(*x));
	if (!x || build(x, snap) < 0) {
		state_index_free(x);
		return -ENOMEM;	/* look-ups scan instead */
	}
	snap->index = x;
	return 0;
}

/* ---- look-ups (NULL index: the caller scans) ---- */

const struct state_workload *state_index_ip(const struct state_snapshot *snap,
					    const struct state_ip *ip)
{
	uint32_t e = find(&snap->index->wl_ip, hash_ip(ip), snap, wl_has_ip, ip);

	return e == EMPTY ? NULL : &snap->workloads[e];
}

const struct state_service *state_index_vip(const struct state_snapshot *snap,
					    const struct state_ip *ip)
{
	uint32_t e = find(&snap->index->svc_vip, hash_ip(ip), snap, svc_has_vip, ip);

	return e == EMPTY ? NULL : &snap->services[e];
}

const struct state_service *state_index_hostname(const struct state_snapshot *snap,
						 const char *hostname)
{
	struct pair p;
	char ns[256];
	uint32_t e;

	if (strchr(hostname, '/')) {
		if (!split_key(hostname, ns, sizeof(ns), &p))
			return NULL;
		e = find(&snap->index->svc_key, hash_pair(p.a, p.b), snap, svc_key_is, &p);
	} else {
		e = find(&snap->index->svc_host, hash_str(hostname), snap, svc_host_is, hostname);
	}
	return e == EMPTY ? NULL : &snap->services[e];
}

const struct state_workload *state_index_pod(const struct state_snapshot *snap, const char *uid,
					     const char *namespace_, const char *name)
{
	struct pair p = { namespace_, name };
	uint32_t e = EMPTY;

	if (uid && *uid)
		e = find(&snap->index->wl_uid, hash_str(uid), snap, wl_uid_is, uid);
	if (e == EMPTY && namespace_ && name)
		e = find(&snap->index->wl_name, hash_pair(namespace_, name), snap, wl_name_is, &p);
	return e == EMPTY ? NULL : &snap->workloads[e];
}

/* Whether p points at an element of the array base[0..n) of size-byte elements, and which
 * (*at). A workload or service of another snapshot is not in this one's index. */
static bool element_of(const void *base, size_t n, size_t size, const void *p, size_t *at)
{
	uintptr_t b = (uintptr_t)base, q = (uintptr_t)p;

	if (!p || q < b || q >= b + n * size)
		return false;
	*at = (q - b) / size;
	return true;
}

bool state_policies_begin(const struct state_snapshot *snap, const struct state_workload *w,
			  struct state_policy_iter *it)
{
	const struct state_index *x = snap ? snap->index : NULL;
	size_t wi;

	memset(it, 0, sizeof(*it));
	if (!x || !element_of(snap->workloads, snap->n_workloads, sizeof(*w), w, &wi))
		return false;	/* the caller scans */
	it->global = x->pol_global;
	it->n_global = x->n_pol_global;
	it->listed = x->wl_pol + x->wl_pol_start[wi];
	it->n_listed = x->wl_pol_start[wi + 1] - x->wl_pol_start[wi];
	it->ns_next = x->pol_ns_next;
	it->ns_at = w->namespace_ ?
		find(&x->pol_ns, hash_str(w->namespace_), snap, pol_ns_is, w->namespace_) : EMPTY;
	return true;
}

const struct state_policy *state_policies_next(const struct state_snapshot *snap,
					       struct state_policy_iter *it)
{
	uint32_t g = it->n_global ? *it->global : EMPTY;
	uint32_t l = it->n_listed ? *it->listed : EMPTY;
	uint32_t next = it->ns_at;

	if (g < next)
		next = g;
	if (l < next)
		next = l;
	if (next == EMPTY)
		return NULL;
	/* the three lists are in snapshot order; one policy in two of them comes once */
	if (g == next) {
		it->global++;
		it->n_global--;
	}
	while (it->n_listed && *it->listed == next) {
		it->listed++;
		it->n_listed--;
	}
	if (it->ns_at == next)
		it->ns_at = it->ns_next[next];
	return &snap->policies[next];
}

bool state_endpoints_begin(const struct state_snapshot *snap, const struct state_service *svc,
			   struct state_endpoint_iter *it)
{
	const struct state_index *x = snap ? snap->index : NULL;
	size_t s;

	memset(it, 0, sizeof(*it));
	if (!x || !element_of(snap->services, snap->n_services, sizeof(*svc), svc, &s))
		return false;	/* the caller scans */
	it->at = x->ep + x->ep_start[s];
	it->entry = x->ep_entry + x->ep_start[s];
	it->n = x->ep_start[s + 1] - x->ep_start[s];
	return true;
}

const struct state_workload *state_endpoints_next(const struct state_snapshot *snap,
						  struct state_endpoint_iter *it,
						  const struct state_workload_service **entry)
{
	const struct state_workload *w;

	if (!it->n)
		return NULL;
	w = &snap->workloads[*it->at++];
	*entry = *it->entry++;
	it->n--;
	return w;
}
