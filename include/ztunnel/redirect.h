/* redirect: capture backends for a pod's network namespace (nftables over netlink, or none). */
#ifndef ZTUNNEL_REDIRECT_H
#define ZTUNNEL_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define REDIRECT_PORT_OUTBOUND 15001
#define REDIRECT_PORT_INBOUND_PLAIN 15006
#define REDIRECT_PORT_INBOUND_HBONE 15008
#define REDIRECT_PORT_DNS 15053
#define REDIRECT_AGENT_MARK 0x539	/* SO_MARK of every agent socket in a pod */
#define REDIRECT_CONN_MARK 0x111	/* connmark of connections from the agent's spoofed sockets */
#define REDIRECT_MARK_MASK 0xfff
#define REDIRECT_ROUTE_TABLE 100
#define REDIRECT_KUBELET_SNAT "169.254.7.127"

#define REDIRECT_MAX_ADDRS 8
#define REDIRECT_EBPF_RULE_PRIORITY 32760	/* ebpf backend: its policy rules, 32760-32763 */
#define REDIRECT_EBPF_TABLE 101			/* ebpf backend: "local default dev lo" */
#define REDIRECT_BPF_PIN_DIR "/sys/fs/bpf/ztunnel"	/* ZTUNNEL_BPF_PIN_DIR's default */

/* A pod as a capture backend sees it. The listeners are open before install. */
struct redirect_pod {
	const char *key;			/* the pod's uid: names what is kept for it */
	int netns_fd;				/* borrowed */
	uint32_t ipv4[REDIRECT_MAX_ADDRS];	/* the pod's IPv4 addresses, network order */
	unsigned n_ipv4;
	struct in6_addr ipv6[REDIRECT_MAX_ADDRS];	/* its IPv6 addresses */
	unsigned n_ipv6;
	int outbound_fd, inbound_fd;		/* listeners 15001 and 15006 (borrowed) */
	int dns_udp_fd, dns_tcp_fd;		/* the DNS proxy's (15053, borrowed) when the agent
						 * serves DNS, else -1 */
	int dns6_udp_fd, dns6_tcp_fd;		/* the DNS proxy's [::1] ones (IPV6_ENABLED), or -1 */
	uint16_t dns_port;			/* their port (DNS_PROXY_ADDR); 0 when DNS is off */
	bool dns_ipv6;				/* the DNS proxy listens on [::1] too: IPv6 DNS is
						 * redirected to it */
	void *state;				/* the backend's, from install to remove */
};

struct redirect;

/*
 * A capture backend: how a pod's traffic reaches the agent's listeners. install and remove run
 * in the pod's network namespace (the caller setns()es first) and leave the agent's own
 * sockets (r->mark) alone. install replaces or re-adopts what an earlier agent left (a restart
 * enrolls its pods again). 0, or -errno with a reason in err.
 */
struct redirect_ops {
	const char *name;
	int (*install)(const struct redirect *r, struct redirect_pod *pod, char *err,
		       size_t errlen);
	int (*remove)(const struct redirect *r, struct redirect_pod *pod, char *err,
		      size_t errlen);
	/* the destination the app asked for, of a socket accepted on 15001 or 15006 */
	int (*original_dst)(int fd, struct sockaddr_storage *dst);
	/* what the backend keeps in each pod, for /config_dump */
	const char *describe;
	/* at start-up: can this kernel and these privileges do it? NULL: nothing to check */
	int (*probe)(const struct redirect *r, char *err, size_t errlen);
	/* at start-up, before pods are enrolled again: drops what an earlier agent kept for pods
	 * that are gone. Returns how many, or -errno. NULL: nothing kept. */
	int (*restore)(const struct redirect *r);
	/* one pod's capture as a JSON object, for /config_dump. NULL: nothing per pod */
	void (*dump_pod)(const struct redirect *r, const struct redirect_pod *pod, FILE *out);
};

/* The capture the agent runs: a backend, the mark it leaves alone (PACKET_MARK, the same
 * value the agent's sockets carry) and where it may pin kernel objects. */
struct redirect {
	const struct redirect_ops *ops;
	uint32_t mark;
	const char *pin_dir;	/* ZTUNNEL_BPF_PIN_DIR (ebpf) */
};

/* The backend called name ("nftables", "ebpf", "none"); NULL if there is none such. */
const struct redirect_ops *redirect_backend(const char *name);
/* Checks that mark can tell the agent's sockets apart under the backends' rules (non-zero low
 * 12 bits, not the connection mark 0x111). 0, or -EINVAL with the reason in err. */
int redirect_mark_check(uint32_t mark, char *err, size_t errlen);
int redirect_pod_install(const struct redirect *r, struct redirect_pod *pod, char *err,
			 size_t errlen);
int redirect_pod_remove(const struct redirect *r, struct redirect_pod *pod, char *err,
			size_t errlen);
/* The backend's start-up check: 0, or -errno with the missing feature named in err. */
int redirect_probe(const struct redirect *r, char *err, size_t errlen);
/* The backend's start-up sweep (ops.restore); 0 or how many gone pods it cleaned. */
int redirect_restore(const struct redirect *r);
/* One pod's capture for /config_dump: a JSON object ({} when the backend keeps nothing). */
void redirect_pod_dump_json(const struct redirect *r, const struct redirect_pod *pod, FILE *out);
/* `ztunnel redirect-clean`: removes everything the ebpf backend pinned under r->pin_dir, and
 * each pod's rules where its netns is still found (in /run/netns, state_dir/netns or a
 * process). in_netns runs fn inside a netns. Reports to out; 0, or -errno if some failed. */
int redirect_clean(const struct redirect *r, const char *state_dir,
		   int (*in_netns)(int netns_fd, int (*fn)(void *), void *), FILE *out);
/* 0 with *dst filled, or -errno (the connection was not redirected). */
int redirect_original_dst(const struct redirect *r, int fd, struct sockaddr_storage *dst);
/* "redirect":{"backend":...,"mark":...,"inPod":...} for /config_dump. */
void redirect_dump_json(const struct redirect *r, FILE *out);

/*
 * The nftables backend installs ztunnel's capture in the current netns, the same rules
 * istio-cni's nftables backend writes (MARK below is the agent's mark, 0x539 by default):
 *  - tables inet istio-ambient-nat and inet istio-ambient-mangle (replaced if present);
 *  - mangle prerouting: mark MARK -> ct mark 0x111; mangle output: ct mark 0x111 -> mark;
 *  - nat prerouting: from 169.254.7.127 accept; TCP not to 127.0.0.1 (IPv6: ::1), dport !=
 *    15008, mark != MARK -> redirect :15006 (IPv4 and IPv6: the listeners are on [::]);
 *  - nat output: to 169.254.7.127 accept; with dns_port (the DNS proxy is on): IPv4 UDP dport
 *    53 not out of lo and TCP dport 53 not to 127.0.0.1, mark != MARK -> redirect :dns_port;
 *    with dns_ipv6 also (the proxy listens on [::1]) the same for IPv6 (TCP not to ::1);
 *    mark 0x111 accept; oif lo and daddr != 127.0.0.1 accept; TCP not to 127.0.0.1,
 *    mark != MARK -> redirect :15001;
 *  - ip rule fwmark 0x111/0xfff lookup 100 and "local 0.0.0.0/0 dev lo table 100" (v4 and v6),
 *    so replies to the agent's transparent sockets are delivered locally.
 * Marks compare under 0xfff, or exactly when MARK has higher bits. All over netlink
 * (libnftnl/libmnl); never runs nft or ip.
 */
int redirect_nft_install(uint32_t mark, uint16_t dns_port, bool dns_ipv6, char *err, size_t errlen);
/* Removes everything redirect_nft_install added in the current netns; absent pieces are fine. */
int redirect_nft_remove(uint32_t mark, char *err, size_t errlen);

/*
 * The ebpf backend, no nftables: policy rules route the pod's outbound TCP (and, with DNS, its
 * UDP to port 53; not the agent's marked sockets) to its own stack, where an sk_lookup program
 * attached to the pod's netns hands it to 15001 (15053); a tc ingress program (tcx) on the
 * pod's interfaces hands SYNs from outside (not 15008, not from 169.254.7.127) to 15006. No NAT
 * either way: the accepted socket's local address is the original destination. Sets
 * accept_local in the pod (replies routed to the pod's own stack have a non-local source that
 * the reverse-path check with these rules would otherwise call martian). Maps and links are
 * pinned in <pin dir>/<pod uid>/: a restarted agent updates the links in place (one copy,
 * no moment without capture) and takes over the maps.
 */
int redirect_ebpf_install(const struct redirect *r, struct redirect_pod *pod, char *err,
			  size_t errlen);
int redirect_ebpf_remove(const struct redirect *r, struct redirect_pod *pod, char *err,
			 size_t errlen);
/* Loads (and unloads) both programs once without attaching, checks tcx, and makes the pin dir
 * (mounting bpffs at /sys/fs/bpf if needed): 0 or -errno with the reason. */
int redirect_ebpf_probe(const struct redirect *r, char *err, size_t errlen);
void redirect_ebpf_dump_pod(const struct redirect *r, const struct redirect_pod *pod,
			    FILE *out);

/*
 * The socket fast path of the ebpf backend (ZTUNNEL_BPF_SOCKMAP=true): a sock_ops program on
 * the cgroup v2 root puts both ends of an in-pod leg (the app and the agent's socket, in one
 * enrolled pod netns) into a sockhash, and an sk_msg program hands each end's bytes straight to
 * the other's receive queue. Node-wide, once per agent: start before the first pod (mark is
 * PACKET_MARK, cgroup the cgroup v2 directory to attach to), stop after the last; the kernel
 * objects belong to the process and go when it exits. 0, or -errno with the failing step in
 * err. Without start, the pod calls do nothing.
 */
int redirect_sockmap_start(const char *cgroup, uint32_t mark, char *err, size_t errlen);
void redirect_sockmap_stop(void);
/* The cgroup v2 root: /sys/fs/cgroup/unified in hybrid mode, else /sys/fs/cgroup. */
const char *redirect_sockmap_default_cgroup(void);
/* Run in the pod's netns (ebpf install and remove): lists it, with its addresses, among the
 * netns whose legs are short-circuited; pod_del takes it out (open pairs finish as they are).
 * pod_add: 0 or -errno with the reason in err. */
int redirect_sockmap_pod_add(const struct redirect_pod *pod, char *err, size_t errlen);
void redirect_sockmap_pod_del(void);
/* "sockmap":{"enabled":...,counters} for /config_dump. */
void redirect_sockmap_dump_json(FILE *out);

#endif
