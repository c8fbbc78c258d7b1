/* policy/check.c: the verdict for one inbound connection (peer authentication, DENY, ALLOW). */
#include <stdio.h>
#include <string.h>
#include <ztunnel/policy.h>
#include "policy-int.h"

#define SPIFFE_SCHEME "spiffe://"

/* Policy outcome over the applicable policies, with or without the dry-run ones. */
struct policy_eval {
	const struct state_policy *first_allow;	/* first applicable ALLOW policy, for reasons */
	const struct state_policy *deny;	/* first matching DENY */
	const struct state_policy *allow;	/* first matching ALLOW */
	size_t n_allow, n_total;
};

/* "td/ns/<ns>/sa/<sa>": the namespace, or NULL when the principal has another shape. */
static void conn_namespace(struct policy_conn *c)
{
	const char *p = c->principal, *end = p + c->principal_len, *td, *ns, *nse;

	td = memchr(p, '/', c->principal_len);
	if (!td || td == p || (size_t)(end - td) < 4 || memcmp(td, "/ns/", 4))
		return;
	ns = td + 4;
	nse = memchr(ns, '/', (size_t)(end - ns));
	if (!nse || nse == ns || (size_t)(end - nse) < 5 || memcmp(nse, "/sa/", 4))
		return;
	c->ns = ns;
	c->ns_len = (size_t)(nse - ns);
}

/* ::ffff:a.b.c.d is the v4 address a.b.c.d: v4 CIDRs must see it as one. */
static void canonical_ip(struct state_ip *out, const struct state_ip *in)
{
	*out = *in;
	if (in->family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&in->v6))
		return;
	memset(out, 0, sizeof(*out));
	out->family = AF_INET;
	memcpy(&out->v4, &in->v6.s6_addr[12], 4);
}

static void conn_init(struct policy_conn *c, const struct policy_request *req)
{
	const char *p = req->principal;

	memset(c, 0, sizeof(*c));
	if (p && strncmp(p, SPIFFE_SCHEME, strlen(SPIFFE_SCHEME)) == 0)
		p += strlen(SPIFFE_SCHEME);
	if (p && *p) {
		c->principal = p;
		c->principal_len = strlen(p);
		conn_namespace(c);
	}
	canonical_ip(&c->src, &req->src_ip);
	canonical_ip(&c->dst, &req->dst_ip);
	c->port = req->dst_port;
}

/* Does the workload list "namespace/name" of p in its authorization_policies? */
static bool listed(const struct state_workload *w, const struct state_policy *p)
{
	size_t ns_len, name_len;

	if (!p->namespace_ || !p->name || !w->authorization_policies)
		return false;
	ns_len = strlen(p->namespace_);
	name_len = strlen(p->name);
	for (size_t i = 0; i < w->n_authorization_policies; i++) {
		const char *key = w->authorization_policies[i];

		if (key && strlen(key) == ns_len + 1 + name_len && key[ns_len] == '/' &&
		    memcmp(key, p->namespace_, ns_len) == 0 &&
		    memcmp(key + ns_len + 1, p->name, name_len) == 0)
			return true;
	}
	return false;
}

static bool applies(const struct state_policy *p, const struct state_workload *w)
{
	if (p->scope == STATE_SCOPE_GLOBAL)
		return true;
	if (p->scope == STATE_SCOPE_NAMESPACE && policy_str_eq(p->namespace_, w->namespace_))
		return true;
	return listed(w, p);
}

static void consider(const struct state_policy *p, const struct policy_conn *c,
		     bool with_dry_run, struct policy_eval *e)
{
	if (p->dry_run && !with_dry_run)
		return;
	e->n_total++;
	if (p->action == STATE_ACTION_ALLOW) {
		e->n_allow++;
		if (!e->first_allow)
			e->first_allow = p;
		if (!e->allow && policy_rules_match(p, c))
			e->allow = p;
	} else if (!e->deny && policy_rules_match(p, c)) {
		/* an action we do not know is treated as DENY: fail closed */
		e->deny = p;
	}
}

/* The applicable policies from the snapshot's index, or by scanning all of them. */
static void evaluate(const struct state_snapshot *snap, const struct state_workload *w,
		     const struct policy_conn *c, bool with_dry_run, struct policy_eval *e)
{
	struct state_policy_iter it;
	const struct state_policy *p;

	memset(e, 0, sizeof(*e));
	if (state_policies_begin(snap, w, &it)) {
		while ((p = state_policies_next(snap, &it)))
			consider(p, c, with_dry_run, e);
		return;
	}
	for (size_t i = 0; snap->policies && i < snap->n_policies; i++)
		if (applies(&snap->policies[i], w))
			consider(&snap->policies[i], c, with_dry_run, e);
}

static const char *pname(const char *s)
{
	return s ? s : "";
}

static enum policy_verdict verdict(const struct policy_eval *e, struct policy_result *res)
{
	const struct state_policy *p = e->deny ? e->deny : e->allow;
	size_t len = sizeof(res->reason);

	res->policy = p;
	if (e->deny) {
		snprintf(res->reason, len, "denied by policy %s/%s", pname(p->namespace_),
			 pname(p->name));
		return res->verdict = POLICY_DENY;
	}
	if (!e->n_allow) {
		snprintf(res->reason, len, e->n_total ? "no ALLOW policy applies" :
			 "no policy applies");
		return res->verdict = POLICY_ALLOW;
	}
	if (e->allow) {
		snprintf(res->reason, len, "allowed by policy %s/%s", pname(p->namespace_),
			 pname(p->name));
		return res->verdict = POLICY_ALLOW;
	}
	if (e->n_allow == 1)
		snprintf(res->reason, len, "no ALLOW policy matched (policy %s/%s applies)",
			 pname(e->first_allow->namespace_), pname(e->first_allow->name));
	else
		snprintf(res->reason, len, "no ALLOW policy matched (%zu apply, e.g. policy %s/%s)",
			 e->n_allow, pname(e->first_allow->namespace_), pname(e->first_allow->name));
	return res->verdict = POLICY_DENY;
}

/* Would the dry-run policies, if enforced, turn this allowed connection into a denied one? */
static void dry_run(const struct state_snapshot *snap, const struct state_workload *w,
		    const struct policy_conn *c, struct policy_result *res)
{
	struct policy_result shadow = { 0 };
	struct policy_eval e;
	size_t used;

	evaluate(snap, w, c, true, &e);
	if (verdict(&e, &shadow) != POLICY_DENY)
		return;
	res->dry_run_would_deny = true;
	used = strlen(res->reason);
	snprintf(res->reason + used, sizeof(res->reason) - used, " (dry-run: %s)",
		 shadow.reason);
}

enum policy_verdict policy_check(const struct state_snapshot *snap, const struct policy_request *req,
				 struct policy_result *res)
{
	struct policy_result scratch;
	struct policy_conn conn;
	struct policy_eval e;

	if (!res)
		res = &scratch;
	memset(res, 0, sizeof(*res));
	res->verdict = POLICY_DENY;
	if (!snap || !req || !req->dst) {
		snprintf(res->reason, sizeof(res->reason), "unknown destination workload");
		return POLICY_DENY;
	}
	conn_init(&conn, req);
	if (!conn.principal && policy_peer_auth_mode(snap, req->dst) == STATE_PA_STRICT) {
		snprintf(res->reason, sizeof(res->reason),
			 "STRICT peer authentication requires mTLS");
		return POLICY_DENY;
	}
	evaluate(snap, req->dst, &conn, false, &e);
	if (verdict(&e, res) == POLICY_ALLOW)
		dry_run(snap, req->dst, &conn, res);
	return res->verdict;
}
