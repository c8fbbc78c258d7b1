/* localcfg/policy.c: authorization policies (rules -> clauses -> matches), peer authentications. */
#include <errno.h>
#include <string.h>
#include "parse.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))

static const char *const match_kinds[] = {
	[STATE_MATCH_EXACT] = "Exact",
	[STATE_MATCH_PREFIX] = "Prefix",
	[STATE_MATCH_SUFFIX] = "Suffix",
	[STATE_MATCH_PRESENCE] = "Presence",
};

static int match_kind(const char *name)
{
	for (size_t i = 0; i < N(match_kinds); i++)
		if (strcmp(name, match_kinds[i]) == 0)
			return (int)i;
	return -1;
}

/* Presence takes no value: null, [] or {}. */
static bool empty_value(const yaml_node_t *v)
{
	if (v->type == YAML_SEQUENCE_NODE)
		return v->data.sequence.items.top == v->data.sequence.items.start;
	if (v->type == YAML_MAPPING_NODE)
		return v->data.mapping.pairs.top == v->data.mapping.pairs.start;
	return localcfg_is_null(v);
}

static int smatch_value(struct lc_ctx *c, const yaml_node_t *v, int kind,
			struct state_string_match *m)
{
	m->kind = (enum state_string_match_kind)kind;
	if (kind == STATE_MATCH_PRESENCE) {
		if (!empty_value(v))
			return localcfg_fail(c, v, "%s: Presence takes no value", c->key);
		return 0;
	}
	if (localcfg_want(c, v, YAML_SCALAR_NODE))
		return -EINVAL;
	return localcfg_strdup(c, v, &m->value);
}

/*
 * A string match, in any of the forms upstream's serde reads or writes: a plain string (exact),
 * {Exact: x} / {Prefix: x} / {Suffix: x} / {Presence: {}}, or tagged: !Exact x, !Presence [].
 */
static int smatch_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	const char *tag = (const char *)n->tag;
	yaml_node_t *k, *v;
	const char *name;
	int kind;

	if (tag && tag[0] == '!') {
		kind = match_kind(tag + 1);
		if (kind < 0)
			return localcfg_fail(c, n, "%s: unknown string match \"%.64s\"", c->key, tag);
		return smatch_value(c, n, kind, elem);
	}
	if (n->type == YAML_SCALAR_NODE)
		return smatch_value(c, n, STATE_MATCH_EXACT, elem);
	if (n->type != YAML_MAPPING_NODE ||
	    n->data.mapping.pairs.top - n->data.mapping.pairs.start != 1)
		return localcfg_fail(c, n, "%s: expected a string or one of {Exact|Prefix|Suffix|"
				     "Presence: ...}", c->key);
	k = localcfg_node(c, n->data.mapping.pairs.start->key);
	v = localcfg_node(c, n->data.mapping.pairs.start->value);
	if (!k || !v || !(name = localcfg_text(c, k)))
		return -EINVAL;
	kind = match_kind(name);
	if (kind < 0)
		return localcfg_fail(c, k, "%s: unknown string match \"%.64s\" (want Exact, "
				     "Prefix, Suffix or Presence)", c->key, name);
	return smatch_value(c, v, kind, elem);
}

static int f_smatches(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_string_list *l = LC_FIELD_PTR(obj, f);

	return LC_SEQ(c, v, l->v, l->n, smatch_item);
}

/* Dropping a condition would widen a policy: refuse what cannot be evaluated. */
static int f_unsupported(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	return localcfg_fail(c, v, "%s: not supported by this agent", c->key);
}

/*
 * HTTP-level keys (methods, paths, hosts, requestPrincipals and their not* forms): a list of
 * strings that L4 cannot check. Kept only as has_l7, which the evaluator fails closed on.
 */
static int f_l7(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_match *m = obj;
	size_t n = 0;

	if (localcfg_seq_len(c, v, &n))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = localcfg_node(c, v->data.sequence.items.start[i]);

		if (!it || !localcfg_text(c, it))
			return -EINVAL;
	}
	if (n)
		m->has_l7 = true;
	return 0;
}

#define M struct state_match
static const struct lc_field match_fields[] = {
	LC_FIELD("namespaces", f_smatches, M, namespaces),
	LC_FIELD("notNamespaces", f_smatches, M, not_namespaces),
	LC_FIELD("principals", f_smatches, M, principals),
	LC_FIELD("notPrincipals", f_smatches, M, not_principals),
	LC_FIELD("sourceIps", localcfg_f_cidrs, M, source_ips),
	LC_FIELD("notSourceIps", localcfg_f_cidrs, M, not_source_ips),
	LC_FIELD("destinationIps", localcfg_f_cidrs, M, destination_ips),
	LC_FIELD("notDestinationIps", localcfg_f_cidrs, M, not_destination_ips),
	LC_FIELD("destinationPorts", localcfg_f_port_list, M, destination_ports),
	LC_FIELD("notDestinationPorts", localcfg_f_port_list, M, not_destination_ports),
	LC_IGNORED("methods", f_l7),
	LC_IGNORED("notMethods", f_l7),
	LC_IGNORED("paths", f_l7),
	LC_IGNORED("notPaths", f_l7),
	LC_IGNORED("hosts", f_l7),
	LC_IGNORED("notHosts", f_l7),
	LC_IGNORED("requestPrincipals", f_l7),
	LC_IGNORED("notRequestPrincipals", f_l7),
	LC_IGNORED("serviceAccounts", f_unsupported),
	LC_IGNORED("notServiceAccounts", f_unsupported),
};
#undef M

static int match_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	return localcfg_fields(c, n, match_fields, N(match_fields), elem, "match");
}

static int clause_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	struct state_clause *cl = elem;

	return LC_SEQ(c, n, cl->matches, cl->n_matches, match_item);
}

static int rule_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	struct state_rule *r = elem;

	return LC_SEQ(c, n, r->clauses, r->n_clauses, clause_item);
}

/* rules: [[[match, ...], ...], ...] -- rules OR, clauses AND, matches OR. */
int localcfg_f_rules(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_policy *p = obj;

	return LC_SEQ(c, v, p->rules, p->n_rules, rule_item);
}

static const struct lc_enum scopes = {
	{ "Global", "Namespace", "WorkloadSelector" },
	{ STATE_SCOPE_GLOBAL, STATE_SCOPE_NAMESPACE, STATE_SCOPE_WORKLOAD } };
static const struct lc_enum actions = {
	{ "Allow", "Deny" }, { STATE_ACTION_ALLOW, STATE_ACTION_DENY } };

/* scope and action are required: a default would silently make a policy global or allowing. */
#define P struct state_policy
static const struct lc_field policy_fields[] = {
	LC_FIELD("name", localcfg_f_str, P, name),
	LC_FIELD("namespace", localcfg_f_str, P, namespace_),
	LC_ENUM("scope", P, scope, &scopes, true),
	LC_ENUM("action", P, action, &actions, true),
	LC_FIELD("dryRun", localcfg_f_bool, P, dry_run),
	LC_FIELD("rules", localcfg_f_rules, P, rules),
};
#undef P

int localcfg_policy(struct lc_ctx *c, yaml_node_t *item, void *elem)
{
	return localcfg_fields(c, item, policy_fields, N(policy_fields), elem, "policy");
}

/* Upstream keys policies by "namespace/name": a second one with the same key is a mistake. */
int localcfg_check_policy_keys(struct lc_ctx *c, yaml_node_t *seq, const struct state_snapshot *s)
{
	for (size_t i = 1; i < s->n_policies; i++) {
		const struct state_policy *p = &s->policies[i];
		yaml_node_t *item;

		for (size_t j = 0; j < i; j++) {
			const struct state_policy *q = &s->policies[j];

			if (strcmp(p->name, q->name) || strcmp(p->namespace_, q->namespace_))
				continue;
			item = yaml_document_get_node(c->doc, seq->data.sequence.items.start[i]);
			return localcfg_fail(c, item, "policies: duplicate policy \"%.64s/%.64s\"",
					     p->namespace_, p->name);
		}
	}
	return 0;
}

/* selector.matchLabels: {key: value}; both arrays are sized and owned before any item parses. */
static int f_match_labels(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_peer_auth *pa = obj;
	size_t count;

	if (localcfg_map_len(c, v, &count))
		return -EINVAL;
	if (!count)
		return 0;
	pa->selector_keys = calloc(count, sizeof(char *));
	pa->selector_values = calloc(count, sizeof(char *));
	if (!pa->selector_keys || !pa->selector_values) {
		free(pa->selector_keys);
		free(pa->selector_values);
		pa->selector_keys = pa->selector_values = NULL;
		return localcfg_oom(c, v);
	}
	pa->n_selector = count;
	for (size_t i = 0; i < count; i++) {
		yaml_node_pair_t *p = &v->data.mapping.pairs.start[i];
		yaml_node_t *k = localcfg_node(c, p->key), *val = localcfg_node(c, p->value);

		if (!k || !val || localcfg_strdup(c, k, &pa->selector_keys[i]))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(pa->selector_keys[j], pa->selector_keys[i]) == 0)
				return localcfg_fail(c, k, "%s: duplicate label \"%.64s\"", c->key,
						     pa->selector_keys[i]);
		if (localcfg_is_null(val))
			pa->selector_values[i] = strdup("");
		else if (localcfg_strdup(c, val, &pa->selector_values[i]))
			return -EINVAL;
		if (!pa->selector_values[i])
			return localcfg_oom(c, val);
	}
	return 0;
}

static const struct lc_field selector_fields[] = {
	{ "matchLabels", f_match_labels, 0, 0, NULL, false },
};

static int f_selector(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	if (localcfg_is_null(v))
		return 0;
	return localcfg_fields(c, v, selector_fields, N(selector_fields), obj, "selector");
}

static const struct lc_enum pa_modes = {
	{ "UNSET", "PERMISSIVE", "STRICT", "DISABLE" },
	{ STATE_PA_UNSET, STATE_PA_PERMISSIVE, STATE_PA_STRICT, STATE_PA_DISABLE } };

/* {name, namespace, mode, selector: {matchLabels: {...}}}; no selector: the whole namespace. */
#define PA struct state_peer_auth
static const struct lc_field peer_auth_fields[] = {
	LC_FIELD("name", localcfg_f_str, PA, name),
	LC_FIELD("namespace", localcfg_f_str, PA, namespace_),
	LC_ENUM("mode", PA, mode, &pa_modes, false),
	{ "selector", f_selector, 0, 0, NULL, false },
};
#undef PA

int localcfg_peer_auth(struct lc_ctx *c, yaml_node_t *item, void *elem)
{
	return localcfg_fields(c, item, peer_auth_fields, N(peer_auth_fields), elem,
			       "peerAuthentication");
}
