/* admin server: the admin thread, its three listeners and the per-connection poll loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/log.h>

#include "admin-int.h"

enum conn_phase { CONN_FREE, CONN_READ, CONN_WRITE, CONN_LINGER };

/* One accepted connection; owned by the admin thread. */
struct admin_conn {
	int fd;
	enum conn_phase phase;
	enum admin_listener which;
	int64_t deadline;	/* monotonic ms */
	size_t len, lingered;
	char *out;		/* the response, malloc'd; owned here */
	size_t out_len, out_off;
	char head[ADMIN_HEAD_MAX + 1];
};

struct admin {
	struct admin_sources src;
	int lfd[ADMIN_LISTENERS];
	uint16_t port[ADMIN_LISTENERS];
	int wake;		/* eventfd: admin_stop wakes poll */
	pthread_t thread;
	struct admin_conn conn[ADMIN_MAX_CONNS];
};

static int64_t srv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(struct admin_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	c->out = NULL;
	c->fd = -1;
	c->phase = CONN_FREE;
}

/* Sends what is left of the response; then half-closes and lingers to drain the client. */
static void conn_write(struct admin_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	/* reading what the client still sends keeps the kernel from answering it with a RST
	 * that could destroy the response before the client reads it */
	shutdown(c->fd, SHUT_WR);
	c->phase = CONN_LINGER;
	c->lingered = 0;
	c->deadline = srv_now_ms() + ADMIN_LINGER_MS;
}

/* Queues a response and starts sending it. */
static void conn_reply(struct admin_conn *c, const struct admin_reply *rep, const char *body,
		       size_t body_len, int head_only)
{
	if (admin_http_response(rep, body, body_len, head_only, &c->out, &c->out_len) != 0) {
		conn_close(c);
		return;
	}
	c->out_off = 0;
	c->phase = CONN_WRITE;
	c->deadline = srv_now_ms() + ADMIN_WRITE_TIMEOUT_MS;
	conn_write(c);
}

static void conn_error(struct admin_conn *c, int status)
{
	struct admin_reply rep = { .status = status };
	char body[64];
	int n = snprintf(body, sizeof(body), "%s\n", admin_http_reason(status));

	conn_reply(c, &rep, body, (size_t)n, 0);
}

/* A complete head of head_len bytes is in c->head: route it and answer. */
static void conn_dispatch(struct admin *a, struct admin_conn *c, size_t head_len)
{
	struct admin_request req;
	struct admin_reply rep = { 0 };
	char *body = NULL;
	size_t body_len = 0;
	FILE *f;
	int status = admin_http_parse(c->head, head_len, &req);

	if (status) {
		conn_error(c, status);
		return;
	}
	f = open_memstream(&body, &body_len);
	if (!f) {
		conn_error(c, 500);
		return;
	}
	admin_route(&a->src, c->which, &req, &rep, f);
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		free(body);
		conn_error(c, 500);
		return;
	}
	log_debug("admin request", "method=%s path=%s status=%d", req.method_name, req.path,
		  rep.status);
	conn_reply(c, &rep, body, body_len, req.method == ADMIN_M_HEAD);
	free(body);
}

static void conn_read(struct admin *a, struct admin_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->head + c->len, ADMIN_HEAD_MAX - c->len, 0);
		size_t from = c->len > 3 ? c->len - 3 : 0;
		char *end;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {	/* the client left before finishing its request */
			conn_close(c);
			return;
		}
		c->len += (size_t)n;
		c->head[c->len] = '\0';
		end = memmem(c->head + from, c->len - from, "\r\n\r\n", 4);
		if (end) {
			conn_dispatch(a, c, (size_t)(end + 4 - c->head));
			return;
		}
		if (c->len == ADMIN_HEAD_MAX) {
			conn_error(c, 431);
			return;
		}
	}
}

static void conn_linger(struct admin_conn *c)
{
	char scratch[4096];

	for (;;) {
		ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		c->lingered += n > 0 ? (size_t)n : 0;
		if (n <= 0 || c->lingered > ADMIN_LINGER_MAX) {
			conn_close(c);
			return;
		}
	}
}

static void conn_event(struct admin *a, struct admin_conn *c, short revents)
{
	if (c->phase == CONN_READ)
		conn_read(a, c);
	else if (c->phase == CONN_WRITE)
		conn_write(c);
	else if (c->phase == CONN_LINGER)
		conn_linger(c);
	if (c->phase != CONN_FREE && (revents & (POLLERR | POLLNVAL)))
		conn_close(c);
}

/* A connection past its deadline: a request still arriving gets 408, the rest are closed. */
static void conn_expire(struct admin_conn *c)
{
	if (c->phase == CONN_READ && c->len > 0)
		conn_error(c, 408);
	else
		conn_close(c);
}

static struct admin_conn *srv_free_slot(struct admin *a)
{
	for (int i = 0; i < ADMIN_MAX_CONNS; i++)
		if (a->conn[i].phase == CONN_FREE)
			return &a->conn[i];
	return NULL;
}

static void srv_accept(struct admin *a, enum admin_listener which)
{
	struct admin_conn *c;
	int fd;

	while ((c = srv_free_slot(a))) {
		fd = accept4(a->lfd[which], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;	/* EAGAIN, or a connection that died in the backlog */
		c->fd = fd;
		c->which = which;
		c->phase = CONN_READ;
		c->len = 0;
		c->deadline = srv_now_ms() + ADMIN_READ_TIMEOUT_MS;
	}
}

/* Fills pfd (wake fd, listeners while a slot is free, connections); returns the count and the
 * poll timeout in *timeout. map[i] is the connection of pfd[i], or NULL. */
static nfds_t srv_pollset(struct admin *a, struct pollfd *pfd, struct admin_conn **map,
			  int *timeout)
{
	int64_t now = srv_now_ms(), next = -1;
	int room = srv_free_slot(a) != NULL;
	nfds_t n = 0;

	pfd[n] = (struct pollfd){ .fd = a->wake, .events = POLLIN };
	map[n++] = NULL;
	for (int i = 0; i < ADMIN_LISTENERS; i++) {
		pfd[n] = (struct pollfd){ .fd = room ? a->lfd[i] : -1, .events = POLLIN };
		map[n++] = NULL;
	}
	for (int i = 0; i < ADMIN_MAX_CONNS; i++) {
		struct admin_conn *c = &a->conn[i];

		if (c->phase == CONN_FREE)
			continue;
		pfd[n] = (struct pollfd){ .fd = c->fd,
					  .events = c->phase == CONN_WRITE ? POLLOUT : POLLIN };
		map[n++] = c;
		if (next < 0 || c->deadline < next)
			next = c->deadline;
	}
	*timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
	return n;
}

static void *srv_run(void *arg)
{
	struct admin *a = arg;
	struct pollfd pfd[1 + ADMIN_LISTENERS + ADMIN_MAX_CONNS];
	struct admin_conn *map[1 + ADMIN_LISTENERS + ADMIN_MAX_CONNS];
	int timeout;

	for (;;) {
		nfds_t n = srv_pollset(a, pfd, map, &timeout);

		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("admin poll failed", "error=\"%s\"", strerror(errno));
			return NULL;
		}
		if (pfd[0].revents)
			return NULL;
		for (int i = 0; i < ADMIN_LISTENERS; i++)
			if (pfd[1 + i].revents & POLLIN)
				srv_accept(a, (enum admin_listener)i);
		for (nfds_t i = 1 + ADMIN_LISTENERS; i < n; i++)
			if (pfd[i].revents && map[i]->fd == pfd[i].fd)
				conn_event(a, map[i], pfd[i].revents);
		int64_t now = srv_now_ms();
		for (int i = 0; i < ADMIN_MAX_CONNS; i++)
			if (a->conn[i].phase != CONN_FREE && a->conn[i].deadline <= now)
				conn_expire(&a->conn[i]);
	}
}

static int srv_listen_on(int family, uint16_t port, int loopback)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int one = 1, zero = 0, fd, err;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		s6->sin6_addr = in6addr_any;
		len = sizeof(*s6);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : INADDR_ANY);
		len = sizeof(*s4);
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Opens listener i: admin on 127.0.0.1, the others on every address (dual-stack if we can). */
static int srv_listen(struct admin *a, enum admin_listener i, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = -EAFNOSUPPORT;

	if (i != ADMIN_LISTENER_ADMIN)
		fd = srv_listen_on(AF_INET6, port, 0);
	if (fd < 0 && fd != -EADDRINUSE)
		fd = srv_listen_on(AF_INET, port, i == ADMIN_LISTENER_ADMIN);
	if (fd < 0)
		return fd;
	a->lfd[i] = fd;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		a->port[i] = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							    : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static void srv_free(struct admin *a)
{
	for (int i = 0; i < ADMIN_MAX_CONNS; i++)
		conn_close(&a->conn[i]);
	for (int i = 0; i < ADMIN_LISTENERS; i++)
		if (a->lfd[i] >= 0)
			close(a->lfd[i]);
	if (a->wake >= 0)
		close(a->wake);
	free(a);
}

struct admin *admin_start(const struct admin_config *cfg, const struct admin_sources *src)
{
	const uint16_t ports[ADMIN_LISTENERS] = { cfg ? cfg->admin_port : 0,
						  cfg ? cfg->metrics_port : 0,
						  cfg ? cfg->ready_port : 0 };
	sigset_t all, old;
	struct admin *a;
	int err;

	if (!cfg || !src) {
		errno = EINVAL;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->src = *src;
	a->wake = -1;
	for (int i = 0; i < ADMIN_LISTENERS; i++)
		a->lfd[i] = -1;
	for (int i = 0; i < ADMIN_MAX_CONNS; i++)
		a->conn[i].fd = -1;
	a->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (a->wake < 0) {
		err = -errno;
		goto fail;
	}
	for (int i = 0; i < ADMIN_LISTENERS; i++) {
		err = srv_listen(a, (enum admin_listener)i, ports[i]);
		if (err) {
			log_error("admin listen failed", "port=%u error=\"%s\"", ports[i],
				  strerror(-err));
			goto fail;
		}
	}
	/* signals belong to the agent's other threads */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&a->thread, NULL, srv_run, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto fail;
	log_info("admin listening", "admin_port=%u metrics_port=%u ready_port=%u",
		 a->port[ADMIN_LISTENER_ADMIN], a->port[ADMIN_LISTENER_METRICS],
		 a->port[ADMIN_LISTENER_READY]);
	return a;
fail:
	srv_free(a);
	errno = -err;
	return NULL;
}

void admin_stop(struct admin **ap)
{
	struct admin *a = ap ? *ap : NULL;
	uint64_t one = 1;

	if (!a)
		return;
	if (write(a->wake, &one, sizeof(one)) < 0)
		log_warn("admin wake failed", "error=\"%s\"", strerror(errno));
	pthread_join(a->thread, NULL);
	srv_free(a);
	*ap = NULL;
}

uint16_t admin_bound_port(struct admin *a, enum admin_listener which)
{
	if (!a || (unsigned)which >= ADMIN_LISTENERS)
		return 0;
	return a->port[which];
}
