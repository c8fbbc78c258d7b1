/* admin routes: what each node port answers (config dump, logging, drain, metrics, readiness). */
#include <errno.h>
#include <string.h>

#include <ztunnel/log.h>

#include "admin-int.h"

typedef void (*route_fn)(const struct admin_sources *src, const struct admin_request *req,
			 struct admin_reply *rep, FILE *body);

struct route {
	enum admin_listener listener;
	const char *path;
	unsigned methods;	/* ADMIN_M_* mask */
	const char *allow;	/* the same, for the Allow header */
	route_fn fn;
};

static const char *const route_level_names[] = { "error", "warn", "info", "debug" };

static void route_index(const struct admin_sources *src, const struct admin_request *req,
			struct admin_reply *rep, FILE *body)
{
	fputs("ztunnel admin\n"
	      "  GET  /config_dump          the agent's state as JSON\n"
	      "  GET  /logging              the current log level\n"
	      "  POST /logging?level=L      set the log level (error, warn, info, debug)\n"
	      "  POST /quitquitquit         start a graceful drain\n"
	      "metrics port: GET /metrics, /stats/prometheus; readiness port: GET /healthz/ready\n",
	      body);
}

static void route_config_dump(const struct admin_sources *src, const struct admin_request *req,
			      struct admin_reply *rep, FILE *body)
{
	rep->content_type = "application/json";
	if (src->config_dump)
		src->config_dump(src->ctx, body);
	else
		fputs("{}", body);
}

static const char *route_current_level(void)
{
	for (int i = LOG_DEBUG; i > LOG_ERROR; i--)
		if (log_enabled((enum log_level)i))
			return route_level_names[i];
	return route_level_names[LOG_ERROR];
}

static void route_logging(const struct admin_sources *src, const struct admin_request *req,
			  struct admin_reply *rep, FILE *body)
{
	char level[16];
	int err = admin_http_query(req->query, "level", level, sizeof(level));
	size_t i, n = sizeof(route_level_names) / sizeof(route_level_names[0]);

	if (err == -ENOENT && req->query[0] == '\0') {
		fprintf(body, "level=%s\n", route_current_level());
		return;
	}
	for (i = 0; err == 0 && i < n; i++)
		if (strcmp(level, route_level_names[i]) == 0)
			break;
	if (err || i == n) {
		rep->status = 400;
		fputs("usage: /logging?level=error|warn|info|debug\n", body);
		return;
	}
	log_set_level_name(route_level_names[i]);
	log_info("log level changed", "level=%s", route_level_names[i]);
	fprintf(body, "level=%s\n", route_level_names[i]);
}

static void route_quit(const struct admin_sources *src, const struct admin_request *req,
		       struct admin_reply *rep, FILE *body)
{
	log_info("drain requested", "via=%s", "/quitquitquit");
	if (src->drain)
		src->drain(src->ctx);
	fputs("draining\n", body);
}

static void route_metrics(const struct admin_sources *src, const struct admin_request *req,
			  struct admin_reply *rep, FILE *body)
{
	rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
	if (src->metrics && metrics_render(src->metrics, body) != 0) {
		rep->status = 500;
		rep->content_type = NULL;
		return;
	}
	admin_limits_metrics(body);
}

static void route_ready(const struct admin_sources *src, const struct admin_request *req,
			struct admin_reply *rep, FILE *body)
{
	if (src->ready && src->ready(src->ctx)) {
		fputs("ready\n", body);
	} else {
		rep->status = 503;
		fputs("not ready\n", body);
	}
}

#define GET_ONLY (ADMIN_M_GET | ADMIN_M_HEAD)

static const struct route routes[] = {
	{ ADMIN_LISTENER_ADMIN, "/", GET_ONLY, "GET, HEAD", route_index },
	{ ADMIN_LISTENER_ADMIN, "/config_dump", GET_ONLY, "GET, HEAD", route_config_dump },
	{ ADMIN_LISTENER_ADMIN, "/logging", GET_ONLY | ADMIN_M_POST, "GET, HEAD, POST",
	  route_logging },
	{ ADMIN_LISTENER_ADMIN, "/quitquitquit", ADMIN_M_POST, "POST", route_quit },
	{ ADMIN_LISTENER_METRICS, "/metrics", GET_ONLY, "GET, HEAD", route_metrics },
	{ ADMIN_LISTENER_METRICS, "/stats/prometheus", GET_ONLY, "GET, HEAD", route_metrics },
	{ ADMIN_LISTENER_READY, "/healthz/ready", GET_ONLY, "GET, HEAD", route_ready },
};

void admin_route(const struct admin_sources *src, enum admin_listener which,
		 const struct admin_request *req, struct admin_reply *rep, FILE *body)
{
	rep->status = 200;
	rep->content_type = NULL;
	rep->allow = NULL;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];

		if (r->listener != which || strcmp(r->path, req->path) != 0)
			continue;
		if (!(r->methods & req->method)) {
			rep->status = 405;
			rep->allow = r->allow;
			fprintf(body, "method %s not allowed\n", req->method_name);
			return;
		}
		r->fn(src, req, rep, body);
		return;
	}
	rep->status = 404;
	fputs("not found\n", body);
}
