/* redirect: public entry points and the netlink plumbing nft.c and route.c share. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netlink.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"

struct mnl_socket *redirect_nl_open(int bus)
{
	struct mnl_socket *nl;
	int on = 1;

	nl = mnl_socket_open2(bus, SOCK_CLOEXEC);
	if (!nl)
		return NULL;
	/* Both are optional niceties (short acks, kernel error text): ignore failures. */
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &on, sizeof(on));
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &on, sizeof(on));
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;

		mnl_socket_close(nl);
		errno = e;
		return NULL;
	}
	return nl;
}

ssize_t redirect_nl_recv(struct mnl_socket *nl, void *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(nl), .events = POLLIN };
	ssize_t n;
	int r;

	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -EAGAIN;
	n = recv(pfd.fd, buf, len, MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return n;
}

struct ack_text {
	char *why;
	size_t whylen;
};

static int ack_attr_cb(const struct nlattr *attr, void *data)
{
	struct ack_text *t = data;
	const char *s;
	size_t len;

	if (mnl_attr_get_type(attr) != NLMSGERR_ATTR_MSG)
		return MNL_CB_OK;
	s = mnl_attr_get_str(attr);
	len = strnlen(s, mnl_attr_get_payload_len(attr));
	snprintf(t->why, t->whylen, "%.*s", (int)len, s);
	return MNL_CB_OK;
}

int redirect_nl_ack(const struct nlmsghdr *nlh, char *why, size_t whylen)
{
	const struct nlmsgerr *e;
	struct ack_text t = { why, whylen };
	size_t off;

	if (whylen)
		why[0] = '\0';
	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*e))
		return -EPROTO;
	e = mnl_nlmsg_get_payload(nlh);
	if (e->error > 0 || e->error < -4095)
		return -EPROTO;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || !whylen)
		return e->error;
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < NLMSG_HDRLEN)
			return e->error;
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	}
	if (NLMSG_HDRLEN + off <= nlh->nlmsg_len)
		mnl_attr_parse(nlh, off, ack_attr_cb, &t);
	return e->error;
}

int redirect_nl_request(struct mnl_socket *nl, struct nlmsghdr *nlh, char *why, size_t whylen)
{
	char buf[MNL_SOCKET_BUFFER_SIZE] __attribute__((aligned(NLMSG_ALIGNTO)));
	const struct nlmsghdr *r;
	ssize_t n;
	int left;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		n = redirect_nl_recv(nl, buf, sizeof(buf), REDIRECT_NL_TIMEOUT_MS);
		if (n == -EAGAIN)
			return -ETIMEDOUT;
		if (n < 0)
			return (int)n;
		left = (int)n;
		for (r = (void *)buf; mnl_nlmsg_ok(r, left); r = mnl_nlmsg_next(r, &left)) {
			if (r->nlmsg_seq == nlh->nlmsg_seq && r->nlmsg_type == NLMSG_ERROR)
				return redirect_nl_ack(r, why, whylen);
		}
	}
}

int redirect_nft_install(uint32_t mark, uint16_t dns_port, bool dns_ipv6, char *err, size_t errlen)
{
	int ret;

	if (errlen)
		err[0] = '\0';
	ret = redirect_nft_apply(true, mark, dns_port, dns_ipv6, err, errlen);
	if (ret < 0)
		return ret;
	return redirect_route_apply(true, err, errlen);
}

int redirect_nft_remove(uint32_t mark, char *err, size_t errlen)
{
	int ret;

	if (errlen)
		err[0] = '\0';
	/* Try both halves even if one fails, report the first failure. */
	ret = redirect_nft_apply(false, mark, 0, false, err, errlen);
	if (ret < 0) {
		char ignored[8];

		redirect_route_apply(false, ignored, sizeof(ignored));
		return ret;
	}
	return redirect_route_apply(false, err, errlen);
}
