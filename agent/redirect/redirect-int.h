/* redirect-int: private interface shared by the redirect module's files (netlink plumbing). */
#ifndef ZTUNNEL_REDIRECT_INT_H
#define ZTUNNEL_REDIRECT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

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
int redirect_nft_apply(bool install, uint32_t mark, uint16_t dns_port, char *err, size_t errlen);
/* The mask agent-mark matches compare under: 0xfff, or all bits for a mark above it. */
uint32_t redirect_agent_mask(uint32_t mark);
/* Adds or deletes the ebpf backend's policy rules and table-101 route (src: the pod's IPv4
 * address, network order); idempotent. */
int redirect_ebpf_rules_apply(bool install, uint32_t mark, uint32_t src, char *err,
			      size_t errlen);
/* Builds "ip route add|del local default dev lo [src prefsrc] table T" (prefsrc network order,
 * 0 for none; only on add) in buf. */
struct nlmsghdr *redirect_local_route_msg(char *buf, int family, uint32_t table,
					  uint32_t prefsrc, uint32_t lo, bool add, uint32_t seq);
/* Adds or deletes the fwmark rule and table-100 local routes, v4 and v6; idempotent. */
int redirect_route_apply(bool install, char *err, size_t errlen);

#endif
