/* steer.h: the capture decision of a socket lookup, and handing the connection to a listener. */
#ifndef ZTUNNEL_BPF_STEER_H
#define ZTUNNEL_BPF_STEER_H

#include "maps.h"

/* Settings, written by the agent between open and load. Addresses in network order. */
const volatile __u32 pod_addrs[ZT_POD_ADDRS] = {};
const volatile __u32 n_pod_addrs = 0;
const volatile __u32 pod_addrs6[ZT_POD_ADDRS6][4] = {};	/* IPv6, as 4 network-order words */
const volatile __u32 n_pod_addrs6 = 0;
const volatile __u32 loopback_ifindex = 1;
const volatile __u32 probe_addr = 0;		/* 169.254.7.127: kubelet probes, SNATed */
const volatile __u32 hbone_port = 15008;	/* host order, as local_port is */
const volatile __u32 dns_capture = 0;		/* 1: the agent serves DNS (slots ZT_SLOT_DNS_*);
						 * 2: over IPv6 too (ZT_SLOT_DNS6_*) */

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

static __always_inline bool zt_pod_addr6(const __u32 *a)
{
	for (__u32 i = 0; i < ZT_POD_ADDRS6; i++)
		if (i < n_pod_addrs6 && pod_addrs6[i][0] == a[0] && pod_addrs6[i][1] == a[1] &&
		    pod_addrs6[i][2] == a[2] && pod_addrs6[i][3] == a[3])
			return true;
	return false;
}

static __always_inline bool zt_loopback6(const __u32 *a)
{
	return !a[0] && !a[1] && !a[2] && a[3] == bpf_htonl(1);
}

/* The lookup's local address is neither loopback nor the pod's own, in its family. */
static __always_inline bool zt_elsewhere(const struct bpf_sk_lookup *ctx)
{
	__u32 a6[4];

	if (ctx->family == 2 /* AF_INET */)
		return !zt_loopback4(ctx->local_ip4) && !zt_pod_addr(ctx->local_ip4);
	if (ctx->family != 10 /* AF_INET6 */)
		return false;
	a6[0] = ctx->local_ip6[0];
	a6[1] = ctx->local_ip6[1];
	a6[2] = ctx->local_ip6[2];
	a6[3] = ctx->local_ip6[3];
	return !zt_loopback6(a6) && !zt_pod_addr6(a6);
}

/*
 * sk_lookup: a TCP connection that reached the pod's own stack over lo to an address that is
 * not the pod's was sent there by the capture route: outbound, for 15001. (The lookup cannot
 * tell the agent's own connection to the app from one that came from outside, both arrive
 * "from" the pod's interface: inbound is steered at tc ingress instead.)
 */
static __always_inline bool zt_outbound(const struct bpf_sk_lookup *ctx)
{
	return ctx->protocol == 6 /* IPPROTO_TCP */ && ctx->ingress_ifindex == loopback_ifindex &&
	       zt_elsewhere(ctx);
}

/*
 * sk_lookup, before zt_outbound: a DNS query (UDP or TCP to port 53) the pod sent to a resolver
 * that is not on loopback, routed to its own stack by the DNS rule, is for the agent's 15053
 * (upstream: UDP not on loopback, TCP not to 127.0.0.1). Only with dns_capture.
 */
static __always_inline bool zt_dns(const struct bpf_sk_lookup *ctx)
{
	return dns_capture && (ctx->family == 2 || (ctx->family == 10 && dns_capture == 2)) &&
	       (ctx->protocol == 17 /* IPPROTO_UDP */ || ctx->protocol == 6) &&
	       ctx->local_port == 53 && ctx->ingress_ifindex == loopback_ifindex &&
	       zt_elsewhere(ctx);
}

/* tc ingress on the pod's interfaces: a SYN from outside to the pod, not for 15008 and not a
 * kubelet probe, opens an inbound connection for 15006. */
static __always_inline bool zt_inbound_syn(__u32 saddr, __u32 daddr, __u16 dport_host, bool syn,
					   bool ack)
{
	return syn && !ack && zt_pod_addr(daddr) && saddr != probe_addr && dport_host != hbone_port;
}

/* The same for IPv6 (no kubelet probe address: probes come over IPv4). */
static __always_inline bool zt_inbound_syn6(const __u32 *daddr, __u16 dport_host, bool syn,
					    bool ack)
{
	return syn && !ack && zt_pod_addr6(daddr) && dport_host != hbone_port;
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
