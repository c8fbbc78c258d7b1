/* localcfg: upstream ztunnel's local configuration YAML (LOCAL_XDS_PATH) into a state snapshot. */
#ifndef ZTUNNEL_LOCALCFG_H
#define ZTUNNEL_LOCALCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <ztunnel/state.h>

/*
 * Parses the YAML in upstream ztunnel's local config format (workloads, services, policies;
 * camelCase keys; unknown keys rejected). A file with no document (empty, blank, only comments)
 * or a null one is refused like a syntax error: an empty mesh is "workloads: []". Returns a new
 * snapshot with refcount 1, or NULL with a one-line message "<file>:<line>:<column>: <what is
 * wrong>" in err.
 */
struct state_snapshot *localcfg_load_file(const char *path, char *err, size_t errlen);
/* Same from memory; `name` stands for the file name in messages. */
struct state_snapshot *localcfg_load_buffer(const char *name, const char *yaml, size_t len,
					    char *err, size_t errlen);

/*
 * A watch of LOCAL_XDS_PATH that hands over a changed file only once it is complete: closed
 * after writing or renamed into place (inotify on its directory), or, as a fallback when
 * inotify is missing or missed the change, once its size and mtime held still across two
 * 200 ms polls with no writer holding it open. Never while a writer is mid-way.
 */
struct localcfg_watch;

/*
 * Starts watching path; the file as it is now counts as loaded (the caller loads it). Sets
 * SIGIO to ignored (a file lease's break signal). Without inotify the poll alone works.
 * Returns the watch (the caller's, freed by localcfg_watch_free), or NULL with errno ENOMEM.
 */
struct localcfg_watch *localcfg_watch_new(const char *path);
/* The fd to poll for POLLIN (inotify), or -1 (also for a NULL watch): poll ignores it. */
int localcfg_watch_fd(const struct localcfg_watch *w);
/*
 * Call on every wake-up of the caller's loop, at least every 200 ms. Returns a new snapshot
 * (refcount 1, the caller's) when a changed file is complete and valid, else NULL: no change,
 * still being written, or refused (logged with the reason; the caller keeps its state). force
 * (SIGHUP) reads the file now. NULL w: NULL.
 */
struct state_snapshot *localcfg_watch_check(struct localcfg_watch *w, bool force);
/* Stops watching and frees w; *w is NULL afterwards. */
void localcfg_watch_free(struct localcfg_watch **w);

#endif
