/* tc_ingress: on each of a pod's interfaces, hands a SYN from outside to the agent's 15006 listener
 * (bpf_sk_assign, as TPROXY does), so the app's port never sees it and the accepted socket's
 * local address is the original destination; 15008 and kubelet probes pass. Without a listener
 * the SYN is dropped: captured traffic never reaches the app around the agent. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/steer.h"

#define ZT_ETH_P_IP 0x0800
#define ZT_TC_ACT_OK 0
#define ZT_TC_ACT_SHOT 2

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int zt_tc_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *tcp;
	struct bpf_sock *sk;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ZT_ETH_P_IP) ||
	    ip->protocol != 6 /* IPPROTO_TCP */ || ip->ihl < 5)
		return ZT_TC_ACT_OK;
	tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return ZT_TC_ACT_OK;
	if (!zt_inbound_syn(ip->saddr, ip->daddr, bpf_ntohs(tcp->dest), tcp->syn, tcp->ack))
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
