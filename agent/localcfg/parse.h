/* localcfg/parse.h: private helpers shared by the local config parser's files (not exported). */
#ifndef ZTUNNEL_LOCALCFG_PARSE_H
#define ZTUNNEL_LOCALCFG_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <yaml.h>
#include <ztunnel/state.h>

/* One parse of one document. Errors are written once, to err, then everything unwinds. */
struct lc_ctx {
	const char *name;	/* file name for messages */
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	const char *key;	/* key whose value is being parsed, for messages */
	unsigned long budget;	/* node visits left: bounds alias expansion ("billion laughs") */
};

struct lc_field;
typedef int (*lc_parse_fn)(struct lc_ctx *c, yaml_node_t *val, void *obj,
			   const struct lc_field *f);

/* A keyword table entry: how one mapping key fills one member of obj. */
struct lc_field {
	const char *key;
	lc_parse_fn parse;
	size_t off;		/* member offset, or LC_DISCARD: checked, then dropped */
	size_t n_off;		/* count member offset, for arrays */
	const void *aux;	/* handler data (enum names) */
	bool required;		/* the key must be present */
};

#define LC_DISCARD ((size_t)-1)
#define LC_FIELD(k, fn, type, m) { k, fn, offsetof(type, m), 0, NULL, false }
#define LC_ARRAY(k, fn, type, m, cnt) { k, fn, offsetof(type, m), offsetof(type, cnt), NULL, false }
#define LC_ENUM(k, type, m, names, req) { k, localcfg_f_enum, offsetof(type, m), 0, names, req }
#define LC_IGNORED(k, fn) { k, fn, LC_DISCARD, 0, NULL, false }
#define LC_IGNORED_ENUM(k, names) { k, localcfg_f_enum, LC_DISCARD, 0, names, false }

/* Enum names, NULL-terminated; the value is the index in values. */
struct lc_enum {
	const char *names[8];
	int values[8];
};

typedef int (*lc_item_fn)(struct lc_ctx *c, yaml_node_t *item, void *elem);

/* Writes "<file>:<line>:<col>: <msg>" for node (or the document start); returns -EINVAL. */
int localcfg_fail(struct lc_ctx *c, const yaml_node_t *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int localcfg_oom(struct lc_ctx *c, const yaml_node_t *node);
/* The node with this id, charging one visit; NULL (error written) when out of budget. */
yaml_node_t *localcfg_node(struct lc_ctx *c, int id);
/* A plain ~ / null / empty scalar: the value is absent. */
bool localcfg_is_null(const yaml_node_t *n);
const char *localcfg_kind(const yaml_node_t *n);
int localcfg_want(struct lc_ctx *c, const yaml_node_t *n, yaml_node_type_t type);
/* Scalar text (NUL-terminated by libyaml); NULL with an error if n is not a scalar. */
const char *localcfg_text(struct lc_ctx *c, const yaml_node_t *n);
int localcfg_strdup(struct lc_ctx *c, const yaml_node_t *n, char **out);
int localcfg_port(struct lc_ctx *c, const yaml_node_t *n, bool allow_zero, uint16_t *out);
/* Value of key in mapping map, or NULL (no budget charged: used for error positions). */
yaml_node_t *localcfg_map_get(struct lc_ctx *c, const yaml_node_t *map, const char *key);

/* Fills obj from mapping node by table; unknown and repeated keys are errors. */
int localcfg_fields(struct lc_ctx *c, yaml_node_t *node, const struct lc_field *table,
		    size_t n, void *obj, const char *what);
/* Number of pairs of a mapping (0 for a null value); -EINVAL if node is not a mapping. */
int localcfg_map_len(struct lc_ctx *c, yaml_node_t *node, size_t *n);
/* Number of items of a sequence (0 for a null value); -EINVAL if node is not a sequence. */
int localcfg_seq_len(struct lc_ctx *c, yaml_node_t *node, size_t *n);
/* Parses each item of sequence node into base[i] (elem bytes each). */
int localcfg_seq_items(struct lc_ctx *c, yaml_node_t *node, void *base, size_t elem,
		       lc_item_fn item);
/*
 * Sequence node into a new typed array arr with count cnt. The array and its count are stored
 * before any item parses, so a failure part-way leaves nothing unowned: the snapshot frees it.
 */
#define LC_SEQ(c, node, arr, cnt, item) ({						\
	size_t n__ = 0;									\
	int r__ = localcfg_seq_len((c), (node), &n__);					\
	if (!r__ && n__) {								\
		(arr) = calloc(n__, sizeof(*(arr)));					\
		if (!(arr)) {								\
			r__ = localcfg_oom((c), (node));				\
		} else {								\
			(cnt) = n__;							\
			r__ = localcfg_seq_items((c), (node), (arr), sizeof(*(arr)), (item)); \
		}									\
	}										\
	r__;										\
})
/* Mapping {port: targetPort} into a state_port array. */
int localcfg_portmap(struct lc_ctx *c, yaml_node_t *node, struct state_port **out, size_t *n);

/* Field handlers. */
int localcfg_f_str(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_bool(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_port(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_uint(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_enum(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_any(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_strv(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_ips(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_ports(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_port_list(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_cidrs(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_gateway(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
/* balance.c: locality {region, zone, subzone}, status (Healthy | Unhealthy into a bool) and a
 * service's loadBalancer {mode, routingPreferences, healthPolicy}. */
/* A two-name enum (names value 0 and 1) into a bool: true for the second. 0 or -EINVAL. */
int localcfg_enum_bool(struct lc_ctx *c, yaml_node_t *v, const char *key,
		       const struct lc_enum *names, bool *out);
int localcfg_f_locality(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_status(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);
int localcfg_f_load_balancer(struct lc_ctx *c, yaml_node_t *v, void *obj,
			     const struct lc_field *f);
int localcfg_f_rules(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f);

/* Items of the top-level lists. */
int localcfg_workload(struct lc_ctx *c, yaml_node_t *item, void *elem);
int localcfg_service(struct lc_ctx *c, yaml_node_t *item, void *elem);
int localcfg_policy(struct lc_ctx *c, yaml_node_t *item, void *elem);
int localcfg_peer_auth(struct lc_ctx *c, yaml_node_t *item, void *elem);
/* Rejects two policies with the same "namespace/name" (seq: the policies node). */
int localcfg_check_policy_keys(struct lc_ctx *c, yaml_node_t *seq, const struct state_snapshot *s);

#define LC_FIELD_PTR(obj, f) ((void *)((char *)(obj) + (f)->off))
#define LC_COUNT_PTR(obj, f) ((size_t *)(void *)((char *)(obj) + (f)->n_off))

#endif
