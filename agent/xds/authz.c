/* xds/authz.c: istio.security.Authorization into a state policy (L4 fields only). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authorization.pb-c.h"
#include "xds-int.h"

static int string_matches(Istio__Security__StringMatch **in, size_t n,
			  struct state_string_list *out, const char *field, char *err,
			  size_t errlen)
{
	int ret = xds_array(n, sizeof(*out->v), &out->v, field, err, errlen);
	const char *v;

	for (size_t i = 0; !ret && i < n; i++) {
		struct state_string_match *m = &out->v[i];

		out->n = i + 1;
		switch (in[i]->match_type_case) {
		case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT:
			m->kind = STATE_MATCH_EXACT;
			v = in[i]->exact;
			break;
		case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX:
			m->kind = STATE_MATCH_PREFIX;
			v = in[i]->prefix;
			break;
		case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX:
			m->kind = STATE_MATCH_SUFFIX;
			v = in[i]->suffix;
			break;
		case ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE:
			m->kind = STATE_MATCH_PRESENCE;
			continue;
		default:
			return xds_errf(err, errlen, "%s: string match without a type", field);
		}
		ret = xds_str(v, &m->value, field, err, errlen);
		if (!ret && !m->value)	/* an empty exact/prefix/suffix is still a value */
			ret = (m->value = strdup("")) ? 0 : -ENOMEM;
	}
	return ret;
}

/* ServiceAccountMatch{ns, sa} as a principal suffix "/ns/<ns>/sa/<sa>" (any trust domain). */
static int service_accounts(Istio__Security__ServiceAccountMatch **in, size_t n,
			    struct state_string_list *out, const char *field, char *err,
			    size_t errlen)
{
	struct state_string_match *v;
	size_t total = out->n + n;

	if (!n)
		return 0;
	if (total > XDS_MAX_LIST)
		return xds_errf(err, errlen, "%s: too many entries", field);
	v = realloc(out->v, total * sizeof(*v));
	if (!v)
		return -ENOMEM;
	out->v = v;
	for (size_t i = 0; i < n; i++) {
		const char *ns = in[i]->namespace_, *sa = in[i]->serviceaccount;

		if (!*ns || !*sa || strlen(ns) + strlen(sa) > XDS_MAX_STRING ||
		    !state_utf8_valid(ns, strlen(ns)) || !state_utf8_valid(sa, strlen(sa)))
			return xds_errf(err, errlen, "%s: bad namespace or service account", field);
		v[out->n].kind = STATE_MATCH_SUFFIX;
		if (asprintf(&v[out->n].value, "/ns/%s/sa/%s", ns, sa) < 0)
			return -ENOMEM;
		out->n++;
	}
	return 0;
}

static int cidrs(Istio__Security__Address **in, size_t n, struct state_cidr_list *out,
		 const char *field, char *err, size_t errlen)
{
	int ret = xds_array(n, sizeof(*out->v), &out->v, field, err, errlen);

	for (size_t i = 0; !ret && i < n; i++) {
		struct state_cidr *c = &out->v[i];
		uint32_t len = in[i]->length;

		out->n = i + 1;
		ret = xds_ip(&in[i]->address, &c->addr, field, err, errlen);
		/* a v4-mapped CIDR (::ffff:a.b.c.d/104) became the v4 one: its length too */
		if (!ret && in[i]->address.len == 16 && c->addr.family == AF_INET)
			len = len >= 96 ? len - 96 : 33;
		if (!ret && len > (c->addr.family == AF_INET ? 32u : 128u))
			ret = xds_errf(err, errlen, "%s: prefix length %u", field, in[i]->length);
		c->length = (uint8_t)len;
	}
	return ret;
}

static int ports(const uint32_t *in, size_t n, struct state_port_list *out, const char *field,
		 char *err, size_t errlen)
{
	int ret = xds_array(n, sizeof(*out->v), &out->v, field, err, errlen);

	for (size_t i = 0; !ret && i < n; i++) {
		out->n = i + 1;
		ret = xds_port(in[i], false, &out->v[i], field, err, errlen);
	}
	return ret;
}

static int match_convert(const Istio__Security__Match *pm, struct state_match *m, char *err,
			 size_t errlen)
{
	int ret = string_matches(pm->namespaces, pm->n_namespaces, &m->namespaces, "namespaces",
				 err, errlen);

	if (!ret)
		ret = string_matches(pm->not_namespaces, pm->n_not_namespaces, &m->not_namespaces,
				     "not_namespaces", err, errlen);
	if (!ret)
		ret = string_matches(pm->principals, pm->n_principals, &m->principals,
				     "principals", err, errlen);
	if (!ret)
		ret = string_matches(pm->not_principals, pm->n_not_principals,
				     &m->not_principals, "not_principals", err, errlen);
	/* principals and service_accounts both set are ANDed, which one list cannot say:
	 * fail closed as for fields L4 cannot check */
	if (!ret && pm->n_service_accounts && m->principals.n)
		m->has_l7 = true;
	else if (!ret)
		ret = service_accounts(pm->service_accounts, pm->n_service_accounts,
				       &m->principals, "service_accounts", err, errlen);
	/* none of either may match: one union list says exactly that */
	if (!ret)
		ret = service_accounts(pm->not_service_accounts, pm->n_not_service_accounts,
				       &m->not_principals, "not_service_accounts", err, errlen);
	if (!ret)
		ret = cidrs(pm->source_ips, pm->n_source_ips, &m->source_ips, "source_ips", err,
			    errlen);
	if (!ret)
		ret = cidrs(pm->not_source_ips, pm->n_not_source_ips, &m->not_source_ips,
			    "not_source_ips", err, errlen);
	if (!ret)
		ret = cidrs(pm->destination_ips, pm->n_destination_ips, &m->destination_ips,
			    "destination_ips", err, errlen);
	if (!ret)
		ret = cidrs(pm->not_destination_ips, pm->n_not_destination_ips,
			    &m->not_destination_ips, "not_destination_ips", err, errlen);
	if (!ret)
		ret = ports(pm->destination_ports, pm->n_destination_ports, &m->destination_ports,
			    "destination_ports", err, errlen);
	if (!ret)
		ret = ports(pm->not_destination_ports, pm->n_not_destination_ports,
			    &m->not_destination_ports, "not_destination_ports", err, errlen);
	return ret;
}

static int rules_convert(const Istio__Security__Authorization *pa, struct state_policy *p,
			 char *err, size_t errlen)
{
	int ret = xds_array(pa->n_rules, sizeof(*p->rules), &p->rules, "rules", err, errlen);

	for (size_t i = 0; !ret && i < pa->n_rules; i++) {
		const Istio__Security__Rule *pr = pa->rules[i];
		struct state_rule *r = &p->rules[i];

		p->n_rules = i + 1;
		ret = xds_array(pr->n_clauses, sizeof(*r->clauses), &r->clauses, "clauses", err,
				errlen);
		for (size_t j = 0; !ret && j < pr->n_clauses; j++) {
			const Istio__Security__Clause *pc = pr->clauses[j];
			struct state_clause *c = &r->clauses[j];

			r->n_clauses = j + 1;
			ret = xds_array(pc->n_matches, sizeof(*c->matches), &c->matches, "matches",
					err, errlen);
			for (size_t k = 0; !ret && k < pc->n_matches; k++) {
				c->n_matches = k + 1;
				ret = match_convert(pc->matches[k], &c->matches[k], err, errlen);
			}
		}
	}
	return ret;
}

static int policy_convert(const Istio__Security__Authorization *pa, struct state_policy *p,
			  char *err, size_t errlen)
{
	int ret = xds_str(pa->name, &p->name, "name", err, errlen);

	if (!ret)
		ret = xds_str(pa->namespace_, &p->namespace_, "namespace", err, errlen);
	if (!ret && (!p->name))
		return xds_errf(err, errlen, "policy without a name");
	if (ret)
		return ret;
	switch (pa->scope) {
	case ISTIO__SECURITY__SCOPE__GLOBAL: p->scope = STATE_SCOPE_GLOBAL; break;
	case ISTIO__SECURITY__SCOPE__NAMESPACE: p->scope = STATE_SCOPE_NAMESPACE; break;
	case ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR: p->scope = STATE_SCOPE_WORKLOAD; break;
	default: return xds_errf(err, errlen, "unknown scope %d", (int)pa->scope);
	}
	switch (pa->action) {
	case ISTIO__SECURITY__ACTION__ALLOW: p->action = STATE_ACTION_ALLOW; break;
	case ISTIO__SECURITY__ACTION__DENY: p->action = STATE_ACTION_DENY; break;
	default: return xds_errf(err, errlen, "unknown action %d", (int)pa->action);
	}
	p->dry_run = pa->dry_run;
	return rules_convert(pa, p, err, errlen);
}

/* As xds_convert_address: the policy is counted even on failure, for the caller to free. */
int xds_convert_authz(const uint8_t *body, size_t len, struct state_snapshot *snap, char *err,
		      size_t errlen)
{
	Istio__Security__Authorization *a;
	int ret;

	a = istio__security__authorization__unpack(NULL, len, body);
	if (!a)
		return xds_errf(err, errlen, "not a valid istio.security.Authorization message");
	ret = policy_convert(a, &snap->policies[snap->n_policies++], err, errlen);
	istio__security__authorization__free_unpacked(a, NULL);
	return ret;
}
