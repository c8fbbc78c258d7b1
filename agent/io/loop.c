/* io: the per-worker io_uring loop, completion dispatch, timers and cross-thread tasks. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ztunnel/io.h>
#include <ztunnel/log.h>
#include <ztunnel/sock.h>

#include "io-int.h"

#define TICK_MS 250
#define BUF_IDLE_MS 2000	/* cached buffers of a class unused this long are freed */

uint64_t io_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct io_uring_sqe *get_sqe(struct io_worker *w)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&w->ring)))
		io_uring_submit(&w->ring);
	return sqe;
}

static void arm(struct io_op *op, struct io_uring_sqe *sqe)
{
	op->busy = true;
	io_uring_sqe_set_data(sqe, op);
}

void io_prep_accept_multishot(struct io_worker *w, struct io_op *op, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	arm(op, sqe);
}

void io_prep_recv(struct io_worker *w, struct io_op *op, int fd, void *buf, size_t len)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_recv(sqe, fd, buf, len, 0);
	arm(op, sqe);
}

void io_prep_recv_multishot(struct io_worker *w, struct io_op *op, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = IO_RING_BGID;
	arm(op, sqe);
}

void io_prep_poll_in(struct io_worker *w, struct io_op *op, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_poll_add(sqe, fd, POLLIN);
	arm(op, sqe);
}

void io_prep_send(struct io_worker *w, struct io_op *op, int fd, const void *buf, size_t len)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	arm(op, sqe);
}

void io_prep_recvmsg(struct io_worker *w, struct io_op *op, int fd, struct msghdr *msg)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_recvmsg(sqe, fd, msg, 0);
	arm(op, sqe);
}

void io_prep_sendmsg(struct io_worker *w, struct io_op *op, int fd, const struct msghdr *msg)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	arm(op, sqe);
}

void io_prep_connect(struct io_worker *w, struct io_op *op, int fd, const struct sockaddr *sa,
		     socklen_t len)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_connect(sqe, fd, sa, len);
	arm(op, sqe);
}

void io_cancel(struct io_worker *w, struct io_op *op)
{
	struct io_uring_sqe *sqe;

	if (!op->busy)
		return;
	sqe = get_sqe(w);
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data(sqe, NULL);
}

/* ---- timers: a min-heap of deadlines ---- */

static void heap_set(struct io_timers *h, uint32_t i, struct io_timer *t)
{
	h->heap[i] = t;
	t->slot = i + 1;
}

static void sift_up(struct io_timers *h, uint32_t i)
{
	struct io_timer *t = h->heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (h->heap[parent]->deadline_ms <= t->deadline_ms)
			break;
		heap_set(h, i, h->heap[parent]);
		i = parent;
	}
	heap_set(h, i, t);
}

static void sift_down(struct io_timers *h, uint32_t i)
{
	struct io_timer *t = h->heap[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->heap[c + 1]->deadline_ms < h->heap[c]->deadline_ms)
			c++;
		if (t->deadline_ms <= h->heap[c]->deadline_ms)
			break;
		heap_set(h, i, h->heap[c]);
		i = c;
	}
	heap_set(h, i, t);
}

static bool heap_grow(struct io_timers *h)
{
	uint32_t cap = h->cap ? h->cap * 2 : 64;
	struct io_timer **v;

	if (cap < h->cap)
		return false;
	v = realloc(h->heap, cap * sizeof(*v));
	if (!v)
		return false;
	h->heap = v;
	h->cap = cap;
	return true;
}

static void heap_remove(struct io_timers *h, struct io_timer *t)
{
	uint32_t i = t->slot - 1;
	struct io_timer *last = h->heap[--h->n];

	t->slot = 0;
	if (i == h->n)
		return;
	heap_set(h, i, last);
	if (i > 0 && h->heap[(i - 1) / 2]->deadline_ms > last->deadline_ms)
		sift_up(h, i);
	else
		sift_down(h, i);
}

void io_timer_arm(struct io_worker *w, struct io_timer *t, uint64_t after_ms)
{
	struct io_timers *h = &w->timers;

	if (t->armed)
		io_timer_disarm(t);
	t->deadline_ms = io_now_ms() + after_ms;
	t->armed = true;
	t->in = h;
	if (h->n < h->cap || heap_grow(h)) {
		h->heap[h->n] = t;
		sift_up(h, h->n++);
		return;
	}
	t->next = h->overflow.next;	/* out of memory: the tick scans these */
	t->prev = &h->overflow;
	h->overflow.next->prev = t;
	h->overflow.next = t;
}

void io_timer_disarm(struct io_timer *t)
{
	if (!t->armed)
		return;
	t->armed = false;
	if (t->slot) {
		heap_remove(t->in, t);
	} else {
		t->prev->next = t->next;
		t->next->prev = t->prev;
		t->prev = t->next = NULL;
	}
	t->in = NULL;
}

/* Fires what is due at now, earliest first. */
static void run_timers_at(struct io_worker *w, uint64_t now)
{
	struct io_timers *h = &w->timers;
	struct io_timer *t, *next;

	while (h->n && h->heap[0]->deadline_ms <= now) {
		t = h->heap[0];
		io_timer_disarm(t);
		t->fire(t);	/* may arm, disarm or free timers */
	}
	for (t = h->overflow.next; t != &h->overflow; t = next) {
		next = t->next;
		if (t->deadline_ms <= now) {
			io_timer_disarm(t);
			t->fire(t);	/* may disarm or free others: restart the scan */
			next = h->overflow.next;
		}
	}
}

static void run_timers(struct io_worker *w)
{
	run_timers_at(w, io_now_ms());
}

static void arm_tick(struct io_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	w->tick_ts.tv_sec = 0;
	w->tick_ts.tv_nsec = TICK_MS * 1000000L;
	io_uring_prep_timeout(sqe, &w->tick_ts, 0, 0);
	arm(&w->tick_op, sqe);
}

static void on_tick(struct io_op *op, int res, uint32_t flags)
{
	struct io_worker *w = op->ctx;

	run_timers(w);
	io_buf_trim(&w->bufs, io_now_ms(), BUF_IDLE_MS);
	io_obj_trim(&w->bufs, io_now_ms(), BUF_IDLE_MS);
	io_buf_ring_trim(&w->rbufs, io_now_ms(), BUF_IDLE_MS);
	if (w->tick_hook)
		w->tick_hook(w);
	if (!w->stopping)
		arm_tick(w);
}

static void arm_event(struct io_worker *w)
{
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_read(sqe, w->event_fd, &w->event_val, sizeof(w->event_val), 0);
	arm(&w->event_op, sqe);
}

static void on_event(struct io_op *op, int res, uint32_t flags)
{
	struct io_worker *w = op->ctx;
	struct io_task *t;

	pthread_mutex_lock(&w->task_lock);
	t = w->tasks;
	w->tasks = w->tasks_tail = NULL;
	pthread_mutex_unlock(&w->task_lock);
	while (t) {
		struct io_task *next = t->next;

		t->run(w, t->arg);
		free(t);
		t = next;
	}
	if (!w->stopping)
		arm_event(w);
}

int io_worker_post(struct io_worker *w, void (*fn)(struct io_worker *, void *), void *arg)
{
	struct io_task *t = calloc(1, sizeof(*t));
	uint64_t one = 1;

	if (!t)
		return -ENOMEM;
	t->run = fn;
	t->arg = arg;
	pthread_mutex_lock(&w->task_lock);
	if (w->tasks_tail)
		w->tasks_tail->next = t;
	else
		w->tasks = t;
	w->tasks_tail = t;
	pthread_mutex_unlock(&w->task_lock);
	if (write(w->event_fd, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

int io_worker_init(struct io_worker *w, int id, unsigned entries)
{
	struct io_uring_params p = { 0 };
	int ret;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->timers.overflow.next = w->timers.overflow.prev = &w->timers.overflow;
	pthread_mutex_init(&w->task_lock, NULL);
	/* only the worker submits and reaps: its task work waits for its io_uring_enter. The ring
	 * starts disabled so that the worker thread, enabling it, becomes its single issuer. */
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_R_DISABLED;
	ret = io_uring_queue_init_params(entries, &w->ring, &p);
	if (ret < 0) {
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(entries, &w->ring, &p);
		if (ret < 0)
			return ret;
	}
	w->event_fd = eventfd(0, EFD_CLOEXEC);
	if (w->event_fd < 0) {
		ret = -errno;
		io_uring_queue_exit(&w->ring);
		return ret;
	}
	if (io_sock_multishot() && io_buf_ring_init(&w->ring, &w->rbufs, IO_RING_BUFS,
						    IO_RING_BUF_SIZE) < 0)
		log_warn("no provided buffer ring: sockets read with poll and recv", "worker=%d", id);
	w->event_op.cb = on_event;
	w->event_op.ctx = w;
	w->tick_op.cb = on_tick;
	w->tick_op.ctx = w;
	arm_event(w);
	arm_tick(w);
	return 0;
}

static void dispatch(struct io_worker *w, struct io_uring_cqe *cqe)
{
	struct io_op *op = io_uring_cqe_get_data(cqe);

	if (!op)
		return;	/* a cancel request's own completion */
	if (!(cqe->flags & IORING_CQE_F_MORE))
		op->busy = false;
	op->cb(op, cqe->res, cqe->flags);
}

static void *worker_main(void *arg)
{
	struct io_worker *w = arg;
	struct io_uring_cqe *cqe;
	unsigned head, n;

	/* io_uring_enable_rings() is missing from Debian's liburing 2.3 library: the syscall */
	if ((w->ring.flags & IORING_SETUP_R_DISABLED) &&
	    syscall(__NR_io_uring_register, w->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
		log_error("cannot enable the io_uring", "worker=%d", w->id);
		return NULL;
	}
	while (!w->stopping) {
		int ret = io_uring_submit_and_wait(&w->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EBUSY && ret != -ETIME) {
			log_error("io_uring wait failed", "worker=%d error=%d", w->id, ret);
			break;
		}
		n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			dispatch(w, cqe);
			n++;
			/* a callback may have advanced nothing; CQEs stay valid until cq_advance */
		}
		io_uring_cq_advance(&w->ring, n);
		io_sock_run_ready(w);
	}
	return NULL;
}

int io_worker_start(struct io_worker *w)
{
	return -pthread_create(&w->thread, NULL, worker_main, w);
}

static void stop_task(struct io_worker *w, void *arg)
{
	w->stopping = true;
}

void io_worker_stop(struct io_worker *w)
{
	if (io_worker_post(w, stop_task, NULL) == 0)
		pthread_join(w->thread, NULL);
}

void io_worker_destroy(struct io_worker *w)
{
	free(w->timers.heap);
	w->timers.heap = NULL;
	w->timers.n = w->timers.cap = 0;
	io_buf_pool_clear(&w->bufs);
	io_buf_ring_free(&w->ring, &w->rbufs);
	io_uring_queue_exit(&w->ring);
	if (w->event_fd >= 0)
		close(w->event_fd);
	pthread_mutex_destroy(&w->task_lock);
}
