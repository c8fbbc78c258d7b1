/* localcfg/fields.c: field handlers for scalars, enums, lists of strings, IPs, CIDRs and ports. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "parse.h"

int localcfg_f_str(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	if (localcfg_is_null(v))
		return 0;
	if (f->off == LC_DISCARD)
		return localcfg_text(c, v) ? 0 : -EINVAL;
	return localcfg_strdup(c, v, LC_FIELD_PTR(obj, f));
}

int localcfg_f_bool(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };
	const char *t;
	int val = -1;

	if (localcfg_is_null(v))
		return 0;
	t = localcfg_text(c, v);
	if (!t)
		return -EINVAL;
	for (size_t i = 0; v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && i < 3; i++) {
		if (strcmp(t, yes[i]) == 0)
			val = 1;
		if (strcmp(t, no[i]) == 0)
			val = 0;
	}
	if (val < 0)
		return localcfg_fail(c, v, "%s: expected true or false, got \"%.64s\"", c->key, t);
	if (f->off != LC_DISCARD)
		*(bool *)LC_FIELD_PTR(obj, f) = val;
	return 0;
}

int localcfg_f_uint(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	const char *t = localcfg_text(c, v);
	unsigned long n;
	size_t len;

	if (!t)
		return -EINVAL;
	len = strlen(t);
	if (!len || len > 10 || strspn(t, "0123456789") != len ||
	    (n = strtoul(t, NULL, 10)) > UINT32_MAX)
		return localcfg_fail(c, v, "%s: expected an unsigned integer, got \"%.64s\"",
				     c->key, t);
	if (f->off != LC_DISCARD)
		*(uint32_t *)LC_FIELD_PTR(obj, f) = (uint32_t)n;
	return 0;
}

int localcfg_f_port(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	uint16_t port;
	int ret = localcfg_port(c, v, false, &port);

	if (!ret && f->off != LC_DISCARD)
		*(uint16_t *)LC_FIELD_PTR(obj, f) = port;
	return ret;
}

int localcfg_f_enum(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	const struct lc_enum *e = f->aux;
	char want[160] = "";
	const char *t = localcfg_text(c, v);
	size_t i;

	if (!t)
		return -EINVAL;
	for (i = 0; i < 8 && e->names[i]; i++) {
		if (strcmp(t, e->names[i]) == 0) {
			if (f->off != LC_DISCARD)
				*(int *)LC_FIELD_PTR(obj, f) = e->values[i];
			return 0;
		}
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s", i ? ", " : "",
			 e->names[i]);
	}
	return localcfg_fail(c, v, "%s: unknown value \"%.64s\" (want one of %s)", c->key, t, want);
}

/* Keys upstream has and this agent does not use (status, locality, ...): accepted, dropped. */
int localcfg_f_any(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	return 0;
}

static int strv_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	return localcfg_strdup(c, n, elem);
}

int localcfg_f_strv(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	char ***arr = LC_FIELD_PTR(obj, f);

	return LC_SEQ(c, v, *arr, *LC_COUNT_PTR(obj, f), strv_item);
}

static int ip_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	const char *t = localcfg_text(c, n);

	if (!t)
		return -EINVAL;
	if (state_ip_parse(t, elem))
		return localcfg_fail(c, n, "%s: bad IP address \"%.64s\"", c->key, t);
	return 0;
}

int localcfg_f_ips(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_ip **arr = LC_FIELD_PTR(obj, f);

	return LC_SEQ(c, v, *arr, *LC_COUNT_PTR(obj, f), ip_item);
}

/* "10.0.0.0/8", "fd00::/8", or a bare address meaning the whole /32 or /128. */
static int cidr_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	struct state_cidr *cidr = elem;
	const char *t = localcfg_text(c, n), *slash;
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned long len, max;
	bool mapped;
	size_t alen;

	if (!t)
		return -EINVAL;
	slash = strchr(t, '/');
	alen = slash ? (size_t)(slash - t) : strlen(t);
	if (alen >= sizeof(addr))
		goto bad;
	memcpy(addr, t, alen);
	addr[alen] = '\0';
	if (state_ip_parse(addr, &cidr->addr))
		goto bad;
	/* a v4-mapped CIDR (::ffff:a.b.c.d/104) is parsed as the v4 one: its length too */
	mapped = cidr->addr.family == AF_INET && strchr(addr, ':');
	max = cidr->addr.family == AF_INET ? 32 : 128;
	len = max + (mapped ? 96 : 0);
	if (slash && (strlen(slash + 1) > 3 || !slash[1] ||
		      strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
		      (len = strtoul(slash + 1, NULL, 10)) > 128))
		goto bad;
	if (mapped)
		len = len >= 96 ? len - 96 : max + 1;
	if (len > max)
		goto bad;
	cidr->length = (uint8_t)len;
	return 0;
bad:
	return localcfg_fail(c, n, "%s: bad CIDR \"%.64s\"", c->key, t);
}

int localcfg_f_cidrs(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_cidr_list *l = LC_FIELD_PTR(obj, f);

	return LC_SEQ(c, v, l->v, l->n, cidr_item);
}

static int port_item(struct lc_ctx *c, yaml_node_t *n, void *elem)
{
	return localcfg_port(c, n, false, elem);
}

int localcfg_f_port_list(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_port_list *l = LC_FIELD_PTR(obj, f);

	return LC_SEQ(c, v, l->v, l->n, port_item);
}

/* {servicePort: targetPort}; a target of 0 means "same as the service port". */
int localcfg_portmap(struct lc_ctx *c, yaml_node_t *node, struct state_port **out, size_t *n)
{
	uint64_t seen[65536 / 64] = { 0 };
	size_t count;

	if (localcfg_map_len(c, node, &count))
		return -EINVAL;
	if (!count)
		return 0;
	*out = calloc(count, sizeof(**out));
	if (!*out)
		return localcfg_oom(c, node);
	*n = count;
	for (size_t i = 0; i < count; i++) {
		yaml_node_pair_t *p = &node->data.mapping.pairs.start[i];
		yaml_node_t *k = localcfg_node(c, p->key), *v = localcfg_node(c, p->value);
		struct state_port *port = &(*out)[i];

		if (!k || !v || localcfg_port(c, k, false, &port->service_port) ||
		    localcfg_port(c, v, true, &port->target_port))
			return -EINVAL;
		if (seen[port->service_port / 64] & (1ULL << (port->service_port % 64)))
			return localcfg_fail(c, k, "%s: duplicate port %u", c->key,
					     port->service_port);
		seen[port->service_port / 64] |= 1ULL << (port->service_port % 64);
	}
	return 0;
}

int localcfg_f_ports(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	return localcfg_portmap(c, v, LC_FIELD_PTR(obj, f), LC_COUNT_PTR(obj, f));
}
