/* localcfg/watch.c: reloads of LOCAL_XDS_PATH, applied only once the file is complete. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/localcfg.h>
#include <ztunnel/log.h>

#define WATCH_POLL_MS 200	/* the fallback's stat poll */
#define WATCH_STILL_POLLS 2	/* polls a changed file must hold still before it is loaded */
/* names appearing in the directory; writes are watched on the file alone, so that the writes
 * to other files there (an agent's own log beside its config) do not wake the agent */
#define WATCH_DIR_EVENTS (IN_MOVED_TO | IN_CREATE | IN_ONLYDIR)
#define WATCH_FILE_EVENTS (IN_MODIFY | IN_CLOSE_WRITE)

/*
 * A file is complete once it was closed after writing (inotify on the file) or renamed into
 * place (inotify on its directory, so that renames and editors' replace-by-rename are seen),
 * or, when inotify is missing or missed it, once its stat held still across WATCH_STILL_POLLS
 * polls with no writer left (a writer known from IN_MODIFY, or one a read lease reveals).
 */
struct localcfg_watch {
	char *path;		/* owned: LOCAL_XDS_PATH as given */
	char *dir;		/* owned: its directory */
	const char *base;	/* its last component, inside path */
	int ifd;		/* inotify fd, -1 without inotify */
	int wd;			/* watch on dir, -1 when lost (re-added on each poll) */
	int fwd;		/* watch on the file (through a symlink), -1 when none */
	bool writing;		/* IN_MODIFY since the last close or rename: a writer is mid-way */
	bool committed;		/* closed after writing or renamed into place: load it */
	bool waiting_logged;	/* "waiting for the writer" said once for this change */
	struct stat applied;	/* the file as last loaded (or refused) */
	struct stat seen;	/* the changed file at the previous poll */
	unsigned still;		/* polls that found seen unchanged */
	uint64_t next_poll_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Same file, same content as far as stat can tell (size, mtime and ctime, inode). */
static bool same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Whether a process has the file open for writing: a read lease is refused (EAGAIN) then.
 * Where leases do not work (NFS, no CAP_LEASE, fs.leases-enable=0) nothing is known: false.
 * The lease is dropped at once; a writer opening meanwhile waits microseconds, and the break
 * signal (SIGIO) is ignored (localcfg_watch_new).
 */
static bool writer_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	bool busy = false;

	if (fd < 0)
		return false;
	if (fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
		busy = errno == EAGAIN;
	else
		fcntl(fd, F_SETLEASE, F_UNLCK);
	close(fd);
	return busy;
}

/* Watches the file now at path (a new one after a rename or a symlink swap). */
static void watch_file(struct localcfg_watch *w)
{
	int fwd;

	if (w->ifd < 0)
		return;
	fwd = inotify_add_watch(w->ifd, w->path, WATCH_FILE_EVENTS);
	if (w->fwd >= 0 && fwd != w->fwd)
		inotify_rm_watch(w->ifd, w->fwd);	/* the replaced file's */
	w->fwd = fwd;	/* -1 while there is no file: the next poll tries again */
}

static void watch_add(struct localcfg_watch *w)
{
	if (w->ifd < 0)
		return;
	if (w->wd < 0) {
		w->wd = inotify_add_watch(w->ifd, w->dir, WATCH_DIR_EVENTS);
		if (w->wd < 0)
			log_debug("cannot watch the configuration directory",
				  "path=%s error=\"%s\"", w->dir, strerror(errno));
	}
	if (w->fwd < 0)
		watch_file(w);
}

struct localcfg_watch *localcfg_watch_new(const char *path)
{
	struct localcfg_watch *w = calloc(1, sizeof(*w));
	char *slash;

	if (!w)
		return NULL;
	w->ifd = w->wd = w->fwd = -1;
	w->path = strdup(path);
	w->dir = strdup(path);
	if (!w->path || !w->dir) {
		localcfg_watch_free(&w);
		errno = ENOMEM;
		return NULL;
	}
	slash = strrchr(w->dir, '/');
	if (!slash)
		strcpy(w->dir, ".");
	else if (slash == w->dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	slash = strrchr(w->path, '/');
	w->base = slash ? slash + 1 : w->path;
	signal(SIGIO, SIG_IGN);
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0)
		log_warn("no inotify: configuration changes are seen by polling only",
			 "path=%s error=\"%s\"", w->path, strerror(errno));
	watch_add(w);
	if (stat(w->path, &w->applied) < 0)
		memset(&w->applied, 0, sizeof(w->applied));
	return w;
}

int localcfg_watch_fd(const struct localcfg_watch *w)
{
	return w ? w->ifd : -1;
}

void localcfg_watch_free(struct localcfg_watch **wp)
{
	struct localcfg_watch *w = *wp;

	if (!w)
		return;
	if (w->ifd >= 0)
		close(w->ifd);
	free(w->path);
	free(w->dir);
	free(w);
	*wp = NULL;
}

static bool path_is_symlink(const struct localcfg_watch *w)
{
	struct stat st;

	return lstat(w->path, &st) == 0 && S_ISLNK(st.st_mode);
}

static void on_event(struct localcfg_watch *w, const struct inotify_event *ev)
{
	struct stat st;

	if (ev->mask & IN_Q_OVERFLOW) {
		w->writing = false;	/* unknown now: the poll and the lease decide */
		return;
	}
	if (ev->wd == w->fwd && w->fwd >= 0) {
		if (ev->mask & IN_IGNORED) {
			w->fwd = -1;	/* the file is gone; the next poll watches its successor */
		} else if (ev->mask & IN_MODIFY) {
			w->writing = true;
		} else if (ev->mask & IN_CLOSE_WRITE) {
			w->writing = false;
			w->committed = true;
		}
		return;
	}
	if (ev->wd != w->wd)
		return;		/* a replaced file's last events */
	if (ev->mask & IN_IGNORED) {
		w->wd = -1;		/* the directory went away: its writers are unknown too */
		w->writing = false;
		return;
	}
	if (!ev->len || strcmp(ev->name, w->base)) {
		/* a symlinked path (a ConfigMap's ..data) changes when another name is swapped */
		if (path_is_symlink(w) && stat(w->path, &st) == 0 && !same_stat(&st, &w->applied)) {
			w->committed = true;
			watch_file(w);
		}
		return;
	}
	watch_file(w);	/* a new file under the name: its writes are watched from now on */
	if (ev->mask & IN_MOVED_TO) {
		w->writing = false;
		w->committed = true;
	} else if ((ev->mask & IN_CREATE) && path_is_symlink(w)) {
		w->writing = false;	/* a new symlink is whole; a new file is not yet */
		w->committed = true;
	}	/* a new file: its close (or the poll, had it closed before the watch) commits it */
}

static void drain_events(struct localcfg_watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	if (w->ifd < 0)
		return;
	while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;

			on_event(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
}

static void log_waiting(struct localcfg_watch *w, const char *reason, const struct stat *st)
{
	if (w->waiting_logged)
		return;
	w->waiting_logged = true;
	log_info("configuration file changed, waiting until it is complete",
		 "path=%s reason=%s bytes=%lld", w->path, reason, (long long)st->st_size);
}

/* A writer came in while the file was read: its close (or the poll) brings the next load. */
static bool changed_while_read(struct localcfg_watch *w)
{
	struct stat st;

	if (stat(w->path, &st) < 0 || !same_stat(&st, &w->applied) || writer_open(w->path)) {
		log_waiting(w, "changed_while_read", &w->applied);
		return true;
	}
	return false;
}

/*
 * Reads the file now; a refusal is logged and remembered, so the same file is not retried.
 * Unless forced, a read that raced with a new writer is dropped.
 */
static struct state_snapshot *load(struct localcfg_watch *w, const char *why, bool force)
{
	struct state_snapshot *snap;
	char err[512];

	if (stat(w->path, &w->applied) < 0)
		memset(&w->applied, 0, sizeof(w->applied));
	w->seen = w->applied;
	w->still = 0;
	w->committed = false;
	w->waiting_logged = false;
	snap = localcfg_load_file(w->path, err, sizeof(err));
	if (!force && changed_while_read(w)) {
		/* not loaded after all: the poll must still see this version as new */
		memset(&w->applied, 0, sizeof(w->applied));
		state_snapshot_put(&snap);
		return NULL;
	}
	if (!snap)
		log_error("configuration rejected, keeping the previous one",
			  "path=%s trigger=%s error=\"%s\"", w->path, why, err);
	else
		log_debug("configuration file read", "path=%s trigger=%s bytes=%lld", w->path, why,
			  (long long)w->applied.st_size);
	return snap;
}

/* The fallback: a change the events did not commit is loaded once it held still, writerless. */
static struct state_snapshot *poll_file(struct localcfg_watch *w)
{
	struct stat st;

	watch_add(w);
	if (stat(w->path, &st) < 0 || same_stat(&st, &w->applied)) {
		w->still = 0;
		return NULL;
	}
	if (same_stat(&st, &w->seen)) {
		w->still++;
	} else {
		w->seen = st;
		w->still = 0;
	}
	if (w->writing || writer_open(w->path)) {
		log_waiting(w, "writer_open", &st);
		return NULL;
	}
	if (w->still < WATCH_STILL_POLLS)
		return NULL;
	return load(w, "poll", false);
}

/* localcfg_watch_check with the clock given (the unit test drives it). */
static struct state_snapshot *watch_tick(struct localcfg_watch *w, bool force, uint64_t now)
{
	struct stat st;

	drain_events(w);
	if (force)
		return load(w, "sighup", true);
	if (w->committed) {
		/* a close with another writer still at it (two opens) is not the end */
		if (!writer_open(w->path))
			return load(w, "inotify", false);
		if (stat(w->path, &st) == 0)
			log_waiting(w, "writer_open", &st);
	}
	if (now < w->next_poll_ms)
		return NULL;
	w->next_poll_ms = now + WATCH_POLL_MS;
	return poll_file(w);
}

struct state_snapshot *localcfg_watch_check(struct localcfg_watch *w, bool force)
{
	return w ? watch_tick(w, force, now_ms()) : NULL;
}
