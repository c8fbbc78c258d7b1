/* policy/match.c: does one authorization policy match one connection (rules, fields, values). */
#include <string.h>
#include "policy-int.h"

static bool string_match(const struct state_string_match *m, const char *s, size_t len)
{
	size_t vlen;

	if (!s)
		return false;	/* no identity: nothing about it can match */
	if (m->kind == STATE_MATCH_PRESENCE)
		return len > 0;
	if (!m->value)
		return false;
	vlen = strlen(m->value);
	switch (m->kind) {
	case STATE_MATCH_EXACT:
		return len == vlen && memcmp(s, m->value, len) == 0;
	case STATE_MATCH_PREFIX:
		return len >= vlen && memcmp(s, m->value, vlen) == 0;
	case STATE_MATCH_SUFFIX:
		return len >= vlen && memcmp(s + len - vlen, m->value, vlen) == 0;
	default:
		return false;
	}
}

static bool strings_any(const struct state_string_list *l, const char *s, size_t len)
{
	for (size_t i = 0; l->v && i < l->n; i++)
		if (string_match(&l->v[i], s, len))
			return true;
	return false;
}

/* A v4 address never falls in a v6 CIDR, nor the other way round. */
static bool cidr_contains(const struct state_cidr *c, const struct state_ip *ip)
{
	const unsigned char *a, *b;
	unsigned int len, max, full, rem;

	if (c->addr.family != ip->family)
		return false;
	if (ip->family == AF_INET) {
		a = (const unsigned char *)&c->addr.v4;
		b = (const unsigned char *)&ip->v4;
		max = 32;
	} else if (ip->family == AF_INET6) {
		a = c->addr.v6.s6_addr;
		b = ip->v6.s6_addr;
		max = 128;
	} else {
		return false;
	}
	len = c->length > max ? max : c->length;
	full = len / 8;
	rem = len % 8;
	if (memcmp(a, b, full))
		return false;
	return !rem || !((a[full] ^ b[full]) & (unsigned char)(0xff << (8 - rem)));
}

static bool cidrs_any(const struct state_cidr_list *l, const struct state_ip *ip)
{
	for (size_t i = 0; l->v && i < l->n; i++)
		if (cidr_contains(&l->v[i], ip))
			return true;
	return false;
}

static bool ports_any(const struct state_port_list *l, uint16_t port)
{
	for (size_t i = 0; l->v && i < l->n; i++)
		if (l->v[i] == port)
			return true;
	return false;
}

/* Positive values: one must match (if any are set); negative values: none may match. */
static bool field_ok(size_t n_pos, bool pos_any, size_t n_neg, bool neg_any)
{
	return (!n_pos || pos_any) && (!n_neg || !neg_any);
}

static bool match_is_empty(const struct state_match *m)
{
	return !m->has_l7 && !m->namespaces.n && !m->not_namespaces.n && !m->principals.n &&
	       !m->not_principals.n && !m->source_ips.n && !m->not_source_ips.n &&
	       !m->destination_ips.n && !m->not_destination_ips.n && !m->destination_ports.n &&
	       !m->not_destination_ports.n;
}

/*
 * HTTP-level conditions cannot be checked at L4: an ALLOW match naming them never matches; in a
 * DENY policy they count as matching, so only the match's L4 fields decide.
 */
static bool match_ok(const struct state_match *m, enum state_policy_action action,
		     const struct policy_conn *c)
{
	if (m->has_l7 && action != STATE_ACTION_DENY)
		return false;
	return field_ok(m->destination_ips.n, cidrs_any(&m->destination_ips, &c->dst),
			m->not_destination_ips.n, cidrs_any(&m->not_destination_ips, &c->dst)) &&
	       field_ok(m->source_ips.n, cidrs_any(&m->source_ips, &c->src),
			m->not_source_ips.n, cidrs_any(&m->not_source_ips, &c->src)) &&
	       field_ok(m->destination_ports.n, ports_any(&m->destination_ports, c->port),
			m->not_destination_ports.n,
			ports_any(&m->not_destination_ports, c->port)) &&
	       field_ok(m->principals.n,
			strings_any(&m->principals, c->principal, c->principal_len),
			m->not_principals.n,
			strings_any(&m->not_principals, c->principal, c->principal_len)) &&
	       field_ok(m->namespaces.n, strings_any(&m->namespaces, c->ns, c->ns_len),
			m->not_namespaces.n, strings_any(&m->not_namespaces, c->ns, c->ns_len));
}

/* An empty clause matches; otherwise one non-empty match must (empty matches are skipped). */
static bool clause_ok(const struct state_clause *cl, enum state_policy_action action,
		      const struct policy_conn *c)
{
	if (!cl->n_matches)
		return true;
	for (size_t i = 0; cl->matches && i < cl->n_matches; i++) {
		if (match_is_empty(&cl->matches[i]))
			continue;
		if (match_ok(&cl->matches[i], action, c))
			return true;
	}
	return false;
}

static bool rule_ok(const struct state_rule *r, enum state_policy_action action,
		    const struct policy_conn *c)
{
	if (r->n_clauses && !r->clauses)
		return false;
	for (size_t i = 0; i < r->n_clauses; i++)
		if (!clause_ok(&r->clauses[i], action, c))
			return false;
	return true;
}

bool policy_rules_match(const struct state_policy *p, const struct policy_conn *conn)
{
	for (size_t i = 0; p->rules && i < p->n_rules; i++)
		if (rule_ok(&p->rules[i], p->action, conn))
			return true;
	return false;
}
