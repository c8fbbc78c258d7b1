/* redirect ebpf pins: the backend's objects under bpffs (<pin dir>/<pod uid>/{maps,links}), the
 * start-up sweep of pods whose netns is gone, and `ztunnel redirect-clean`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <bpf/bpf.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"
#include "capture.h"

#define BPFFS "/sys/fs/bpf"
#define LINK_SK_LOOKUP "link_sk_lookup"

static bool on_bpffs(const char *path)
{
	struct statfs fs;

	return statfs(path, &fs) == 0 && fs.f_type == BPF_FS_MAGIC;
}

static int mkdirs(const char *path)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

int redirect_ebpf_pins_ready(const char *dir, char *err, size_t errlen)
{
	int ret;

	if (dir[0] != '/' || strpbrk(dir, "\"\\\n")) {
		snprintf(err, errlen, "ZTUNNEL_BPF_PIN_DIR: \"%s\" is not an absolute path", dir);
		return -EINVAL;
	}
	/* bpffs is often not mounted (it is here); as Cilium does, mount it where it belongs */
	if (strncmp(dir, BPFFS "/", sizeof(BPFFS)) == 0 && !on_bpffs(BPFFS) &&
	    mount("bpf", BPFFS, "bpf", 0, "mode=0700") < 0) {
		snprintf(err, errlen, "ZTUNNEL_REDIRECT=ebpf: cannot mount bpffs at " BPFFS
			 " for the pinned programs: %s", strerror(errno));
		return -errno;
	}
	ret = mkdirs(dir);
	if (ret == 0 && !on_bpffs(dir))
		ret = -ENOTSUP;
	if (ret < 0)
		snprintf(err, errlen, "ZTUNNEL_BPF_PIN_DIR: %s must be a directory on a bpf "
			 "filesystem (mount -t bpf bpf " BPFFS "): %s", dir,
			 ret == -ENOTSUP ? "it is not" : strerror(-ret));
	return ret;
}

int redirect_ebpf_pod_path(const char *dir, const char *key, char *buf, size_t len)
{
	if (!key || !key[0] || key[0] == '.' || strchr(key, '/'))
		return -EINVAL;
	return snprintf(buf, len, "%s/%s", dir, key) >= (int)len ? -ENAMETOOLONG : 0;
}

int redirect_ebpf_pod_dir(const char *dir, const char *key, char *buf, size_t len)
{
	int ret = redirect_ebpf_pod_path(dir, key, buf, len);

	if (ret == 0 && mkdir(buf, 0700) < 0 && errno != EEXIST)
		ret = -errno;
	return ret;
}

/* The pinned install record of a pod's directory: accept_local before the first install. */
static int pinned_accept_local(const char *pod_dir)
{
	struct zt_pod_info info = { 0 };
	char path[PATH_MAX];
	uint32_t key = 0;
	int fd, was = -1;

	snprintf(path, sizeof(path), "%s/info", pod_dir);
	fd = bpf_obj_get(path);
	if (fd >= 0 && bpf_map_lookup_elem(fd, &key, &info) == 0 && info.installs)
		was = info.accept_local_was ? 1 : 0;
	if (fd >= 0)
		close(fd);
	return was;
}

int redirect_ebpf_unpin(const char *pod_dir, int *accept_local_was)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(pod_dir);
	int n = 0;

	if (accept_local_was)
		*accept_local_was = pinned_accept_local(pod_dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", pod_dir, de->d_name);
		if (strncmp(de->d_name, "link_", 5) == 0) {
			int fd = bpf_obj_get(path);

			if (fd >= 0) {	/* detached now, not when the last holder lets go */
				bpf_link_detach(fd);
				close(fd);
			}
		}
		if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	rmdir(pod_dir);
	return n;
}

/* The netns inode a pod directory's sk_lookup link attaches to; 0 when its netns is gone
 * (the kernel keeps such a link, defunct, until it is unpinned). -errno without the link. */
static long pinned_netns(const char *pod_dir)
{
	struct bpf_link_info info;
	uint32_t len = sizeof(info);
	char path[PATH_MAX];
	long ino;
	int fd;

	snprintf(path, sizeof(path), "%s/" LINK_SK_LOOKUP, pod_dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	ino = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? (long)info.netns.netns_ino : -errno;
	close(fd);
	return ino;
}

int redirect_ebpf_sweep(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (pinned_netns(path) == 0) {	/* its pod is gone: nothing to capture */
			redirect_ebpf_unpin(path, NULL);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* The network namespace with inode ino among dir/<entry><suffix>, opened; -ENOENT if none. */
static int scan_netns(const char *dir, const char *suffix, unsigned long ino)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(dir);
	int fd = -ENOENT;

	while (d && fd < 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.' || (suffix[0] && (de->d_name[0] < '0' || de->d_name[0] > '9')))
			continue;
		snprintf(path, sizeof(path), "%s/%s%s", dir, de->d_name, suffix);
		if (stat(path, &st) == 0 && st.st_ino == ino)
			fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (d)
		closedir(d);
	return fd < 0 ? -ENOENT : fd;
}

/* A network namespace by inode: a bind mount in /run/netns or the agent's state dir, or a
 * process's. */
static int open_netns(unsigned long ino, const char *state_dir)
{
	char pinned[PATH_MAX];
	int fd = scan_netns("/run/netns", "", ino);

	snprintf(pinned, sizeof(pinned), "%s/netns", state_dir ? state_dir : "/nonexistent");
	if (fd < 0)
		fd = scan_netns(pinned, "", ino);
	if (fd < 0)
		fd = scan_netns("/proc", "/ns/net", ino);
	return fd;
}

struct clean_call {
	uint32_t mark;
	int accept_local_was;
	char why[200];
};

static int clean_in_pod(void *arg)
{
	struct clean_call *c = arg;
	int fd, ret;

	ret = redirect_ebpf_rules_apply(c->mark, NULL, c->why, sizeof(c->why));
	if (c->accept_local_was >= 0) {
		fd = redirect_ebpf_accept_local(c->accept_local_was, NULL, c->why, sizeof(c->why));
		ret = ret ? ret : fd;
	}
	return ret;
}

int redirect_ebpf_clean(const struct redirect *r, const char *state_dir,
			int (*in_netns)(int netns_fd, int (*fn)(void *), void *), FILE *out)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int pods = 0, failed = 0;

	if (!on_bpffs(r->pin_dir)) {
		fprintf(out, "redirect-clean: nothing pinned (%s is not on bpffs)\n", r->pin_dir);
		return 0;
	}
	d = opendir(r->pin_dir);
	if (!d) {
		fprintf(out, "redirect-clean: %s: %s\n", r->pin_dir, strerror(errno));
		return errno == ENOENT ? 0 : -errno;
	}
	while ((de = readdir(d))) {
		struct clean_call c = { .mark = r->mark };
		long ino;
		int fd, n;

		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		snprintf(path, sizeof(path), "%s/%s", r->pin_dir, de->d_name);
		ino = pinned_netns(path);
		c.accept_local_was = pinned_accept_local(path);
		n = redirect_ebpf_unpin(path, NULL);
		fprintf(out, "redirect-clean: pod %s: %d pinned objects removed", de->d_name, n);
		fd = ino > 0 ? open_netns((unsigned long)ino, state_dir) : -ENOENT;
		if (fd >= 0) {
			if (in_netns(fd, clean_in_pod, &c) < 0) {
				fprintf(out, ", its rules: %s", c.why[0] ? c.why : "cannot enter netns");
				failed++;
			} else {
				fputs(", its rules and accept_local restored", out);
			}
			close(fd);
		} else {
			fputs(ino > 0 ? ", its netns was not found" : ", its netns is gone", out);
		}
		fputc('\n', out);
		pods++;
	}
	closedir(d);
	if (rmdir(r->pin_dir) < 0 && errno != ENOENT)
		fprintf(out, "redirect-clean: %s: %s\n", r->pin_dir, strerror(errno));
	fprintf(out, "redirect-clean: %d pods cleaned\n", pods);
	return failed ? -EIO : 0;
}
