/* redirect sockmap: the socket fast path of the ebpf backend (ZTUNNEL_BPF_SOCKMAP=true): loads
 * sockops and sk_msg, attaches them once per agent, and lists the enrolled pod netns. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ztunnel/redirect.h"
#include "redirect-int.h"
#include "sockmap.h"
#include "sockops.skel.h"
#include "sk_msg.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/*
 * The node-wide objects, one set per agent process: a cgroup attachment and a sockhash exist
 * once whatever the number of pods, so they are not per-pod state. Set up by start before any
 * pod is installed and torn down by stop after the last; pod_add/pod_del run on the one thread
 * that installs pods. Nothing is pinned: the sock_ops link and the maps belong to the process
 * and go when it exits, however it exits.
 */
static struct {
	struct zt_sockops *ops;
	struct zt_sk_msg *msg;
	int cgroup_fd;
} sm = { .cgroup_fd = -1 };

static int sm_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

const char *redirect_sockmap_default_cgroup(void)
{
	struct statfs fs;

	if (statfs("/sys/fs/cgroup/unified", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
		return "/sys/fs/cgroup/unified";	/* hybrid mode */
	return "/sys/fs/cgroup";
}

static int sm_reuse(struct bpf_map *map, const struct bpf_map *from)
{
	return bpf_map__reuse_fd(map, bpf_map__fd(from));
}

static int sm_load(uint32_t mark)
{
	int ret;

	sm.ops = zt_sockops__open();
	sm.msg = zt_sk_msg__open();
	if (!sm.ops || !sm.msg)
		return -errno;
	sm.ops->rodata->agent_mark = mark;
	sm.ops->rodata->agent_mark_mask = redirect_agent_mask(mark);
	sm.ops->rodata->hbone_port = REDIRECT_PORT_INBOUND_HBONE;
	sm.msg->rodata->queue_limit = ZT_SM_QUEUE_LIMIT;
	ret = zt_sockops__load(sm.ops);
	if (ret == 0)	/* one set of maps for both programs */
		ret = sm_reuse(sm.msg->maps.zt_socks, sm.ops->maps.zt_socks);
	if (ret == 0)
		ret = sm_reuse(sm.msg->maps.zt_sm_pending, sm.ops->maps.zt_sm_pending);
	if (ret == 0)
		ret = sm_reuse(sm.msg->maps.zt_sm_peers, sm.ops->maps.zt_sm_peers);
	if (ret == 0)
		ret = sm_reuse(sm.msg->maps.zt_sm_pods, sm.ops->maps.zt_sm_pods);
	if (ret == 0)
		ret = sm_reuse(sm.msg->maps.zt_sm_socks, sm.ops->maps.zt_sm_socks);
	if (ret == 0)
		ret = sm_reuse(sm.msg->maps.zt_sm_counts, sm.ops->maps.zt_sm_counts);
	if (ret == 0)
		ret = zt_sk_msg__load(sm.msg);
	return ret;
}

int redirect_sockmap_start(const char *cgroup, uint32_t mark, char *err, size_t errlen)
{
	const char *step = "loading sockops and sk_msg (needs sock_ops, sk_msg, sockhash, "
			   "sk_storage, BTF; CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)";
	const char *where = "";
	int ret;

	libbpf_set_print(sm_libbpf_print);
	ret = sm_load(mark);
	if (ret == 0) {
		/* sk_msg first: a socket added to the sockhash takes the programs it has then */
		step = "attaching sk_msg to the sockhash";
		ret = bpf_prog_attach(bpf_program__fd(sm.msg->progs.zt_sk_msg),
				      bpf_map__fd(sm.ops->maps.zt_socks), BPF_SK_MSG_VERDICT, 0);
		ret = ret < 0 ? -errno : 0;
	}
	if (ret == 0) {
		step = "opening the cgroup v2 root ";
		where = cgroup;
		sm.cgroup_fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ret = sm.cgroup_fd < 0 ? -errno : 0;
	}
	if (ret == 0) {
		step = "attaching sock_ops to the cgroup ";
		sm.ops->links.zt_sockops = bpf_program__attach_cgroup(sm.ops->progs.zt_sockops,
								      sm.cgroup_fd);
		ret = sm.ops->links.zt_sockops ? 0 : -errno;
	}
	if (ret < 0) {
		snprintf(err, errlen, "ZTUNNEL_BPF_SOCKMAP=true: %s%s: %s", step, where,
			 strerror(-ret));
		redirect_sockmap_stop();
		return ret;
	}
	return 0;
}

void redirect_sockmap_stop(void)
{
	zt_sockops__destroy(sm.ops);	/* detaches sock_ops; the maps go with the last user */
	zt_sk_msg__destroy(sm.msg);
	sm.ops = NULL;
	sm.msg = NULL;
	if (sm.cgroup_fd >= 0)
		close(sm.cgroup_fd);
	sm.cgroup_fd = -1;
}

/* The cookie of the calling thread's netns. */
static int sm_netns_cookie(uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int redirect_sockmap_pod_add(const struct redirect_pod *pod, char *err, size_t errlen)
{
	struct zt_sm_pod v = { 0 };
	uint64_t cookie;
	int ret;

	if (!sm.ops)
		return 0;
	for (unsigned i = 0; i < pod->n_ipv4 && i < ZT_POD_ADDRS; i++)
		v.addrs[v.n_addrs++] = pod->ipv4[i];
	ret = sm_netns_cookie(&cookie);
	if (ret == 0 && bpf_map_update_elem(bpf_map__fd(sm.ops->maps.zt_sm_pods), &cookie, &v,
					    BPF_ANY) < 0)
		ret = -errno;
	if (ret < 0)
		snprintf(err, errlen, "ebpf: adding the pod to the sockmap fast path: %s",
			 strerror(-ret));
	return ret;
}

void redirect_sockmap_pod_del(void)
{
	uint64_t cookie;

	if (sm.ops && sm_netns_cookie(&cookie) == 0)
		bpf_map_delete_elem(bpf_map__fd(sm.ops->maps.zt_sm_pods), &cookie);
}

/* Sums the per-CPU counters. 0 or -errno. */
static int sm_counts(uint64_t out[ZT_SM_COUNTS])
{
	memset(out, 0, sizeof(out[0]) * ZT_SM_COUNTS);
	for (uint32_t k = 0; k < ZT_SM_COUNTS; k++) {
		int ret = redirect_bpf_percpu_sum(bpf_map__fd(sm.ops->maps.zt_sm_counts), k, &out[k]);

		if (ret < 0)
			return ret;
	}
	return 0;
}

void redirect_sockmap_dump_json(FILE *out)
{
	static const char *const names[ZT_SM_COUNTS] = {
		[ZT_SM_SOCKETS] = "sockets", [ZT_SM_PAIRS] = "pairs",
		[ZT_SM_INSERT_FAILED] = "insertFailed", [ZT_SM_MSGS_REDIRECTED] = "msgsRedirected",
		[ZT_SM_BYTES_REDIRECTED] = "bytesRedirected", [ZT_SM_MSGS_TCP] = "msgsTcp",
		[ZT_SM_TO_TCP] = "toTcp", [ZT_SM_TO_REDIRECT] = "toRedirect",
		[ZT_SM_TCP_UNPAIRED] = "tcpUnpaired", [ZT_SM_TCP_QUEUE_FULL] = "tcpQueueFull",
		[ZT_SM_TCP_DRAINING] = "tcpDraining",
	};
	uint64_t n[ZT_SM_COUNTS];

	if (!sm.ops) {
		fputs("\"sockmap\":{\"enabled\":false}", out);
		return;
	}
	fputs("\"sockmap\":{\"enabled\":true", out);
	if (sm_counts(n) == 0)
		for (int k = 0; k < ZT_SM_COUNTS; k++)
			fprintf(out, ",\"%s\":%llu", names[k], (unsigned long long)n[k]);
	fputc('}', out);
}
