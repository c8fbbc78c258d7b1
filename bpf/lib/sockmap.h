/* lib/sockmap.h: the maps of the socket fast path, declared once, and its inline helpers. */
#ifndef ZTUNNEL_BPF_LIB_SOCKMAP_H
#define ZTUNNEL_BPF_LIB_SOCKMAP_H

#include "../sockmap.h"

/* Both ends of each short-circuited pair, by their own view of the connection. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, ZT_SM_MAX_SOCKS);
	__type(key, struct zt_sock_key);
	__type(value, __u64);
} zt_socks SEC(".maps");

/* Connecting ends waiting for their peer's accept (sock_ops and sk_msg cannot hold a socket of
 * the sockhash: they may look one up but not release it). Taken out when the accepting end
 * arrives; LRU, so one whose peer never came cannot pile up. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZT_SM_MAX_SOCKS);
	__type(key, struct zt_sock_key);
	__type(value, struct zt_sm_pending);
} zt_sm_pending SEC(".maps");

/* Each paired end's peer, as an address, for sk_msg to read (never to hold) its queue and
 * sequence numbers; checked against the expected 4-tuple before use, since an entry outlives
 * its sockets until LRU or a new pair with the same key replaces it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ZT_SM_MAX_SOCKS);
	__type(key, struct zt_sock_key);
	__type(value, __u64);
} zt_sm_peers SEC(".maps");

/* Enrolled pod netns of this agent, filled at pod install, emptied at remove. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ZT_SM_MAX_PODS);
	__type(key, __u64);
	__type(value, struct zt_sm_pod);
} zt_sm_pods SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct zt_sm_sock);
} zt_sm_socks SEC(".maps");

/* enum zt_sm_count, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ZT_SM_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} zt_sm_counts SEC(".maps");

static __always_inline void zt_sm_count(__u32 what, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&zt_sm_counts, &what);

	if (c)
		*c += n;
}

static __always_inline bool zt_sm_pod_addr(const struct zt_sm_pod *pod, __u32 addr)
{
	for (__u32 i = 0; i < ZT_POD_ADDRS; i++)
		if (i < pod->n_addrs && pod->addrs[i] == addr)
			return true;
	return false;
}

/* The IPv4 addresses of an AF_INET socket, or of an AF_INET6 one with v4-mapped addresses (a
 * dual-stack listener's, e.g. iperf3's): false for anything else. ctx is a bpf_sock_ops or an
 * sk_msg_md, which name these fields alike. */
#define zt_sm_addrs4(ctx, local, remote)                                                     \
	({                                                                                     \
		/* every field read once, unconditionally: the verifier refuses a ctx        \
		 * pointer the compiler would otherwise offset by a select */                   \
		__u32 f_ = (ctx)->family, l4_ = (ctx)->local_ip4, r4_ = (ctx)->remote_ip4;     \
		__u32 l0_ = (ctx)->local_ip6[0], l1_ = (ctx)->local_ip6[1];                    \
		__u32 l2_ = (ctx)->local_ip6[2], l3_ = (ctx)->local_ip6[3];                    \
		__u32 r0_ = (ctx)->remote_ip6[0], r1_ = (ctx)->remote_ip6[1];                  \
		__u32 r2_ = (ctx)->remote_ip6[2], r3_ = (ctx)->remote_ip6[3];                  \
		bool v6_ = f_ == 10 /* AF_INET6 */ && !l0_ && !l1_ && l2_ == bpf_htonl(0xffff) && \
			   !r0_ && !r1_ && r2_ == bpf_htonl(0xffff);                           \
		*(local) = v6_ ? l3_ : l4_;                                                    \
		*(remote) = v6_ ? r3_ : r4_;                                                   \
		v6_ || f_ == 2 /* AF_INET */;                                                  \
	})

/* The key the other end of this connection has in the sockhash. */
static __always_inline struct zt_sock_key zt_sm_peer(const struct zt_sock_key *k)
{
	struct zt_sock_key p = {
		.netns = k->netns,
		.local_ip4 = k->remote_ip4, .remote_ip4 = k->local_ip4,
		.local_port = k->remote_port, .remote_port = k->local_port,
	};

	return p;
}

#endif
