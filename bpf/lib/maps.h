/* maps.h: the maps of the capture programs, declared once. */
#ifndef ZTUNNEL_BPF_MAPS_H
#define ZTUNNEL_BPF_MAPS_H

#include "../capture.h"

/* The agent's listeners in this pod, by slot (enum zt_slot). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, ZT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} zt_listeners SEC(".maps");

/* enum zt_count, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ZT_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} zt_counts SEC(".maps");

/* One struct zt_pod_info (not read by the programs: the agent's note beside them). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zt_pod_info);
} zt_pod_info SEC(".maps");

#endif
