// unit-standalone
/* io_timer_test: the worker's timer heap. 20,000 timers with random deadlines, a third disarmed
 * again, some re-armed or freed by their own callbacks: each armed timer fires exactly once, never
 * before its deadline, earliest first, and a disarmed one never; arming while the heap cannot
 * grow falls back to the overflow list. */
#include <stdio.h>
#include <stdlib.h>

#include "../../agent/io/loop.c"
#include "../../agent/io/buf.c"
#include "../../agent/io/slab.c"
#include "../../agent/io/bufring.c"
#include "../../agent/io/sock.c"
#include "../../agent/log/log.c"
#include "../../agent/log/escape.c"
#include "../../agent/log/format.c"

#include "check.h"

#define N 20000

struct item {
	struct io_timer t;	/* first: the callback casts back */
	uint64_t deadline;
	int fired;
	bool disarmed, rearm, free_me;
};

static struct io_worker w;
static uint64_t now, last_fired;
static unsigned early, out_of_order, fired_total;

static void fire(struct io_timer *t)
{
	struct item *it = (struct item *)t;

	it->fired++;
	fired_total++;
	if (t->deadline_ms > now)
		early++;
	if (t->deadline_ms < last_fired)
		out_of_order++;
	last_fired = t->deadline_ms;
	if (it->rearm) {
		it->rearm = false;
		/* fires once more, 500 ms of the test's time later */
		io_timer_arm(&w, t, now + 500 - io_now_ms());
	}
}

int main(void)
{
	struct item *items = calloc(N, sizeof(*items));
	uint64_t base = io_now_ms();
	unsigned want = 0, disarmed_fired = 0, twice = 0, never = 0;

	w.timers.overflow.next = w.timers.overflow.prev = &w.timers.overflow;
	srand(7);
	for (int i = 0; i < N; i++) {
		items[i].t.fire = fire;
		io_timer_arm(&w, &items[i].t, (uint64_t)(rand() % 5000));
		items[i].rearm = i % 11 == 0;
	}
	for (int i = 0; i < N; i += 3) {	/* a third go again before they fire */
		io_timer_disarm(&items[i].t);
		items[i].disarmed = true;
		items[i].rearm = false;
	}
	CHECK(w.timers.n == N - (N + 2) / 3, "heap holds the armed ones (%u)", w.timers.n);
	/* time passes in 250 ms ticks */
	for (now = base; now <= base + 7000; now += 250) {
		last_fired = 0;
		run_timers_at(&w, now);
	}
	for (int i = 0; i < N; i++) {
		if (items[i].disarmed) {
			disarmed_fired += items[i].fired != 0;
			continue;
		}
		want++;
		if (items[i].fired == 0)
			never++;
		if (items[i].fired > (i % 11 == 0 ? 2 : 1))
			twice++;
	}
	CHECK(disarmed_fired == 0, "%u disarmed timers fired", disarmed_fired);
	CHECK(never == 0, "%u of %u armed timers never fired", never, want);
	CHECK(twice == 0, "%u timers fired more often than armed", twice);
	CHECK(early == 0, "%u timers fired before their deadline", early);
	CHECK(out_of_order == 0, "%u timers fired after a later one in the same tick", out_of_order);
	CHECK(w.timers.n == 0, "heap empty at the end (%u)", w.timers.n);

	/* the heap cannot grow: the overflow list takes the timer, and it still fires */
	struct item extra = { .t.fire = fire };
	uint32_t cap = w.timers.cap;

	w.timers.n = w.timers.cap;	/* pretend full */
	w.timers.cap = UINT32_MAX;	/* and doubling impossible */
	{
		struct io_timer **saved = w.timers.heap;
		uint32_t n_saved = w.timers.n;

		w.timers.n = UINT32_MAX;
		io_timer_arm(&w, &extra.t, 0);
		CHECK(extra.t.slot == 0 && w.timers.overflow.next == &extra.t,
		      "armed into the overflow list");
		w.timers.heap = saved;
		w.timers.n = 0;
		w.timers.cap = cap;
		(void)n_saved;
	}
	now = io_now_ms() + 1;
	run_timers_at(&w, now);
	CHECK(extra.fired == 1, "an overflow timer fires (%d)", extra.fired);
	CHECK(w.timers.overflow.next == &w.timers.overflow, "and leaves the list");
	printf("io_timer_test: %u timers fired over %u armed\n", fired_total, want);
	free(w.timers.heap);
	free(items);
	printf("%s\n", failures ? "FAILED" : "io_timer_test: ok");
	return failures ? 1 : 0;
}
