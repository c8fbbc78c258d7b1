/* redirect ebpf: loads a pod's capture programs (sk_lookup, tc ingress), attaches them with
 * links pinned under bpffs, and re-adopts what an earlier agent pinned. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"
#include "capture.h"
#include "sk_lookup.skel.h"
#include "tc_ingress.skel.h"

#define MAX_IFS 16

/* What the backend holds for one pod; owned by redirect_pod.state. */
struct ebpf_pod {
	struct zt_sk_lookup *lookup;	/* programs and maps while installing; then NULL: the */
	struct zt_tc_ingress *tc;	/* links hold the programs, the pins the maps */
	int counts_fd;			/* the steered counters, for /config_dump */
	int lookup_link;		/* pinned links: they stay attached when we exit */
	int tcx_link[MAX_IFS];
	char ifname[MAX_IFS][IF_NAMESIZE];
	unsigned n_if;
	unsigned installs;		/* from the pinned info: >1 means re-adopted */
	char dir[PATH_MAX];		/* <pin dir>/<pod uid> */
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
		for (unsigned i_ = 0; i_ < (pod)->n_ipv6 && i_ < ZT_POD_ADDRS6; i_++) \
			memcpy((void *)(skel)->rodata->pod_addrs6[i_], &(pod)->ipv6[i_], \
			       16);                                                   \
		(skel)->rodata->n_pod_addrs6 = (pod)->n_ipv6 < ZT_POD_ADDRS6 ?       \
						       (pod)->n_ipv6 : ZT_POD_ADDRS6; \
		(skel)->rodata->loopback_ifindex = if_nametoindex("lo");            \
		(skel)->rodata->probe_addr = probe_.s_addr;                          \
		(skel)->rodata->hbone_port = REDIRECT_PORT_INBOUND_HBONE;            \
		(skel)->rodata->dns_capture = (pod)->dns_udp_fd < 0 ? 0 :           \
					      (pod)->dns6_udp_fd >= 0 ? 2 : 1;       \
	} while (0)

static void pin_path(const struct ebpf_pod *e, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", e->dir, name);
}

/* The pinned maps of an earlier install, if any and still of the same shape, become the
 * program's maps (counters and the install record carry over). */
static void adopt_map(struct ebpf_pod *e, struct bpf_map *map, const char *name)
{
	char path[PATH_MAX];
	int fd;

	pin_path(e, name, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	if (bpf_map__reuse_fd(map, fd) < 0)
		unlink(path);	/* another shape (an older agent): start afresh */
	close(fd);
}

static int pin_map(struct ebpf_pod *e, struct bpf_map *map, const char *name)
{
	char path[PATH_MAX];

	pin_path(e, name, path, sizeof(path));
	if (access(path, F_OK) == 0)
		return 0;
	return bpf_obj_pin(bpf_map__fd(map), path) < 0 ? -errno : 0;
}

static int put_slot(struct zt_sk_lookup *s, uint32_t slot, int fd)
{
	int map = bpf_map__fd(s->maps.zt_listeners);
	uint64_t v = (uint64_t)fd;

	if (fd < 0)	/* off (DNS not served): nothing in the slot (EINVAL: it was empty) */
		return bpf_map_delete_elem(map, &slot) < 0 && errno != ENOENT && errno != EINVAL ?
			       -errno : 0;
	return bpf_map_update_elem(map, &slot, &v, BPF_ANY) < 0 ? -errno : 0;
}

static int load(struct redirect_pod *pod, struct ebpf_pod *e, char *err, size_t errlen)
{
	static const char *const maps[] = { "listeners", "counts", "info" };
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
	adopt_map(e, e->lookup->maps.zt_listeners, maps[0]);
	adopt_map(e, e->lookup->maps.zt_counts, maps[1]);
	adopt_map(e, e->lookup->maps.zt_pod_info, maps[2]);
	ret = zt_sk_lookup__load(e->lookup);
	if (ret == 0)	/* one set of maps for both programs */
		ret = bpf_map__reuse_fd(e->tc->maps.zt_listeners,
					bpf_map__fd(e->lookup->maps.zt_listeners));
	if (ret == 0)
		ret = bpf_map__reuse_fd(e->tc->maps.zt_counts,
					bpf_map__fd(e->lookup->maps.zt_counts));
	if (ret == 0)
		ret = bpf_map__reuse_fd(e->tc->maps.zt_pod_info,
					bpf_map__fd(e->lookup->maps.zt_pod_info));
	if (ret == 0)
		ret = zt_tc_ingress__load(e->tc);
	if (ret < 0) {
		snprintf(err, errlen, "ebpf: loading the capture programs (needs sk_lookup and "
			 "sched_cls programs, sockmap, BTF; kernel 6.6+ and CAP_BPF/CAP_NET_ADMIN): %s",
			 strerror(-ret));
		return ret;
	}
	ret = pin_map(e, e->lookup->maps.zt_listeners, maps[0]);
	if (ret == 0)
		ret = pin_map(e, e->lookup->maps.zt_counts, maps[1]);
	if (ret == 0)
		ret = pin_map(e, e->lookup->maps.zt_pod_info, maps[2]);
	if (ret < 0) {
		snprintf(err, errlen, "ebpf: pinning the maps in %s: %s", e->dir, strerror(-ret));
		return ret;
	}
	ret = put_slot(e->lookup, ZT_SLOT_OUTBOUND, pod->outbound_fd);
	if (ret == 0)
		ret = put_slot(e->lookup, ZT_SLOT_INBOUND, pod->inbound_fd);
	if (ret == 0)
		ret = put_slot(e->lookup, ZT_SLOT_DNS_UDP, pod->dns_udp_fd);
	if (ret == 0)
		ret = put_slot(e->lookup, ZT_SLOT_DNS_TCP, pod->dns_tcp_fd);
	if (ret == 0)
		ret = put_slot(e->lookup, ZT_SLOT_DNS6_UDP, pod->dns6_udp_fd);
	if (ret == 0)
		ret = put_slot(e->lookup, ZT_SLOT_DNS6_TCP, pod->dns6_tcp_fd);
	if (ret < 0)
		snprintf(err, errlen, "ebpf: putting the listeners in the sockmap: %s", strerror(-ret));
	return ret;
}

/*
 * The link pinned at name if it still attaches where we want (type, and the netns inode or
 * ifindex), now running prog: updated in place, so capture never stops. Otherwise a new link,
 * pinned. Returns its fd, or -errno.
 */
static int link_adopt(struct ebpf_pod *e, const char *name, int prog, int target,
		      unsigned attach_type, unsigned link_type, uint32_t want)
{
	char path[PATH_MAX];
	struct bpf_link_info info;
	uint32_t len = sizeof(info);
	int fd, ret;

	pin_path(e, name, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		memset(&info, 0, sizeof(info));
		/* netns links: netns_ino; tcx links: ifindex at the same place */
		if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.type == link_type &&
		    info.netns.netns_ino == want && bpf_link_update(fd, prog, NULL) == 0)
			return fd;
		bpf_link_detach(fd);	/* stale: its netns or interface is gone */
		close(fd);
		unlink(path);
	}
	fd = bpf_link_create(prog, target, (enum bpf_attach_type)attach_type, NULL);
	if (fd < 0)
		return -errno;
	if (bpf_obj_pin(fd, path) < 0) {
		ret = -errno;
		close(fd);	/* not pinned: closing it detaches */
		return ret;
	}
	return fd;
}

static int netns_ino(int fd, uint32_t *ino)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*ino = (uint32_t)st.st_ino;
	return 0;
}

/* Links on the pod's netns (sk_lookup) and on the ingress of each interface but lo (tcx). */
static int attach(struct redirect_pod *pod, struct ebpf_pod *e, char *err, size_t errlen)
{
	struct if_nameindex *ifs, *i;
	char name[32 + IF_NAMESIZE];
	uint32_t ino = 0;
	int ret;

	ret = netns_ino(pod->netns_fd, &ino);
	if (ret == 0)
		ret = link_adopt(e, "link_sk_lookup", bpf_program__fd(e->lookup->progs.zt_sk_lookup),
				 pod->netns_fd, BPF_SK_LOOKUP, BPF_LINK_TYPE_NETNS, ino);
	if (ret < 0) {
		snprintf(err, errlen, "ebpf: attaching sk_lookup to the pod's netns: %s",
			 strerror(-ret));
		return ret;
	}
	e->lookup_link = ret;
	ifs = if_nameindex();
	if (!ifs) {
		snprintf(err, errlen, "ebpf: listing the pod's interfaces: %s", strerror(errno));
		return -errno;
	}
	ret = 0;
	for (i = ifs; i->if_index && e->n_if < MAX_IFS; i++) {
		if (strcmp(i->if_name, "lo") == 0)
			continue;
		snprintf(name, sizeof(name), "link_tcx_%s", i->if_name);
		ret = link_adopt(e, name, bpf_program__fd(e->tc->progs.zt_tc_ingress),
				 (int)i->if_index, REDIRECT_BPF_TCX_INGRESS, REDIRECT_BPF_LINK_TCX,
				 i->if_index);
		if (ret < 0) {
			snprintf(err, errlen, "ebpf: tcx ingress on %s: %s", i->if_name,
				 strerror(-ret));
			break;
		}
		e->tcx_link[e->n_if] = ret;
		snprintf(e->ifname[e->n_if++], IF_NAMESIZE, "%s", i->if_name);
		ret = 0;
	}
	if_freenameindex(ifs);
	return ret;
}

/* Sets accept_local on the pod's interfaces, remembering the pod's own value on the first install only (a re-adopting
 * agent finds 1, its predecessor's). */
static int note_install(struct ebpf_pod *e)
{
	int map = bpf_map__fd(e->lookup->maps.zt_pod_info);
	struct zt_pod_info info = { 0 };
	uint32_t key = 0;
	char why[200];
	bool was = false;
	int ret;

	if (bpf_map_lookup_elem(map, &key, &info) < 0)
		return -errno;
	ret = redirect_ebpf_accept_local(true, &was, why, sizeof(why));
	if (ret < 0)
		return ret;
	if (info.installs == 0)
		info.accept_local_was = was;
	info.installs++;
	e->installs = info.installs;
	return bpf_map_update_elem(map, &key, &info, BPF_ANY) < 0 ? -errno : 0;
}

static void ebpf_pod_free(struct ebpf_pod *e)
{
	if (e->lookup_link >= 0)
		close(e->lookup_link);
	if (e->counts_fd >= 0)
		close(e->counts_fd);
	for (unsigned k = 0; k < e->n_if; k++)
		close(e->tcx_link[k]);
	zt_tc_ingress__destroy(e->tc);
	zt_sk_lookup__destroy(e->lookup);
	free(e);
}

int redirect_ebpf_probe(const struct redirect *r, char *err, size_t errlen)
{
	struct redirect_pod none = { .netns_fd = -1, .n_ipv4 = 1, .dns_udp_fd = -1,
				     .dns6_udp_fd = -1 };
	struct zt_sk_lookup *lookup;
	struct zt_tc_ingress *tc;
	int ret = -ENOMEM, fd;

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
	if (ret < 0) {
		snprintf(err, errlen, "ZTUNNEL_REDIRECT=ebpf: this kernel or these privileges cannot "
			 "load the capture programs (sk_lookup, sched_cls, sockmap, BTF; CAP_BPF, "
			 "CAP_NET_ADMIN): %s", strerror(-ret));
	} else {
		/* tcx (kernel 6.6): a link on no interface fails with ENODEV where tcx exists,
		 * EINVAL where the attach type is unknown */
		fd = bpf_link_create(bpf_program__fd(tc->progs.zt_tc_ingress), INT_MAX,
				     (enum bpf_attach_type)REDIRECT_BPF_TCX_INGRESS, NULL);
		if (fd >= 0)
			close(fd);
		else if (errno != ENODEV) {
			ret = -errno;
			snprintf(err, errlen, "ZTUNNEL_REDIRECT=ebpf: this kernel cannot attach tc "
				 "programs with links (tcx, kernel 6.6+): %s", strerror(errno));
		}
	}
	if (ret == 0)
		ret = redirect_ebpf_pins_ready(r->pin_dir, err, errlen);
	zt_tc_ingress__destroy(tc);
	zt_sk_lookup__destroy(lookup);
	return ret;
}

int redirect_ebpf_install(const struct redirect *r, struct redirect_pod *pod, char *err,
			  size_t errlen)
{
	struct ebpf_pod *e;
	char ignored[8];
	int ret;

	if (errlen)
		err[0] = '\0';
	if (pod->n_ipv4 == 0) {
		snprintf(err, errlen, "ebpf: the pod has no IPv4 address");
		return -EINVAL;
	}
	if (pod->state) {	/* installed again by this agent: replace, keep the pins */
		ebpf_pod_free(pod->state);
		pod->state = NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->lookup_link = e->counts_fd = -1;
	ret = redirect_ebpf_pod_dir(r->pin_dir, pod->key, e->dir, sizeof(e->dir));
	if (ret < 0)
		snprintf(err, errlen, "ebpf: creating %s/%s: %s", r->pin_dir, pod->key,
			 strerror(-ret));
	if (ret == 0)
		ret = load(pod, e, err, errlen);
	if (ret == 0)
		ret = attach(pod, e, err, errlen);
	if (ret == 0 && (ret = note_install(e)) < 0)
		snprintf(err, errlen, "ebpf: setting accept_local on the pod's interfaces: %s",
			 strerror(-ret));
	if (ret == 0)
		ret = redirect_ebpf_rules_apply(r->mark, &(struct redirect_ebpf_rules){
			.src = pod->ipv4[0], .src6 = pod->n_ipv6 ? &pod->ipv6[0] : NULL,
			.dns = pod->dns_udp_fd >= 0, .dns6 = pod->dns6_udp_fd >= 0 }, err, errlen);
	if (ret == 0)
		ret = redirect_sockmap_pod_add(pod, err, errlen);
	if (ret < 0) {	/* never half-captured: what this install pinned goes again */
		redirect_sockmap_pod_del();
		redirect_ebpf_rules_apply(r->mark, NULL, ignored, sizeof(ignored));
		redirect_ebpf_unpin(e->dir, NULL);
		ebpf_pod_free(e);
		return ret;
	}
	/* what libbpf keeps of the objects is not needed once attached: only the counters */
	e->counts_fd = fcntl(bpf_map__fd(e->lookup->maps.zt_counts), F_DUPFD_CLOEXEC, 0);
	zt_tc_ingress__destroy(e->tc);
	zt_sk_lookup__destroy(e->lookup);
	e->tc = NULL;
	e->lookup = NULL;
	pod->state = e;
	return 0;
}

int redirect_ebpf_remove(const struct redirect *r, struct redirect_pod *pod, char *err,
			 size_t errlen)
{
	struct ebpf_pod *e = pod->state;
	char dir[PATH_MAX], why[200];
	int was = -1;

	if (errlen)
		err[0] = '\0';
	redirect_sockmap_pod_del();
	if (redirect_ebpf_pod_path(r->pin_dir, pod->key, dir, sizeof(dir)) == 0)
		redirect_ebpf_unpin(dir, &was);	/* detaches the links, whoever pinned them */
	if (e) {
		ebpf_pod_free(e);
		pod->state = NULL;
	}
	if (was >= 0)
		redirect_ebpf_accept_local(was, NULL, why, sizeof(why));
	return redirect_ebpf_rules_apply(r->mark, NULL, err, errlen);
}

int redirect_bpf_percpu_sum(int map_fd, uint32_t key, uint64_t *sum)
{
	uint64_t vals[512] = { 0 };
	int cpus = libbpf_num_possible_cpus();

	*sum = 0;
	if (cpus <= 0 || cpus > 512)
		return -EINVAL;
	if (bpf_map_lookup_elem(map_fd, &key, vals) < 0)
		return -errno;
	for (int c = 0; c < cpus; c++)
		*sum += vals[c];
	return 0;
}

static uint64_t steered(const struct ebpf_pod *e, uint32_t which)
{
	uint64_t n = 0;

	if (e->counts_fd >= 0)
		redirect_bpf_percpu_sum(e->counts_fd, which, &n);
	return n;
}

static uint32_t link_id(int fd)
{
	struct bpf_link_info info;
	uint32_t len = sizeof(info);

	memset(&info, 0, sizeof(info));
	return fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

void redirect_ebpf_dump_pod(const struct redirect *r, const struct redirect_pod *pod, FILE *out)
{
	const struct ebpf_pod *e = pod->state;

	if (!e) {
		fputs("{\"attached\":[]}", out);
		return;
	}
	fprintf(out, "{\"pinned\":\"%s\",\"installs\":%u,\"dns\":%s,\"attached\":"
		"[{\"hook\":\"sk_lookup\",\"link\":%u}", e->dir, e->installs,
		pod->dns_udp_fd >= 0 ? "true" : "false", link_id(e->lookup_link));
	for (unsigned k = 0; k < e->n_if; k++)
		fprintf(out, ",{\"hook\":\"tcx_ingress\",\"interface\":\"%s\",\"link\":%u}",
			e->ifname[k], link_id(e->tcx_link[k]));
	fprintf(out, "],\"steered\":{\"outbound\":%llu,\"inbound\":%llu,\"dns\":%llu,"
		"\"noListener\":%llu}}", (unsigned long long)steered(e, ZT_COUNT_OUTBOUND),
		(unsigned long long)steered(e, ZT_COUNT_INBOUND),
		(unsigned long long)steered(e, ZT_COUNT_DNS),
		(unsigned long long)steered(e, ZT_COUNT_NO_LISTENER));
}
