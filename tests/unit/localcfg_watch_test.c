// unit-standalone
/* localcfg_watch_test: a LOCAL_XDS_PATH change is handed over only once the file is complete. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../agent/log/escape.c"
#include "../../agent/log/format.c"
#include "../../agent/log/log.c"
#include "../../agent/state/ip.c"
#include "../../agent/state/lookup.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/state/index.c"
#include "../../agent/localcfg/yaml.c"
#include "../../agent/localcfg/fields.c"
#include "../../agent/localcfg/balance.c"
#include "../../agent/localcfg/objects.c"
#include "../../agent/localcfg/policy.c"
#include "../../agent/localcfg/localcfg.c"
#include "../../agent/localcfg/watch.c"

#include "check.h"

static char dir[] = "/tmp/localcfg_watch_XXXXXX";
static char path[64];
static uint64_t clock_ms = 1000;

/* "workloads:" with n entries w0..w(n-1). */
static void workloads_yaml(char *buf, size_t len, int n)
{
	size_t off = (size_t)snprintf(buf, len, "workloads:\n");

	for (int i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off,
					"- {uid: w%d, name: w%d, workloadIps: [10.0.0.%d]}\n", i, i,
					i + 1);
}

static void write_file(const char *p, const char *text)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text),
	      "writing %s", p);
	if (fd >= 0)
		close(fd);
}

static void write_workloads(const char *p, int n)
{
	char buf[2048];

	workloads_yaml(buf, sizeof(buf), n);
	write_file(p, buf);
}

/* One wake-up of the agent's loop, a poll interval later than the previous one. */
static struct state_snapshot *tick(struct localcfg_watch *w)
{
	clock_ms += WATCH_POLL_MS;
	return watch_tick(w, false, clock_ms);
}

/* Ticks up to max times; the number of workloads of the first snapshot, -1 if none came. */
static long ticks_until_load(struct localcfg_watch *w, int max, int *took)
{
	for (*took = 1; *took <= max; (*took)++) {
		struct state_snapshot *s = tick(w);
		long n;

		if (!s)
			continue;
		n = (long)s->n_workloads;
		state_snapshot_put(&s);
		return n;
	}
	return -1;
}

static void discard_events(struct localcfg_watch *w)
{
	char buf[4096];

	while (read(w->ifd, buf, sizeof(buf)) > 0)
		;
}

static bool leases_work(void)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
	fcntl(fd, F_SETLEASE, F_UNLCK);
	close(fd);
	return ok;
}

/*
 * In place, slowly: a valid prefix (2 of 5 workloads) sits on disk for ten poll intervals
 * while the writer holds the file open. Nothing is handed over until the writer closes it.
 */
static void slow_write_in_place(struct localcfg_watch *w, const char *mode)
{
	char full[2048];
	size_t prefix;
	long n;
	int fd, took;

	workloads_yaml(full, sizeof(full), 5);
	prefix = (size_t)(strstr(full, "- {uid: w2") - full);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	CHECK(fd >= 0 && write(fd, full, prefix) == (ssize_t)prefix, "%s: prefix", mode);
	n = ticks_until_load(w, 10, &took);
	CHECK(n == -1, "%s: the half-written file (2 workloads) was handed over: %ld", mode, n);
	CHECK(write(fd, full + prefix, strlen(full) - prefix) == (ssize_t)(strlen(full) - prefix),
	      "%s: rest", mode);
	n = ticks_until_load(w, 10, &took);
	CHECK(n == -1, "%s: handed over before the writer closed the file: %ld", mode, n);
	close(fd);
	n = ticks_until_load(w, 5, &took);
	CHECK(n == 5, "%s: the complete file after close: %ld workloads", mode, n);
	printf("%s: complete file handed over %d tick(s) after close\n", mode, took);
}

static void test_inotify(void)
{
	struct localcfg_watch *w;
	struct state_snapshot *s;
	char tmp[80];
	long n;
	int took, fd_log;

	write_workloads(path, 1);
	w = localcfg_watch_new(path);
	CHECK(w && localcfg_watch_fd(w) >= 0, "inotify watch");
	if (!w)
		return;
	CHECK(ticks_until_load(w, 5, &took) == -1, "unchanged file handed over");
	/* a close after writing is complete: handed over at the next wake-up */
	write_workloads(path, 3);
	s = watch_tick(w, false, clock_ms);
	CHECK(s && s->n_workloads == 3, "closed after writing: not handed over at once");
	state_snapshot_put(&s);
	/* a rename into place, as tools and editors do */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	write_workloads(tmp, 4);
	CHECK(ticks_until_load(w, 1, &took) == -1, "another file's close handed over");
	CHECK(rename(tmp, path) == 0, "rename");
	s = watch_tick(w, false, clock_ms);
	CHECK(s && s->n_workloads == 4, "renamed into place: not handed over at once");
	state_snapshot_put(&s);
	/* the renamed-in file is watched, and writes to others beside it (an agent's log) do
	 * not wake the watcher at all */
	snprintf(tmp, sizeof(tmp), "%s/agent.log", dir);
	for (int i = 0; i < 3; i++) {
		int fd = open(tmp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		CHECK(fd >= 0 && write(fd, "line\n", 5) == 5, "log write");
		close(fd);
		discard_events(w);	/* the log's creation is a name in the directory */
	}
	fd_log = open(tmp, O_WRONLY | O_APPEND | O_CLOEXEC);
	CHECK(fd_log >= 0 && write(fd_log, "more\n", 5) == 5, "log append");
	close(fd_log);
	CHECK(poll(&(struct pollfd){ .fd = localcfg_watch_fd(w), .events = POLLIN }, 1, 0) == 0,
	      "a write to another file in the directory woke the watcher");
	slow_write_in_place(w, "inotify");
	/* an empty file is refused once (logged), not retried on every poll */
	write_file(path, "");
	CHECK(ticks_until_load(w, 5, &took) == -1, "empty file handed over");
	/* inotify missed a change (its events lost): the poll takes it once it held still */
	write_workloads(path, 2);
	discard_events(w);
	n = ticks_until_load(w, 5, &took);
	CHECK(n == 2 && took == WATCH_STILL_POLLS + 1, "missed change: %ld after %d ticks", n,
	      took);
	/* a touch (attributes only: no close, no rename) is reloaded the same way */
	CHECK(utimensat(AT_FDCWD, path, (struct timespec[2]){ { 1, 0 }, { 1, 0 } }, 0) == 0,
	      "touch");
	n = ticks_until_load(w, 5, &took);
	CHECK(n == 2 && took == WATCH_STILL_POLLS + 1, "touched file: %ld after %d ticks", n, took);
	s = watch_tick(w, true, clock_ms);
	CHECK(s && s->n_workloads == 2, "forced (SIGHUP) reload");
	state_snapshot_put(&s);
	localcfg_watch_free(&w);
	CHECK(!w, "freed watch cleared");
}

/*
 * A writer opens the file while it is being read: the read is dropped, and the same version is
 * still loaded by the poll once the writer has gone (even though it wrote nothing).
 */
static void read_races_writer(struct localcfg_watch *w)
{
	struct state_snapshot *s;
	long n;
	int fd, took;

	write_workloads(path, 4);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	s = load(w, "test", false);
	CHECK(!s, "a read that raced with a writer was handed over");
	state_snapshot_put(&s);
	CHECK(ticks_until_load(w, 5, &took) == -1, "handed over while the writer holds it");
	if (fd >= 0)
		close(fd);
	n = ticks_until_load(w, 5, &took);
	CHECK(n == 4, "after the racing writer left: %ld workloads", n);
}

/* Without inotify (or when it missed the change) the poll alone must be as careful. */
static void test_poll_fallback(void)
{
	struct localcfg_watch *w;
	long n;
	int took;

	write_workloads(path, 1);
	w = localcfg_watch_new(path);
	if (!w)
		return;
	close(w->ifd);
	w->ifd = w->wd = -1;
	CHECK(localcfg_watch_fd(w) == -1, "no inotify fd");
	write_workloads(path, 3);
	n = ticks_until_load(w, 10, &took);
	CHECK(n == 3 && took == WATCH_STILL_POLLS + 1, "poll: %ld workloads after %d ticks, want "
	      "3 after %d", n, took, WATCH_STILL_POLLS + 1);
	if (leases_work()) {
		slow_write_in_place(w, "poll");
		read_races_writer(w);
	} else {
		printf("note: no file leases here: the poll waits for stillness only\n");
	}
	localcfg_watch_free(&w);
}

/* A ConfigMap volume: path -> ..data/cfg.yaml, and kubelet renames a new ..data into place. */
static void test_symlink_swap(void)
{
	char link[96], d1[96], d2[96], f[128], tmp[96], cm[96];
	struct localcfg_watch *w;
	struct state_snapshot *s;

	snprintf(d1, sizeof(d1), "%s/..v1", dir);
	snprintf(d2, sizeof(d2), "%s/..v2", dir);
	snprintf(link, sizeof(link), "%s/..data", dir);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
	snprintf(cm, sizeof(cm), "%s/cm.yaml", dir);
	CHECK(mkdir(d1, 0755) == 0 && mkdir(d2, 0755) == 0, "mkdir");
	snprintf(f, sizeof(f), "%s/cm.yaml", d1);
	write_workloads(f, 1);
	snprintf(f, sizeof(f), "%s/cm.yaml", d2);
	write_workloads(f, 2);
	CHECK(symlink("..v1", link) == 0 && symlink("..data/cm.yaml", cm) == 0, "symlinks");
	w = localcfg_watch_new(cm);
	if (!w)
		return;
	CHECK(symlink("..v2", tmp) == 0 && rename(tmp, link) == 0, "swap ..data");
	s = watch_tick(w, false, clock_ms);
	CHECK(s && s->n_workloads == 2, "..data swap: not handed over at once");
	state_snapshot_put(&s);
	localcfg_watch_free(&w);
	unlink(cm);
	unlink(link);
	snprintf(f, sizeof(f), "%s/cm.yaml", d1);
	unlink(f);
	snprintf(f, sizeof(f), "%s/cm.yaml", d2);
	unlink(f);
	rmdir(d1);
	rmdir(d2);
}

int main(void)
{
	char tmp[80];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/cfg.yaml", dir);
	test_inotify();
	test_poll_fallback();
	test_symlink_swap();
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	unlink(path);
	rmdir(dir);
	if (failures)
		printf("%d check(s) failed\n", failures);
	else
		printf("localcfg_watch_test: all checks passed\n");
	return failures ? 1 : 0;
}
