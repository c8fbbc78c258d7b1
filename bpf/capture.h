/* capture.h: what the capture programs and agent/redirect/ebpf.c share (slots, counters, sizes). */
#ifndef ZTUNNEL_BPF_CAPTURE_H
#define ZTUNNEL_BPF_CAPTURE_H

#ifndef __bpf__		/* the programs have the types from vmlinux.h */
#include <linux/types.h>
#endif

/* Slots of the listener map: the agent's sockets in the pod that captured connections go to. */
enum zt_slot {
	ZT_SLOT_OUTBOUND = 0,	/* 15001 */
	ZT_SLOT_INBOUND = 1,	/* 15006 */
	ZT_SLOT_DNS_UDP = 2,	/* 15053, UDP: only when the agent serves DNS */
	ZT_SLOT_DNS_TCP = 3,	/* 15053, TCP */
	ZT_SLOT_DNS6_UDP = 4,	/* [::1]:15053, UDP: the IPv6 DNS listeners (IPV6_ENABLED) */
	ZT_SLOT_DNS6_TCP = 5,	/* [::1]:15053, TCP */
	ZT_SLOTS
};

/* Counters (per-CPU array, summed by the agent). */
enum zt_count {
	ZT_COUNT_OUTBOUND = 0,	/* connections steered to 15001 */
	ZT_COUNT_INBOUND = 1,	/* connections steered to 15006 */
	ZT_COUNT_NO_LISTENER = 2,	/* wanted a slot that was empty */
	ZT_COUNT_DNS = 3,		/* DNS queries and connections steered to 15053 */
	ZT_COUNTS
};

/* The one entry of a pod's info map: what the agent must put back when it removes the pod,
 * kept with the pinned maps so a restarted agent still knows it. */
struct zt_pod_info {
	__u32 accept_local_was;	/* net.ipv4.conf.all.accept_local before the first install */
	__u32 installs;		/* installs into this pod (1: fresh; more: re-adopted) */
};

#define ZT_POD_ADDRS 8	/* IPv4 addresses of one pod the program knows */
#define ZT_POD_ADDRS6 4	/* IPv6 addresses of one pod the program knows */

#endif
