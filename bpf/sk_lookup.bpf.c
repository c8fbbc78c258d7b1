/* sk_lookup: attached to a pod's network namespace, hands the pod's captured outbound TCP (routed
 * to its own stack by the capture rules) to the agent's 15001 listener, without NAT: the accepted
 * socket's local address is the destination the app asked for. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/steer.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("sk_lookup")
int zt_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;

	if (!zt_outbound(ctx))
		return SK_PASS;
	sk = zt_listener(ZT_SLOT_OUTBOUND);
	if (!sk)
		return SK_PASS;
	if (bpf_sk_assign(ctx, sk, 0) == 0)
		zt_count(ZT_COUNT_OUTBOUND);
	bpf_sk_release(sk);
	return SK_PASS;
}
