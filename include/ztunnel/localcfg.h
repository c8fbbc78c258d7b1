/* localcfg: upstream ztunnel's local configuration YAML (LOCAL_XDS_PATH) into a state snapshot. */
#ifndef ZTUNNEL_LOCALCFG_H
#define ZTUNNEL_LOCALCFG_H

#include <stddef.h>
#include <ztunnel/state.h>

/*
 * Parses the YAML in upstream ztunnel's local config format (workloads, services, policies;
 * camelCase keys; unknown keys rejected). Returns a new snapshot with refcount 1, or NULL with
 * a one-line message "<file>:<line>:<column>: <what is wrong>" in err.
 */
struct state_snapshot *localcfg_load_file(const char *path, char *err, size_t errlen);
/* Same from memory; `name` stands for the file name in messages. */
struct state_snapshot *localcfg_load_buffer(const char *name, const char *yaml, size_t len,
					    char *err, size_t errlen);

#endif
