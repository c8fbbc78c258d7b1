/* tc_ingress: on each of a pod's interfaces, hands a SYN from outside (IPv4, or IPv6 without
 * extension headers) to the agent's 15006 listener (bpf_sk_assign, as TPROXY does), so the
 * app's port never sees it and the accepted socket's local address is the original destination;
 * 15008 and kubelet probes pass. Without a listener the SYN is dropped: captured traffic never
 * reaches the app around the agent. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/steer.h"

#define ZT_ETH_P_IP 0x0800
#define ZT_ETH_P_IPV6 0x86DD
#define ZT_TC_ACT_OK 0
#define ZT_TC_ACT_SHOT 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The SYN's destination port if the packet is a TCP SYN for the capture (IPv4 or IPv6 without
 * extension headers), else 0. */
static __always_inline __u16 captured_syn(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct tcphdr *tcp;
	__u32 a6[4];

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ZT_ETH_P_IPV6)) {
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != 6 /* IPPROTO_TCP */)
			return 0;
		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > end)
			return 0;
		__builtin_memcpy(a6, &ip6->daddr, sizeof(a6));
		return zt_inbound_syn6(a6, bpf_ntohs(tcp->dest), tcp->syn, tcp->ack) ?
			       bpf_ntohs(tcp->dest) : 0;
	}
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ZT_ETH_P_IP) ||
	    ip->protocol != 6 /* IPPROTO_TCP */ || ip->ihl < 5)
		return 0;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return 0;
	return zt_inbound_syn(ip->saddr, ip->daddr, bpf_ntohs(tcp->dest), tcp->syn, tcp->ack) ?
		       bpf_ntohs(tcp->dest) : 0;
}

SEC("tc")
int zt_tc_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk;

	if (!captured_syn(skb))
		return ZT_TC_ACT_OK;
	/* no listener (the agent is restarting or draining): fail closed, never to the app
	 * directly; the client's SYN is retried and finds the next agent */
	sk = zt_listener(ZT_SLOT_INBOUND);
	if (!sk)
		return ZT_TC_ACT_SHOT;
	if (bpf_sk_assign(skb, sk, 0) == 0)
		zt_count(ZT_COUNT_INBOUND);
	bpf_sk_release(sk);
	return ZT_TC_ACT_OK;
}
