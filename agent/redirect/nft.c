/* redirect/nft: the istio-ambient nftables tables, written over nfnetlink in one transaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"

#define NFT_NAT "istio-ambient-nat"
#define NFT_MANGLE "istio-ambient-mangle"
#define NFT_MAX_MATCH 6
#define NFT_MAX_MSGS 64
#define NFT_BATCH_SIZE (64 * 1024)

/*
 * The rules, as istio-cni's nftables backend writes them. The tables are "inet", so one rule set
 * sees IPv4 and IPv6: every rule that tests an address is pinned to its family with
 * "meta nfproto" and written once for IPv4 (127.0.0.1) and once for IPv6 (::1); the kubelet SNAT
 * address 169.254.7.127 only exists in IPv4. Marks are compared under the 0xfff mask.
 * The DNS rules are written only when the DNS proxy is on (a port to redirect to), the IPv6 ones
 * only when it also listens on [::1] (IPV6_ENABLED). Not written: the raw table's conntrack zone
 * for UDP 53, nor a kubelet-probe exception for IPv6 (there is no IPv6 SNAT address here).
 */
enum nft_match_kind {
	M_END = 0,
	M_NFPROTO,	/* meta nfproto == val */
	M_L4PROTO,	/* meta l4proto == val */
	M_SADDR4,	/* ip saddr (==|!=) addr */
	M_DADDR4,	/* ip daddr (==|!=) addr */
	M_DADDR6,	/* ip6 daddr (==|!=) addr */
	M_DPORT,	/* tcp dport (==|!=) val */
	M_MARK,		/* meta mark & 0xfff (==|!=) val */
	M_CTMARK,	/* ct mark & 0xfff (==|!=) val */
	M_AGENT_MARK,	/* meta mark & agent mask (==|!=) the agent's mark */
	M_OIF_LO,	/* oifname (==|!=) "lo" */
};

enum nft_action {
	A_ACCEPT,
	A_REDIRECT,	/* redirect to :port */
	A_CTMARK_SET,	/* ct mark set ct mark & ~0xfff ^ 0x111 (CONNMARK --set-xmark) */
	A_MARK_SET,	/* meta mark set mark & ~0xfff ^ 0x111 (CONNMARK --restore-mark) */
};

struct nft_match {
	enum nft_match_kind kind;
	bool neq;
	uint32_t val;
	const char *addr;
};

struct nft_rule_spec {
	const char *table;
	const char *chain;
	struct nft_match match[NFT_MAX_MATCH];
	enum nft_action action;
	uint16_t port;		/* redirect target */
	uint8_t dns;		/* NFT_DNS4/6: a DNS rule, only with the proxy on (IPv6: with its
				 * [::1] listener), to its port */
};

enum { NFT_NOT_DNS, NFT_DNS4, NFT_DNS6 };

struct nft_chain_spec {
	const char *table;
	const char *name;
	const char *type;
	uint32_t hook;
	int32_t prio;
};

#define IS_V4 { M_NFPROTO, false, NFPROTO_IPV4, NULL }
#define IS_V6 { M_NFPROTO, false, NFPROTO_IPV6, NULL }
#define IS_TCP { M_L4PROTO, false, IPPROTO_TCP, NULL }
#define IS_UDP { M_L4PROTO, false, IPPROTO_UDP, NULL }
#define DPORT_DNS { M_DPORT, false, 53, NULL }
#define NOT_OIF_LO { M_OIF_LO, true, 0, NULL }
#define NOT_LOCAL4 { M_DADDR4, true, 0, "127.0.0.1" }
#define NOT_LOCAL6 { M_DADDR6, true, 0, "::1" }
#define NOT_AGENT { M_AGENT_MARK, true, 0, NULL }
#define IS_AGENT { M_AGENT_MARK, false, 0, NULL }
#define NOT_HBONE { M_DPORT, true, REDIRECT_PORT_INBOUND_HBONE, NULL }
#define OIF_LO { M_OIF_LO, false, 0, NULL }
#define MARK_IS(v) { M_MARK, false, (v), NULL }
#define CTMARK_IS(v) { M_CTMARK, false, (v), NULL }
#define SADDR4_IS(a) { M_SADDR4, false, 0, (a) }
#define DADDR4_IS(a) { M_DADDR4, false, 0, (a) }

static const struct nft_chain_spec nft_chains[] = {
	{ NFT_NAT, "prerouting", "nat", NF_INET_PRE_ROUTING, -100 },
	{ NFT_NAT, "output", "nat", NF_INET_LOCAL_OUT, -100 },
	{ NFT_MANGLE, "prerouting", "filter", NF_INET_PRE_ROUTING, -150 },
	{ NFT_MANGLE, "output", "route", NF_INET_LOCAL_OUT, -150 },
};

static const struct nft_rule_spec nft_rules[] = {
	{ NFT_MANGLE, "prerouting", { IS_AGENT }, A_CTMARK_SET, 0, NFT_NOT_DNS },
	{ NFT_MANGLE, "output", { CTMARK_IS(REDIRECT_CONN_MARK) }, A_MARK_SET, 0, NFT_NOT_DNS },
	{ NFT_NAT, "prerouting", { IS_V4, SADDR4_IS(REDIRECT_KUBELET_SNAT) }, A_ACCEPT, 0,
	  NFT_NOT_DNS },
	{ NFT_NAT, "prerouting", { IS_V4, IS_TCP, NOT_LOCAL4, NOT_HBONE, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_INBOUND_PLAIN, NFT_NOT_DNS },
	{ NFT_NAT, "prerouting", { IS_V6, IS_TCP, NOT_LOCAL6, NOT_HBONE, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_INBOUND_PLAIN, NFT_NOT_DNS },
	{ NFT_NAT, "output", { IS_V4, DADDR4_IS(REDIRECT_KUBELET_SNAT) }, A_ACCEPT, 0,
	  NFT_NOT_DNS },
	{ NFT_NAT, "output", { IS_V4, IS_UDP, DPORT_DNS, NOT_OIF_LO, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_DNS, NFT_DNS4 },
	{ NFT_NAT, "output", { IS_V4, IS_TCP, DPORT_DNS, NOT_LOCAL4, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_DNS, NFT_DNS4 },
	{ NFT_NAT, "output", { IS_V6, IS_UDP, DPORT_DNS, NOT_OIF_LO, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_DNS, NFT_DNS6 },
	{ NFT_NAT, "output", { IS_V6, IS_TCP, DPORT_DNS, NOT_LOCAL6, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_DNS, NFT_DNS6 },
	{ NFT_NAT, "output", { MARK_IS(REDIRECT_CONN_MARK) }, A_ACCEPT, 0, NFT_NOT_DNS },
	{ NFT_NAT, "output", { OIF_LO, IS_V4, NOT_LOCAL4 }, A_ACCEPT, 0, NFT_NOT_DNS },
	{ NFT_NAT, "output", { OIF_LO, IS_V6, NOT_LOCAL6 }, A_ACCEPT, 0, NFT_NOT_DNS },
	{ NFT_NAT, "output", { IS_V4, IS_TCP, NOT_LOCAL4, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_OUTBOUND, NFT_NOT_DNS },
	{ NFT_NAT, "output", { IS_V6, IS_TCP, NOT_LOCAL6, NOT_AGENT }, A_REDIRECT,
	  REDIRECT_PORT_OUTBOUND, NFT_NOT_DNS },
};

/* Expressions are appended to one rule; the first failure sticks in err. */
struct nft_rule_builder {
	struct nftnl_rule *rule;
	uint32_t mark;		/* the agent's */
	uint16_t dns_port;
	int err;
};

static struct nftnl_expr *rb_expr(struct nft_rule_builder *rb, const char *name)
{
	struct nftnl_expr *e;

	if (rb->err)
		return NULL;
	e = nftnl_expr_alloc(name);
	if (!e) {
		rb->err = -ENOMEM;
		return NULL;
	}
	nftnl_rule_add_expr(rb->rule, e);	/* the rule owns it from here */
	return e;
}

static void rb_meta(struct nft_rule_builder *rb, uint32_t key, bool set)
{
	struct nftnl_expr *e = rb_expr(rb, "meta");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, set ? NFTNL_EXPR_META_SREG : NFTNL_EXPR_META_DREG, NFT_REG_1);
}

static void rb_ct(struct nft_rule_builder *rb, uint32_t key, bool set)
{
	struct nftnl_expr *e = rb_expr(rb, "ct");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
	nftnl_expr_set_u32(e, set ? NFTNL_EXPR_CT_SREG : NFTNL_EXPR_CT_DREG, NFT_REG_1);
}

static void rb_payload(struct nft_rule_builder *rb, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "payload");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
}

/* reg1 = (reg1 & mask) ^ xor, on a 32-bit host-order value. */
static void rb_bitwise(struct nft_rule_builder *rb, uint32_t mask, uint32_t xor)
{
	struct nftnl_expr *e = rb_expr(rb, "bitwise");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
	nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor, sizeof(xor));
}

static void rb_cmp(struct nft_rule_builder *rb, bool neq, const void *data, uint32_t len)
{
	struct nftnl_expr *e = rb_expr(rb, "cmp");

	if (!e)
		return;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, neq ? NFT_CMP_NEQ : NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
}

static void rb_addr(struct nft_rule_builder *rb, const struct nft_match *m, int af, uint32_t off)
{
	unsigned char a[sizeof(struct in6_addr)];
	uint32_t len = af == AF_INET ? 4 : 16;

	if (!m->addr || inet_pton(af, m->addr, a) != 1) {
		rb->err = rb->err ? rb->err : -EINVAL;
		return;
	}
	rb_payload(rb, NFT_PAYLOAD_NETWORK_HEADER, off, len);
	rb_cmp(rb, m->neq, a, len);
}

static void rb_match(struct nft_rule_builder *rb, const struct nft_match *m)
{
	uint8_t u8 = (uint8_t)m->val;
	uint16_t port = htons((uint16_t)m->val);
	char ifname[IFNAMSIZ] = "lo";

	switch (m->kind) {
	case M_NFPROTO:
	case M_L4PROTO:
		rb_meta(rb, m->kind == M_NFPROTO ? NFT_META_NFPROTO : NFT_META_L4PROTO, false);
		rb_cmp(rb, m->neq, &u8, sizeof(u8));
		break;
	case M_SADDR4:
		rb_addr(rb, m, AF_INET, 12);
		break;
	case M_DADDR4:
		rb_addr(rb, m, AF_INET, 16);
		break;
	case M_DADDR6:
		rb_addr(rb, m, AF_INET6, 24);
		break;
	case M_DPORT:
		rb_payload(rb, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(port));
		rb_cmp(rb, m->neq, &port, sizeof(port));
		break;
	case M_MARK:
	case M_CTMARK:
		if (m->kind == M_MARK)
			rb_meta(rb, NFT_META_MARK, false);
		else
			rb_ct(rb, NFT_CT_MARK, false);
		rb_bitwise(rb, REDIRECT_MARK_MASK, 0);
		rb_cmp(rb, m->neq, &m->val, sizeof(m->val));
		break;
	case M_AGENT_MARK:
		rb_meta(rb, NFT_META_MARK, false);
		rb_bitwise(rb, redirect_agent_mask(rb->mark), 0);
		rb_cmp(rb, m->neq, &rb->mark, sizeof(rb->mark));
		break;
	case M_OIF_LO:
		rb_meta(rb, NFT_META_OIFNAME, false);
		rb_cmp(rb, m->neq, ifname, sizeof(ifname));
		break;
	case M_END:
		break;
	}
}

static void rb_action(struct nft_rule_builder *rb, const struct nft_rule_spec *s)
{
	struct nftnl_expr *e;
	uint16_t port = htons(s->dns ? rb->dns_port : s->port);

	switch (s->action) {
	case A_ACCEPT:
		e = rb_expr(rb, "immediate");
		if (!e)
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
		break;
	case A_REDIRECT:
		e = rb_expr(rb, "immediate");
		if (!e)
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &port, sizeof(port));
		e = rb_expr(rb, "redir");
		if (!e)
			return;
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
		break;
	case A_CTMARK_SET:
		rb_ct(rb, NFT_CT_MARK, false);
		rb_bitwise(rb, ~(uint32_t)REDIRECT_MARK_MASK, REDIRECT_CONN_MARK);
		rb_ct(rb, NFT_CT_MARK, true);
		break;
	case A_MARK_SET:
		rb_meta(rb, NFT_META_MARK, false);
		rb_bitwise(rb, ~(uint32_t)REDIRECT_MARK_MASK, REDIRECT_CONN_MARK);
		rb_meta(rb, NFT_META_MARK, true);
		break;
	}
}

/* One nfnetlink transaction under construction; msgs[i] describes the message with seq0 + i. */
struct nft_txn {
	char *buf;			/* owned; the batch lives in it */
	struct mnl_nlmsg_batch *batch;
	uint32_t seq0;
	uint32_t nmsg;
	uint32_t mark;		/* the agent's */
	uint16_t dns_port;	/* 0: DNS is off, its rules are left out */
	bool dns_ipv6;		/* the IPv6 DNS rules too */
	struct {
		const char *what;
		const char *table;
		const char *chain;	/* NULL for table operations */
		int rule;		/* index in nft_rules, or -1 */
	} msgs[NFT_MAX_MSGS];
};

/* Starts the next message; NULL when the transaction is full (it never is with these rules). */
static struct nlmsghdr *txn_msg(struct nft_txn *t, uint16_t type, uint16_t flags, const char *what,
				const char *table, const char *chain, int rule)
{
	if (t->nmsg >= NFT_MAX_MSGS)
		return NULL;
	t->msgs[t->nmsg].what = what;
	t->msgs[t->nmsg].table = table;
	t->msgs[t->nmsg].chain = chain;
	t->msgs[t->nmsg].rule = rule;
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(t->batch), type, NFPROTO_INET,
				     flags | NLM_F_ACK, t->seq0 + t->nmsg);
}

/* Closes the message just built; -E2BIG if it did not fit. */
static int txn_next(struct nft_txn *t)
{
	t->nmsg++;
	return mnl_nlmsg_batch_next(t->batch) ? 0 : -E2BIG;
}

static int txn_table(struct nft_txn *t, const char *name, uint16_t type, uint16_t flags,
		     const char *what)
{
	struct nftnl_table *tb = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!tb)
		return -ENOMEM;
	nftnl_table_set_u32(tb, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	if (nftnl_table_set_str(tb, NFTNL_TABLE_NAME, name) < 0) {
		nftnl_table_free(tb);
		return -ENOMEM;
	}
	nlh = txn_msg(t, type, flags, what, name, NULL, -1);
	if (nlh)
		nftnl_table_nlmsg_build_payload(nlh, tb);
	nftnl_table_free(tb);
	return nlh ? txn_next(t) : -E2BIG;
}

static int txn_chain(struct nft_txn *t, const struct nft_chain_spec *s)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (!c)
		return -ENOMEM;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	if (nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, s->table) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, s->name) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, s->type) < 0)
		goto out;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, s->hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, s->prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nlh = txn_msg(t, NFT_MSG_NEWCHAIN, NLM_F_CREATE, "add chain", s->table, s->name, -1);
	ret = -E2BIG;
	if (nlh) {
		nftnl_chain_nlmsg_build_payload(nlh, c);
		ret = txn_next(t);
	}
out:
	nftnl_chain_free(c);
	return ret;
}

static int txn_rule(struct nft_txn *t, int idx)
{
	const struct nft_rule_spec *s = &nft_rules[idx];
	struct nft_rule_builder rb = { .rule = nftnl_rule_alloc(), .mark = t->mark,
				       .dns_port = t->dns_port };
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (!rb.rule)
		return -ENOMEM;
	nftnl_rule_set_u32(rb.rule, NFTNL_RULE_FAMILY, NFPROTO_INET);
	if (nftnl_rule_set_str(rb.rule, NFTNL_RULE_TABLE, s->table) < 0 ||
	    nftnl_rule_set_str(rb.rule, NFTNL_RULE_CHAIN, s->chain) < 0)
		goto out;
	for (int i = 0; i < NFT_MAX_MATCH && s->match[i].kind != M_END; i++)
		rb_match(&rb, &s->match[i]);
	rb_action(&rb, s);
	ret = rb.err;
	if (ret < 0)
		goto out;
	nlh = txn_msg(t, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, "add rule", s->table,
		      s->chain, idx);
	ret = -E2BIG;
	if (nlh) {
		nftnl_rule_nlmsg_build_payload(nlh, rb.rule);
		ret = txn_next(t);
	}
out:
	nftnl_rule_free(rb.rule);
	return ret;
}

/* Fills the transaction: drop both tables (adding them first so that deleting never fails
 * with ENOENT), then, when installing, add them back with their chains and rules. */
static int nft_build(struct nft_txn *t, bool install)
{
	static const char *const tables[] = { NFT_NAT, NFT_MANGLE };
	int ret = 0;

	for (size_t i = 0; i < 2 && !ret; i++) {
		ret = txn_table(t, tables[i], NFT_MSG_NEWTABLE, NLM_F_CREATE, "prepare table");
		if (!ret)
			ret = txn_table(t, tables[i], NFT_MSG_DELTABLE, 0, "delete table");
	}
	if (!install)
		return ret;
	for (size_t i = 0; i < 2 && !ret; i++)
		ret = txn_table(t, tables[i], NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL,
				"add table");
	for (size_t i = 0; i < sizeof(nft_chains) / sizeof(nft_chains[0]) && !ret; i++)
		ret = txn_chain(t, &nft_chains[i]);
	for (size_t i = 0; i < sizeof(nft_rules) / sizeof(nft_rules[0]) && !ret; i++)
		if (nft_rules[i].dns == NFT_NOT_DNS ||
		    (t->dns_port && (nft_rules[i].dns == NFT_DNS4 || t->dns_ipv6)))
			ret = txn_rule(t, (int)i);
	return ret;
}

static void nft_describe(const struct nft_txn *t, uint32_t seq, int error, const char *why,
			 char *err, size_t errlen)
{
	uint32_t i = seq - t->seq0;
	const char *sep = why[0] ? ": " : "";

	if (seq < t->seq0 || i >= t->nmsg) {
		snprintf(err, errlen, "nftables transaction: %s%s%s", strerror(-error), sep, why);
	} else if (t->msgs[i].rule >= 0) {
		snprintf(err, errlen, "nftables %s #%d in inet %s %s: %s%s%s", t->msgs[i].what,
			 t->msgs[i].rule, t->msgs[i].table, t->msgs[i].chain, strerror(-error),
			 sep, why);
	} else {
		snprintf(err, errlen, "nftables %s inet %s%s%s: %s%s%s", t->msgs[i].what,
			 t->msgs[i].table, t->msgs[i].chain ? " " : "",
			 t->msgs[i].chain ? t->msgs[i].chain : "", strerror(-error), sep, why);
	}
}

/* Reads the acks for messages seq0 .. seq0+nmsg-1; returns the first error. */
static int nft_collect(struct mnl_socket *nl, const struct nft_txn *t, char *err, size_t errlen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
	char why[160];
	uint32_t acks = 0;
	int first = 0;

	while (acks < t->nmsg) {
		/* The kernel runs the batch inside sendmsg: after an error, don't wait for more. */
		int wait_ms = first ? 0 : REDIRECT_NL_TIMEOUT_MS;
		ssize_t n = redirect_nl_recv(nl, buf, sizeof(buf), wait_ms);
		const struct nlmsghdr *nlh = (const void *)buf;
		int left = (int)n;

		if (n == -EAGAIN && first)
			break;
		if (n < 0) {
			snprintf(err, errlen, "nftables: reading acks: %s", strerror((int)-n));
			return n == -EAGAIN ? -ETIMEDOUT : (int)n;
		}
		for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
			int e;

			if (nlh->nlmsg_type != NLMSG_ERROR)
				continue;
			acks++;
			e = redirect_nl_ack(nlh, why, sizeof(why));
			if (e < 0 && !first) {
				first = e;
				nft_describe(t, nlh->nlmsg_seq, e, why, err, errlen);
			}
		}
	}
	return first;
}

/* A new, empty transaction (batch-begin written), or NULL on ENOMEM. */
static struct nft_txn *nft_txn_new(void)
{
	struct nft_txn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->buf = malloc(NFT_BATCH_SIZE);
	/* libmnl wants a buffer twice the batch limit: a message may spill past it. */
	t->batch = t->buf ? mnl_nlmsg_batch_start(t->buf, NFT_BATCH_SIZE / 2) : NULL;
	if (!t->batch) {
		free(t->buf);
		free(t);
		return NULL;
	}
	t->seq0 = (uint32_t)time(NULL);
	nftnl_batch_begin(mnl_nlmsg_batch_current(t->batch), t->seq0 - 1);
	mnl_nlmsg_batch_next(t->batch);
	return t;
}

static void nft_txn_free(struct nft_txn **tp)
{
	struct nft_txn *t = *tp;

	if (!t)
		return;
	mnl_nlmsg_batch_stop(t->batch);
	free(t->buf);
	free(t);
	*tp = NULL;
}

/* Closes the transaction, hands it to the kernel and checks every ack: all or nothing. */
static int nft_commit(struct nft_txn *t, char *err, size_t errlen)
{
	struct mnl_socket *nl;
	int ret;

	nftnl_batch_end(mnl_nlmsg_batch_current(t->batch), t->seq0 + t->nmsg);
	if (!mnl_nlmsg_batch_next(t->batch)) {
		snprintf(err, errlen, "nftables: transaction too large");
		return -E2BIG;
	}
	nl = redirect_nl_open(NETLINK_NETFILTER);
	if (!nl) {
		ret = -errno;
		snprintf(err, errlen, "nftables: netlink socket: %s", strerror(errno));
		return ret;
	}
	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(t->batch),
			      mnl_nlmsg_batch_size(t->batch)) < 0) {
		ret = -errno;
		snprintf(err, errlen, "nftables: sending transaction: %s", strerror(errno));
	} else {
		ret = nft_collect(nl, t, err, errlen);
	}
	mnl_socket_close(nl);
	return ret;
}

int redirect_nft_apply(bool install, uint32_t mark, uint16_t dns_port, bool dns_ipv6, char *err,
		       size_t errlen)
{
	struct nft_txn *t = nft_txn_new();
	int ret;

	if (!t) {
		snprintf(err, errlen, "nftables: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	t->mark = mark;
	t->dns_port = dns_port;
	t->dns_ipv6 = dns_ipv6;
	ret = nft_build(t, install);
	if (ret < 0)
		snprintf(err, errlen, "nftables: building rules: %s", strerror(-ret));
	else
		ret = nft_commit(t, err, errlen);
	nft_txn_free(&t);
	return ret;
}
