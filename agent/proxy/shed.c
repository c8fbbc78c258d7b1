/* proxy shed: what the proxy refuses under overload, counted and logged once per interval. */
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ztunnel/log.h>
#include <ztunnel/sock.h>

#include "proxy-int.h"

#define SHED_LOG_MS 5000	/* at most one line per worker and interval */
#define ACCEPT_PAUSE_MS 100	/* checked by the worker's tick: resumes within about 250 ms */

void proxy_shed_init(struct proxy_shed *s)
{
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void shed_log(struct proxy_worker *pw)
{
	struct proxy_shed *s = &pw->shed;
	uint64_t now = io_now_ms();

	if (now < s->next_log_ms)
		return;
	s->next_log_ms = now + SHED_LOG_MS;
	if (s->fd_pauses || s->fd_dropped)
		log_warn("accept paused: out of file descriptors",
			 "worker=%d pauses=%lu dropped=%lu interval=%us", pw->io.id, s->fd_pauses,
			 s->fd_dropped, SHED_LOG_MS / 1000);
	if (s->gate_busy || s->gate_source)
		log_warn("inbound connections refused: too many pending handshakes",
			 "worker=%d node_bound=%lu source_bound=%lu pending=%u interval=%us",
			 pw->io.id, s->gate_busy, s->gate_source, hbone_gate_pending(pw->px->gate),
			 SHED_LOG_MS / 1000);
	s->fd_pauses = s->fd_dropped = s->gate_busy = s->gate_source = 0;
}

void proxy_shed_gate(struct proxy_worker *pw, int err)
{
	if (err == -EMLINK)
		pw->shed.gate_source++;
	else
		pw->shed.gate_busy++;
	shed_log(pw);
}

bool proxy_accept_overloaded(int res)
{
	return res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM;
}

static void on_pause_over(struct io_timer *t)
{
	struct proxy_listener *l = (void *)((char *)t - offsetof(struct proxy_listener, pause));

	l->paused = false;
	if (!l->closing && !l->accept_op.busy)
		io_prep_accept_multishot(&l->pw->io, &l->accept_op, l->fd);
}

void proxy_shed_accept(struct proxy_listener *l)
{
	struct proxy_worker *pw = l->pw;
	struct proxy_shed *s = &pw->shed;

	if (l->paused)
		return;
	/* with the reserve fd given up for a moment, one waiting connection is taken off the
	 * backlog and reset: the client learns at once instead of waiting for a timeout */
	if (s->reserve_fd >= 0) {
		close(s->reserve_fd);
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			io_sock_reset_close(fd);
			s->fd_dropped++;
		}
	}
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);	/* -1 again: next time */
	l->paused = true;
	l->pause.fire = on_pause_over;
	io_timer_arm(&pw->io, &l->pause, ACCEPT_PAUSE_MS);
	if (l->accept_op.busy)
		io_cancel(&pw->io, &l->accept_op);	/* its last completion does not re-arm */
	s->fd_pauses++;
	shed_log(pw);
}
