/* redirect ebpf rules: the policy rules that route a pod's outbound TCP to its own stack, where
 * the sk_lookup program hands it to the agent (no nftables: routing and a socket lookup). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <net/if.h>
#include <netinet/in.h>

#include <linux/fib_rules.h>
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
 * pod's, not the destination's as a plain local route would give).
 */
enum { RULE_MARK, RULE_PROBE, RULE_TCP, RULE_DNS, RULES };

static struct nlmsghdr *rule_msg(char *buf, int which, uint32_t mark, bool add, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;
	struct in_addr probe;

	nlh->nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	nlh->nlmsg_seq = seq;
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = AF_INET;
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

int redirect_ebpf_rules_apply(bool install, uint32_t mark, uint32_t src, bool dns, char *err,
			      size_t errlen)
{
	static const char *const what[RULES + 1] = { "fwmark rule", "kubelet probe rule",
						     "ipproto tcp rule", "udp dport 53 rule",
						     "table 101 local route" };
	char buf[MNL_SOCKET_BUFFER_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
	uint32_t seq = (uint32_t)time(NULL);
	struct mnl_socket *nl = redirect_nl_open(NETLINK_ROUTE);
	char why[160];
	int ret = 0;

	if (!nl) {
		ret = -errno;
		snprintf(err, errlen, "rules: netlink socket: %s", strerror(errno));
		return ret;
	}
	for (int i = 0; i <= RULES; i++) {
		/* without DNS its rule goes, if an earlier install with DNS left it */
		bool add = install && (i != RULE_DNS || dns);
		struct nlmsghdr *nlh = i < RULES ? rule_msg(buf, i, mark, add, seq++) :
				       redirect_local_route_msg(buf, AF_INET, REDIRECT_EBPF_TABLE, src,
								if_nametoindex("lo"), add, seq++);
		int r = redirect_nl_request(nl, nlh, why, sizeof(why));

		if (r == 0 || (add && r == -EEXIST) || (!add && (r == -ENOENT || r == -ESRCH)))
			continue;
		if (!ret) {
			ret = r;
			snprintf(err, errlen, "%s ipv4 %s: %s%s%s", add ? "adding" : "deleting",
				 what[i], strerror(-r), why[0] ? ": " : "", why);
		}
		if (install)
			break;
	}
	mnl_socket_close(nl);
	return ret;
}
