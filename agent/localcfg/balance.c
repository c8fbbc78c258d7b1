/* localcfg/balance.c: what service load balancing reads: a workload's locality and status, a
 * service's loadBalancer {mode, routingPreferences, healthPolicy}. */
#include <errno.h>
#include <string.h>
#include "parse.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))

static const struct lc_field locality_fields[] = {
	LC_FIELD("region", localcfg_f_str, struct state_locality, region),
	LC_FIELD("zone", localcfg_f_str, struct state_locality, zone),
	LC_FIELD("subzone", localcfg_f_str, struct state_locality, subzone),
};

int localcfg_f_locality(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	if (localcfg_is_null(v))
		return 0;
	return localcfg_fields(c, v, locality_fields, N(locality_fields), LC_FIELD_PTR(obj, f),
			       c->key);
}

int localcfg_enum_bool(struct lc_ctx *c, yaml_node_t *v, const char *key,
		       const struct lc_enum *names, bool *out)
{
	struct lc_field e = { key, localcfg_f_enum, 0, 0, names, false };
	int value = 0, ret = localcfg_f_enum(c, v, &value, &e);

	if (!ret)
		*out = value == 1;
	return ret;
}

/* status: Healthy | Unhealthy into a bool. */
int localcfg_f_status(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	static const struct lc_enum health = { { "Healthy", "Unhealthy" }, { 0, 1 } };

	return localcfg_enum_bool(c, v, f->key, &health, LC_FIELD_PTR(obj, f));
}

static const struct lc_enum lb_scopes = {
	{ "Region", "Zone", "Subzone", "Node", "Cluster", "Network" },
	{ STATE_LB_REGION, STATE_LB_ZONE, STATE_LB_SUBZONE, STATE_LB_NODE, STATE_LB_CLUSTER,
	  STATE_LB_NETWORK } };

static int f_preferences(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_load_balancing *lb = obj;
	struct lc_field e = { f->key, localcfg_f_enum, 0, 0, &lb_scopes, false };
	size_t n;

	if (localcfg_seq_len(c, v, &n))
		return -EINVAL;
	if (n > STATE_LB_MAX_PREFS)
		return localcfg_fail(c, v, "%s: more than %d routing preferences", c->key,
				     STATE_LB_MAX_PREFS);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = localcfg_node(c, v->data.sequence.items.start[i]);

		if (!it || localcfg_f_enum(c, it, &lb->routing_preferences[i], &e))
			return -EINVAL;
	}
	lb->n_routing_preferences = n;
	return 0;
}

static int f_health_policy(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	static const struct lc_enum policies = { { "OnlyHealthy", "AllowAll" }, { 0, 1 } };

	return localcfg_enum_bool(c, v, f->key, &policies,
				  &((struct state_load_balancing *)obj)->allow_unhealthy);
}

static const struct lc_enum lb_modes = {
	{ "Standard", "Strict", "Failover", "Passthrough" },
	{ STATE_LB_STANDARD, STATE_LB_STRICT, STATE_LB_FAILOVER, STATE_LB_PASSTHROUGH } };

static const struct lc_field lb_fields[] = {
	LC_ENUM("mode", struct state_load_balancing, mode, &lb_modes, false),
	{ "routingPreferences", f_preferences, 0, 0, NULL, false },
	{ "healthPolicy", f_health_policy, 0, 0, NULL, false },
};

int localcfg_f_load_balancer(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	if (localcfg_is_null(v))
		return 0;
	return localcfg_fields(c, v, lb_fields, N(lb_fields), LC_FIELD_PTR(obj, f), c->key);
}
