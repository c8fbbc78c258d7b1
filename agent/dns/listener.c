/* dns/listener: the pods' 15053 sockets on the workers, UDP receive and send, query dispatch. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/inpod.h>
#include <ztunnel/log.h>

#include "dns-int.h"

struct dns_listener *dns_listener_ref(struct dns_listener *l)
{
	l->refs++;
	return l;
}

/* A closing listener gives its socket up as soon as no operation of its own is in flight (so a
 * new agent's or a re-enrolled pod's listener gets all the traffic), and its memory once nothing
 * refers to it. Pending submissions go to the kernel first: their replies hold the file, not the
 * fd number, from then on. */
static void listener_maybe_free(struct dns_listener *l)
{
	struct dns_listener **pp;

	if (!l->closing || l->op.busy)
		return;
	if (l->fd >= 0) {
		io_uring_submit(&l->dw->io->ring);
		close(l->fd);
		l->fd = -1;
		for (unsigned i = 0; i < l->n_reply_from; i++)
			close(l->reply_from[i].fd);
		l->n_reply_from = 0;
	}
	if (l->refs)
		return;
	for (pp = &l->dw->listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	proxy_pod_put(l->pod);
	free(l);
}

void dns_listener_unref(struct dns_listener *l)
{
	l->refs--;
	listener_maybe_free(l);
}

static struct state_snapshot *worker_snapshot(struct dns_worker *dw)
{
	unsigned long gen = state_store_generation(dw->dns->store);

	if (!dw->snap || gen != dw->gen) {
		state_snapshot_put(&dw->snap);
		dw->snap = state_store_current(dw->dns->store);
		dw->gen = gen;
	}
	return dw->snap;
}

struct metrics_dns_series *dns_series(struct dns_listener *l, bool tcp, uint16_t qtype)
{
	const struct state_workload *w = state_lookup_pod(worker_snapshot(l->dw), l->pod->uid,
							  l->pod->namespace_, l->pod->name);
	struct metrics_dns_labels lb = {
		.request_query_type = qtype ? dns_qtype_name(qtype) : NULL,
		.request_protocol = tcp ? "tcp" : "udp",
		.source_canonical_service = w ? (w->canonical_name ? w->canonical_name : w->name) :
						NULL,
		.source_canonical_revision = w ? w->canonical_revision : NULL,
	};

	return metrics_dns_series_get(l->dw->shard, &lb);
}

/* ---- UDP ---- */

struct udp_reply {
	struct io_op op;
	int fd;				/* owned: a socket for this reply only, or -1 */
	struct msghdr msg;
	struct iovec iov;
	union dns_addr peer;
	union dns_pktinfo_ctl ctl;
	struct dns_listener *l;		/* reference */
	uint8_t *data;			/* owned */
};

static void on_udp_sent(struct io_op *op, int res, uint32_t flags)
{
	struct udp_reply *r = op->ctx;

	if (res < 0 && res != -ECANCELED)
		log_debug("dns reply not sent", "pod=%s/%s error=\"%s\"", r->l->pod->namespace_,
			  r->l->pod->name, strerror(-res));
	if (r->fd >= 0)
		close(r->fd);
	free(r->data);
	dns_listener_unref(r->l);
	free(r);
}

static socklen_t addr_len(const union dns_addr *a)
{
	return a->sa.sa_family == AF_INET6 ? sizeof(a->in6) : sizeof(a->in);
}

static uint16_t addr_port(const union dns_addr *a)
{
	return a->sa.sa_family == AF_INET6 ? a->in6.sin6_port : a->in.sin_port;
}

static bool addr_same(const union dns_addr *a, const union dns_addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family || addr_port(a) != addr_port(b))
		return false;
	return a->sa.sa_family == AF_INET6 ?
		       !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr)) :
		       a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
}

/* IP_TRANSPARENT and IP_FREEBIND, or their IPv6 twins, on a socket of family. */
static void transparent(int fd, int family)
{
	int one = 1;

	if (family == AF_INET6) {
		setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
		setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof(one));
	} else {
		setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
		setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof(one));
	}
}

/* A socket in the pod bound (transparently) to the address and port the pod's query went to:
 * under sk_lookup the reply must come from the resolver it asked, port 53 included. */
static int reply_socket(struct dns_listener *l, const union dns_addr *from)
{
	int one = 1, fd;

	fd = inpod_socket(l->pod->netns_fd, from->sa.sa_family, SOCK_DGRAM, l->dw->dns->set.mark);

	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	transparent(fd, from->sa.sa_family);
	/* it only sends: the pod's queries to that address are steered to the listener first */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	if (bind(fd, &from->sa, addr_len(from)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* The listener's socket replying from `from`: kept for the next replies (up to
 * DNS_REPLY_SOCKETS; past that one per reply, *own_fd set to close after it). fd or -errno. */
static int reply_from(struct dns_listener *l, const union dns_addr *from, int *own_fd)
{
	int fd;

	*own_fd = -1;
	for (unsigned i = 0; i < l->n_reply_from; i++)
		if (addr_same(&l->reply_from[i].addr, from))
			return l->reply_from[i].fd;
	fd = reply_socket(l, from);
	if (fd < 0)
		return fd;
	if (l->n_reply_from < DNS_REPLY_SOCKETS) {
		l->reply_from[l->n_reply_from].addr = *from;
		l->reply_from[l->n_reply_from++].fd = fd;
	} else {
		*own_fd = fd;
	}
	return fd;
}

/* The reply leaves from the query's destination: IP_PKTINFO's source address (IPv4 only; the
 * IPv6 listener is bound to [::1], the only address its queries reach it at). */
static void reply_source(struct udp_reply *r, const union dns_addr *local)
{
	struct in_pktinfo pi = { .ipi_spec_dst = local->in.sin_addr };
	struct cmsghdr *cm;

	if (local->sa.sa_family != AF_INET || local->in.sin_addr.s_addr == htonl(INADDR_ANY))
		return;
	r->msg.msg_control = r->ctl.buf;
	r->msg.msg_controllen = CMSG_SPACE(sizeof(pi));	/* exactly one message */
	cm = CMSG_FIRSTHDR(&r->msg);
	cm->cmsg_level = IPPROTO_IP;
	cm->cmsg_type = IP_PKTINFO;
	cm->cmsg_len = CMSG_LEN(sizeof(pi));
	memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
}

void dns_udp_send(struct dns_listener *l, const struct dns_reply_to *to, uint8_t *msg, size_t len)
{
	int fd;
	struct udp_reply *r;
	uint16_t lport = addr_port(&to->local);
	bool own = !to->local.sa.sa_family || !lport ||
		   lport == l->dw->dns->set.listen.sin_port;

	if (l->closing || !(r = calloc(1, sizeof(*r)))) {
		free(msg);
		return;
	}
	r->op = (struct io_op){ .cb = on_udp_sent, .ctx = r };
	r->fd = -1;
	fd = own ? l->fd : reply_from(l, &to->local, &r->fd);
	if (fd < 0) {
		log_debug("dns reply not sent", "pod=%s/%s error=\"%s\"", l->pod->namespace_,
			  l->pod->name, strerror(-fd));
		free(r);
		free(msg);
		return;
	}
	r->peer = to->peer;
	r->data = msg;
	r->iov = (struct iovec){ .iov_base = msg, .iov_len = len };
	r->msg = (struct msghdr){ .msg_name = &r->peer, .msg_namelen = addr_len(&r->peer),
				  .msg_iov = &r->iov, .msg_iovlen = 1 };
	if (own)
		reply_source(r, &to->local);
	r->l = dns_listener_ref(l);
	io_prep_sendmsg(l->dw->io, &r->op, fd, &r->msg);
}

void dns_handle_query(struct dns_listener *l, const struct dns_reply_to *to, const uint8_t *msg,
		      size_t len)
{
	struct dns_worker *dw = l->dw;
	struct dns_client client = { l->pod->namespace_, l->pod->network,
				     .no_ipv6 = !dw->dns->set.ipv6 };
	struct dns_query_info info;
	struct metrics_dns_series *series;
	uint8_t *reply = NULL;
	size_t rlen = 0;
	enum dns_verdict v;

	v = dns_answer(worker_snapshot(dw), &client, dw->dns->set.domain, msg, len,
		       to->tcp ? DNS_TCP_LIMIT : 0, &reply, &rlen, &info);
	if (v == DNS_DROP) {
		metrics_dns_drop(dw->dns->metrics, len > DNS_MAX_QUERY ? METRICS_DNS_DROP_OVERSIZED :
									 METRICS_DNS_DROP_MALFORMED);
		log_debug("dns query dropped", "pod=%s/%s bytes=%zu", l->pod->namespace_,
			  l->pod->name, len);
		if (to->tcp)
			dns_client_reply(to->tcp, NULL, 0);	/* garbage on a stream: close it */
		return;
	}
	series = dns_series(l, to->tcp != NULL, info.qtype);
	metrics_dns_count(series, METRICS_DNS_REQUESTS);
	if (v == DNS_FORWARD) {
		if (!to->tcp && (l->n_forwards >= DNS_MAX_FORWARDS_PER_POD ||
				 dw->n_forwards >= DNS_MAX_FORWARDS_PER_WORKER)) {
			/* the pod floods: shed its query (it retries) so the others' go on */
			metrics_dns_drop(dw->dns->metrics, METRICS_DNS_DROP_OVERLOAD);
			return;
		}
		if (dns_forward_start(l, to, msg, len, &info, series) == 0)
			return;
		metrics_dns_count(series, METRICS_DNS_UPSTREAM_FAILURES);
		if (dns_error_reply(msg, len, 2 /* SERVFAIL */, &reply, &rlen) < 0)
			reply = NULL;
	}
	if (to->tcp)
		dns_client_reply(to->tcp, reply, rlen);
	else if (reply)
		dns_udp_send(l, to, reply, rlen);
}

static void arm_recv(struct dns_listener *l)
{
	l->iov = (struct iovec){ .iov_base = l->buf, .iov_len = sizeof(l->buf) };
	l->msg = (struct msghdr){ .msg_name = &l->peer, .msg_namelen = sizeof(l->peer),
				  .msg_iov = &l->iov, .msg_iovlen = 1, .msg_control = l->ctl.buf,
				  .msg_controllen = sizeof(l->ctl.buf) };
	io_prep_recvmsg(l->dw->io, &l->op, l->fd, &l->msg);
}

/* The address and port a received datagram was sent to (after NAT, if any), or all zero when
 * the kernel did not say. */
static union dns_addr query_dst(struct msghdr *msg)
{
	union dns_addr a;

	memset(&a, 0, sizeof(a));
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		bool v4 = cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_ORIGDSTADDR;
		bool v6 = cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_ORIGDSTADDR;
		size_t n = v6 ? sizeof(a.in6) : sizeof(a.in);

		if ((!v4 && !v6) || cm->cmsg_len < CMSG_LEN(n))
			continue;
		memcpy(&a, CMSG_DATA(cm), n);
		if (a.sa.sa_family != (v6 ? AF_INET6 : AF_INET))
			memset(&a, 0, sizeof(a));
		break;
	}
	return a;
}

static void on_udp_recv(struct io_op *op, int res, uint32_t flags)
{
	struct dns_listener *l = op->ctx;

	if (l->closing) {
		listener_maybe_free(l);
		return;
	}
	if (res >= 0 && (l->msg.msg_flags & MSG_TRUNC)) {
		metrics_dns_drop(l->dw->dns->metrics, METRICS_DNS_DROP_OVERSIZED);
	} else if (res >= 0 && l->peer.sa.sa_family == l->family &&
		   l->msg.msg_namelen == addr_len(&l->peer)) {
		struct dns_reply_to to = { .udp = l, .peer = l->peer, .local = query_dst(&l->msg) };

		dns_handle_query(l, &to, l->buf, (size_t)res);
	} else if (res < 0 && res != -EAGAIN && res != -EINTR && res != -ECANCELED) {
		log_debug("dns receive failed", "pod=%s/%s error=\"%s\"", l->pod->namespace_,
			  l->pod->name, strerror(-res));
	}
	if (!l->closing)
		arm_recv(l);
}

/* ---- TCP ---- */

static void on_tcp_accept(struct io_op *op, int res, uint32_t flags)
{
	struct dns_listener *l = op->ctx;

	if (l->closing) {
		if (res >= 0)
			close(res);
		listener_maybe_free(l);
		return;
	}
	if (res >= 0) {
		if (l->n_conns >= DNS_MAX_TCP_PER_POD) {
			metrics_dns_drop(l->dw->dns->metrics, METRICS_DNS_DROP_OVERLOAD);
			io_sock_reset_close(res);
		} else {
			dns_client_accept(l, res);
		}
	} else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
		/* out of fds: the proxy's shedding covers the node; don't spin here */
		log_debug("dns accept failed", "pod=%s/%s error=\"%s\"", l->pod->namespace_,
			  l->pod->name, strerror(-res));
	}
	if (!op->busy && !l->closing)
		io_prep_accept_multishot(l->dw->io, op, l->fd);
}

/* ---- pods ---- */

static void add_task(struct io_worker *w, void *arg)
{
	struct dns_listener *l = arg;

	l->next = l->dw->listeners;
	l->dw->listeners = l;
	if (l->tcp)
		io_prep_accept_multishot(w, &l->op, l->fd);
	else
		arm_recv(l);
}

struct unlisten_arg {
	struct dns_worker *dw;
	struct proxy_pod *pod;		/* reference */
};

static void remove_task(struct io_worker *w, void *arg)
{
	struct unlisten_arg *ua = arg;
	struct dns_listener *l, *next;

	for (l = ua->dw->listeners; l; l = next) {
		next = l->next;
		if (l->pod != ua->pod || l->closing)
			continue;
		l->closing = true;
		dns_listener_ref(l);	/* held across the closes below */
		if (l->tcp)
			dns_client_close_all(l);
		if (l->op.busy)
			io_cancel(w, &l->op);
		next = l->next;
		dns_listener_unref(l);
	}
	proxy_pod_put(ua->pod);
	free(ua);
}

/* Binds fd to DNS_PROXY_ADDR (IPv4), or for IPv6 to [::1] on the same port (as upstream's
 * "localhost:15053" binds both): the nat rules' REDIRECT of an IPv6 query goes to ::1. */
static int bind_listen(int fd, const struct dns *d, int family)
{
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = d->set.listen.sin_port,
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int one = 1;

	if (family == AF_INET)
		return bind(fd, (const struct sockaddr *)&d->set.listen, sizeof(d->set.listen));
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	return bind(fd, (const struct sockaddr *)&sa6, sizeof(sa6));
}

static int open_socket(const struct dns *d, struct proxy_pod *pod, bool tcp, int family)
{
	int one = 1;
	int fd = inpod_socket(pod->netns_fd, family, tcp ? SOCK_STREAM : SOCK_DGRAM, d->set.mark);

	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* replies leave from the address each query was sent to: under a capture without NAT
	 * (sk_lookup) that is the resolver the pod asked, not a local address (TCP: the accepted
	 * socket's, so its SYN-ACK may leave from it) */
	transparent(fd, family);
	if (!tcp && family == AF_INET)
		setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one));
	else if (!tcp)
		setsockopt(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, &one, sizeof(one));
	if (bind_listen(fd, d, family) < 0 || (tcp && listen(fd, 128) < 0)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* The listener of slot i (UDP, TCP; then with IPv6 the same on [::1]) on worker i / per. NULL
 * with *err set; NULL with *err 0 for an IPv6 one the pod's netns cannot have (no IPv6 on lo). */
static struct dns_listener *listener_new(struct dns *d, struct proxy_pod *pod, unsigned i,
					 unsigned per, int *err)
{
	struct dns_listener *l = calloc(1, sizeof(*l));

	*err = -ENOMEM;
	if (!l)
		return NULL;
	l->tcp = i % 2;
	l->family = (i % per) >= 2 ? AF_INET6 : AF_INET;
	l->dw = &d->workers[i / per];
	l->fd = open_socket(d, pod, l->tcp, l->family);
	if (l->fd < 0) {
		*err = l->fd;
		if (l->family == AF_INET6 && (*err == -EADDRNOTAVAIL || *err == -EAFNOSUPPORT))
			*err = 0;
		else
			log_error("cannot open the pod's DNS listener",
				  "pod=%s/%s proto=%s family=%s error=\"%s\"", pod->namespace_,
				  pod->name, l->tcp ? "tcp" : "udp",
				  l->family == AF_INET6 ? "ipv6" : "ipv4", strerror(-*err));
		free(l);
		return NULL;
	}
	l->op = (struct io_op){ .cb = l->tcp ? on_tcp_accept : on_udp_recv, .ctx = l };
	l->pod = proxy_pod_get(pod);
	return l;
}

int dns_listen_pod(struct dns *d, struct proxy_pod *pod)
{
	unsigned per = d && d->set.ipv6 ? 4 : 2, n, i;
	struct dns_listener **ls;
	bool v6 = per == 4;
	int ret = 0;

	pod->capture.dns_udp_fd = pod->capture.dns_tcp_fd = -1;
	pod->capture.dns6_udp_fd = pod->capture.dns6_tcp_fd = -1;
	pod->capture.dns_port = 0;
	pod->capture.dns_ipv6 = false;
	if (!d || !d->set.enabled)
		return 0;
	n = d->n_workers * per;
	ls = calloc(n, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ls[i] = listener_new(d, pod, i, per, &ret);
		if (!ls[i] && ret < 0)
			goto fail;
		if (!ls[i])
			v6 = false;	/* no IPv6 in this pod: its IPv4 DNS only */
	}
	pod->capture.dns_udp_fd = ls[0]->fd;
	pod->capture.dns_tcp_fd = ls[1]->fd;
	pod->capture.dns_port = ntohs(d->set.listen.sin_port);
	pod->capture.dns_ipv6 = v6;
	pod->capture.dns6_udp_fd = v6 ? ls[2]->fd : -1;
	pod->capture.dns6_tcp_fd = v6 ? ls[3]->fd : -1;
	for (i = 0; i < n; i++) {
		if (ls[i] && (v6 || ls[i]->family == AF_INET)) {
			io_worker_post(ls[i]->dw->io, add_task, ls[i]);
		} else if (ls[i]) {	/* the pod has some IPv6 listeners but not all: none */
			close(ls[i]->fd);
			proxy_pod_put(ls[i]->pod);
			free(ls[i]);
		}
	}
	free(ls);
	return 0;
fail:
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

void dns_unlisten_pod(struct dns *d, struct proxy_pod *pod)
{
	if (!d || !d->set.enabled)
		return;
	for (unsigned i = 0; i < d->n_workers; i++) {
		struct unlisten_arg *ua = calloc(1, sizeof(*ua));

		if (!ua)
			continue;	/* left open until the process ends: logged by the caller */
		ua->dw = &d->workers[i];
		ua->pod = proxy_pod_get(pod);
		if (io_worker_post(d->workers[i].io, remove_task, ua) < 0) {
			proxy_pod_put(ua->pod);
			free(ua);
		}
	}
	pod->capture.dns_udp_fd = pod->capture.dns_tcp_fd = -1;
	pod->capture.dns6_udp_fd = pod->capture.dns6_tcp_fd = -1;
}

struct dns *dns_new(const struct dns_settings *set, struct io_worker *const *ws, unsigned n_workers,
		    struct state_store *store, struct metrics *metrics)
{
	struct dns *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->set = *set;
	d->store = store;
	d->metrics = metrics;
	d->n_workers = n_workers;
	d->workers = calloc(n_workers, sizeof(*d->workers));
	if (!d->workers) {
		free(d);
		return NULL;
	}
	for (unsigned i = 0; i < n_workers; i++) {
		d->workers[i].dns = d;
		d->workers[i].io = ws[i];
		d->workers[i].shard = set->enabled ? metrics_shard_new(metrics) : NULL;
	}
	return d;
}

bool dns_enabled(const struct dns *d)
{
	return d && d->set.enabled;
}
