/* proxy: worker start-up, pod references, per-worker snapshots and pod listeners. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/config.h>
#include <ztunnel/dns.h>
#include <ztunnel/inpod.h>
#include <ztunnel/log.h>
#include <ztunnel/redirect.h>

#include "proxy-int.h"

static const uint16_t kind_port[PROXY_KINDS] = {
	[PROXY_OUTBOUND] = REDIRECT_PORT_OUTBOUND,
	[PROXY_INBOUND_PLAIN] = REDIRECT_PORT_INBOUND_PLAIN,
	[PROXY_INBOUND_HBONE] = REDIRECT_PORT_INBOUND_HBONE,
};

struct proxy_pod *proxy_pod_get(struct proxy_pod *pod)
{
	__atomic_add_fetch(&pod->refcount, 1, __ATOMIC_RELAXED);
	return pod;
}

void proxy_pod_put(struct proxy_pod *pod)
{
	if (!pod || __atomic_sub_fetch(&pod->refcount, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (pod->netns_fd >= 0)
		close(pod->netns_fd);
	SSL_CTX_free(pod->server_ctx);
	SSL_CTX_free(pod->client_ctx);
	free(pod);
}

struct state_snapshot *proxy_snapshot(struct proxy_worker *pw)
{
	unsigned long gen = state_store_generation(pw->px->store);

	if (!pw->snap || gen != pw->gen) {
		state_snapshot_put(&pw->snap);
		pw->snap = state_store_current(pw->px->store);
		pw->gen = gen;
	}
	return pw->snap;
}

void proxy_set_redirect(struct proxy *px, const struct redirect *r)
{
	px->redirect = r;
}

void proxy_set_dns(struct proxy *px, struct dns *dns)
{
	px->dns = dns;
}

struct io_worker *proxy_io_worker(struct proxy *px, unsigned i)
{
	return i < px->n_workers ? &px->workers[i].io : NULL;
}

int proxy_original_dst(struct proxy_worker *pw, int fd, struct sockaddr_storage *dst)
{
	const struct redirect *r = pw->px->redirect;

	if (!r)
		return redirect_backend("none")->original_dst(fd, dst);
	return redirect_original_dst(r, fd, dst);
}

/* The worker's tick: parked connections whose wait is over, then the policy re-check. */
static void proxy_tick(struct io_worker *w)
{
	struct proxy_worker *pw = w->user;

	proxy_parked_tick(pw);
	proxy_recheck(w);
	proxy_reuse_publish(pw->px->reuse, (unsigned)w->id, access_open_here());
}

struct proxy *proxy_new(unsigned n, struct state_store *store, const struct hbone_settings *set,
			struct metrics *metrics, bool count_connections)
{
	struct proxy *px = calloc(1, sizeof(*px));
	unsigned i;

	if (!px)
		return NULL;
	px->workers = calloc(n, sizeof(*px->workers));
	if (!px->workers)
		goto fail;
	px->n_workers = n;
	px->store = store;
	px->metrics = metrics;
	px->count_connections = count_connections;
	px->set = *set;
	px->gate = hbone_gate_new(&px->set);
	if (!px->gate)
		goto fail;
	for (i = 0; i < n; i++) {
		struct proxy_worker *pw = &px->workers[i];
		int ret = io_worker_init(&pw->io, (int)i, 4096);

		if (ret < 0) {
			log_error("io_uring set-up failed", "worker=%u error=\"%s\"", i, strerror(-ret));
			goto fail;
		}
		pw->px = px;
		pw->io.user = pw;
		pw->io.tick_hook = proxy_tick;
		pw->shard = metrics_shard_new(metrics);
		pw->pool = hbone_pool_new(&pw->io, &px->set, px->gate, metrics);
		proxy_shed_init(&pw->shed);
		if (!pw->pool || !pw->shard || io_worker_start(&pw->io) < 0)
			goto fail;
	}
	px->reuse = proxy_reuse_open(n);
	return px;
fail:
	/* workers started so far are left to the process exit: start-up failure is fatal */
	return NULL;
}

void proxy_set_hash_placement(struct proxy *px)
{
	if (px->reuse)
		log_info("worker placement by the kernel's reuseport hash",
			 "setting=ZTUNNEL_LEAST_LOADED_WORKER=false");
	proxy_reuse_close(&px->reuse);
}

void proxy_free(struct proxy **pxp)
{
	struct proxy *px = *pxp;

	if (!px)
		return;
	for (unsigned i = 0; i < px->n_workers; i++)
		io_worker_stop(&px->workers[i].io);
	proxy_reuse_close(&px->reuse);	/* attached groups keep the program while open */
	*pxp = NULL;	/* sockets and memory go with the process */
}

/* ---- listeners ---- */

static void listener_free(struct proxy_listener *l)
{
	struct proxy_listener **pp;

	for (pp = &l->pw->listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	io_timer_disarm(&l->pause);
	close(l->fd);
	proxy_pod_put(l->pod);
	free(l);
}

static void on_accept(struct io_op *op, int res, uint32_t flags)
{
	struct proxy_listener *l = op->ctx;

	if (l->closing) {
		if (res >= 0)
			close(res);
		if (!op->busy)
			listener_free(l);
		return;
	}
	if (res >= 0) {
		if (l->kind == PROXY_OUTBOUND) {
			metrics_redirected(l->pw->px->metrics, METRICS_REDIRECTED_OUTBOUND);
			proxy_outbound_accept(l->pw, l->pod, res);
		} else if (l->kind == PROXY_INBOUND_PLAIN) {
			metrics_redirected(l->pw->px->metrics, METRICS_REDIRECTED_INBOUND);
			proxy_inbound_plain_accept(l->pw, l->pod, res);
		} else
			proxy_inbound_hbone_accept(l->pw, l->pod, res);
		proxy_reuse_publish(l->pw->px->reuse, (unsigned)l->pw->io.id, access_open_here());
	} else if (proxy_accept_overloaded(res)) {
		proxy_shed_accept(l);	/* paused: logged once per interval, re-armed later */
	} else if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED && res != -ECANCELED) {
		log_warn("accept failed", "pod=%s/%s port=%u error=\"%s\"", l->pod->namespace_,
			 l->pod->name, kind_port[l->kind], strerror(-res));
	}
	if (!op->busy && !l->paused)
		io_prep_accept_multishot(&l->pw->io, op, l->fd);
}

static void add_listener_task(struct io_worker *w, void *arg)
{
	struct proxy_listener *l = arg;

	l->next = l->pw->listeners;
	l->pw->listeners = l;
	io_prep_accept_multishot(w, &l->accept_op, l->fd);
}

static void remove_listeners_task(struct io_worker *w, void *arg)
{
	struct proxy_pod *pod = arg;
	struct proxy_worker *pw = w->user;
	struct proxy_listener *l, *next;

	for (l = pw->listeners; l; l = next) {
		next = l->next;
		if (l->pod != pod || l->closing)
			continue;
		l->closing = true;
		if (l->accept_op.busy)
			io_cancel(w, &l->accept_op);
		else
			listener_free(l);
	}
	proxy_pod_put(pod);
}

/* With IPv6 on: one dual-stack socket on [::] (IPV6_V6ONLY off, as upstream binds [::]), which
 * takes IPv4 too; the peers it reports as ::ffff:a.b.c.d are made v4 where they are read. */
static int bind_listener(int fd, int family, uint16_t port)
{
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				    .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int zero = 0;

	if (family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
			return -errno;
		return bind(fd, (struct sockaddr *)&sa6, sizeof(sa6)) < 0 ? -errno : 0;
	}
	return bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

static int open_listener(struct proxy_pod *pod, uint16_t port, const struct hbone_settings *set)
{
	int family = set->ipv6 ? AF_INET6 : AF_INET;
	int one = 1, err;
	int fd = inpod_socket(pod->netns_fd, family, SOCK_STREAM, set->mark);

	if (fd == -EAFNOSUPPORT && family == AF_INET6) {
		family = AF_INET;	/* main.c checked the kernel; this netns may lack it */
		fd = inpod_socket(pod->netns_fd, family, SOCK_STREAM, set->mark);
	}
	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
	io_sock_set_options(fd);	/* accepted sockets inherit them: no calls per connection */
	err = bind_listener(fd, family, port);
	if (err < 0 || listen(fd, 1024) < 0) {
		err = err < 0 ? err : -errno;
		close(fd);
		return err;
	}
	return fd;
}

static bool in_sockmap(const struct proxy *px, enum proxy_port_kind k)
{
	return k != PROXY_INBOUND_HBONE && px->redirect && px->redirect->ops &&
	       strcmp(px->redirect->ops->name, "ebpf") == 0;
}

int proxy_listen_pod(struct proxy *px, struct proxy_pod *pod)
{
	unsigned n = px->n_workers * PROXY_KINDS, i;
	struct proxy_listener **ls = calloc(n, sizeof(*ls));
	int ret = 0;

	if (!ls)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ls[i] = calloc(1, sizeof(**ls));
		if (!ls[i]) {
			ret = -ENOMEM;
			goto fail;
		}
		ls[i]->kind = (enum proxy_port_kind)(i % PROXY_KINDS);
		ls[i]->pw = &px->workers[i / PROXY_KINDS];
		ls[i]->fd = open_listener(pod, kind_port[ls[i]->kind], &px->set);
		if (ls[i]->fd < 0) {
			ret = ls[i]->fd;
			log_error("cannot open pod listener", "pod=%s/%s port=%u error=\"%s\"",
				  pod->namespace_, pod->name, kind_port[ls[i]->kind], strerror(-ret));
			free(ls[i]);
			ls[i] = NULL;
			goto fail;
		}
		ls[i]->accept_op = (struct io_op){ .cb = on_accept, .ctx = ls[i] };
		ls[i]->pod = proxy_pod_get(pod);
	}
	for (int k = 0; px->reuse && k < PROXY_KINDS; k++) {
		int fds[CONFIG_MAX_WORKERS];

		for (i = 0; i < px->n_workers; i++)
			fds[i] = ls[i * PROXY_KINDS + (unsigned)k]->fd;
		/* the ebpf backend's sockmap holds worker 0's 15001 and 15006 (below) */
		if (in_sockmap(px, (enum proxy_port_kind)k))
			fds[0] = -fds[0] - 1;
		proxy_reuse_add(px->reuse, pod, (enum proxy_port_kind)k, fds); /* else: hash */
	}
	ret = dns_listen_pod(px->dns, pod);
	if (ret < 0)
		goto fail;
	/* the capture backend needs one socket of each reuseport group (the kernel picks within) */
	pod->capture.outbound_fd = ls[PROXY_OUTBOUND]->fd;
	pod->capture.inbound_fd = ls[PROXY_INBOUND_PLAIN]->fd;
	for (i = 0; i < n; i++)
		io_worker_post(&ls[i]->pw->io, add_listener_task, ls[i]);
	free(ls);
	return 0;
fail:
	proxy_reuse_del(px->reuse, pod);
	for (i = 0; i < n; i++) {
		if (!ls[i])
			continue;
		close(ls[i]->fd);
		proxy_pod_put(ls[i]->pod);
		free(ls[i]);
	}
	free(ls);
	return ret;
}

void proxy_drain(struct proxy *px)
{
	__atomic_store_n(&px->draining, 1, __ATOMIC_RELEASE);
}

void proxy_unlisten_pod(struct proxy *px, struct proxy_pod *pod)
{
	proxy_reuse_del(px->reuse, pod);
	dns_unlisten_pod(px->dns, pod);
	for (unsigned i = 0; i < px->n_workers; i++)
		io_worker_post(&px->workers[i].io, remove_listeners_task, proxy_pod_get(pod));
}
