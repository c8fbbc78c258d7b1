/* steer.h: the capture decision of a socket lookup, and handing the connection to a listener. */
#ifndef ZTUNNEL_BPF_STEER_H
#define ZTUNNEL_BPF_STEER_H

#include "maps.h"

/* Settings, written by the agent between open and load. Addresses in network order. */
const volatile __u32 pod_addrs[ZT_POD_ADDRS] = {};
const volatile __u32 n_pod_addrs = 0;
const volatile __u32 loopback_ifindex = 1;
const volatile __u32 probe_addr = 0;		/* 169.254.7.127: kubelet probes, SNATed */
const volatile __u32 hbone_port = 15008;	/* host order, as local_port is */
const volatile __u32 dns_capture = 0;		/* 1: the agent serves DNS (slots ZT_SLOT_DNS_*) */

static __always_inline void zt_count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&zt_counts, &what);

	if (n)
		*n += 1;
}

static __always_inline bool zt_pod_addr(__u32 addr)
{
	for (__u32 i = 0; i < ZT_POD_ADDRS; i++)
		if (i < n_pod_addrs && pod_addrs[i] == addr)
			return true;
	return false;
}

static __always_inline bool zt_loopback4(__u32 addr)
{
	return (bpf_ntohl(addr) >> 24) == 127;
}

/*
 * sk_lookup: a TCP connection that reached the pod's own stack over lo to an address that is
 * not the pod's was sent there by the capture route: outbound, for 15001. (The lookup cannot
 * tell the agent's own connection to the app from one that came from outside, both arrive
 * "from" the pod's interface: inbound is steered at tc ingress instead.)
 */
static __always_inline bool zt_outbound(const struct bpf_sk_lookup *ctx)
{
	return ctx->family == 2 /* AF_INET */ && ctx->protocol == 6 /* IPPROTO_TCP */ &&
	       ctx->ingress_ifindex == loopback_ifindex && !zt_loopback4(ctx->local_ip4) &&
	       !zt_pod_addr(ctx->local_ip4);
}

/*
 * sk_lookup, before zt_outbound: a DNS query (UDP or TCP to port 53) the pod sent to a resolver
 * that is not on loopback, routed to its own stack by the DNS rule, is for the agent's 15053
 * (upstream: UDP not on loopback, TCP not to 127.0.0.1). Only with dns_capture.
 */
static __always_inline bool zt_dns(const struct bpf_sk_lookup *ctx)
{
	return dns_capture && ctx->family == 2 /* AF_INET */ &&
	       (ctx->protocol == 17 /* IPPROTO_UDP */ || ctx->protocol == 6) &&
	       ctx->local_port == 53 && ctx->ingress_ifindex == loopback_ifindex &&
	       !zt_loopback4(ctx->local_ip4) && !zt_pod_addr(ctx->local_ip4);
}

/* tc ingress on the pod's interfaces: a SYN from outside to the pod, not for 15008 and not a
 * kubelet probe, opens an inbound connection for 15006. */
static __always_inline bool zt_inbound_syn(__u32 saddr, __u32 daddr, __u16 dport_host, bool syn,
					   bool ack)
{
	return syn && !ack && zt_pod_addr(daddr) && saddr != probe_addr && dport_host != hbone_port;
}

/* The listener in slot, or NULL (counted): the connection then goes on as if not captured.
 * The caller releases it. */
static __always_inline struct bpf_sock *zt_listener(__u32 slot)
{
	struct bpf_sock *sk = bpf_map_lookup_elem(&zt_listeners, &slot);

	if (!sk)
		zt_count(ZT_COUNT_NO_LISTENER);
	return sk;
}

#endif
