/* capture.h: what the capture programs and agent/redirect/ebpf.c share (slots, counters, sizes). */
#ifndef ZTUNNEL_BPF_CAPTURE_H
#define ZTUNNEL_BPF_CAPTURE_H

/* Slots of the listener map: the agent's sockets in the pod that captured connections go to. */
enum zt_slot {
	ZT_SLOT_OUTBOUND = 0,	/* 15001 */
	ZT_SLOT_INBOUND = 1,	/* 15006 */
	ZT_SLOTS
};

/* Counters (per-CPU array, summed by the agent). */
enum zt_count {
	ZT_COUNT_OUTBOUND = 0,	/* connections steered to 15001 */
	ZT_COUNT_INBOUND = 1,	/* connections steered to 15006 */
	ZT_COUNT_NO_LISTENER = 2,	/* wanted a slot that was empty */
	ZT_COUNTS
};

#define ZT_POD_ADDRS 8	/* IPv4 addresses of one pod the program knows */

#endif
