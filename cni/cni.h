/* cni.h: the CNI plugin's invocation, its errors and its input (environment and network config),
 * shared by the plugin's main (ztunnel-cni.c) and its fuzz target. */
#ifndef ZTUNNEL_CNI_H
#define ZTUNNEL_CNI_H

#include <jansson.h>
#include <stddef.h>

#include "ztunnel/zds.h"

#define CNI_SPEC_VERSION "1.0.0"
#define CNI_DEFAULT_SOCKET "/var/run/ztunnel/cni.sock"
#define CNI_MAX_CONFIG (1 << 20)

/* CNI spec error codes. */
enum cni_code {
	CNI_ERR_INCOMPATIBLE = 1,
	CNI_ERR_INVALID_CONFIG = 4,
	CNI_ERR_INVALID_ENV = 7,
	CNI_ERR_TRY_AGAIN = 11,
	CNI_ERR_OTHER = 999,
};

struct cni_error {
	enum cni_code code;
	char msg[1024];
	char details[512];
};

/* One invocation: environment, pod identity from CNI_ARGS, and the parsed config (owned). */
struct cni_call {
	const char *command;
	const char *container_id;
	const char *netns;
	char pod_name[ZDS_MAX_FIELD + 1];
	char pod_namespace[ZDS_MAX_FIELD + 1];
	char pod_uid[ZDS_MAX_FIELD + 1];
	json_t *config;
	const char *cni_version;	/* borrowed from config */
	const char *socket_path;	/* borrowed from config, or the default */
	json_t *prev_result;		/* borrowed from config; NULL when absent */
};

extern const char *const cni_supported_versions[];
extern const size_t cni_n_supported_versions;

/* Records an error in err; returns -EINVAL, for the failing function to return. */
int cni_fail(struct cni_error *err, enum cni_code code, const char *details, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * The input of an ADD, DEL or CHECK: the network config (len bytes of stdin: a JSON object
 * with a supported cniVersion, optional ztunnel_socket and prevResult), CNI_ARGS (args, may be
 * NULL) and call->container_id (set by the caller). Fills call; call->config is owned by call
 * afterwards, also on failure (json_decref it). 0 or -EINVAL with err filled.
 */
int cni_parse_input(struct cni_call *call, const char *config, size_t len, const char *args,
		    struct cni_error *err);
/* `ztunnel-cni install|uninstall ...` (argv[0] is the verb): puts the plugin on the node (binary
 * into --bin-dir, an entry at the end of the conflist in --conf-dir) or takes it off; --watch
 * keeps it installed until SIGTERM, then uninstalls what --owner installed. Exit status. */
int cni_install_main(int argc, char **argv);
/* ADD and CHECK need a prevResult (the plugin is chained). 0 or -EINVAL. */
int cni_require_prev_result(const struct cni_call *call, struct cni_error *err);
/* The workload's ZDS uid into req: the pod UID, else the container ID. 0 or -EINVAL. */
int cni_fill_uid(const struct cni_call *call, struct zds_request *req, struct cni_error *err);
/* ADD's result: prevResult with the call's cniVersion, one line of compact JSON (malloc'd,
 * the caller frees), or NULL when out of memory. */
char *cni_add_result(const struct cni_call *call);
/* The CNI error object for err (version NULL: the spec's), compact JSON (malloc'd); text that
 * is not UTF-8 is cut to ASCII. NULL when out of memory. */
char *cni_error_json(const char *version, struct cni_error *err);

#endif
