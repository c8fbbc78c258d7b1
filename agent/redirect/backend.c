/* redirect backend: the capture backends behind one ops table, and the one owner of the mark. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <stdio.h>
#include <string.h>

#include <ztunnel/addr.h>
#include <ztunnel/redirect.h>

#include "redirect-int.h"

/* REDIRECT rules (ours or istio-cni's) rewrite the destination; conntrack has the original. A
 * dual-stack socket's IPv4 connection answers SO_ORIGINAL_DST (as upstream asks first), an IPv6
 * one IP6T_SO_ORIGINAL_DST. */
static int conntrack_original_dst(int fd, struct sockaddr_storage *dst)
{
	socklen_t len = sizeof(*dst);

	memset(dst, 0, sizeof(*dst));
	if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, dst, &len) == 0)
		return 0;
	len = sizeof(*dst);
	memset(dst, 0, sizeof(*dst));
	if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, dst, &len) < 0)
		return -errno;
	io_addr_unmap(dst);
	return 0;
}

static int nft_install(const struct redirect *r, struct redirect_pod *pod, char *err,
		       size_t errlen)
{
	return redirect_nft_install(r->mark, pod ? pod->dns_port : 0, pod && pod->dns_ipv6, err,
				    errlen);
}

static int nft_remove(const struct redirect *r, struct redirect_pod *pod, char *err,
		      size_t errlen)
{
	return redirect_nft_remove(r->mark, err, errlen);
}

/* sk_lookup hands the connection over without NAT: the local address is the original. */
static int local_original_dst(int fd, struct sockaddr_storage *dst)
{
	socklen_t len = sizeof(*dst);

	memset(dst, 0, sizeof(*dst));
	if (getsockname(fd, (struct sockaddr *)dst, &len) < 0)
		return -errno;
	io_addr_unmap(dst);
	return 0;
}

static int nothing(const struct redirect *r, struct redirect_pod *pod, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	return 0;
}

static const struct redirect_ops nftables_ops = {
	.name = "nftables",
	.install = nft_install,
	.remove = nft_remove,
	.original_dst = conntrack_original_dst,
	.describe = "nftables tables inet istio-ambient-nat and inet istio-ambient-mangle, "
		    "ip rule fwmark 0x111/0xfff lookup 100",
};

static int ebpf_restore(const struct redirect *r)
{
	return redirect_ebpf_sweep(r->pin_dir);
}

static const struct redirect_ops ebpf_ops = {
	.name = "ebpf",
	.install = redirect_ebpf_install,
	.remove = redirect_ebpf_remove,
	.original_dst = local_original_dst,
	.probe = redirect_ebpf_probe,
	.restore = ebpf_restore,
	.dump_pod = redirect_ebpf_dump_pod,
	.describe = "sk_lookup program on the pod's netns (15001, 15053 with DNS), tcx ingress "
		    "program on its interfaces (15006), links and maps pinned under the pin dir, "
		    "ip rules 32760-32763 and fwmark 0x111/0xfff lookup 100; no nftables",
};

/* istio-cni (or an operator) installed the rules: the agent only listens. */
static const struct redirect_ops none_ops = {
	.name = "none",
	.install = nothing,
	.remove = nothing,
	.original_dst = conntrack_original_dst,
	.describe = "nothing: capture is installed by someone else (istio-cni)",
};

const struct redirect_ops *redirect_backend(const char *name)
{
	static const struct redirect_ops *const all[] = { &nftables_ops, &ebpf_ops, &none_ops };

	for (size_t i = 0; name && i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	errno = EINVAL;
	return NULL;
}

uint32_t redirect_agent_mask(uint32_t mark)
{
	return mark > REDIRECT_MARK_MASK ? 0xffffffffu : REDIRECT_MARK_MASK;
}

int redirect_mark_check(uint32_t mark, char *err, size_t errlen)
{
	if ((mark & REDIRECT_MARK_MASK) == 0 ||
	    (mark & REDIRECT_MARK_MASK) == REDIRECT_CONN_MARK) {
		snprintf(err, errlen, "PACKET_MARK: 0x%x cannot mark the agent's sockets: its low 12 "
			 "bits must be non-zero and not 0x%x, the capture's connection mark", mark,
			 REDIRECT_CONN_MARK);
		return -EINVAL;
	}
	return 0;
}

int redirect_pod_install(const struct redirect *r, struct redirect_pod *pod, char *err,
			 size_t errlen)
{
	return r->ops->install(r, pod, err, errlen);
}

int redirect_pod_remove(const struct redirect *r, struct redirect_pod *pod, char *err,
			size_t errlen)
{
	return r->ops->remove(r, pod, err, errlen);
}

int redirect_probe(const struct redirect *r, char *err, size_t errlen)
{
	return r->ops->probe ? r->ops->probe(r, err, errlen) : 0;
}

int redirect_restore(const struct redirect *r)
{
	return r->ops->restore ? r->ops->restore(r) : 0;
}

void redirect_pod_dump_json(const struct redirect *r, const struct redirect_pod *pod, FILE *out)
{
	if (r->ops->dump_pod)
		r->ops->dump_pod(r, pod, out);
	else
		fputs("{}", out);
}

int redirect_clean(const struct redirect *r, const char *state_dir,
		   int (*in_netns)(int netns_fd, int (*fn)(void *), void *), FILE *out)
{
	return redirect_ebpf_clean(r, state_dir, in_netns, out);
}

int redirect_original_dst(const struct redirect *r, int fd, struct sockaddr_storage *dst)
{
	return r->ops->original_dst(fd, dst);
}

void redirect_dump_json(const struct redirect *r, FILE *out)
{
	fprintf(out, "\"redirect\":{\"backend\":\"%s\",\"mark\":\"0x%x\",\"inPod\":\"%s\",",
		r->ops->name, r->mark, r->ops->describe);
	if (r->ops->restore)
		fprintf(out, "\"pinDir\":\"%s\",", r->pin_dir);
	redirect_sockmap_dump_json(out);
	fputc('}', out);
}
