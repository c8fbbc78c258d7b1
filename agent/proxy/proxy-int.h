/* proxy internals shared by the listener, outbound, inbound and relay files. */
#ifndef ZTUNNEL_PROXY_INT_H
#define ZTUNNEL_PROXY_INT_H

#include <ztunnel/access.h>
#include <ztunnel/proxy.h>

/* Per-worker datapath state; owned by the worker's struct proxy slot. */
struct proxy_worker {
	struct io_worker io;
	struct proxy *px;
	struct hbone_pool *pool;
	struct state_snapshot *snap;	/* this worker's reference */
	unsigned long gen;
	uint32_t counter;		/* spreads service endpoint picks */
	struct proxy_listener *listeners;
};

struct proxy {
	struct proxy_worker *workers;
	unsigned n_workers;
	struct state_store *store;
	struct hbone_settings set;
};

enum proxy_port_kind { PROXY_OUTBOUND, PROXY_INBOUND_PLAIN, PROXY_INBOUND_HBONE, PROXY_KINDS };

struct proxy_listener {
	struct io_op accept_op;
	int fd;
	enum proxy_port_kind kind;
	struct proxy_pod *pod;		/* reference */
	struct proxy_worker *pw;
	struct proxy_listener *next;
	bool closing;
};

/* The worker's current snapshot (refreshed when the store moved). */
struct state_snapshot *proxy_snapshot(struct proxy_worker *pw);

void proxy_outbound_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd);
void proxy_inbound_plain_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd);
void proxy_inbound_hbone_accept(struct proxy_worker *pw, struct proxy_pod *pod, int fd);

/* Relays between the accepted client fd and a new socket upfd connecting to sa. Owns both. */
void proxy_relay_tcp(struct proxy_worker *pw, int fd, int upfd, const struct sockaddr *sa,
		     socklen_t salen, const struct access_record *rec);

/* Fills sockaddr from ip and port; returns its length. */
socklen_t proxy_sockaddr(const struct state_ip *ip, uint16_t port, struct sockaddr_storage *ss);
/* A socket in pod's netns bound to src (transparently, port 0), for connecting to the app. */
int proxy_app_socket(struct proxy_pod *pod, const struct sockaddr_storage *src, uint32_t mark);
/* Fills the workload fields of rec from the workload owning ip, if any. */
void proxy_record_workload(struct state_snapshot *snap, const struct sockaddr_storage *ss,
			   char *workload, size_t wl, char *ns, size_t nl, char *identity, size_t il);

#endif
