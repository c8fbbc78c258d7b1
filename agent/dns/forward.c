/* dns/forward: relaying a query to the upstream resolvers over UDP (retries), then TCP on TC. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/addr.h>
#include <ztunnel/inpod.h>
#include <ztunnel/log.h>

#include "dns-int.h"

/*
 * One forwarded query. Owned by itself from start to the last completion: the worker's ops
 * and timer point at it. Sockets are made in the pod's netns with the agent's mark (so the
 * pod's port-53 capture leaves them alone), as upstream's forwarder does with its socket
 * factory. UDP: one unconnected socket for all tries, each try to the next resolver; any
 * configured resolver's answer with the query's id is taken. A truncated UDP answer makes one
 * TCP exchange with the resolver that sent it. With IPv6 on the sockets are dual-stack (IPv4
 * resolvers as ::ffff:a.b.c.d); off, or in a pod netns without IPv6, they are IPv4 and only
 * the IPv4 resolvers are asked.
 */
struct dns_forward {
	struct dns_listener *l;		/* reference: the pod, its worker and its bound */
	struct dns_reply_to to;		/* to.udp holds a reference */
	uint8_t *query;			/* owned copy */
	size_t qlen;
	struct dns_query_info info;
	struct metrics_dns_series *series;
	uint64_t start_ms;
	unsigned attempt;
	bool done;			/* answered or failed: only completions are awaited */
	bool finishing;			/* inside finish: a synchronous close must not free */
	int ufd;			/* owned */
	int family;			/* of ufd and the TCP socket: AF_INET6 (dual-stack) or AF_INET */
	struct io_op send_op, recv_op;
	struct msghdr smsg, rmsg;
	struct iovec siov, riov;
	struct sockaddr_storage sto, rfrom;	/* of the socket's family */
	uint8_t *rbuf;			/* worker pool, IO_BUF_16K, while the UDP socket is open */
	struct io_timer timer;
	/* TCP after a truncated answer */
	struct io_sock ts;
	bool tcp_open;
	uint8_t *tcp_out;		/* owned: length prefix + query */
	uint8_t *tcp_in;		/* owned: length prefix + answer as it arrives */
	size_t tcp_have, tcp_need;
	uint8_t *tc_answer;		/* owned: the truncated UDP answer, the fallback */
	size_t tc_len;
};

static void maybe_free(struct dns_forward *f)
{
	struct dns_worker *dw = f->l->dw;

	if (!f->done || f->finishing || f->send_op.busy || f->recv_op.busy || f->tcp_open)
		return;
	io_timer_disarm(&f->timer);
	if (f->ufd >= 0)
		close(f->ufd);
	io_buf_put(&dw->io->bufs, IO_BUF_16K, &f->rbuf);
	free(f->query);
	free(f->tcp_out);
	free(f->tcp_in);
	free(f->tc_answer);
	if (f->to.tcp)
		dns_client_set_forward(f->to.tcp, NULL);
	if (f->to.udp) {
		f->to.udp->n_forwards--;
		dns_listener_unref(f->to.udp);
	}
	dw->n_forwards--;
	dns_listener_unref(f->l);
	free(f);
}

/* The answer (copied) goes to the client, unless it went away. */
static void deliver(struct dns_forward *f, const uint8_t *msg, size_t len)
{
	uint8_t *copy = malloc(len);

	if (!copy)
		return;
	memcpy(copy, msg, len);
	if (f->to.tcp) {
		struct dns_client_conn *c = f->to.tcp;

		dns_client_set_forward(c, NULL);
		f->to.tcp = NULL;
		dns_client_reply(c, copy, len);
	} else if (f->to.udp) {
		dns_udp_send(f->to.udp, &f->to, copy, len);
	} else {
		free(copy);
	}
}

static void finish(struct dns_forward *f, const uint8_t *answer, size_t len)
{
	if (f->done)
		return;
	f->done = true;
	f->finishing = true;
	metrics_dns_duration(f->series, io_now_ms() - f->start_ms);
	if (answer) {
		deliver(f, answer, len);
	} else {
		uint8_t *fail = NULL;
		size_t flen = 0;

		metrics_dns_count(f->series, METRICS_DNS_UPSTREAM_FAILURES);
		log_debug("dns forward failed", "pod=%s/%s attempts=%u", f->l->pod->namespace_,
			  f->l->pod->name, f->attempt);
		if (dns_error_reply(f->query, f->qlen, 2 /* SERVFAIL */, &fail, &flen) == 0)
			deliver(f, fail, flen);
		free(fail);
	}
	io_timer_disarm(&f->timer);
	if (f->send_op.busy)
		io_cancel(f->l->dw->io, &f->send_op);
	if (f->recv_op.busy)
		io_cancel(f->l->dw->io, &f->recv_op);
	if (f->tcp_open)
		io_sock_close(&f->ts, false);
	f->finishing = false;
	maybe_free(f);
}

/* ---- TCP ---- */

static void tcp_failed(struct dns_forward *f)
{
	/* the truncated answer is still an answer: the client may ask us over TCP itself */
	finish(f, f->tc_answer, f->tc_len);
}

static void on_tcp_read(struct io_sock *s, const uint8_t *data, ssize_t n)
{
	struct dns_forward *f = s->owner;
	size_t take;

	if (f->done)
		return;
	if (n <= 0) {
		tcp_failed(f);
		return;
	}
	while (n > 0) {
		if (f->tcp_have < 2) {
			f->tcp_in[f->tcp_have++] = *data++;
			n--;
			if (f->tcp_have == 2) {
				f->tcp_need = 2 + (((size_t)f->tcp_in[0] << 8) | f->tcp_in[1]);
				uint8_t *b = realloc(f->tcp_in, f->tcp_need);

				if (!b || f->tcp_need < 2 + 12) {
					tcp_failed(f);
					return;
				}
				f->tcp_in = b;
			}
			continue;
		}
		take = f->tcp_need - f->tcp_have;
		if (take > (size_t)n)
			take = (size_t)n;
		memcpy(f->tcp_in + f->tcp_have, data, take);
		f->tcp_have += take;
		data += take;
		n -= (ssize_t)take;
		if (f->tcp_have == f->tcp_need)
			break;
	}
	if (f->tcp_have >= 2 && f->tcp_have == f->tcp_need) {
		bool tc;
		size_t alen = f->tcp_need - 2;

		if (!dns_is_answer(f->tcp_in + 2, alen, f->info.id, &tc))
			tcp_failed(f);
		else if (f->to.udp && alen > f->info.udp_limit)
			finish(f, f->tc_answer, f->tc_len);	/* too big for the client's UDP */
		else
			finish(f, f->tcp_in + 2, alen);
		return;
	}
	io_sock_read(s);
}

static void on_tcp_sent(struct io_sock *s, int err)
{
	struct dns_forward *f = s->owner;

	if (f->done)
		return;
	if (err < 0)
		tcp_failed(f);
	else
		io_sock_read(s);
}

static void on_tcp_connected(struct io_sock *s, int err)
{
	struct dns_forward *f = s->owner;

	if (f->done)
		return;
	if (err < 0 || io_sock_write(s, f->tcp_out, f->qlen + 2) < 0)
		tcp_failed(f);
}

static void on_tcp_closed(struct io_sock *s)
{
	struct dns_forward *f = s->owner;

	f->tcp_open = false;
	maybe_free(f);
}

static const struct io_sock_cb tcp_cb = {
	.on_read = on_tcp_read,
	.on_sent = on_tcp_sent,
	.on_connected = on_tcp_connected,
	.on_closed = on_tcp_closed,
};

static socklen_t addr_len(const struct dns_forward *f)
{
	return f->family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* A socket of the forward's family in the pod's netns: dual-stack when IPv6. */
static int fwd_socket(struct dns_forward *f, int type)
{
	int fd = inpod_socket(f->l->pod->netns_fd, f->family, type, f->l->dw->dns->set.mark);
	int off = 0;

	if (fd >= 0 && f->family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static void start_tcp(struct dns_forward *f, const struct sockaddr_storage *server)
{
	struct dns_worker *dw = f->l->dw;
	int fd;

	f->tcp_out = malloc(f->qlen + 2);
	f->tcp_in = malloc(2);
	if (!f->tcp_out || !f->tcp_in) {
		tcp_failed(f);
		return;
	}
	f->tcp_out[0] = (uint8_t)(f->qlen >> 8);
	f->tcp_out[1] = (uint8_t)f->qlen;
	memcpy(f->tcp_out + 2, f->query, f->qlen);
	fd = fwd_socket(f, SOCK_STREAM);
	if (fd < 0) {
		tcp_failed(f);
		return;
	}
	io_sock_init(&f->ts, dw->io, fd, &tcp_cb, f, 16384);
	f->tcp_open = true;
	io_timer_arm(dw->io, &f->timer, DNS_TCP_TIMEOUT_MS);
	io_sock_connect(&f->ts, (const struct sockaddr *)server, addr_len(f));
}

/* ---- UDP ---- */

static bool from_upstream(const struct dns_settings *set, const struct sockaddr_storage *from)
{
	struct sockaddr_storage ss = *from;
	const struct sockaddr_in6 *v6 = (const void *)&ss;

	io_addr_map(&ss);	/* as the settings keep resolvers: IPv4 ones v4-mapped */
	for (unsigned i = 0; i < set->n_upstreams; i++)
		if (IN6_ARE_ADDR_EQUAL(&set->upstream[i].sin6_addr, &v6->sin6_addr) &&
		    set->upstream[i].sin6_port == v6->sin6_port)
			return true;
	return false;
}

static void arm_recv(struct dns_forward *f)
{
	f->riov = (struct iovec){ .iov_base = f->rbuf, .iov_len = io_buf_size(IO_BUF_16K) };
	f->rmsg = (struct msghdr){ .msg_name = &f->rfrom, .msg_namelen = addr_len(f),
				   .msg_iov = &f->riov, .msg_iovlen = 1 };
	io_prep_recvmsg(f->l->dw->io, &f->recv_op, f->ufd, &f->rmsg);
}

static void on_udp_recv(struct io_op *op, int res, uint32_t flags)
{
	struct dns_forward *f = op->ctx;
	bool tc = false;

	if (f->done) {
		maybe_free(f);
		return;
	}
	if (res > 0 && f->rmsg.msg_namelen == addr_len(f) &&
	    from_upstream(&f->l->dw->dns->set, &f->rfrom) &&
	    dns_is_answer(f->rbuf, (size_t)res, f->info.id, &tc)) {
		if (!tc && !(f->rmsg.msg_flags & MSG_TRUNC)) {
			finish(f, f->rbuf, (size_t)res);
			return;
		}
		/* truncated: keep it as the fallback, ask the same resolver over TCP */
		f->tc_answer = malloc((size_t)res);
		if (f->tc_answer) {
			memcpy(f->tc_answer, f->rbuf, (size_t)res);
			f->tc_len = (size_t)res;
		}
		io_timer_disarm(&f->timer);
		start_tcp(f, &f->rfrom);
		return;
	}
	/* anything else (a stray datagram, an error such as ECONNREFUSED): wait for the timer */
	arm_recv(f);
}

static void on_udp_sent(struct io_op *op, int res, uint32_t flags)
{
	struct dns_forward *f = op->ctx;

	if (f->done)
		maybe_free(f);
	/* a failed send is retried by the timer, like a lost datagram */
}

/* The resolver of this try into f->sto, in the socket's family: false when the IPv4 socket of a
 * pod without IPv6 cannot reach it. */
static bool try_target(struct dns_forward *f, const struct sockaddr_in6 *up)
{
	memset(&f->sto, 0, sizeof(f->sto));
	memcpy(&f->sto, up, sizeof(*up));
	return f->family == AF_INET6 || io_addr_unmap(&f->sto);
}

static void send_try(struct dns_forward *f)
{
	const struct dns_settings *set = &f->l->dw->dns->set;
	bool reachable = false;

	/* a resolver the socket cannot reach is passed over: the next one is this try's */
	for (unsigned i = 0; i < set->n_upstreams; i++) {
		reachable = try_target(f, &set->upstream[f->attempt % set->n_upstreams]);
		if (reachable)
			break;
		f->attempt++;
	}
	f->attempt++;
	io_timer_arm(f->l->dw->io, &f->timer, DNS_ATTEMPT_MS);
	if (!reachable || f->send_op.busy)
		return;	/* none (the timer ends it), or the last send is still going */
	f->siov = (struct iovec){ .iov_base = f->query, .iov_len = f->qlen };
	f->smsg = (struct msghdr){ .msg_name = &f->sto, .msg_namelen = addr_len(f),
				   .msg_iov = &f->siov, .msg_iovlen = 1 };
	io_prep_sendmsg(f->l->dw->io, &f->send_op, f->ufd, &f->smsg);
}

static void on_timer(struct io_timer *t)
{
	struct dns_forward *f = (struct dns_forward *)((char *)t - offsetof(struct dns_forward,
									   timer));

	if (f->done)
		return;
	if (f->tcp_open) {
		tcp_failed(f);
		return;
	}
	if (f->attempt >= DNS_MAX_ATTEMPTS) {
		finish(f, NULL, 0);
		return;
	}
	send_try(f);
}

int dns_forward_start(struct dns_listener *l, const struct dns_reply_to *to, const uint8_t *msg,
		      size_t len, const struct dns_query_info *info,
		      struct metrics_dns_series *series)
{
	struct dns_worker *dw = l->dw;
	struct dns_forward *f;

	if (!dw->dns->set.n_upstreams)
		return -ENOENT;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->query = malloc(len);
	f->rbuf = io_buf_get(&dw->io->bufs, IO_BUF_16K);
	f->l = l;	/* borrowed until the reference below */
	f->family = dw->dns->set.ipv6 ? AF_INET6 : AF_INET;
	f->ufd = f->query && f->rbuf ? fwd_socket(f, SOCK_DGRAM) : -ENOMEM;
	if (f->ufd == -EAFNOSUPPORT) {	/* this pod's netns has no IPv6 */
		f->family = AF_INET;
		f->ufd = fwd_socket(f, SOCK_DGRAM);
	}
	if (f->ufd < 0) {
		int err = f->ufd;

		io_buf_put(&dw->io->bufs, IO_BUF_16K, &f->rbuf);
		free(f->query);
		free(f);
		return err;
	}
	memcpy(f->query, msg, len);
	f->qlen = len;
	f->info = *info;
	f->series = series;
	f->start_ms = io_now_ms();
	f->l = dns_listener_ref(l);
	f->to = *to;
	if (f->to.udp) {
		dns_listener_ref(f->to.udp);
		f->to.udp->n_forwards++;
	}
	if (f->to.tcp)
		dns_client_set_forward(f->to.tcp, f);
	dw->n_forwards++;
	f->send_op = (struct io_op){ .cb = on_udp_sent, .ctx = f };
	f->recv_op = (struct io_op){ .cb = on_udp_recv, .ctx = f };
	f->timer.fire = on_timer;
	metrics_dns_count(series, METRICS_DNS_UPSTREAM_REQUESTS);
	arm_recv(f);
	send_try(f);
	return 0;
}

void dns_forward_detach(struct dns_forward *f)
{
	f->to.tcp = NULL;
}
