/* io: one io_uring loop per worker thread, completion ops, coarse timers, cross-thread tasks. */
#ifndef ZTUNNEL_IO_H
#define ZTUNNEL_IO_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ztunnel/iobuf.h>

struct io_worker;
struct io_op;
struct io_sock;

/* Called on the worker thread with the completion's result (bytes, fd, or -errno). */
typedef void (*io_cb)(struct io_op *op, int res, uint32_t cqe_flags);

/* An operation in flight. Embedded in its owner; the owner must outlive it (see inflight). */
struct io_op {
	io_cb cb;
	void *ctx;
	bool busy;	/* submitted and not yet completed (multishot: until the final CQE) */
};

/* A deadline fired by the worker's tick (about every 250 ms). Embedded in its owner. */
struct io_timers;
struct io_timer {
	uint64_t deadline_ms;
	void (*fire)(struct io_timer *t);
	struct io_timers *in;		/* the worker's timers it is armed in, or NULL */
	uint32_t slot;			/* its place in that heap + 1; 0: in the overflow list */
	struct io_timer *prev, *next;	/* in the overflow list, when the heap could not grow */
	bool armed;
};

/* A worker's armed timers: a binary min-heap on deadline (arm, disarm O(log n); a tick costs
 * only what expires), and a list for the rare timer armed while the heap could not grow. */
struct io_timers {
	struct io_timer **heap;
	uint32_t n, cap;
	struct io_timer overflow;	/* list head */
};

/* Work handed to a worker from another thread; runs on the worker, then is freed. */
struct io_task {
	struct io_task *next;
	void (*run)(struct io_worker *w, void *arg);
	void *arg;
};

struct io_worker {
	struct io_uring ring;
	int id;
	pthread_t thread;
	int event_fd;			/* wakes the worker for tasks and stop */
	uint64_t event_val;
	struct io_op event_op;
	struct io_op tick_op;
	struct __kernel_timespec tick_ts;
	struct io_timers timers;
	pthread_mutex_t task_lock;
	struct io_task *tasks, *tasks_tail;	/* owned; protected by task_lock */
	bool stopping;
	void *user;			/* the proxy's per-worker state */
	void (*tick_hook)(struct io_worker *w);	/* runs on every tick, on the worker */
	struct io_buf_pool bufs;	/* I/O buffers of this worker's sockets */
	struct io_buf_ring rbufs;	/* the buffers multishot recvs fill (unregistered: none) */
	struct io_sock *ready_head, *ready_tail;	/* sockets with queued reads to deliver */
};

/* Sets up the ring (and eventfd, tick, and the buffer ring when multishot reads are on, see
 * io_sock_set_multishot). 0 or -errno. */
int io_worker_init(struct io_worker *w, int id, unsigned entries);
/* Starts the thread running the loop until io_worker_stop. */
int io_worker_start(struct io_worker *w);
/* Asks the loop to end and joins the thread. */
void io_worker_stop(struct io_worker *w);
void io_worker_destroy(struct io_worker *w);
/* Runs fn(w, arg) on w's thread soon. Safe from any thread. 0 or -ENOMEM. */
int io_worker_post(struct io_worker *w, void (*fn)(struct io_worker *, void *), void *arg);

/* Allocator settings that let freed memory go back to the system; call once at start-up. */
void io_mem_init(void);
/* Returns free memory of every allocator arena to the system (the control thread calls it
 * every few seconds: after a storm RSS comes back). */
void io_mem_trim(void);

/* Milliseconds from a monotonic clock. */
uint64_t io_now_ms(void);
void io_timer_arm(struct io_worker *w, struct io_timer *t, uint64_t after_ms);
void io_timer_disarm(struct io_timer *t);

/* Submission helpers: fill an SQE for op (op->busy set). Never fail: a full ring is flushed. */
void io_prep_accept_multishot(struct io_worker *w, struct io_op *op, int fd);
void io_prep_recv(struct io_worker *w, struct io_op *op, int fd, void *buf, size_t len);
/* Multishot recv into buffers of w's buffer ring: one completion per buffer filled (flags carry
 * IORING_CQE_F_BUFFER and the buffer id), IORING_CQE_F_MORE while it goes on. */
void io_prep_recv_multishot(struct io_worker *w, struct io_op *op, int fd);
/* One-shot readiness wait (POLLIN). */
void io_prep_poll_in(struct io_worker *w, struct io_op *op, int fd);
void io_prep_send(struct io_worker *w, struct io_op *op, int fd, const void *buf, size_t len);
/* Datagram I/O (UDP): one message with its peer address. msg and everything it points to stay
 * alive and unchanged until the completion; the result is the byte count or -errno, and a
 * received msg->msg_flags tells MSG_TRUNC (the datagram was longer than the buffer). */
void io_prep_recvmsg(struct io_worker *w, struct io_op *op, int fd, struct msghdr *msg);
void io_prep_sendmsg(struct io_worker *w, struct io_op *op, int fd, const struct msghdr *msg);
void io_prep_connect(struct io_worker *w, struct io_op *op, int fd, const struct sockaddr *sa,
		     socklen_t len);
/* Cancels op if in flight (its callback still runs, with -ECANCELED or its real result). */
void io_cancel(struct io_worker *w, struct io_op *op);

#endif
