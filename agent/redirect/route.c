/* redirect/route: the fwmark policy rule and table-100 local routes, over rtnetlink. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"

#define ROUTE_RULE_PRIORITY 32764	/* istio-cni's (and Cilium's) in-pod rule preference */

/* One address family; IPv6 pieces are skipped when the netns has no IPv6. */
static const struct route_family {
	int family;
	const char *name;
} route_families[] = {
	{ AF_INET, "ipv4" },
	{ AF_INET6, "ipv6" },
};

/* "ip rule add|del fwmark 0x111/0xfff pref 32764 lookup 100" */
static struct nlmsghdr *route_rule_msg(char *buf, int family, bool add, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;

	nlh->nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	nlh->nlmsg_seq = seq;
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)family;
	frh->table = REDIRECT_ROUTE_TABLE;
	frh->action = FR_ACT_TO_TBL;
	mnl_attr_put_u32(nlh, FRA_PRIORITY, ROUTE_RULE_PRIORITY);
	mnl_attr_put_u32(nlh, FRA_FWMARK, REDIRECT_CONN_MARK);
	mnl_attr_put_u32(nlh, FRA_FWMASK, REDIRECT_MARK_MASK);
	mnl_attr_put_u32(nlh, FRA_TABLE, REDIRECT_ROUTE_TABLE);
	return nlh;
}

struct nlmsghdr *redirect_local_route_msg(char *buf, int family, uint32_t table,
					  const void *prefsrc, uint32_t lo, bool add, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	nlh->nlmsg_seq = seq;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_table = (uint8_t)table;
	rtm->rtm_type = RTN_LOCAL;
	/* As ip(8) does: scope host and proto boot to add, any scope and proto to delete. */
	rtm->rtm_scope = add ? RT_SCOPE_HOST : RT_SCOPE_NOWHERE;
	rtm->rtm_protocol = add ? RTPROT_BOOT : RTPROT_UNSPEC;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	mnl_attr_put_u32(nlh, RTA_OIF, lo);
	if (add && prefsrc)
		mnl_attr_put(nlh, RTA_PREFSRC, family == AF_INET6 ? 16 : 4, prefsrc);
	return nlh;
}

/* Errors that mean "already in the wanted state" or "this family is off in this netns". */
static bool route_benign(int ret, bool add, int family)
{
	if (add && ret == -EEXIST)
		return true;
	if (!add && (ret == -ENOENT || ret == -ESRCH))
		return true;
	return family == AF_INET6 && (ret == -EAFNOSUPPORT || ret == -EOPNOTSUPP);
}

static int route_family_apply(struct mnl_socket *nl, const struct route_family *f, bool add,
			      uint32_t *seq, uint32_t lo, char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
	char why[160];
	struct nlmsghdr *nlh;
	int ret;

	nlh = route_rule_msg(buf, f->family, add, (*seq)++);
	ret = redirect_nl_request(nl, nlh, why, sizeof(why));
	if (ret < 0 && !route_benign(ret, add, f->family)) {
		snprintf(err, errlen, "%s %s rule fwmark 0x%x/0x%x lookup %d: %s%s%s",
			 add ? "adding" : "deleting", f->name, REDIRECT_CONN_MARK,
			 REDIRECT_MARK_MASK, REDIRECT_ROUTE_TABLE, strerror(-ret),
			 why[0] ? ": " : "", why);
		return ret;
	}
	if (f->family == AF_INET6 && (ret == -EAFNOSUPPORT || ret == -EOPNOTSUPP))
		return 0;	/* IPv6 disabled: no route to add or delete either */
	nlh = redirect_local_route_msg(buf, f->family, REDIRECT_ROUTE_TABLE, NULL, lo, add, (*seq)++);
	ret = redirect_nl_request(nl, nlh, why, sizeof(why));
	if (ret < 0 && !route_benign(ret, add, f->family)) {
		snprintf(err, errlen, "%s %s local default route dev lo table %d: %s%s%s",
			 add ? "adding" : "deleting", f->name, REDIRECT_ROUTE_TABLE,
			 strerror(-ret), why[0] ? ": " : "", why);
		return ret;
	}
	return 0;
}

int redirect_route_apply(bool install, char *err, size_t errlen)
{
	struct mnl_socket *nl;
	uint32_t seq = (uint32_t)time(NULL);
	char scratch[160] = "";
	unsigned int lo;
	int ret = 0, r;

	lo = if_nametoindex("lo");
	if (!lo) {
		snprintf(err, errlen, "routes: no loopback device: %s", strerror(errno));
		return -ENODEV;
	}
	nl = redirect_nl_open(NETLINK_ROUTE);
	if (!nl) {
		ret = -errno;
		snprintf(err, errlen, "routes: netlink socket: %s", strerror(errno));
		return ret;
	}
	for (size_t i = 0; i < sizeof(route_families) / sizeof(route_families[0]); i++) {
		/* Removal carries on past a failure so that as much as possible goes; err keeps
		 * the first reason. */
		r = route_family_apply(nl, &route_families[i], install, &seq, lo,
				       ret ? scratch : err, ret ? sizeof(scratch) : errlen);
		if (r < 0 && !ret)
			ret = r;
		if (ret < 0 && install)
			break;
	}
	mnl_socket_close(nl);
	return ret;
}
