/* localcfg/localcfg.c: loading a local config file or buffer into a state snapshot. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <ztunnel/localcfg.h>
#include "parse.h"

#define N(t) (sizeof(t) / sizeof((t)[0]))
#define LOCALCFG_MAX_FILE (64u << 20)

/* Upstream keys workloads by uid: a second workload with the same uid is a mistake. */
static int check_uids(struct lc_ctx *c, yaml_node_t *seq, const struct state_snapshot *s)
{
	for (size_t i = 1; i < s->n_workloads; i++) {
		const char *uid = s->workloads[i].uid;
		yaml_node_t *item, *at;

		if (!uid || !*uid)
			continue;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(uid, s->workloads[j].uid))
				continue;
			item = yaml_document_get_node(c->doc, seq->data.sequence.items.start[i]);
			at = item ? localcfg_map_get(c, item, "uid") : NULL;
			return localcfg_fail(c, at ? at : item, "workloads: duplicate uid \"%.64s\"",
					     uid);
		}
	}
	return 0;
}

static int f_workloads(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_snapshot *s = obj;
	int ret = LC_SEQ(c, v, s->workloads, s->n_workloads, localcfg_workload);

	return ret ? ret : check_uids(c, v, s);
}

static int f_services(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_snapshot *s = obj;

	return LC_SEQ(c, v, s->services, s->n_services, localcfg_service);
}

static int f_policies(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_snapshot *s = obj;

	int ret = LC_SEQ(c, v, s->policies, s->n_policies, localcfg_policy);

	return ret ? ret : localcfg_check_policy_keys(c, v, s);
}

static int f_peer_auths(struct lc_ctx *c, yaml_node_t *v, void *obj, const struct lc_field *f)
{
	struct state_snapshot *s = obj;

	return LC_SEQ(c, v, s->peer_auths, s->n_peer_auths, localcfg_peer_auth);
}

static const struct lc_field top_fields[] = {
	{ "workloads", f_workloads, 0, 0, NULL, false },
	{ "policies", f_policies, 0, 0, NULL, false },
	{ "services", f_services, 0, 0, NULL, false },
	{ "peerAuthentications", f_peer_auths, 0, 0, NULL, false },
};

/* libyaml's own message, at its position; reader errors only know a byte offset. */
static int syntax_error(struct lc_ctx *c, const yaml_parser_t *p, const char *buf, size_t len)
{
	size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;
	yaml_node_t at = { 0 };

	if (p->error == YAML_MEMORY_ERROR)
		return localcfg_oom(c, NULL);
	if (p->error == YAML_READER_ERROR) {
		line = 1;
		col = 1;
		for (size_t i = 0; i < p->problem_offset && i < len; i++, col++)
			if (buf[i] == '\n') {
				line++;
				col = 0;
			}
	}
	at.start_mark.line = line - 1;
	at.start_mark.column = col - 1;
	localcfg_fail(c, &at, "YAML syntax error: %s%s%s", p->problem ? p->problem : "unknown",
		      p->context ? " " : "", p->context ? p->context : "");
	return -EINVAL;
}

/* Upstream reads one document; a second one would be silently ignored, so refuse it. */
static int check_single_document(struct lc_ctx *c, yaml_parser_t *p, const char *buf,
				 size_t len)
{
	yaml_document_t extra;
	yaml_node_t *root;
	int ret = 0;

	if (!yaml_parser_load(p, &extra))
		return syntax_error(c, p, buf, len);
	root = yaml_document_get_root_node(&extra);
	if (root)
		ret = localcfg_fail(c, root, "more than one YAML document");
	yaml_document_delete(&extra);
	return ret;
}

static int load_document(struct lc_ctx *c, yaml_parser_t *p, struct state_snapshot *snap,
			 const char *buf, size_t len)
{
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	size_t nodes = (size_t)(c->doc->nodes.top - c->doc->nodes.start);
	int ret;

	/*
	 * No document (an empty, blank or comments-only file) or a null one ("~", a bare "---")
	 * is what a config tool leaves mid-update, not an intent: applying it would empty the
	 * mesh. An empty mesh is written explicitly.
	 */
	if (!root || localcfg_is_null(root))
		return localcfg_fail(c, root, "no configuration (%s): write "
				     "'workloads: []' for an empty mesh",
				     root ? "a null document" : "empty, blank or only comments");
	/* Linear in the input, so alias expansion cannot make the walk explode. */
	c->budget = 16 * nodes + 4096;
	c->key = "config";
	ret = localcfg_fields(c, root, top_fields, N(top_fields), snap, "config");
	return ret ? ret : check_single_document(c, p, buf, len);
}

struct state_snapshot *localcfg_load_buffer(const char *name, const char *yaml, size_t len,
					    char *err, size_t errlen)
{
	struct lc_ctx c = { .name = name ? name : "<config>", .err = err, .errlen = errlen };
	struct state_snapshot *snap = NULL;
	yaml_document_t doc;
	yaml_parser_t parser;
	int ret = -ENOMEM;

	if (err && errlen)
		err[0] = '\0';
	if (!yaml_parser_initialize(&parser)) {
		localcfg_oom(&c, NULL);
		goto out;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)(yaml ? yaml : ""),
				     yaml ? len : 0);
	if (!yaml_parser_load(&parser, &doc)) {
		ret = syntax_error(&c, &parser, yaml, yaml ? len : 0);
		goto out_parser;
	}
	c.doc = &doc;
	snap = state_snapshot_new();
	if (!snap) {
		ret = localcfg_oom(&c, NULL);
		goto out_doc;
	}
	ret = load_document(&c, &parser, snap, yaml, yaml ? len : 0);
	if (ret)
		state_snapshot_put(&snap);
out_doc:
	yaml_document_delete(&doc);
out_parser:
	yaml_parser_delete(&parser);
out:
	if (!snap)
		errno = -ret;
	return snap;
}

/* Reads all of fd (a file, a pipe or /dev/stdin) up to LOCALCFG_MAX_FILE bytes. */
static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 0, used = 0;
	char *buf = NULL, *nbuf;
	ssize_t n;

	for (;;) {
		if (used == cap) {
			if (cap >= LOCALCFG_MAX_FILE) {
				free(buf);
				return -EFBIG;
			}
			cap = cap ? cap * 2 : 65536;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
		}
		n = read(fd, buf + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -errno;
		}
		if (!n)
			break;
		used += (size_t)n;
	}
	*out = buf;
	*len = used;
	return 0;
}

struct state_snapshot *localcfg_load_file(const char *path, char *err, size_t errlen)
{
	struct state_snapshot *snap = NULL;
	char *buf = NULL;
	size_t len = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = read_all(fd, &buf, &len);
	close(fd);
	if (ret)
		goto fail;
	snap = localcfg_load_buffer(path, buf, len, err, errlen);
	free(buf);
	return snap;
fail:
	if (err && errlen)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-ret));
	errno = -ret;
	return NULL;
}
