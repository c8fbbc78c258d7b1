/* redirect-int: private interface shared by the redirect module's files (netlink plumbing). */
#ifndef ZTUNNEL_REDIRECT_INT_H
#define ZTUNNEL_REDIRECT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include <libmnl/libmnl.h>

struct redirect;

#define REDIRECT_NL_TIMEOUT_MS 5000	/* bound on waiting for a kernel ack */

/* Opens a netlink socket on bus (NETLINK_ROUTE, NETLINK_NETFILTER) in the calling thread's
 * netns with capped and extended acks; NULL with errno set on failure. Caller closes it. */
struct mnl_socket *redirect_nl_open(int bus);
/* Reads one datagram into buf, waiting at most REDIRECT_NL_TIMEOUT_MS (0: don't wait).
 * Returns its length, or -errno (-EAGAIN when nothing arrived in time). */
ssize_t redirect_nl_recv(struct mnl_socket *nl, void *buf, size_t len, int timeout_ms);
/* Given an NLMSG_ERROR message, returns its error (0 for an ack, else -errno) and copies the
 * kernel's extended-ack text, if any, into why (always NUL-terminated; "" if none). */
int redirect_nl_ack(const struct nlmsghdr *nlh, char *why, size_t whylen);
/* Sends one request (which must carry NLM_F_ACK) and waits for its ack. 0 or -errno. */
int redirect_nl_request(struct mnl_socket *nl, struct nlmsghdr *nlh, char *why, size_t whylen);

/* Installs (replacing) or removes the two istio-ambient nftables tables in one transaction;
 * mark is the agent sockets' mark the rules leave alone; dns_port: the DNS rules' target
 * (0: no DNS rules). */
int redirect_nft_apply(bool install, uint32_t mark, uint16_t dns_port, bool dns_ipv6, char *err,
		       size_t errlen);
/* The mask agent-mark matches compare under: 0xfff, or all bits for a mark above it. */
uint32_t redirect_agent_mask(uint32_t mark);
/* What the ebpf backend's policy rules of one pod are made of. */
struct redirect_ebpf_rules {
	uint32_t src;			/* the pod's IPv4 address (table 101's src), network order */
	const struct in6_addr *src6;	/* its IPv6 one, or NULL: no IPv6 rules */
	bool dns, dns6;			/* the UDP port-53 rule, in IPv4 / IPv6 */
};
/* Adds (want) or deletes (want NULL: all of them, both families) the ebpf backend's policy rules
 * and table-101 routes; a piece the install does not want is deleted; idempotent. */
int redirect_ebpf_rules_apply(uint32_t mark, const struct redirect_ebpf_rules *want, char *err,
			      size_t errlen);

/* tc links (tcx, kernel 6.6): the values of the kernel's enums, which Debian 12's 6.1 uapi
 * headers predate. */
#define REDIRECT_BPF_TCX_INGRESS 46	/* enum bpf_attach_type BPF_TCX_INGRESS */
#define REDIRECT_BPF_LINK_TCX 11	/* enum bpf_link_type BPF_LINK_TYPE_TCX */

/* The ebpf backend's pins (ebpf_pins.c). The pin dir exists on bpffs, mounting bpffs at
 * /sys/fs/bpf first if needed: 0, or -errno with the reason in err. */
int redirect_ebpf_pins_ready(const char *dir, char *err, size_t errlen);
/* <dir>/<key> into buf, and made (pod_dir) or not (pod_path). 0 or -errno. */
int redirect_ebpf_pod_path(const char *dir, const char *key, char *buf, size_t len);
int redirect_ebpf_pod_dir(const char *dir, const char *key, char *buf, size_t len);
/* Detaches the pinned links of a pod's directory and removes it; *accept_local_was (if not
 * NULL) gets the pod's accept_local before the first install, or -1 if unknown. Returns the
 * number of objects removed, or -errno. */
int redirect_ebpf_unpin(const char *pod_dir, int *accept_local_was);
/* Unpins the pods under dir whose netns is gone; how many, or -errno. */
int redirect_ebpf_sweep(const char *dir);
int redirect_ebpf_clean(const struct redirect *r, const char *state_dir,
			int (*in_netns)(int netns_fd, int (*fn)(void *), void *), FILE *out);
/* Sets accept_local on every interface of the calling thread's netns over rtnetlink (works where
 * /proc/sys is read-only); *was (if not NULL) gets whether it was on before. 0 or -errno. */
int redirect_ebpf_accept_local(bool on, bool *was, char *err, size_t errlen);
/* The sum over CPUs of key's value in a per-CPU array of u64 (ebpf.c). 0 or -errno (*sum 0). */
int redirect_bpf_percpu_sum(int map_fd, uint32_t key, uint64_t *sum);
/* Builds "ip route add|del local default dev lo [src prefsrc] table T" (prefsrc: a struct
 * in_addr or in6_addr of family, or NULL for none; only on add) in buf. */
struct nlmsghdr *redirect_local_route_msg(char *buf, int family, uint32_t table,
					  const void *prefsrc, uint32_t lo, bool add, uint32_t seq);
/* Adds or deletes the fwmark rule and table-100 local routes, v4 and v6; idempotent. */
int redirect_route_apply(bool install, char *err, size_t errlen);

#endif
