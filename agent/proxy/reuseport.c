/* proxy reuseport: new connections land on the least-loaded worker (an SK_REUSEPORT program on
 * each listener group, fed by the load each worker publishes); without BPF, the kernel's hash. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <ztunnel/log.h>

#include "proxy-int.h"
#include "reuseport.h"
#include "reuseport.skel.h"

/*
 * Why a program and not a hand-off of accepted fds between workers: the kernel places the
 * connection before any worker wakes, so a busy worker never has to accept what it then gives
 * away, and it works under both capture backends (TPROXY's and sk_lookup's listener lookup
 * both end in the group's reuseport selection). Loads are plain stores into a shared
 * (mmap'ed) array: no syscall on the hot path.
 */
struct proxy_reuse {
	struct zt_reuseport *skel;	/* owns the program and maps */
	uint64_t *load;			/* zt_rp_load, mapped; ZT_RP_MAX_WORKERS entries */
	size_t load_len;
	unsigned n_workers;
	pthread_mutex_t lock;		/* slots; groups come and go on the control threads */
	uint8_t used[ZT_RP_MAX_GROUPS];
};

/* A pod's groups, one per listener kind: their slot (-1: none) and their sockets' cookies. */
struct proxy_reuse_groups {
	int slot[PROXY_KINDS];
	uint64_t cookies[PROXY_KINDS][ZT_RP_MAX_WORKERS];
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;	/* a kernel without it is told once, by the caller */
}

static int reuse_load(struct proxy_reuse *r)
{
	uint32_t entries = ZT_RP_MAX_GROUPS * r->n_workers;
	long page = sysconf(_SC_PAGESIZE);
	void *m;
	int ret;

	libbpf_set_print(quiet);
	r->skel = zt_reuseport__open();
	if (!r->skel)
		return -errno;
	bpf_map__set_max_entries(r->skel->maps.zt_rp_socks, entries);
	bpf_map__set_max_entries(r->skel->maps.zt_rp_groups, entries);
	ret = zt_reuseport__load(r->skel);
	if (ret < 0)
		return ret;
	r->load_len = ((ZT_RP_MAX_WORKERS * sizeof(uint64_t) + page - 1) / page) * page;
	m = mmap(NULL, r->load_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		 bpf_map__fd(r->skel->maps.zt_rp_load), 0);
	if (m == MAP_FAILED)
		return -errno;
	r->load = m;
	return 0;
}

struct proxy_reuse *proxy_reuse_open(unsigned n_workers)
{
	struct proxy_reuse *r;
	int ret = -ERANGE;

	if (n_workers < 2)
		return NULL;	/* one worker: nothing to choose */
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->n_workers = n_workers;
	pthread_mutex_init(&r->lock, NULL);
	if (n_workers > ZT_RP_MAX_WORKERS || (ret = reuse_load(r)) < 0) {
		log_warn("least-loaded worker placement off: the kernel's reuseport hash places "
			 "connections", "error=\"loading the SK_REUSEPORT program: %s\"",
			 strerror(-ret));
		proxy_reuse_close(&r);
		return NULL;
	}
	log_info("least-loaded worker placement", "workers=%u", n_workers);
	return r;
}

void proxy_reuse_close(struct proxy_reuse **rp)
{
	struct proxy_reuse *r = *rp;

	if (!r)
		return;
	if (r->load)
		munmap(r->load, r->load_len);
	zt_reuseport__destroy(r->skel);
	pthread_mutex_destroy(&r->lock);
	free(r);
	*rp = NULL;
}

static int slot_get(struct proxy_reuse *r)
{
	int slot = -ENOSPC;

	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < ZT_RP_MAX_GROUPS; i++)
		if (!r->used[i]) {
			r->used[i] = 1;
			slot = i;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return slot;
}

static void slot_put(struct proxy_reuse *r, int slot)
{
	pthread_mutex_lock(&r->lock);
	r->used[slot] = 0;
	pthread_mutex_unlock(&r->lock);
}

static void group_forget(struct proxy_reuse *r, int slot, const uint64_t *cookies)
{
	int groups = bpf_map__fd(r->skel->maps.zt_rp_groups);
	int socks = bpf_map__fd(r->skel->maps.zt_rp_socks);

	for (unsigned i = 0; i < r->n_workers; i++) {
		uint32_t key = (uint32_t)slot * r->n_workers + i;

		if (cookies[i])
			bpf_map_delete_elem(groups, &cookies[i]);
		bpf_map_delete_elem(socks, &key);	/* gone already when the socket closed */
	}
	slot_put(r, slot);
}

/* fds: the group's sockets in worker order. 0 with cookies filled, or -errno (the group keeps
 * the kernel's hash). */
static int group_add(struct proxy_reuse *r, const int *fds, uint64_t *cookies, int *slotp)
{
	struct zt_rp_group g = { .n = r->n_workers };
	int groups = bpf_map__fd(r->skel->maps.zt_rp_groups);
	int socks = bpf_map__fd(r->skel->maps.zt_rp_socks);
	int prog = bpf_program__fd(r->skel->progs.zt_reuseport);
	int slot = slot_get(r), ret = 0;
	socklen_t len;

	if (slot < 0)
		return slot;
	g.base = (uint32_t)slot * r->n_workers;
	for (unsigned i = 0; i < r->n_workers && !ret; i++) {
		uint32_t key = g.base + i;
		uint64_t fd = (uint64_t)(fds[i] < 0 ? -fds[i] - 1 : fds[i]);

		len = sizeof(cookies[i]);
		if (getsockopt((int)fd, SOL_SOCKET, SO_COOKIE, &cookies[i], &len) < 0 ||
		    (fds[i] >= 0 && bpf_map_update_elem(socks, &key, &fd, BPF_ANY) < 0) ||
		    bpf_map_update_elem(groups, &cookies[i], &g, BPF_ANY) < 0)
			ret = -errno;
	}
	/* one attach serves the whole group */
	if (!ret && setsockopt(fds[0] < 0 ? -fds[0] - 1 : fds[0], SOL_SOCKET,
			       SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog)) < 0)
		ret = -errno;
	if (ret < 0) {
		group_forget(r, slot, cookies);
		return ret;
	}
	*slotp = slot;
	return 0;
}

int proxy_reuse_add(struct proxy_reuse *r, struct proxy_pod *pod, enum proxy_port_kind kind,
		    const int *fds)
{
	struct proxy_reuse_groups *gs = pod->reuse;
	int ret;

	if (!r)
		return 0;
	if (!gs) {
		gs = calloc(1, sizeof(*gs));
		if (!gs)
			return -ENOMEM;
		for (int k = 0; k < PROXY_KINDS; k++)
			gs->slot[k] = -1;
		pod->reuse = gs;
	}
	ret = group_add(r, fds, gs->cookies[kind], &gs->slot[kind]);
	if (ret < 0)
		log_warn("least-loaded placement off for a listener",
			 "pod=%s/%s kind=%d error=\"%s\"", pod->namespace_, pod->name, kind,
			 strerror(-ret));
	return ret;
}

void proxy_reuse_del(struct proxy_reuse *r, struct proxy_pod *pod)
{
	struct proxy_reuse_groups *gs = pod->reuse;

	if (!gs)
		return;
	for (int k = 0; r && k < PROXY_KINDS; k++)
		if (gs->slot[k] >= 0)
			group_forget(r, gs->slot[k], gs->cookies[k]);
	free(gs);
	pod->reuse = NULL;
}

void proxy_reuse_publish(struct proxy_reuse *r, unsigned worker, unsigned load)
{
	if (r && worker < r->n_workers)
		__atomic_store_n(&r->load[worker], load, __ATOMIC_RELAXED);
}

unsigned proxy_reuse_load(const struct proxy_reuse *r, unsigned worker)
{
	return r && worker < r->n_workers ?
		       (unsigned)__atomic_load_n(&r->load[worker], __ATOMIC_RELAXED) : 0;
}
