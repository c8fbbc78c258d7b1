/* sockmap.h: what the socket fast path programs (sockops, sk_msg) and agent/redirect/sockmap.c
 * share: the sockhash key, the enrolled-netns record, per-socket state and counters. */
#ifndef ZTUNNEL_BPF_SOCKMAP_H
#define ZTUNNEL_BPF_SOCKMAP_H

#include "capture.h"

#define ZT_SM_MAX_SOCKS 65536		/* sockets in the sockhash, node-wide */
#define ZT_SM_MAX_PODS 1024		/* enrolled pod netns, node-wide */
#define ZT_SM_QUEUE_LIMIT (4u << 20)	/* bytes waiting in a receiver's queue before the TCP path */

/* One end of a TCP connection inside a pod netns, as that end sees it. Ports in host order. */
struct zt_sock_key {
	__u64 netns;			/* netns cookie */
	__u32 local_ip4, remote_ip4;	/* network order */
	__u32 local_port, remote_port;
};

/* An enrolled pod netns (key: its netns cookie): the pod's own IPv4 addresses. */
struct zt_sm_pod {
	__u32 addrs[ZT_POD_ADDRS];	/* network order */
	__u32 n_addrs;
};

/* A connecting end waiting for its peer's accept. */
struct zt_sm_pending {
	__u64 sk;			/* its struct sock, as an address */
	__u32 agent;			/* is it the agent's? */
	__u32 pad;
};

/* Per sending socket (sk_storage): which path its bytes take now. */
enum zt_sm_path {
	ZT_SM_PATH_REDIRECT = 0,	/* straight into the peer's receive queue */
	ZT_SM_PATH_TCP = 1,		/* the loopback TCP stack, until all of it was read */
};

struct zt_sm_sock {
	__u32 path;			/* enum zt_sm_path */
};

/* Counters (per-CPU array, summed by the agent and by tests). */
enum zt_sm_count {
	ZT_SM_SOCKETS = 0,		/* sockets put in the sockhash */
	ZT_SM_PAIRS = 1,		/* of them, second ends: a pair (app, agent) is complete */
	ZT_SM_INSERT_FAILED = 2,	/* sockhash full or the socket unsuitable */
	ZT_SM_MSGS_REDIRECTED = 3,	/* sendmsg calls whose bytes skipped TCP */
	ZT_SM_BYTES_REDIRECTED = 4,
	ZT_SM_MSGS_TCP = 5,		/* sendmsg calls of paired sockets that took the TCP path */
	ZT_SM_TO_TCP = 6,		/* switches to the TCP path */
	ZT_SM_TO_REDIRECT = 7,		/* switches back once the TCP path was drained */
	ZT_SM_TCP_UNPAIRED = 8,		/* messages on the TCP path: the peer is not paired (yet) */
	ZT_SM_TCP_QUEUE_FULL = 9,	/* the peer has queue_limit bytes or more unread */
	ZT_SM_TCP_DRAINING = 10,	/* what went by TCP was not all read yet */
	ZT_SM_COUNTS
};

#endif
