/* install: puts ztunnel-cni on a node (binary into the CNI bin dir, an entry chained at the end
 * of the conflist) and takes it off again; idempotent, every file replaced by rename. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cni.h"

#define PLUGIN "ztunnel-cni"
#define MAX_BINARY (64 << 20)

struct install_opts {
	const char *bin_dir, *conf_dir, *conf_name, *socket, *owner, *self;
	bool watch;
};

static void say(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ztunnel-cni %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Reads a whole file (at most max bytes) into *buf (malloc'd). Its size, or -errno. */
static ssize_t slurp(const char *path, char **buf, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 1 << 16;
	ssize_t n = 0;

	*buf = NULL;
	if (fd < 0)
		return -errno;
	*buf = malloc(cap);
	while (*buf && (n = read(fd, *buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap && cap < max) {
			char *bigger = realloc(*buf, cap * 2);

			if (!bigger) {
				free(*buf);
				*buf = NULL;
				break;
			}
			*buf = bigger;
			cap *= 2;
		} else if (len == cap) {
			n = -1;
			errno = EFBIG;
			break;
		}
	}
	close(fd);
	if (!*buf || n < 0) {
		free(*buf);
		*buf = NULL;
		return -(errno ? errno : ENOMEM);
	}
	return (ssize_t)len;
}

/* Writes data to dir/name through a temporary file and a rename. 0 or -errno. */
static int replace(const char *dir, const char *name, const char *data, size_t len, mode_t mode)
{
	char tmp[4096], dst[4096];
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len && !rc;) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0)
			rc = -errno;
		else
			off += (size_t)n;
	}
	if (!rc && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
		rc = -errno;
	close(fd);
	if (!rc && rename(tmp, dst) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static int copy_binary(const struct install_opts *o)
{
	char *self, *old, path[4096];
	ssize_t n, m;
	int rc = 0;

	n = slurp(o->self, &self, MAX_BINARY);
	if (n < 0) {
		say("install", "cannot read %s: %s", o->self, strerror((int)-n));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", o->bin_dir, PLUGIN);
	m = slurp(path, &old, MAX_BINARY);
	if (m != n || memcmp(old, self, (size_t)n) != 0) {
		rc = replace(o->bin_dir, PLUGIN, self, (size_t)n, 0755);
		if (rc < 0)
			say("install", "cannot write %s: %s", path, strerror(-rc));
		else
			say("install", "copied the plugin to %s", path);
	}
	free(old);
	free(self);
	return rc < 0 ? -1 : 0;
}

/* The conflist to chain into: conf_name, else the first *.conflist of conf_dir by name. */
static int find_conflist(const struct install_opts *o, char *name, size_t len)
{
	struct dirent **ents;
	int n, found = -1;

	if (o->conf_name) {
		snprintf(name, len, "%s", o->conf_name);
		return 0;
	}
	n = scandir(o->conf_dir, &ents, NULL, alphasort);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (found < 0 && ents[i]->d_name[0] != '.' &&
		    fnmatch("*.conflist", ents[i]->d_name, 0) == 0) {
			snprintf(name, len, "%s", ents[i]->d_name);
			found = 0;
		}
		free(ents[i]);
	}
	free(ents);
	return found;
}

static bool is_ours(json_t *plugin)
{
	const char *type = json_string_value(json_object_get(plugin, "type"));

	return type && strcmp(type, PLUGIN) == 0;
}

/*
 * Edits the conflist: add (our entry, once, at the end) or remove (our entries; only those whose
 * ztunnel_owner is owner when owner is set). Writes the file only when it changed.
 * 1 changed, 0 nothing to do, -1 error (said).
 */
static int edit_conflist(const struct install_opts *o, bool add)
{
	char name[256], path[4096], *text = NULL, *out = NULL;
	json_t *root = NULL, *orig = NULL, *plugins, *want = NULL;
	json_error_t jerr;
	ssize_t n;
	size_t i;
	int rc = -1;

	if (find_conflist(o, name, sizeof(name)) < 0) {
		say(add ? "install" : "uninstall", "no *.conflist in %s yet", o->conf_dir);
		return add ? -1 : 0;
	}
	snprintf(path, sizeof(path), "%s/%s", o->conf_dir, name);
	n = slurp(path, &text, CNI_MAX_CONFIG);
	if (n < 0) {
		say("install", "cannot read %s: %s", path, strerror((int)-n));
		return add ? -1 : 0;
	}
	root = json_loadb(text, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
	plugins = json_object_get(root, "plugins");
	if (!json_is_array(plugins)) {
		say("install", "%s: not a conflist (no \"plugins\" array): %s", path,
		    root ? "" : jerr.text);
		goto out;
	}
	orig = json_deep_copy(root);
	want = json_pack("{s:s,s:s}", "type", PLUGIN, "ztunnel_socket", o->socket);
	if (!orig || !want)
		goto out;
	if (o->owner)
		json_object_set_new(want, "ztunnel_owner", json_string(o->owner));
	for (i = 0; i < json_array_size(plugins);) {
		json_t *p = json_array_get(plugins, i);
		const char *owner = json_string_value(json_object_get(p, "ztunnel_owner"));

		if (is_ours(p) && (add || !o->owner || (owner && strcmp(owner, o->owner) == 0)))
			json_array_remove(plugins, i);
		else
			i++;
	}
	if (add)
		json_array_append(plugins, want);
	if (json_equal(orig, root)) {
		rc = 0;		/* already as wanted (our entry once, last) */
		goto out;
	}
	out = json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(2));
	if (!out)
		goto out;
	n = strlen(out);
	out[n] = '\n';	/* json_dumps' terminator becomes the file's last newline */
	rc = replace(o->conf_dir, name, out, (size_t)n + 1, 0644);
	if (rc < 0) {
		say("install", "cannot write %s: %s", path, strerror(-rc));
		rc = -1;
	} else {
		say(add ? "install" : "uninstall", "%s %s", add ? "chained into" : "removed from", path);
		rc = 1;
	}
out:
	free(out);
	free(text);
	json_decref(want);
	json_decref(orig);
	json_decref(root);
	return rc;
}

static int install_once(const struct install_opts *o)
{
	if (copy_binary(o) < 0)
		return -1;
	return edit_conflist(o, true) < 0 ? -1 : 0;
}

/* Takes the entry out; the binary only when no entry of ours is left in the conflist. */
static int uninstall(const struct install_opts *o)
{
	char path[4096];

	if (edit_conflist(o, false) < 0)
		return -1;
	if (o->owner) {
		struct install_opts any = *o;
		char name[256], *text;
		ssize_t n;

		any.owner = NULL;
		if (find_conflist(&any, name, sizeof(name)) == 0) {
			snprintf(path, sizeof(path), "%s/%s", o->conf_dir, name);
			n = slurp(path, &text, CNI_MAX_CONFIG);
			if (n > 0 && memmem(text, (size_t)n, "\"" PLUGIN "\"", strlen(PLUGIN) + 2)) {
				free(text);
				return 0;	/* a newer agent pod of the rollout owns it now */
			}
			free(text);
		}
	}
	snprintf(path, sizeof(path), "%s/%s", o->bin_dir, PLUGIN);
	if (unlink(path) == 0)
		say("uninstall", "removed %s", path);
	return 0;
}

/* --watch: install, repair every 5 s (the primary plugin may rewrite its conflist), and on
 * SIGTERM/SIGINT uninstall what this owner installed. */
static int watch(const struct install_opts *o)
{
	sigset_t set;
	struct pollfd pfd = { .events = POLLIN };

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	pfd.fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (pfd.fd < 0)
		return -1;
	for (;;) {
		install_once(o);	/* failures were said; tried again in 5 s */
		if (poll(&pfd, 1, 5000) > 0)
			break;
	}
	close(pfd.fd);
	return uninstall(o);
}

static int usage(void)
{
	fprintf(stderr, "usage: ztunnel-cni install|uninstall --bin-dir DIR --conf-dir DIR "
			"[--conf-name FILE] [--socket PATH] [--owner NAME] [--watch]\n");
	return 2;
}

int cni_install_main(int argc, char **argv)
{
	struct install_opts o = { .socket = CNI_DEFAULT_SOCKET, .self = "/proc/self/exe" };
	static const struct { const char *flag; size_t off; } flags[] = {
		{ "--bin-dir", offsetof(struct install_opts, bin_dir) },
		{ "--conf-dir", offsetof(struct install_opts, conf_dir) },
		{ "--conf-name", offsetof(struct install_opts, conf_name) },
		{ "--socket", offsetof(struct install_opts, socket) },
		{ "--owner", offsetof(struct install_opts, owner) },
		{ "--self", offsetof(struct install_opts, self) },
	};
	bool add = strcmp(argv[0], "install") == 0;

	for (int i = 1; i < argc; i++) {
		size_t f;

		if (strcmp(argv[i], "--watch") == 0) {
			o.watch = true;
			continue;
		}
		for (f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
			if (strcmp(argv[i], flags[f].flag) == 0)
				break;
		if (f == sizeof(flags) / sizeof(flags[0]) || i + 1 >= argc || !argv[i + 1][0])
			return usage();
		*(const char **)((char *)&o + flags[f].off) = argv[++i];
	}
	if (!o.bin_dir || !o.conf_dir || (o.conf_name && strchr(o.conf_name, '/')) ||
	    (o.owner && !*o.owner))
		return usage();
	if (!add)
		return uninstall(&o) < 0 ? 1 : 0;
	if (o.watch)
		return watch(&o) < 0 ? 1 : 0;
	return install_once(&o) < 0 ? 1 : 0;
}
