/* state-int: private interface of the state module's files (the snapshot's hash indexes). */
#ifndef ZTUNNEL_STATE_INT_H
#define ZTUNNEL_STATE_INT_H

#include <ztunnel/state.h>

void state_index_free(struct state_index *x);
/* Look-ups through snap->index (which must be set); the same answers as the scans. */
const struct state_workload *state_index_ip(const struct state_snapshot *snap,
					    const struct state_ip *ip);
const struct state_service *state_index_vip(const struct state_snapshot *snap,
					    const struct state_ip *ip);
const struct state_service *state_index_hostname(const struct state_snapshot *snap,
						 const char *hostname);
const struct state_workload *state_index_pod(const struct state_snapshot *snap, const char *uid,
					     const char *namespace_, const char *name);

#endif
