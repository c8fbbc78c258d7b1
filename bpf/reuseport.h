/* reuseport.h: what the listener-group program (reuseport.bpf.c) and agent/proxy/reuseport.c
 * share: the bounds, the group record and the per-worker load array's layout. */
#ifndef ZTUNNEL_BPF_REUSEPORT_H
#define ZTUNNEL_BPF_REUSEPORT_H

#define ZT_RP_MAX_WORKERS 64		/* CONFIG_MAX_WORKERS: the program's loop bound */
#define ZT_RP_MAX_GROUPS 4096		/* listener groups (3 per enrolled pod), node-wide */

/* A listener group (value of zt_rp_groups, key: the cookie of each of its sockets): its
 * sockets sit in zt_rp_socks at base + worker id, one per worker. */
struct zt_rp_group {
	__u32 base;
	__u32 n;			/* workers */
};

/* zt_rp_load[worker] (__u64: array elements are 8-byte aligned): the worker's open
 * connections as it last published them, plus one per connection the program sent it since
 * (so that a burst spreads before the next publish). */

#endif
