/* admin-int: the admin server's private types, shared by server.c, http.c and routes.c. */
#ifndef ZTUNNEL_ADMIN_INT_H
#define ZTUNNEL_ADMIN_INT_H

#include <stddef.h>
#include <stdio.h>

#include <ztunnel/admin.h>

#define ADMIN_HEAD_MAX 8192		/* request line + headers, bytes */
#define ADMIN_READ_TIMEOUT_MS 2000	/* to receive the whole head */
#define ADMIN_WRITE_TIMEOUT_MS 10000	/* to send the whole response */
#define ADMIN_LINGER_MS 1000		/* to discard what the client still sends after the reply */
#define ADMIN_LINGER_MAX (64 * 1024)
#define ADMIN_MAX_CONNS 64

enum admin_method {
	ADMIN_M_GET = 1 << 0,
	ADMIN_M_HEAD = 1 << 1,
	ADMIN_M_POST = 1 << 2,
	ADMIN_M_OTHER = 1 << 3,
};

/* A parsed request head; the strings point into the caller's head buffer (NUL-terminated). */
struct admin_request {
	enum admin_method method;
	const char *method_name;
	const char *path;	/* without the query */
	const char *query;	/* after '?', "" when none */
};

/* What a route answers; body is written by the route into a memory stream. */
struct admin_reply {
	int status;
	const char *content_type;
	const char *allow;	/* Allow header for 405, or NULL */
};

/* Parses head[0..len) (ending in CRLF CRLF); writes NULs into head. 0, or 400. */
int admin_http_parse(char *head, size_t len, struct admin_request *req);
/* Finds key in a query string, percent-decoded into out[outsz]. 0, -ENOENT, or -EINVAL. */
int admin_http_query(const char *query, const char *key, char *out, size_t outsz);
/* Builds a whole response (head + body unless head_only) into *out (malloc'd). 0 or -ENOMEM. */
int admin_http_response(const struct admin_reply *rep, const char *body, size_t body_len,
			int head_only, char **out, size_t *out_len);
/* A status code's reason phrase. */
const char *admin_http_reason(int status);

/* Writes process_open_fds (entries of /proc/self/fd) and process_max_fds (the soft
 * RLIMIT_NOFILE) as Prometheus gauges; a value that cannot be read is left out. */
void admin_limits_metrics(FILE *out);

/* Answers a parsed request on a listener: fills rep and writes the body. */
void admin_route(const struct admin_sources *src, enum admin_listener which,
		 const struct admin_request *req, struct admin_reply *rep, FILE *body);

#endif
