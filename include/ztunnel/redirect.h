/* redirect: capture rules inside a pod's network namespace (nftables over netlink, policy routing). */
#ifndef ZTUNNEL_REDIRECT_H
#define ZTUNNEL_REDIRECT_H

#include <stddef.h>
#include <stdint.h>

#define REDIRECT_PORT_OUTBOUND 15001
#define REDIRECT_PORT_INBOUND_PLAIN 15006
#define REDIRECT_PORT_INBOUND_HBONE 15008
#define REDIRECT_PORT_DNS 15053
#define REDIRECT_AGENT_MARK 0x539	/* SO_MARK of every agent socket in a pod */
#define REDIRECT_CONN_MARK 0x111	/* connmark of connections from the agent's spoofed sockets */
#define REDIRECT_MARK_MASK 0xfff
#define REDIRECT_ROUTE_TABLE 100
#define REDIRECT_KUBELET_SNAT "169.254.7.127"

/*
 * Installs ztunnel's capture in the network namespace the calling thread is in (the caller
 * setns()es first), the same rules istio-cni's nftables backend writes:
 *  - tables inet istio-ambient-nat and inet istio-ambient-mangle (replaced if present);
 *  - mangle prerouting: mark 0x539 -> ct mark 0x111; mangle output: ct mark 0x111 -> mark;
 *  - nat prerouting: from 169.254.7.127 accept; TCP not to 127.0.0.1, dport != 15008,
 *    mark != 0x539 -> redirect :15006;
 *  - nat output: to 169.254.7.127 accept; mark 0x111 accept; oif lo and daddr != 127.0.0.1
 *    accept; TCP not to 127.0.0.1, mark != 0x539 -> redirect :15001;
 *  - ip rule fwmark 0x111/0xfff lookup 100 and "local 0.0.0.0/0 dev lo table 100" (v4 and v6),
 *    so replies to the agent's transparent sockets are delivered locally.
 * All over netlink (libnftnl/libmnl); never runs nft or ip. 0, or -errno with a reason in err.
 */
int redirect_install(char *err, size_t errlen);
/* Removes everything redirect_install added in the current netns; absent pieces are fine. */
int redirect_remove(char *err, size_t errlen);

#endif
