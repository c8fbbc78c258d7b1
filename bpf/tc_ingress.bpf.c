/* tc_ingress: on each of a pod's interfaces, hands a SYN from outside (IPv4 or IPv6) to the
 * agent's 15006 listener (bpf_sk_assign, as TPROXY does), so the app's port never sees it and
 * the accepted socket's local address is the original destination; 15008 and kubelet probes
 * pass. Without a listener the SYN is dropped: captured traffic never
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

#define ZT_IP6_EXT_MAX 4	/* extension headers walked before the TCP header */
#define ZT_ETH_HLEN 14

/*
 * IPv6, as captured_syn. The headers are copied out with bpf_skb_load_bytes (a chain of
 * variable offsets is more than the verifier follows with direct packet access). Up to
 * ZT_IP6_EXT_MAX extension headers (hop-by-hop, routing, destination options, the first
 * fragment's header) are walked; a later fragment carries no TCP header and passes. A chain
 * longer than that, or cut short, to the pod is dropped: never to the app around the agent.
 */
static __always_inline int captured_syn6(struct __sk_buff *skb)
{
	__u32 off = ZT_ETH_HLEN + sizeof(struct ipv6hdr);
	struct ipv6hdr ip6;
	struct tcphdr tcp;
	__u8 ext[8], next;
	__u32 a6[4];

	if (bpf_skb_load_bytes(skb, ZT_ETH_HLEN, &ip6, sizeof(ip6)) < 0)
		return 0;
	__builtin_memcpy(a6, &ip6.daddr, sizeof(a6));
	next = ip6.nexthdr;
#pragma unroll
	for (int i = 0; i < ZT_IP6_EXT_MAX; i++) {
		if (next != 0 && next != 43 && next != 60 && next != 44)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
			return zt_pod_addr6(a6) ? -1 : 0;
		if (next == 44 && (((__u16)ext[2] << 8 | ext[3]) & 0xfff8))
			return 0;	/* not the first fragment: no TCP header */
		off += next == 44 ? 8 : ((__u32)ext[1] + 1) * 8;
		next = ext[0];
	}
	if (next == 0 || next == 43 || next == 60 || next == 44)
		return zt_pod_addr6(a6) ? -1 : 0;	/* longer than we walk */
	if (next != 6 /* IPPROTO_TCP */)
		return 0;
	if (bpf_skb_load_bytes(skb, off, &tcp, sizeof(tcp)) < 0)
		return zt_pod_addr6(a6) ? -1 : 0;
	return zt_inbound_syn6(a6, bpf_ntohs(tcp.dest), tcp.syn, tcp.ack) ? bpf_ntohs(tcp.dest) :
									     0;
}

/* The SYN's destination port if the packet is a TCP SYN for the capture (IPv4, or IPv6 through
 * its extension headers), 0 if it is not, -1 to drop it (an IPv6 header chain to the pod that
 * cannot be walked). */
static __always_inline int captured_syn(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ZT_ETH_P_IPV6))
		return captured_syn6(skb);
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
	int port = captured_syn(skb);

	if (port < 0)
		return ZT_TC_ACT_SHOT;
	if (!port)
		return ZT_TC_ACT_OK;
	/* no listener (the agent is restarting or draining): fail closed, never to the app
	 * directly; the client's SYN is retried and finds the next agent */
	sk = zt_listener(ZT_SLOT_INBOUND);
	if (!sk)
		return ZT_TC_ACT_SHOT;
	/* an IPv4-only listener (IPV6_ENABLED=false) cannot take an IPv6 SYN: fail closed */
	if (skb->protocol == bpf_htons(ZT_ETH_P_IPV6) && sk->family != 10 /* AF_INET6 */) {
		bpf_sk_release(sk);
		return ZT_TC_ACT_SHOT;
	}
	if (bpf_sk_assign(skb, sk, 0) == 0)
		zt_count(ZT_COUNT_INBOUND);
	bpf_sk_release(sk);
	return ZT_TC_ACT_OK;
}
