/* sk_lookup: attached to a pod's network namespace, hands the pod's captured outbound TCP (routed
 * to its own stack by the capture rules; IPv4 and IPv6, the listener is on [::]) to the agent's
 * 15001 listener, and its DNS queries to 15053 when the agent serves DNS, without NAT: the
 * accepted socket's local address is the destination the app asked for. Without the listener (the agent is restarting) the packet is
 * dropped, never delivered around the agent: the client's retransmission finds the next one. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/steer.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("sk_lookup")
int zt_sk_lookup(struct bpf_sk_lookup *ctx)
{
	__u32 slot, counter;
	struct bpf_sock *sk;
	int verdict = SK_PASS;

	if (zt_dns(ctx)) {
		slot = ctx->protocol == 17 ? ZT_SLOT_DNS_UDP : ZT_SLOT_DNS_TCP;
		if (ctx->family == 10)	/* the [::1] listeners: an IPv4 socket takes no IPv6 */
			slot += ZT_SLOT_DNS6_UDP - ZT_SLOT_DNS_UDP;
		counter = ZT_COUNT_DNS;
	} else if (zt_outbound(ctx)) {
		slot = ZT_SLOT_OUTBOUND;
		counter = ZT_COUNT_OUTBOUND;
	} else {
		return SK_PASS;
	}
	sk = zt_listener(slot);
	if (!sk)
		return SK_DROP;
	if (bpf_sk_assign(ctx, sk, 0) == 0)
		zt_count(counter);
	else
		verdict = SK_DROP;
	bpf_sk_release(sk);
	return verdict;
}
