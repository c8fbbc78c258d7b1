/* sock: a TCP socket driven by io_uring: one read delivered and one write in flight at most. */
#ifndef ZTUNNEL_SOCK_H
#define ZTUNNEL_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ztunnel/io.h>

struct io_sock;

/* Callbacks of the owner; all run on the socket's worker. */
struct io_sock_cb {
	/* n > 0: data in the socket's read buffer (valid until the next io_sock_read or close);
	 * n == 0: the peer shut down writing; n < 0: -errno. */
	void (*on_read)(struct io_sock *s, const uint8_t *data, ssize_t n);
	/* the whole buffer given to io_sock_write went out (err 0), or -errno */
	void (*on_sent)(struct io_sock *s, int err);
	void (*on_connected)(struct io_sock *s, int err);
	/* after io_sock_close, once no operation is in flight: the owner may free now */
	void (*on_closed)(struct io_sock *s);
};

struct io_sock {
	struct io_worker *w;
	int fd;				/* owned; -1 once closed */
	enum io_buf_class rclass;
	const struct io_sock_cb *cb;
	void *owner;
	struct io_op rop, wop, cop;	/* rop: the multishot recv, or the poll of a one-shot read */
	uint8_t *rbuf;			/* from the worker's pool, held only while read bytes are
					 * being used: from a recv until the next io_sock_read */
	/* Reads from the worker's buffer ring: buffers the multishot recv filled, in order, until
	 * the owner asks for them (linked through rbufs.next); the one delivered to on_read is
	 * held until the next io_sock_read. */
	int32_t rcur;			/* first ring buffer delivered (rcur_n in a row), or -1 */
	uint16_t rcur_n;
	uint16_t rq_head, rq_tail, rq_n;
	uint32_t rq_bytes;
	int rq_final;			/* 0 (EOF) or -errno, after the queued bytes (rq_has_final) */
	/* flags as bits: the socket is part of every tunnelled connection's object */
	bool rq_has_final : 1;
	bool want : 1;			/* io_sock_read called, on_read not delivered yet */
	bool mshot : 1;			/* rop is a multishot recv (else a poll) */
	bool rcancel : 1;		/* ... being cancelled: its socket queued too much */
	bool ready : 1;			/* on the worker's list of reads to deliver */
	bool closing : 1;
	bool shut_wr : 1;
	bool read_eof : 1;
	bool sent_ready : 1;		/* a write the kernel took at once: on_sent from the loop */
	union {				/* connect target, until the connect completes */
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr;
	struct io_sock *ready_next;
	const uint8_t *wdata;		/* the owner's buffer being written */
	uint32_t wlen, woff;
	int sent_res;			/* ... and its result (0 or -errno) */
};

#define IO_SOCK_RBUF (256 * 1024)
/* A read into a pool buffer (one-shot, or ring buffers gathered) starts this far into it: room
 * for the owner to write a header right before the bytes (an HTTP/2 frame header, so that a
 * DATA frame is one run). */
#define IO_SOCK_HEADROOM 16
/* A socket with this many bytes queued in ring buffers stops its multishot recv until the owner
 * has taken half (the rest waits in the kernel, under TCP's window); a few more may still come
 * before the recv ends. */
#define IO_SOCK_RQ_BYTES (256 * 1024)

/* Multishot recv from the worker's buffer ring (ZTUNNEL_IO_MULTISHOT=true) or poll + recv into
 * a pool buffer for every read (the default: faster in this testbed, see README). Call once at
 * start-up, before io_worker_init. */
void io_sock_set_multishot(bool on);
bool io_sock_multishot(void);

/* Takes ownership of fd (non-blocking). rcap: largest read (rounded up to a pool class;
 * 0 = IO_SOCK_RBUF), except that a read from the buffer ring is one whole ring buffer at least
 * (IO_RING_BUF_SIZE); buffers queued meanwhile are delivered together up to rcap. */
void io_sock_init(struct io_sock *s, struct io_worker *w, int fd, const struct io_sock_cb *cb,
		  void *owner, size_t rcap);
/* Gives back the last read's buffer and asks for the next bytes (no buffer held while none
 * came): on_read follows from the loop, never from inside this call. 0, or -EBADF / -EALREADY
 * (a read was already asked for). */
int io_sock_read(struct io_sock *s);
/* How many bytes right before p (inside the last read's bytes, given to on_read) the owner may
 * overwrite: the headroom and what it has used of the read before p. 0 where the read is a
 * ring buffer delivered in place, or p is not in it. */
size_t io_sock_headroom(const struct io_sock *s, const uint8_t *p);
/* Writes all of data (the caller keeps it alive until on_sent). -EALREADY if a write is busy,
 * -EINVAL for 4 GiB or more. The socket is written at once where it takes the bytes (no
 * io_uring round trip for them); on_sent still follows from the loop, never from inside this
 * call. */
int io_sock_write(struct io_sock *s, const uint8_t *data, size_t len);
/* Starts a connect to sa (AF_INET or AF_INET6; a longer len, such as a sockaddr_storage's, is
 * cut to the address's own). */
void io_sock_connect(struct io_sock *s, const struct sockaddr *sa, socklen_t len);
/* shutdown(SHUT_WR) once. */
void io_sock_shutdown_write(struct io_sock *s);
/* Cancels what is in flight and closes; reset=true sends RST (SO_LINGER 0). on_closed follows. */
void io_sock_close(struct io_sock *s, bool reset);
bool io_sock_busy(const struct io_sock *s);

/* Closes fd (not yet an io_sock) with a reset (SO_LINGER 0), not a FIN: a refusal. */
void io_sock_reset_close(int fd);

/* TCP keepalive of proxied sockets (upstream's KEEPALIVE_*; default on, 180 s / 180 s / 9). */
struct io_keepalive {
	bool enabled;
	unsigned time_s, interval_s, retries;
};

/* Sets the keepalive io_sock_set_options applies from now on. Call once at start-up, before
 * any worker runs: the value is read without a lock afterwards. */
void io_sock_set_keepalive(const struct io_keepalive *ka);
/* Sets the options every proxied socket gets: TCP_NODELAY and the keepalive set above. On a
 * listener they are inherited by each socket it accepts (Linux copies them at accept). */
void io_sock_set_options(int fd);

#endif
