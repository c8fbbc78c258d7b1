/* localcfg/yaml.c: the generic YAML walker (keyword tables, sequences) and scalar field handlers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "parse.h"

static int vfail_at(struct lc_ctx *c, size_t line, size_t col, const char *fmt, va_list ap)
{
	int n;

	/* Keep the first message: it names the cause, later ones only the unwinding. */
	if (!c->err || !c->errlen || c->err[0])
		return -EINVAL;
	n = snprintf(c->err, c->errlen, "%s:%zu:%zu: ", c->name, line, col);
	if (n >= 0 && (size_t)n < c->errlen)
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	return -EINVAL;
}

int localcfg_fail(struct lc_ctx *c, const yaml_node_t *node, const char *fmt, ...)
{
	size_t line = node ? node->start_mark.line + 1 : 1;
	size_t col = node ? node->start_mark.column + 1 : 1;
	va_list ap;

	va_start(ap, fmt);
	vfail_at(c, line, col, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int localcfg_oom(struct lc_ctx *c, const yaml_node_t *node)
{
	localcfg_fail(c, node, "out of memory");
	return -ENOMEM;
}

yaml_node_t *localcfg_node(struct lc_ctx *c, int id)
{
	yaml_node_t *n;

	if (!c->budget) {
		localcfg_fail(c, NULL, "document too large after alias expansion");
		return NULL;
	}
	c->budget--;
	n = yaml_document_get_node(c->doc, id);
	if (!n)
		localcfg_fail(c, NULL, "malformed document");
	return n;
}

bool localcfg_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (strcmp(v, nulls[i]) == 0)
			return true;
	return false;
}

static const char *type_name(yaml_node_type_t t)
{
	switch (t) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a sequence";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "nothing";
	}
}

const char *localcfg_kind(const yaml_node_t *n)
{
	return localcfg_is_null(n) ? "null" : type_name(n->type);
}

int localcfg_want(struct lc_ctx *c, const yaml_node_t *n, yaml_node_type_t type)
{
	if (n->type == type && (type != YAML_SCALAR_NODE || !localcfg_is_null(n)))
		return 0;
	return localcfg_fail(c, n, "%s: expected %s, got %s", c->key, type_name(type),
			     localcfg_kind(n));
}

const char *localcfg_text(struct lc_ctx *c, const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE) {
		localcfg_want(c, n, YAML_SCALAR_NODE);
		return NULL;
	}
	v = (const char *)n->data.scalar.value;
	if (strlen(v) != n->data.scalar.length) {
		localcfg_fail(c, n, "%s: string contains a NUL byte", c->key);
		return NULL;
	}
	return v;
}

int localcfg_strdup(struct lc_ctx *c, const yaml_node_t *n, char **out)
{
	const char *v = localcfg_text(c, n);

	if (!v)
		return -EINVAL;
	*out = strdup(v);
	return *out ? 0 : localcfg_oom(c, n);
}

/* Decimal digits only, at most 10 of them: no sign, no hex, no overflow. */
static int parse_uint(const char *v, unsigned long *out)
{
	size_t len = strlen(v);

	if (!len || len > 10 || strspn(v, "0123456789") != len)
		return -EINVAL;
	*out = strtoul(v, NULL, 10);
	return 0;
}

int localcfg_port(struct lc_ctx *c, const yaml_node_t *n, bool allow_zero, uint16_t *out)
{
	const char *v = localcfg_text(c, n);
	unsigned long port;

	if (!v)
		return -EINVAL;
	if (parse_uint(v, &port) || port > 65535 || (!port && !allow_zero))
		return localcfg_fail(c, n, "%s: bad port \"%.64s\" (want %d..65535)", c->key, v,
				     allow_zero ? 0 : 1);
	*out = (uint16_t)port;
	return 0;
}

yaml_node_t *localcfg_map_get(struct lc_ctx *c, const yaml_node_t *map, const char *key)
{
	if (map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(c->doc, p->key);

		if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(c->doc, p->value);
	}
	return NULL;
}

static int field_pair(struct lc_ctx *c, yaml_node_pair_t *p, const struct lc_field *table,
		      size_t n, void *obj, const char *what, uint64_t *seen)
{
	yaml_node_t *k = localcfg_node(c, p->key), *v = localcfg_node(c, p->value);
	const char *prev = c->key, *name;
	size_t i;
	int ret;

	if (!k || !v)
		return -EINVAL;
	if (k->type != YAML_SCALAR_NODE)
		return localcfg_fail(c, k, "%s: keys must be strings, got %s", what,
				     type_name(k->type));
	name = (const char *)k->data.scalar.value;
	for (i = 0; i < n && strcmp(name, table[i].key); i++)
		;
	if (i == n)
		return localcfg_fail(c, k, "unknown key \"%.64s\" in %s", name, what);
	if (*seen & (1ULL << i))
		return localcfg_fail(c, k, "duplicate key \"%s\" in %s", name, what);
	*seen |= 1ULL << i;
	c->key = table[i].key;
	ret = table[i].parse(c, v, obj, &table[i]);
	c->key = prev;
	return ret;
}

int localcfg_fields(struct lc_ctx *c, yaml_node_t *node, const struct lc_field *table,
		    size_t n, void *obj, const char *what)
{
	uint64_t seen = 0;
	int ret;

	if (n > 64)
		return localcfg_fail(c, node, "internal: table for %s too large", what);
	if (node->type != YAML_MAPPING_NODE)
		return localcfg_fail(c, node, "%s: expected a mapping, got %s", what,
				     localcfg_kind(node));
	for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
	     p < node->data.mapping.pairs.top; p++) {
		ret = field_pair(c, p, table, n, obj, what, &seen);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < n; i++) {
		char **s;

		if (table[i].required && !(seen & (1ULL << i)))
			return localcfg_fail(c, node, "missing key \"%s\" in %s", table[i].key,
					     what);
		/* Absent strings become "": readers never meet a NULL name. */
		if (table[i].parse != localcfg_f_str || table[i].off == LC_DISCARD)
			continue;
		s = LC_FIELD_PTR(obj, &table[i]);
		if (!*s && !(*s = strdup("")))
			return localcfg_oom(c, node);
	}
	return 0;
}

int localcfg_map_len(struct lc_ctx *c, yaml_node_t *node, size_t *n)
{
	*n = 0;
	if (localcfg_is_null(node))
		return 0;
	if (node->type != YAML_MAPPING_NODE)
		return localcfg_want(c, node, YAML_MAPPING_NODE);
	*n = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
	return 0;
}

int localcfg_seq_len(struct lc_ctx *c, yaml_node_t *node, size_t *n)
{
	*n = 0;
	if (localcfg_is_null(node))
		return 0;
	if (node->type != YAML_SEQUENCE_NODE)
		return localcfg_want(c, node, YAML_SEQUENCE_NODE);
	*n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
	return 0;
}

int localcfg_seq_items(struct lc_ctx *c, yaml_node_t *node, void *base, size_t elem,
		       lc_item_fn item)
{
	size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);

	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = localcfg_node(c, node->data.sequence.items.start[i]);
		int ret;

		if (!it)
			return -EINVAL;
		ret = item(c, it, (char *)base + i * elem);
		if (ret)
			return ret;
	}
	return 0;
}
