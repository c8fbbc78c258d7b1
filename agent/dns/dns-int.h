/* dns-int: the DNS proxy's private types, shared by its listener, client and forwarder files. */
#ifndef ZTUNNEL_DNS_INT_H
#define ZTUNNEL_DNS_INT_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <ztunnel/dns.h>
#include <ztunnel/proxy.h>
#include <ztunnel/sock.h>

#define DNS_NAME_MAX 320	/* a name as text (253) with a search domain appended */
#define DNS_REPLY_SOCKETS 4	/* per UDP listener: resolver addresses replied from (no NAT) */

struct dns_worker;

/* Room for one IP_PKTINFO or IP_ORIGDSTADDR control message (CMSG_SPACE of either: 32 bytes on
 * 64-bit Linux), aligned as a cmsghdr (not a union with one: its flexible array member makes
 * clang refuse it). */
union dns_pktinfo_ctl {
	char buf[64] __attribute__((aligned(__alignof__(struct cmsghdr))));
};
_Static_assert(CMSG_SPACE(sizeof(struct in6_pktinfo)) <= sizeof(union dns_pktinfo_ctl) &&
	       CMSG_SPACE(sizeof(struct sockaddr_in6)) <= sizeof(union dns_pktinfo_ctl),
	       "no room for IP(V6)_PKTINFO");

/* A client's or a listener's address: IPv4, or IPv6 (the [::1] listeners). */
union dns_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

/* One pod's UDP or TCP socket on one worker. Freed when closing and nothing refers to it. */
struct dns_listener {
	struct dns_listener *next;	/* the worker's list */
	struct dns_worker *dw;
	struct proxy_pod *pod;		/* reference */
	int fd;				/* owned */
	bool tcp;
	bool closing;
	int family;			/* AF_INET (DNS_PROXY_ADDR) or AF_INET6 ([::1]) */
	struct io_op op;		/* UDP: recvmsg; TCP: multishot accept */
	unsigned refs;			/* replies being sent, client connections, forwards */
	unsigned n_forwards;		/* the pod's forwards in flight on this worker (UDP one) */
	unsigned n_conns;		/* TCP: client connections open */
	struct dns_client_conn *conns;	/* TCP: those connections (each holds a reference) */
	/* UDP under a capture without NAT: sockets bound to the resolver addresses the pod asked,
	 * its replies' sources (a pod has a few); owned, closed with the listener */
	struct {
		union dns_addr addr;
		int fd;
	} reply_from[DNS_REPLY_SOCKETS];
	unsigned n_reply_from;
	/* UDP receive: one datagram at a time, with the address it was sent to (IP_ORIGDSTADDR) */
	struct msghdr msg;
	struct iovec iov;
	union dns_addr peer;
	union dns_pktinfo_ctl ctl;
	uint8_t buf[DNS_MAX_QUERY + 1];
};

/* Where the answer to a query goes. */
struct dns_client_conn;
struct dns_reply_to {
	struct dns_listener *udp;	/* reference (refs) when a UDP query, else NULL */
	union dns_addr peer;
	union dns_addr local;		/* the query's destination, the reply's source: with
					 * REDIRECT our own 127.0.0.1:15053 or [::1]:15053
					 * (conntrack maps it back); with sk_lookup (no NAT) what
					 * the pod asked; all zero when unknown */
	struct dns_client_conn *tcp;	/* the TCP client, or NULL (also once it went away) */
};

struct dns_worker {
	struct io_worker *io;
	struct dns *dns;
	struct metrics_shard *shard;
	struct dns_listener *listeners;
	struct state_snapshot *snap;	/* this worker's reference, refreshed when the store moved */
	unsigned long gen;
	unsigned n_forwards;		/* in flight on this worker, all pods */
};

#define DNS_MAX_FORWARDS_PER_WORKER 1024

struct dns {
	struct dns_settings set;
	struct state_store *store;
	struct metrics *metrics;
	struct dns_worker *workers;
	unsigned n_workers;
};

/* listener.c */
struct dns_listener *dns_listener_ref(struct dns_listener *l);
void dns_listener_unref(struct dns_listener *l);
/* Counts the query under its labels (query type, protocol, the pod's canonical names). */
struct metrics_dns_series *dns_series(struct dns_listener *l, bool tcp, uint16_t qtype);
/* Sends a reply datagram (owned from now, freed when sent) to to->peer from to->local: from l's
 * socket when that is its own address, else (a capture without NAT) from a transparent socket
 * bound to it for this reply. */
void dns_udp_send(struct dns_listener *l, const struct dns_reply_to *to, uint8_t *msg, size_t len);
/* Handles one query (UDP or a TCP client's): answers it or starts a forward. */
void dns_handle_query(struct dns_listener *l, const struct dns_reply_to *to, const uint8_t *msg,
		      size_t len);

/* client.c: TCP clients of the proxy (length-prefixed messages, one at a time) */
void dns_client_accept(struct dns_listener *l, int fd);
/* Closes every client connection of l (the pod is going). */
void dns_client_close_all(struct dns_listener *l);
/* The answer to the client's current query (msg owned from now); NULL msg: none, go on. */
void dns_client_reply(struct dns_client_conn *c, uint8_t *msg, size_t len);
/* The client's current query is being forwarded by f (for detaching when the client goes). */
struct dns_forward;
void dns_client_set_forward(struct dns_client_conn *c, struct dns_forward *f);

/* forward.c */
/* Relays query (copied) to the upstream resolvers; the answer goes to `to`. 0 or -errno. */
int dns_forward_start(struct dns_listener *l, const struct dns_reply_to *to, const uint8_t *msg,
		      size_t len, const struct dns_query_info *info,
		      struct metrics_dns_series *series);
/* The client went away: the forward goes on but its answer is dropped. */
void dns_forward_detach(struct dns_forward *f);

#endif
