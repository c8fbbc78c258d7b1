/* reuseport: attached to each listener group of the agent (a pod's 15001, 15006 and 15008, one
 * socket per worker), picks the least-loaded worker's socket for a new connection; runs after
 * the kernel's lookup, whether nftables' TPROXY or the ebpf backend's sk_lookup chose the group.
 * A group it does not know, or a failed pick, leaves the kernel's hash choice. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "reuseport.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 1);		/* set by the loader: groups x workers */
	__type(key, __u32);
	__type(value, __u64);
} zt_rp_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);		/* set by the loader: groups x workers */
	__type(key, __u64);
	__type(value, struct zt_rp_group);
} zt_rp_groups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, ZT_RP_MAX_WORKERS);
	__type(key, __u32);
	__type(value, __u64);	/* elements are 8-byte aligned: the mapped layout is u64 */
} zt_rp_load SEC(".maps");

SEC("sk_reuseport")
int zt_reuseport(struct sk_reuseport_md *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct zt_rp_group *g;
	__u32 best = 0, start, w, key;
	__u64 best_load = ~0ull, *load;
	__u64 cookie;

	if (!sk)
		return SK_PASS;
	cookie = bpf_get_socket_cookie(sk);
	g = bpf_map_lookup_elem(&zt_rp_groups, &cookie);
	if (!g || !g->n || g->n > ZT_RP_MAX_WORKERS)
		return SK_PASS;
	start = ctx->hash % g->n;	/* equal loads: the hash's spread */
	for (__u32 i = 0; i < ZT_RP_MAX_WORKERS; i++) {
		if (i >= g->n)
			break;
		w = (start + i) % g->n;
		load = bpf_map_lookup_elem(&zt_rp_load, &w);
		if (load && *load < best_load) {
			best_load = *load;
			best = w;
		}
	}
	key = g->base + best;
	if (bpf_sk_select_reuseport(ctx, &zt_rp_socks, &key, 0) == 0) {
		load = bpf_map_lookup_elem(&zt_rp_load, &best);
		if (load)
			__sync_fetch_and_add(load, 1);
	}
	return SK_PASS;
}
