/* sockops: attached to the cgroup v2 root, puts the two ends of an in-pod leg into the sockhash
 * when their TCP connection is established, so sk_msg can hand bytes from one straight to the
 * other: (a) the app's connection captured to 15001 and the agent's accepted end, (b) the
 * agent's connection to the app (inbound delivery) and the app's accepted end. Sockets outside
 * an enrolled pod netns of this agent, pairs without exactly one agent end, and the agent's
 * other sockets (HBONE, passthrough) are left alone. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/sockmap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Settings, written by the agent between open and load. */
const volatile __u32 agent_mark = 0x539;	/* PACKET_MARK */
const volatile __u32 agent_mark_mask = 0xfff;
const volatile __u32 hbone_port = 15008;

static __always_inline bool agent_sock(const struct bpf_sock *sk)
{
	return (sk->mark & agent_mark_mask) == (agent_mark & agent_mark_mask);
}

/*
 * The first end to be established is the connecting one. It is a candidate when its peer can
 * only be the other side of a leg: the app connecting to anything but loopback and its pod's
 * own addresses (the capture sends that to 15001), or the agent connecting to its pod's own
 * address, not 15008 (delivering to the app).
 */
static __always_inline bool active_candidate(const struct zt_sm_pod *pod,
					     const struct zt_sock_key *k, bool agent)
{
	if (agent)
		return zt_sm_pod_addr(pod, k->remote_ip4) && k->remote_port != hbone_port;
	return (bpf_ntohl(k->remote_ip4) >> 24) != 127 && !zt_sm_pod_addr(pod, k->remote_ip4);
}

/* The accepting end joins only when its peer is a candidate and exactly one of the two is the
 * agent's; then each end learns where the other is. */
static __always_inline bool passive_pairs(const struct zt_sock_key *k, struct bpf_sock *sk,
					  bool agent)
{
	struct zt_sock_key peer = zt_sm_peer(k);
	struct zt_sm_pending *p = bpf_map_lookup_elem(&zt_sm_pending, &peer);
	__u64 self = (__u64)sk, other;

	if (!p)
		return false;
	other = p->sk;
	if (!!p->agent == agent) {
		bpf_map_delete_elem(&zt_sm_pending, &peer);
		return false;
	}
	bpf_map_delete_elem(&zt_sm_pending, &peer);
	bpf_map_update_elem(&zt_sm_peers, k, &other, BPF_ANY);
	bpf_map_update_elem(&zt_sm_peers, &peer, &self, BPF_ANY);
	return true;
}

SEC("sockops")
int zt_sockops(struct bpf_sock_ops *ctx)
{
	const struct zt_sm_pod *pod;
	struct zt_sock_key key;
	struct bpf_sock *sk;
	bool active, agent;

	if (ctx->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    ctx->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (!zt_sm_addrs4(ctx, &key.local_ip4, &key.remote_ip4))
		return 1;
	key.netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&zt_sm_pods, &key.netns);
	if (!pod)
		return 1;	/* not one of this agent's pods: not ours to touch */
	sk = ctx->sk;
	if (!sk)
		return 1;
	key.local_port = ctx->local_port;
	key.remote_port = bpf_ntohl(ctx->remote_port);
	agent = agent_sock(sk);
	active = ctx->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB;
	if (active ? !active_candidate(pod, &key, agent) : !passive_pairs(&key, sk, agent))
		return 1;
	if (bpf_sock_hash_update(ctx, &zt_socks, &key, BPF_ANY) < 0) {
		zt_sm_count(ZT_SM_INSERT_FAILED, 1);
		return 1;
	}
	zt_sm_count(ZT_SM_SOCKETS, 1);
	if (active) {
		struct zt_sm_pending p = { .sk = (__u64)sk, .agent = agent };

		bpf_map_update_elem(&zt_sm_pending, &key, &p, BPF_ANY);
	} else {
		zt_sm_count(ZT_SM_PAIRS, 1);
	}
	return 1;
}
