/* redirect ebpf rules: the policy rules that route a pod's outbound TCP to its own stack, where
 * the sk_lookup program hands it to the agent (no nftables: routing and a socket lookup). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <net/if.h>
#include <netinet/in.h>

#include <linux/fib_rules.h>
#include <linux/ip.h>
#include <linux/rtnetlink.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"

/*
 * In the pod netns, before the main table (local destinations never get this far: the local
 * table comes first):
 *   32760  fwmark MARK/mask lookup main       the agent's own sockets leave as usual
 *   32761  to 169.254.7.127 lookup main       replies to kubelet probes
 *   32762  ipproto tcp lookup 101             the rest of TCP: table 101 says "local", so it
 *                                             is delivered here and sk_lookup steers it
 *   32763  ipproto udp dport 53 lookup 101    DNS queries, only when the agent serves DNS
 * and table 101: "local default dev lo src <pod ip>" (the source an app's socket gets is the
 * pod's, not the destination's as a plain local route would give). A pod with an IPv6 address
 * gets the same in IPv6 (no probe rule: probes come over IPv4; the DNS rule when the agent
 * serves DNS on [::1] too), table 101 with "local ::/0 dev lo src <pod ipv6>".
 */
enum { RULE_MARK, RULE_PROBE, RULE_TCP, RULE_DNS, RULES };

static struct nlmsghdr *rule_msg(char *buf, int family, int which, uint32_t mark, bool add,
				 uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;
	struct in_addr probe;

	nlh->nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	nlh->nlmsg_seq = seq;
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)family;
	frh->action = FR_ACT_TO_TBL;
	frh->table = which >= RULE_TCP ? REDIRECT_EBPF_TABLE : RT_TABLE_MAIN;
	mnl_attr_put_u32(nlh, FRA_PRIORITY, REDIRECT_EBPF_RULE_PRIORITY + (uint32_t)which);
	mnl_attr_put_u32(nlh, FRA_TABLE, frh->table);
	switch (which) {
	case RULE_MARK:
		mnl_attr_put_u32(nlh, FRA_FWMARK, mark);
		mnl_attr_put_u32(nlh, FRA_FWMASK, redirect_agent_mask(mark));
		break;
	case RULE_PROBE:
		inet_pton(AF_INET, REDIRECT_KUBELET_SNAT, &probe);
		frh->dst_len = 32;
		mnl_attr_put(nlh, FRA_DST, sizeof(probe), &probe);
		break;
	case RULE_TCP:
		mnl_attr_put_u8(nlh, FRA_IP_PROTO, IPPROTO_TCP);
		break;
	default: {
		struct fib_rule_port_range dns = { 53, 53 };

		mnl_attr_put_u8(nlh, FRA_IP_PROTO, IPPROTO_UDP);
		mnl_attr_put(nlh, FRA_DPORT_RANGE, sizeof(dns), &dns);
		break;
	}
	}
	return nlh;
}

/* Whether rule `which` (RULES: the table 101 route) of family is wanted by this install. */
static bool wanted(const struct redirect_ebpf_rules *want, int family, int which)
{
	if (!want)
		return false;
	if (family == AF_INET6 && (!want->src6 || which == RULE_PROBE))
		return false;
	if (which == RULE_DNS)
		return family == AF_INET6 ? want->dns6 : want->dns;
	return true;
}

static int family_apply(struct mnl_socket *nl, int family, const struct redirect_ebpf_rules *want,
			uint32_t mark, uint32_t *seq, char *err, size_t errlen)
{
	static const char *const what[RULES + 1] = { "fwmark rule", "kubelet probe rule",
						     "ipproto tcp rule", "udp dport 53 rule",
						     "table 101 local route" };
	char buf[MNL_SOCKET_BUFFER_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
	const void *src = family == AF_INET6 ? (const void *)(want ? want->src6 : NULL) :
					       (const void *)(want ? &want->src : NULL);
	char why[160];
	int ret = 0;

	for (int i = 0; i <= RULES; i++) {
		/* what this install does not want goes, if an earlier one left it */
		bool add = wanted(want, family, i);
		struct nlmsghdr *nlh = i < RULES ? rule_msg(buf, family, i, mark, add, (*seq)++) :
				       redirect_local_route_msg(buf, family, REDIRECT_EBPF_TABLE,
								add ? src : NULL,
								if_nametoindex("lo"), add, (*seq)++);
		int r;

		if (family == AF_INET6 && i == RULE_PROBE)
			continue;
		r = redirect_nl_request(nl, nlh, why, sizeof(why));
		if (r == 0 || (add && r == -EEXIST) || (!add && (r == -ENOENT || r == -ESRCH)) ||
		    (!add && family == AF_INET6 && (r == -EAFNOSUPPORT || r == -EOPNOTSUPP)))
			continue;
		if (!ret) {
			ret = r;
			snprintf(err, errlen, "%s %s %s: %s%s%s", add ? "adding" : "deleting",
				 family == AF_INET6 ? "ipv6" : "ipv4", what[i], strerror(-r),
				 why[0] ? ": " : "", why);
		}
		if (want)
			break;
	}
	return ret;
}

int redirect_ebpf_rules_apply(uint32_t mark, const struct redirect_ebpf_rules *want, char *err,
			      size_t errlen)
{
	uint32_t seq = (uint32_t)time(NULL);
	struct mnl_socket *nl = redirect_nl_open(NETLINK_ROUTE);
	char scratch[160];
	int ret, r;

	if (!nl) {
		ret = -errno;
		snprintf(err, errlen, "rules: netlink socket: %s", strerror(errno));
		return ret;
	}
	ret = family_apply(nl, AF_INET, want, mark, &seq, err, errlen);
	if (ret == 0 || !want) {
		/* a removal goes on past a failure; err keeps the first reason */
		r = family_apply(nl, AF_INET6, want, mark, &seq, ret ? scratch : err,
				 ret ? sizeof(scratch) : errlen);
		if (!ret)
			ret = r;
	}
	mnl_socket_close(nl);
	return ret;
}

/* "ip link set" IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF accept_local=value on ifindex. */
static struct nlmsghdr *accept_local_msg(char *buf, unsigned ifindex, bool on, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nlattr *spec, *inet, *conf;
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)ifindex;
	spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
	inet = mnl_attr_nest_start(nlh, AF_INET);
	conf = mnl_attr_nest_start(nlh, IFLA_INET_CONF);
	mnl_attr_put_u32(nlh, IPV4_DEVCONF_ACCEPT_LOCAL, on ? 1 : 0);
	mnl_attr_nest_end(nlh, conf);
	mnl_attr_nest_end(nlh, inet);
	mnl_attr_nest_end(nlh, spec);
	return nlh;
}

/*
 * accept_local on every interface of the calling thread's netns: the value the kernel checks
 * is conf/all OR conf/<dev>, so this is what conf/all=1 would do for the pod's interfaces. Set
 * over rtnetlink, not /proc/sys, which a container (as Kubernetes runs an unprivileged one) has
 * read-only; the old value is read from /proc/sys (conf/all OR conf/lo).
 */
int redirect_ebpf_accept_local(bool on, bool *was, char *err, size_t errlen)
{
	static const char *const before[] = { "/proc/sys/net/ipv4/conf/all/accept_local",
					      "/proc/sys/net/ipv4/conf/lo/accept_local" };
	char buf[MNL_SOCKET_BUFFER_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct mnl_socket *nl;
	struct if_nameindex *ifs;
	uint32_t seq = (uint32_t)time(NULL);
	char why[160], old;
	int ret = 0;

	for (size_t i = 0; was && i < sizeof(before) / sizeof(before[0]); i++) {
		int fd = open(before[i], O_RDONLY | O_CLOEXEC);

		if (i == 0)
			*was = false;
		if (fd >= 0 && read(fd, &old, 1) == 1 && old == '1')
			*was = true;
		if (fd >= 0)
			close(fd);
	}
	ifs = if_nameindex();
	nl = redirect_nl_open(NETLINK_ROUTE);
	if (!ifs || !nl) {
		ret = -errno;
		snprintf(err, errlen, "accept_local: %s: %s", ifs ? "netlink socket" : "interfaces",
			 strerror(errno));
		goto out;
	}
	for (struct if_nameindex *i = ifs; i->if_index && ret == 0; i++) {
		ret = redirect_nl_request(nl, accept_local_msg(buf, i->if_index, on, seq++), why,
					  sizeof(why));
		if (ret == -ENODEV)	/* gone meanwhile */
			ret = 0;
		if (ret < 0)
			snprintf(err, errlen, "setting accept_local on %s: %s%s%s", i->if_name,
				 strerror(-ret), why[0] ? ": " : "", why);
	}
out:
	if (nl)
		mnl_socket_close(nl);
	if (ifs)
		if_freenameindex(ifs);
	return ret;
}
