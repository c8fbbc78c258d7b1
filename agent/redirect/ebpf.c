/* redirect ebpf: loads a pod's capture programs (sk_lookup, tc ingress) and attaches them. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"
#include "capture.h"
#include "sk_lookup.skel.h"
#include "tc_ingress.skel.h"

#define TC_HANDLE 0x539	/* our filter on each interface's clsact ingress */
#define TC_PRIO 1
#define MAX_IFS 16

/* What the backend holds for one pod; owned by redirect_pod.state. */
struct ebpf_pod {
	struct zt_sk_lookup *lookup;	/* its link detaches when destroyed */
	struct zt_tc_ingress *tc;
	int ifindex[MAX_IFS];		/* interfaces with our tc filter */
	unsigned n_if;
	bool accept_local_was;		/* lo's accept_local before the pod was enrolled */
};

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

/* The settings both programs read (their .rodata), the same for both. */
#define SET_RODATA(skel, pod)                                                        \
	do {                                                                         \
		struct in_addr probe_;                                               \
		inet_pton(AF_INET, REDIRECT_KUBELET_SNAT, &probe_);                  \
		for (unsigned i_ = 0; i_ < (pod)->n_ipv4 && i_ < ZT_POD_ADDRS; i_++) \
			(skel)->rodata->pod_addrs[i_] = (pod)->ipv4[i_];             \
		(skel)->rodata->n_pod_addrs = (pod)->n_ipv4 < ZT_POD_ADDRS ?         \
						      (pod)->n_ipv4 : ZT_POD_ADDRS;  \
		(skel)->rodata->loopback_ifindex = if_nametoindex("lo");            \
		(skel)->rodata->probe_addr = probe_.s_addr;                          \
		(skel)->rodata->hbone_port = REDIRECT_PORT_INBOUND_HBONE;            \
	} while (0)

static int put_listener(struct zt_sk_lookup *s, uint32_t slot, int fd)
{
	uint64_t v = (uint64_t)fd;

	return bpf_map_update_elem(bpf_map__fd(s->maps.zt_listeners), &slot, &v, BPF_ANY) < 0 ?
		       -errno : 0;
}

static int load(struct redirect_pod *pod, struct ebpf_pod *e, char *err, size_t errlen)
{
	int ret;

	libbpf_set_print(libbpf_quiet);
	e->lookup = zt_sk_lookup__open();
	e->tc = zt_tc_ingress__open();
	if (!e->lookup || !e->tc) {
		snprintf(err, errlen, "ebpf: opening the capture programs: %s", strerror(errno));
		return -errno;
	}
	SET_RODATA(e->lookup, pod);
	SET_RODATA(e->tc, pod);
	ret = zt_sk_lookup__load(e->lookup);
	if (ret == 0)	/* one listener map and one counter map for both programs */
		ret = bpf_map__reuse_fd(e->tc->maps.zt_listeners,
					bpf_map__fd(e->lookup->maps.zt_listeners));
	if (ret == 0)
		ret = bpf_map__reuse_fd(e->tc->maps.zt_counts,
					bpf_map__fd(e->lookup->maps.zt_counts));
	if (ret == 0)
		ret = zt_tc_ingress__load(e->tc);
	if (ret < 0) {
		snprintf(err, errlen, "ebpf: loading the capture programs (needs sk_lookup and "
			 "sched_cls programs, sockmap, BTF; kernel 6.5+ and CAP_BPF/CAP_NET_ADMIN): %s",
			 strerror(-ret));
		return ret;
	}
	ret = put_listener(e->lookup, ZT_SLOT_OUTBOUND, pod->outbound_fd);
	if (ret == 0)
		ret = put_listener(e->lookup, ZT_SLOT_INBOUND, pod->inbound_fd);
	if (ret < 0) {
		snprintf(err, errlen, "ebpf: putting the listeners in the sockmap: %s", strerror(-ret));
		return ret;
	}
	e->lookup->links.zt_sk_lookup = bpf_program__attach_netns(e->lookup->progs.zt_sk_lookup,
								  pod->netns_fd);
	if (!e->lookup->links.zt_sk_lookup) {
		snprintf(err, errlen, "ebpf: attaching sk_lookup to the pod's netns: %s",
			 strerror(errno));
		return -errno;
	}
	return 0;
}

/* tc ingress on every interface but lo (we are in the pod's netns). */
static int attach_tc(struct ebpf_pod *e, char *err, size_t errlen)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	int ret = 0;

	if (!ifs) {
		snprintf(err, errlen, "ebpf: listing the pod's interfaces: %s", strerror(errno));
		return -errno;
	}
	for (i = ifs; i->if_index && !ret && e->n_if < MAX_IFS; i++) {
		/* what LIBBPF_OPTS expands to, spelled out (cppcheck does not see libbpf's macros) */
		struct bpf_tc_hook hook = { .sz = sizeof(hook), .ifindex = (int)i->if_index,
					    .attach_point = BPF_TC_INGRESS };
		struct bpf_tc_opts opts = { .sz = sizeof(opts), .handle = TC_HANDLE,
					    .priority = TC_PRIO, .flags = BPF_TC_F_REPLACE,
					    .prog_fd = bpf_program__fd(e->tc->progs.zt_tc_ingress) };

		if (strcmp(i->if_name, "lo") == 0)
			continue;
		ret = bpf_tc_hook_create(&hook);
		if (ret == -EEXIST)
			ret = 0;
		if (ret == 0)
			ret = bpf_tc_attach(&hook, &opts);
		if (ret < 0)
			snprintf(err, errlen, "ebpf: tc ingress on %s: %s", i->if_name, strerror(-ret));
		else
			e->ifindex[e->n_if++] = (int)i->if_index;
	}
	if_freenameindex(ifs);
	return ret;
}

static void detach_tc(struct ebpf_pod *e)
{
	for (unsigned k = 0; k < e->n_if; k++) {
		struct bpf_tc_hook hook = { .sz = sizeof(hook), .ifindex = e->ifindex[k],
					    .attach_point = BPF_TC_INGRESS };
		struct bpf_tc_opts opts = { .sz = sizeof(opts), .handle = TC_HANDLE,
					    .priority = TC_PRIO };

		bpf_tc_detach(&hook, &opts);	/* an interface gone with its pod is fine */
	}
	e->n_if = 0;
}

static void ebpf_pod_free(struct ebpf_pod *e)
{
	detach_tc(e);
	zt_tc_ingress__destroy(e->tc);
	zt_sk_lookup__destroy(e->lookup);
	free(e);
}

int redirect_ebpf_probe(char *err, size_t errlen)
{
	struct redirect_pod none = { .netns_fd = -1, .n_ipv4 = 1 };
	struct zt_sk_lookup *lookup;
	struct zt_tc_ingress *tc;
	int ret = -ENOMEM;

	libbpf_set_print(libbpf_quiet);
	lookup = zt_sk_lookup__open();
	tc = zt_tc_ingress__open();
	if (lookup && tc) {
		SET_RODATA(lookup, &none);
		SET_RODATA(tc, &none);
		ret = zt_sk_lookup__load(lookup);
		if (ret == 0)
			ret = zt_tc_ingress__load(tc);
	}
	if (ret < 0)
		snprintf(err, errlen, "ZTUNNEL_REDIRECT=ebpf: this kernel or these privileges cannot "
			 "load the capture programs (sk_lookup, sched_cls, sockmap, BTF; CAP_BPF, "
			 "CAP_NET_ADMIN): %s", strerror(-ret));
	zt_tc_ingress__destroy(tc);
	zt_sk_lookup__destroy(lookup);
	return ret;
}

int redirect_ebpf_install(struct redirect_pod *pod, uint32_t mark, char *err, size_t errlen)
{
	struct ebpf_pod *e;
	char ignored[8];
	int ret;

	if (errlen)
		err[0] = '\0';
	if (pod->state)
		redirect_ebpf_remove(pod, mark, ignored, sizeof(ignored));	/* enrolled again */
	if (pod->n_ipv4 == 0) {
		snprintf(err, errlen, "ebpf: the pod has no IPv4 address");
		return -EINVAL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	ret = load(pod, e, err, errlen);
	if (ret == 0)
		ret = attach_tc(e, err, errlen);
	if (ret == 0)
		ret = redirect_ebpf_accept_local(true, &e->accept_local_was, err, errlen);
	if (ret == 0)
		ret = redirect_ebpf_rules_apply(true, mark, pod->ipv4[0], err, errlen);
	if (ret < 0) {
		redirect_ebpf_rules_apply(false, mark, 0, ignored, sizeof(ignored));
		ebpf_pod_free(e);
		return ret;
	}
	pod->state = e;
	return 0;
}

int redirect_ebpf_remove(struct redirect_pod *pod, uint32_t mark, char *err, size_t errlen)
{
	struct ebpf_pod *e = pod->state;
	char ignored[8];

	if (errlen)
		err[0] = '\0';
	if (e) {
		redirect_ebpf_accept_local(e->accept_local_was, NULL, ignored, sizeof(ignored));
		ebpf_pod_free(e);
		pod->state = NULL;
	}
	return redirect_ebpf_rules_apply(false, mark, 0, err, errlen);
}
