/* proxy outbound: a captured connection from a pod to its destination, by HBONE or passthrough. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <ztunnel/addr.h>
#include <ztunnel/inpod.h>
#include <ztunnel/log.h>
#include <ztunnel/sock.h>

#include "proxy-int.h"

socklen_t proxy_sockaddr(const struct state_ip *ip, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ip->family == AF_INET) {
		struct sockaddr_in *in = (void *)ss;

		in->sin_family = AF_INET;
		in->sin_addr = ip->v4;
		in->sin_port = htons(port);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *)ss;

	in6->sin6_family = AF_INET6;
	in6->sin6_addr = ip->v6;
	in6->sin6_port = htons(port);
	return sizeof(*in6);
}

void proxy_ip_of(const struct sockaddr_storage *ss, struct state_ip *ip, uint16_t *port)
{
	memset(ip, 0, sizeof(*ip));
	ip->family = ss->ss_family;
	if (ss->ss_family == AF_INET) {
		ip->v4 = ((const struct sockaddr_in *)ss)->sin_addr;
		*port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	} else {
		ip->v6 = ((const struct sockaddr_in6 *)ss)->sin6_addr;
		*port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
		state_ip_unmap(ip);
	}
}

void proxy_addr_ip(const struct io_addr *a, struct state_ip *ip, uint16_t *port)
{
	struct sockaddr_storage ss;

	io_addr_unpack(a, &ss);
	proxy_ip_of(&ss, ip, port);
}

int proxy_record_source(struct state_snapshot *snap, struct access_record *rec)
{
	struct state_ip ip;
	uint16_t port;
	const struct state_workload *w;

	proxy_addr_ip(&rec->src, &ip, &port);
	w = state_lookup_ip(snap, &ip);
	if (!w)
		return 0;
	if (access_set(rec, ACCESS_SRC_WORKLOAD, w->name) < 0 ||
	    access_set(rec, ACCESS_SRC_NAMESPACE, w->namespace_) < 0)
		return -ENOMEM;
	return 0;
}

static void passthrough(struct proxy_worker *pw, struct proxy_pod *pod, int fd,
			const struct proxy_route *r, struct access_record *rec)
{
	struct sockaddr_storage sa;
	socklen_t len = proxy_sockaddr(&r->ip, r->port, &sa);
	int up = inpod_socket(pod->netns_fd, sa.ss_family, SOCK_STREAM, pw->px->set.mark);

	io_addr_pack(&rec->dst, &sa);
	proxy_count_open(pw, rec, PROXY_FLAGS_OK, false);
	if (up < 0) {
		access_log_complete(rec, "cannot create the upstream socket");
		close(fd);
		return;
	}
	proxy_relay_tcp(pw, fd, up, (struct sockaddr *)&sa, len, rec, false);
}

/* Upstream's headers: the source pod's baggage, forwarded (with the service addressed) and a
 * fresh traceparent. */
static void request_meta(const struct state_workload *src, const struct proxy_route *r,
			 const struct access_record *rec, struct hbone_meta *m)
{
	struct sockaddr_storage client;

	io_addr_unpack(&rec->src, &client);
	proxy_baggage_encode(src, m->baggage, sizeof(m->baggage));
	proxy_forwarded(&client, r->svc ? r->svc->hostname : NULL, m->forwarded,
			sizeof(m->forwarded));
	proxy_traceparent(m->traceparent, sizeof(m->traceparent));
}

static void tunnel(struct proxy_worker *pw, struct proxy_pod *pod, int fd,
		   const struct proxy_route *r, const struct state_workload *src,
		   struct access_record *rec)
{
	struct hbone_target t;
	struct hbone_meta meta;
	struct sockaddr_storage dst;
	char ipbuf[INET6_ADDRSTRLEN], name[300];

	memset(&t, 0, sizeof(t));
	proxy_sockaddr(&r->ip, r->kind == PROXY_ROUTE_WAYPOINT ? r->port : HBONE_PORT,
		       &t.hbone_addr);
	proxy_sockaddr(&r->authority_ip, r->authority_port, &dst);
	io_addr_pack(&rec->dst, &dst);
	io_addr_pack(&rec->hbone, &t.hbone_addr);
	state_ip_format(&r->authority_ip, ipbuf, sizeof(ipbuf));
	snprintf(t.authority, sizeof(t.authority),
		 r->authority_ip.family == AF_INET6 ? "[%s]:%u" : "%s:%u", ipbuf, r->authority_port);
	state_workload_identity(r->w, t.dst_identity, sizeof(t.dst_identity));
	snprintf(t.src_identity, sizeof(t.src_identity), "%s", pod->identity);
	if (r->kind == PROXY_ROUTE_WAYPOINT)
		snprintf(t.waypoint, sizeof(t.waypoint), "%s (%s/%s)",
			 proxy_gateway_name(r->waypoint, name, sizeof(name)),
			 r->w->namespace_ ? r->w->namespace_ : "", r->w->name ? r->w->name : "");
	t.netns_fd = pod->netns_fd;
	t.client_ctx = __atomic_load_n(&pod->client_ctx, __ATOMIC_ACQUIRE);	/* rotation swaps it */
	/* as upstream, the destination of a waypoint hop is the waypoint (the service stays) */
	/* out of memory: the log and labels lose a name, the tunnel checks t's identity anyway */
	access_set(rec, ACCESS_DST_WORKLOAD, r->w->name);
	access_set(rec, ACCESS_DST_NAMESPACE, r->w->namespace_);
	access_set(rec, ACCESS_DST_IDENTITY, t.dst_identity);
	proxy_count_open(pw, rec, PROXY_FLAGS_OK, true);
	request_meta(src, r, rec, &meta);
	hbone_pool_tunnel(pw->pool, &t, fd, rec, &meta);
}

/* An outbound connection waiting for the control plane to say what its destination is. */
struct proxy_parked {
	struct proxy_parked *next;
	struct proxy_pod *pod;		/* reference */
	int fd;
	struct sockaddr_storage orig;
	struct access_record rec;
	uint64_t since_ms;
	char name[96];			/* "<network>/<ip>" */
};

/* Asks for the destination and parks the connection; false when it cannot wait. */
static bool park(struct proxy_worker *pw, struct proxy_pod *pod, int fd,
		 const struct sockaddr_storage *orig, const struct access_record *rec,
		 const struct proxy_route *r)
{
	struct proxy *px = pw->px;
	struct proxy_parked *p;
	char ipbuf[INET6_ADDRSTRLEN];

	if (!px->demand || pw->n_parked >= PROXY_MAX_PARKED || !(p = calloc(1, sizeof(*p))))
		return false;
	state_ip_format(&r->ip, ipbuf, sizeof(ipbuf));
	snprintf(p->name, sizeof(p->name), "%s/%s", pod->network, ipbuf);
	if (px->demand(px->demand_ctx, p->name) < 0) {
		free(p);
		return false;
	}
	p->pod = proxy_pod_get(pod);
	p->fd = fd;
	p->orig = *orig;
	p->rec = *rec;
	p->since_ms = io_now_ms();
	p->next = pw->parked;
	pw->parked = p;
	pw->n_parked++;
	return true;
}

/* xorshift64*, seeded once per worker: endpoint picks need spread, not secrecy */
static uint64_t next_random(struct proxy_worker *pw)
{
	uint64_t x = pw->rng;

	if (!x && (RAND_bytes((unsigned char *)&x, sizeof(x)) != 1 || !x))
		x = io_now_ms() | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	pw->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Routes a captured connection by the current state; may_wait: an unknown destination may be
 * asked for on demand first. */
static void route_outbound(struct proxy_worker *pw, struct proxy_pod *pod, int fd,
			   const struct sockaddr_storage *orig, struct access_record *rec,
			   bool may_wait)
{
	struct state_snapshot *snap = proxy_snapshot(pw);
	struct proxy_route r;
	struct proxy_route_source src = { .identity = pod->identity };
	struct state_ip dst;
	uint16_t dport, sport;
	char why[400];
	int ret;

	proxy_addr_ip(&rec->src, &src.ip, &sport);
	proxy_ip_of(orig, &dst, &dport);
	src.workload = state_lookup_pod(snap, pod->uid, pod->namespace_, pod->name);
	ret = proxy_route_pick(snap, &src, &dst, dport, next_random(pw), &r, why, sizeof(why));
	if (r.svc)
		access_set(rec, ACCESS_DST_SERVICE, r.svc->hostname);
	if (ret < 0) {
		/* never around a waypoint: no route is a refused connection */
		access_log_complete(rec, why);
		io_sock_reset_close(fd);
	} else if (ret == 1 && may_wait && park(pw, pod, fd, orig, rec, &r)) {
		return;
	} else if (r.kind == PROXY_ROUTE_WAYPOINT ||
		   (r.kind == PROXY_ROUTE_DIRECT && r.w->protocol == STATE_PROTO_HBONE)) {
		tunnel(pw, pod, fd, &r, src.workload, rec);
	} else {
		passthrough(pw, pod, fd, &r, rec);
	}
}

/* Takes p off the list (pp points at it) and routes it with what the state now says. */
static void unpark(struct proxy_worker *pw, struct proxy_parked **pp)
{
	struct proxy_parked *p = *pp;

	*pp = p->next;
	pw->n_parked--;
	route_outbound(pw, p->pod, p->fd, &p->orig, &p->rec, false);
	proxy_pod_put(p->pod);
	free(p);
}

void proxy_parked_tick(struct proxy_worker *pw)
{
	uint64_t now = io_now_ms();

	for (struct proxy_parked **pp = &pw->parked; *pp;) {
		if (now - (*pp)->since_ms < PROXY_DEMAND_TIMEOUT_MS) {
			pp = &(*pp)->next;
			continue;
		}
		log_warn("on-demand lookup timed out", "name=%s waited_ms=%llu", (*pp)->name,
			 (unsigned long long)(now - (*pp)->since_ms));
		unpark(pw, pp);
	}
}

static void answered_task(struct io_worker *w, void *arg)
{
	struct proxy_worker *pw = w->user;
	char *name = arg;

	for (struct proxy_parked **pp = &pw->parked; *pp;) {
		if (strcmp((*pp)->name, name) == 0)
			unpark(pw, pp);
		else
			pp = &(*pp)->next;
	}
	free(name);
}

void proxy_demand_answered(struct proxy *px, const char *name)
{
	for (unsigned i = 0; px && i < px->n_workers; i++) {
		char *copy = strdup(name);

		if (copy && io_worker_post(&px->workers[i].io, answered_task, copy) < 0)
			free(copy);	/* the connections go on at their timeout */
	}
}

void proxy_set_demand(struct proxy *px, int (*demand)(void *ctx, const char *name), void *ctx)
{
	px->demand = demand;
	px->demand_ctx = ctx;
}

void proxy_outbound_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd)
{
	struct access_record rec = { .direction = ACCESS_OUTBOUND, .start_ms = io_now_ms() };
	struct sockaddr_storage orig, peer = { 0 };
	socklen_t len = sizeof(peer);

	getpeername(fd, (struct sockaddr *)&peer, &len);
	io_addr_unmap(&peer);	/* a [::] listener's IPv4 peer */
	io_addr_pack(&rec.src, &peer);
	if (proxy_original_dst(pw, fd, &orig) < 0) {
		access_log_complete(&rec, "no original destination (connection not redirected)");
		close(fd);
		return;
	}
	io_addr_pack(&rec.dst, &orig);
	if (access_set(&rec, ACCESS_SRC_WORKLOAD, pod->name) < 0 ||
	    access_set(&rec, ACCESS_SRC_NAMESPACE, pod->namespace_) < 0 ||
	    access_set(&rec, ACCESS_SRC_IDENTITY, pod->identity) < 0) {
		access_log_complete(&rec, "out of memory");
		io_sock_reset_close(fd);
		return;
	}
	route_outbound(pw, pod, fd, &orig, &rec, true);
}
