/* admin: the node ports: 15000 admin (localhost), 15020 metrics, 15021 readiness. */
#ifndef ZTUNNEL_ADMIN_H
#define ZTUNNEL_ADMIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <ztunnel/metrics.h>

/* What the admin server reads from the rest of the agent; every callback may be called from
 * the admin thread at any time and must be thread-safe. */
struct admin_sources {
	struct metrics *metrics;
	/* writes the config dump JSON object (workloads, services, policies, certificates with
	 * expiry, enrolled pods) */
	void (*config_dump)(void *ctx, FILE *out);
	/* true when the agent serves traffic (ready, not draining) */
	bool (*ready)(void *ctx);
	/* /quitquitquit: start a graceful drain */
	void (*drain)(void *ctx);
	void *ctx;
};

struct admin_config {
	uint16_t admin_port;	/* 15000, bound to 127.0.0.1 */
	uint16_t metrics_port;	/* 15020, all addresses */
	uint16_t ready_port;	/* 15021, all addresses */
};

struct admin;
/*
 * Starts the admin thread serving HTTP/1.1 (one request per connection is enough; bounded
 * request size; 2 s read timeout) on the three ports:
 *   15000: GET /config_dump (application/json), POST|GET /logging?level=debug|info|warn|error
 *          (changes the level, answers the current one), POST /quitquitquit (drain, 200),
 *          GET / (list of endpoints);
 *   15020: GET /metrics and /stats/prometheus (text/plain; version=0.0.4): the registry, then
 *          process_open_fds and process_max_fds read at scrape time;
 *   15021: GET /healthz/ready: 200 "ready" when ready(), else 503.
 * Other paths 404; other methods 405. NULL with errno on failure (e.g. EADDRINUSE).
 */
struct admin *admin_start(const struct admin_config *cfg, const struct admin_sources *src);
/* Stops the admin thread, closes the listeners and open connections, frees *a, sets it NULL. */
void admin_stop(struct admin **a);

/* Raises the process's RLIMIT_NOFILE soft limit to its hard limit (once, at start-up, before
 * threads open sockets) and logs both. 0 or -errno (logged; the agent runs on at the old limit). */
int admin_raise_nofile(void);
/* Writes the config dump member "limits":{"nofile":{"soft":N,"hard":M}} (values read now;
 * "unlimited" for RLIM_INFINITY). */
void admin_limits_dump_json(FILE *out);

/* The three listeners, for admin_bound_port. */
enum admin_listener { ADMIN_LISTENER_ADMIN, ADMIN_LISTENER_METRICS, ADMIN_LISTENER_READY,
		      ADMIN_LISTENERS };
/* The port a listener is bound to (useful when the config asked for port 0); 0 if unknown. */
uint16_t admin_bound_port(struct admin *a, enum admin_listener which);

#endif
