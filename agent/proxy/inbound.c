/* proxy inbound: HBONE streams and plaintext connections delivered to the pod's app. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/addr.h>
#include <ztunnel/inpod.h>
#include <ztunnel/log.h>
#include <ztunnel/redirect.h>
#include <ztunnel/sock.h>

#include "proxy-int.h"

int proxy_app_socket(struct proxy_pod *pod, const struct sockaddr_storage *src, uint32_t mark)
{
	struct sockaddr_storage bind_to = *src;
	int one = 1, err;
	int fd = inpod_socket(pod->netns_fd, src->ss_family, SOCK_STREAM, mark);

	if (fd < 0)
		return fd;
	/* the app sees the real client: bind its address (IP_TRANSPARENT), any port */
	if (src->ss_family == AF_INET)
		((struct sockaddr_in *)&bind_to)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&bind_to)->sin6_port = 0;
	/* IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect, unique per 4-tuple; a bind-time
	 * choice would skip every port any socket of that address holds (TIME_WAIT included).
	 * IP_TRANSPARENT alone lets the bind take a foreign address (IP_FREEBIND would too). */
	if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&bind_to, src->ss_family == AF_INET ?
			sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* The peer's baggage, for a source the state does not know (the log names what it says), and
 * the destination's baggage for the response. */
static void peer_meta(struct proxy_worker *pw, struct hbone_stream *st, struct access_record *rec,
		      struct proxy_baggage *bag)
{
	struct state_snapshot *snap = proxy_snapshot(pw);
	struct state_ip ip;
	uint16_t port;
	char out[sizeof(hbone_stream_meta(st)->baggage)];

	proxy_baggage_parse(hbone_stream_meta(st)->baggage, bag);
	if (!rec->names[ACCESS_SRC_WORKLOAD] && bag->workload[0]) {
		access_set(rec, ACCESS_SRC_WORKLOAD, bag->workload);	/* the log's only */
		access_set(rec, ACCESS_SRC_NAMESPACE, bag->namespace_);
	}
	proxy_addr_ip(&rec->dst, &ip, &port);
	proxy_baggage_encode(state_lookup_ip(snap, &ip), out, sizeof(out));
	hbone_stream_set_response_baggage(st, out);
}

/* The destination workload's application tunnel, if it has one. */
static const struct state_app_tunnel *app_tunnel(struct proxy_worker *pw,
						 const struct state_ip *ip)
{
	const struct state_workload *w = state_lookup_ip(proxy_snapshot(pw), ip);

	return w && w->application_tunnel.present ? &w->application_tunnel : NULL;
}

/* PROXY app tunnel: the app gets a PROXY v2 header (client address, the destination asked for,
 * the client's identity) first; on localhost (LOCALHOST_APP_TUNNEL), from localhost. */
static void app_tunnel_connect(struct proxy_worker *pw, struct proxy_pod *pod,
			       struct hbone_stream *st, const struct access_record *rec,
			       const struct sockaddr_storage *dst)
{
	struct sockaddr_storage to = *dst, src, asked;
	uint8_t hdr[16 + 36 + 3 + TLS_SPIFFE_MAX];
	ssize_t n;
	struct state_ip lo;
	uint16_t port;
	int fd;

	io_addr_unpack(&rec->src, &src);
	io_addr_unpack(&rec->dst, &asked);
	n = proxy_ppv2_header(&src, &asked, access_get(rec, ACCESS_SRC_IDENTITY), hdr, sizeof(hdr));
	if (n < 0 || hbone_stream_set_prefix(st, hdr, (size_t)n) < 0) {
		hbone_stream_refuse(st, 503, "cannot build the PROXY header");
		return;
	}
	if (pw->px->set.localhost_app_tunnel) {
		proxy_ip_of(dst, &lo, &port);
		state_ip_parse(dst->ss_family == AF_INET ? "127.0.0.1" : "::1", &lo);
		proxy_sockaddr(&lo, port, &to);
		fd = inpod_socket(pod->netns_fd, to.ss_family, SOCK_STREAM, pw->px->set.mark);
	} else {
		fd = proxy_app_socket(pod, &src, pw->px->set.mark);
	}
	if (fd < 0) {
		hbone_stream_refuse(st, 503, "cannot create the app socket");
		return;
	}
	hbone_stream_connect(st, fd, (struct sockaddr *)&to, to.ss_family == AF_INET ?
			     sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

static void on_hbone_request(struct hbone_stream *st, const char *authority, void *ctx)
{
	struct proxy_pod *pod = ctx;
	struct proxy_worker *pw = hbone_stream_worker(st)->user;
	struct access_record *rec = hbone_stream_record(st);
	struct sockaddr_storage dst, src;
	struct state_ip ip;
	uint16_t port = 0;
	socklen_t len = 0;
	const char *bad;
	char why[256], msg[300];
	struct proxy_baggage bag;
	const struct state_app_tunnel *tunnel;
	int fd;

	/* the policies judge the source identity: without its name the stream cannot go on */
	if (!access_get(rec, ACCESS_SRC_IDENTITY)[0] != !hbone_stream_peer_identity(st)[0] ||
	    access_set(rec, ACCESS_DST_WORKLOAD, pod->name) < 0 ||
	    access_set(rec, ACCESS_DST_NAMESPACE, pod->namespace_) < 0 ||
	    access_set(rec, ACCESS_DST_IDENTITY, pod->identity) < 0 ||
	    proxy_record_source(proxy_snapshot(pw), rec) < 0) {
		hbone_stream_refuse(st, 503, "out of memory");
		return;
	}
	if (__atomic_load_n(&pw->px->draining, __ATOMIC_ACQUIRE)) {
		hbone_stream_goaway(st);
		hbone_stream_refuse(st, 503, "the agent is draining");
		return;
	}
	bad = proxy_check_authority(authority, pod->ips, pod->n_ips, &ip, &port);
	if (port) {	/* it parsed: the access log names the destination even when refused */
		len = proxy_sockaddr(&ip, port, &dst);
		io_addr_pack(&rec->dst, &dst);
	}
	if (bad) {
		hbone_stream_refuse(st, 400, bad);
		return;
	}
	if (!proxy_authorized(pw, rec, why, sizeof(why))) {
		peer_meta(pw, st, rec, &bag);
		proxy_count_open_peer(pw, rec, PROXY_FLAGS_DENY, true, &bag);
		snprintf(msg, sizeof(msg), "connection denied: %s", why);
		hbone_stream_refuse(st, 401, msg);
		return;
	}
	peer_meta(pw, st, rec, &bag);
	proxy_count_open_peer(pw, rec, PROXY_FLAGS_OK, true, &bag);
	access_track(&pw->inbound, rec, hbone_stream_abort);
	tunnel = app_tunnel(pw, &ip);
	if (tunnel && tunnel->port)	/* the app's tunnel port instead of the one asked for */
		len = proxy_sockaddr(&ip, tunnel->port, &dst);
	if (tunnel && tunnel->proxy) {
		app_tunnel_connect(pw, pod, st, rec, &dst);
		return;
	}
	io_addr_unpack(&rec->src, &src);
	fd = proxy_app_socket(pod, &src, pw->px->set.mark);
	if (fd < 0) {
		hbone_stream_refuse(st, 503, "cannot create the app socket");
		return;
	}
	hbone_stream_connect(st, fd, (struct sockaddr *)&dst, len);
}

static void pod_hold(void *ctx)
{
	proxy_pod_get(ctx);
}

static void pod_release(void *ctx)
{
	proxy_pod_put(ctx);
}

static const struct hbone_server_handler inbound_handler = {
	.on_request = on_hbone_request,
	.hold = pod_hold,
	.release = pod_release,
};

void proxy_inbound_hbone_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	int ret;

	memset(&peer, 0, sizeof(peer));
	getpeername(fd, (struct sockaddr *)&peer, &len);
	io_addr_unmap(&peer);	/* a [::] listener's IPv4 peer */
	/* the context is swapped when the certificate rotates: read it once, atomically */
	ret = hbone_server_start(&pw->io, fd, __atomic_load_n(&pod->server_ctx, __ATOMIC_ACQUIRE),
				 pod->trust_domain, &pw->px->set, pw->px->gate, &inbound_handler,
				 pod, &peer);
	if (ret == -EBUSY || ret == -EMLINK)
		proxy_shed_gate(pw, ret);
	else if (ret < 0)
		log_warn("inbound connection dropped", "pod=%s/%s error=\"out of memory\"",
			 pod->namespace_, pod->name);
}

void proxy_inbound_plain_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd)
{
	struct access_record rec = { .direction = ACCESS_INBOUND, .start_ms = io_now_ms() };
	struct state_snapshot *snap = proxy_snapshot(pw);
	struct sockaddr_storage src = { 0 }, dst;
	socklen_t len = sizeof(src);
	char why[256], msg[300];
	int up;

	getpeername(fd, (struct sockaddr *)&src, &len);
	io_addr_unmap(&src);
	io_addr_pack(&rec.src, &src);
	len = sizeof(dst);
	if (proxy_original_dst(pw, fd, &dst) < 0) {
		access_log_complete(&rec, "no original destination (connection not redirected)");
		close(fd);
		return;
	}
	io_addr_pack(&rec.dst, &dst);
	if (access_set(&rec, ACCESS_DST_WORKLOAD, pod->name) < 0 ||
	    access_set(&rec, ACCESS_DST_NAMESPACE, pod->namespace_) < 0 ||
	    proxy_record_source(snap, &rec) < 0) {
		access_log_complete(&rec, "out of memory");
		io_sock_reset_close(fd);
		return;
	}
	if (proxy_agent_port(rec.dst.port)) {
		access_log_complete(&rec, "destination is a port of the agent");
		close(fd);
		return;
	}
	if (!proxy_authorized(pw, &rec, why, sizeof(why))) {
		proxy_count_open(pw, &rec, PROXY_FLAGS_DENY, false);
		snprintf(msg, sizeof(msg), "connection denied: %s", why);
		access_log_complete(&rec, msg);
		io_sock_reset_close(fd);
		return;
	}
	up = proxy_app_socket(pod, &src, pw->px->set.mark);
	if (up < 0) {
		access_log_complete(&rec, "cannot create the app socket");
		close(fd);
		return;
	}
	proxy_count_open(pw, &rec, PROXY_FLAGS_OK, false);
	proxy_relay_tcp(pw, fd, up, (struct sockaddr *)&dst, len, &rec, true);
}
