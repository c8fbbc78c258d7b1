/* ztunnel-cni: chained CNI plugin (spec 1.0.0) that enrolls pods with the ztunnel agent over ZDS. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "ztunnel/zds.h"

#define CNI_SPEC_VERSION "1.0.0"
#define CNI_DEFAULT_SOCKET "/var/run/ztunnel/cni.sock"
#define CNI_IO_TIMEOUT_SEC 10
#define CNI_MAX_CONFIG (1 << 20)
#define CNI_NSFS_MAGIC 0x6e736673	/* statfs f_type of /proc/<pid>/ns/net and its bind mounts */

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

static const char *const cni_supported_versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0" };

/* Record an error; the return value is what the failing function returns. */
static int __attribute__((format(printf, 4, 5)))
cni_fail(struct cni_error *err, enum cni_code code, const char *details, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	snprintf(err->details, sizeof(err->details), "%s", details ? details : "");
	return -EINVAL;
}

/* JSON strings must be UTF-8; a path from the environment or a cut message may not be. */
static void ascii_only(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			*s = '?';
}

static void cni_print_error(const char *version, struct cni_error *err)
{
	const char *v = version ? version : CNI_SPEC_VERSION;
	json_t *out = json_pack("{s:s, s:i, s:s, s:s}", "cniVersion", v, "code", (int)err->code,
				"msg", err->msg, "details", err->details);

	if (!out) {
		ascii_only(err->msg);
		ascii_only(err->details);
		out = json_pack("{s:s, s:i, s:s, s:s}", "cniVersion", v, "code", (int)err->code,
				"msg", err->msg, "details", err->details);
	}
	if (out) {
		json_dumpf(out, stdout, JSON_COMPACT);
		json_decref(out);
	}
	fputc('\n', stdout);
	fprintf(stderr, "ztunnel-cni: %s%s%s\n", err->msg, err->details[0] ? ": " : "",
		err->details);
}

static int cni_print_version(void)
{
	json_t *versions = json_array();
	json_t *out;

	for (size_t i = 0; i < sizeof(cni_supported_versions) / sizeof(cni_supported_versions[0]);
	     i++)
		json_array_append_new(versions, json_string(cni_supported_versions[i]));
	out = json_pack("{s:s, s:o}", "cniVersion", CNI_SPEC_VERSION, "supportedVersions",
			versions);
	if (!out)
		return -ENOMEM;
	json_dumpf(out, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(out);
	return 0;
}

/* ---- input: CNI_ARGS and the network configuration ---- */

static int parse_cni_arg(struct cni_call *call, const char *kv, size_t len, struct cni_error *err)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "K8S_POD_NAME", offsetof(struct cni_call, pod_name) },
		{ "K8S_POD_NAMESPACE", offsetof(struct cni_call, pod_namespace) },
		{ "K8S_POD_UID", offsetof(struct cni_call, pod_uid) },
	};
	const char *eq = memchr(kv, '=', len);

	if (!eq)
		return len ? cni_fail(err, CNI_ERR_INVALID_ENV, NULL,
				      "CNI_ARGS entry '%.*s' is not KEY=VALUE", (int)len, kv) : 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t klen = strlen(keys[i].key), vlen = len - (size_t)(eq - kv) - 1;

		if ((size_t)(eq - kv) != klen || memcmp(kv, keys[i].key, klen) != 0)
			continue;
		if (vlen > ZDS_MAX_FIELD)
			return cni_fail(err, CNI_ERR_INVALID_ENV, NULL,
					"CNI_ARGS %s is longer than %d bytes", keys[i].key,
					ZDS_MAX_FIELD);
		memcpy((char *)call + keys[i].off, eq + 1, vlen);
		((char *)call + keys[i].off)[vlen] = '\0';
	}
	return 0;	/* other keys (IgnoreUnknown, K8S_POD_INFRA_CONTAINER_ID, ...) are not ours */
}

static int parse_cni_args(struct cni_call *call, const char *args, struct cni_error *err)
{
	while (args && *args) {
		const char *end = strchrnul(args, ';');
		int rc = parse_cni_arg(call, args, (size_t)(end - args), err);

		if (rc)
			return rc;
		args = *end ? end + 1 : end;
	}
	return 0;
}

static int read_config(json_t **config, struct cni_error *err)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap), *grown;
	json_error_t jerr;
	size_t n;

	while (buf && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
		len += n;
		if (len < cap)
			continue;
		if (cap >= CNI_MAX_CONFIG) {
			free(buf);
			return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL,
					"network config on stdin is larger than %d bytes",
					CNI_MAX_CONFIG);
		}
		grown = realloc(buf, cap * 2);
		if (!grown)
			free(buf);
		buf = grown;
		cap *= 2;
	}
	if (!buf)
		return cni_fail(err, CNI_ERR_OTHER, NULL, "out of memory reading config");
	*config = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!*config || !json_is_object(*config)) {
		json_decref(*config);
		*config = NULL;
		return cni_fail(err, CNI_ERR_INVALID_CONFIG, jerr.text,
				"network config on stdin is not a JSON object");
	}
	return 0;
}

static int check_config(struct cni_call *call, struct cni_error *err)
{
	json_t *v = json_object_get(call->config, "cniVersion");
	json_t *sock = json_object_get(call->config, "ztunnel_socket");
	bool known = false;

	if (!json_is_string(v))
		return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL,
				"network config has no string cniVersion");
	for (size_t i = 0; i < sizeof(cni_supported_versions) / sizeof(cni_supported_versions[0]);
	     i++)
		known |= strcmp(json_string_value(v), cni_supported_versions[i]) == 0;
	if (!known)
		return cni_fail(err, CNI_ERR_INCOMPATIBLE, "supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0",
				"cniVersion %.64s is not supported", json_string_value(v));
	call->cni_version = json_string_value(v);
	call->socket_path = CNI_DEFAULT_SOCKET;
	if (sock) {
		if (!json_is_string(sock) || json_string_length(sock) == 0 ||
		    json_string_length(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL,
					"ztunnel_socket must be a non-empty path shorter than %zu bytes",
					sizeof(((struct sockaddr_un *)0)->sun_path));
		call->socket_path = json_string_value(sock);
	}
	call->prev_result = json_object_get(call->config, "prevResult");
	if (call->prev_result && !json_is_object(call->prev_result))
		return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL, "prevResult is not an object");
	return 0;
}

static int require_prev_result(const struct cni_call *call, struct cni_error *err)
{
	if (call->prev_result)
		return 0;
	return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL,
			"ztunnel-cni is a chained plugin and needs a prevResult (put it after the "
			"main plugin in the conflist)");
}

/* The workload's ZDS uid: the pod UID, else the container ID. */
static int fill_uid(const struct cni_call *call, struct zds_request *req, struct cni_error *err)
{
	const char *uid = call->pod_uid[0] ? call->pod_uid : call->container_id;

	if (!uid || !uid[0])
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL,
				"neither K8S_POD_UID in CNI_ARGS nor CNI_CONTAINERID is set");
	if (strlen(uid) > ZDS_MAX_FIELD)
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "CNI_CONTAINERID is too long");
	snprintf(req->uid, sizeof(req->uid), "%s", uid);
	return 0;
}

/* ---- talking to the agent ---- */

/* Connect to the agent; -ENOENT / -ECONNREFUSED mean no agent is listening. */
static int agent_connect(const struct cni_call *call, int *fd_out, struct cni_error *err)
{
	struct timeval tv = { .tv_sec = CNI_IO_TIMEOUT_SEC };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", call->socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		goto fail_close;
	}
	*fd_out = fd;
	return 0;
fail_close:
	close(fd);
fail:
	cni_fail(err, CNI_ERR_TRY_AGAIN, strerror(-rc), "ztunnel agent at %s is not reachable",
		 call->socket_path);
	return rc;
}

/* One packet from the agent; any descriptors it carries are closed, not leaked. */
static ssize_t agent_recv(int fd, uint8_t *buf, size_t cap)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int passed;

			memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(passed);
		}
	}
	if (n == 0)
		return -ECONNRESET;	/* SEQPACKET: zero bytes is the agent hanging up */
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE;
	return n;
}

/* Send one packet, with netns_fd attached by SCM_RIGHTS when it is >= 0. */
static int agent_send(int fd, const uint8_t *buf, size_t len, int netns_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (netns_fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &netns_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* Read the agent's ZdsHello and insist on version 1. */
static int agent_hello(const struct cni_call *call, int fd, struct cni_error *err)
{
	uint8_t buf[ZDS_MAX_MESSAGE];
	uint32_t version;
	ssize_t n = agent_recv(fd, buf, sizeof(buf));
	int rc;

	if (n < 0) {
		cni_fail(err, CNI_ERR_TRY_AGAIN, strerror((int)-n),
			 "ztunnel agent at %s sent no hello", call->socket_path);
		return (int)n;
	}
	rc = zds_decode_hello(buf, (size_t)n, &version);
	if (rc) {
		cni_fail(err, CNI_ERR_OTHER, strerror(-rc),
			 "ztunnel agent at %s sent a malformed hello", call->socket_path);
		return rc;
	}
	if (version != ZDS_VERSION_V1) {
		cni_fail(err, CNI_ERR_OTHER, NULL,
			 "ztunnel agent at %s speaks ZDS version %u, this plugin version 1",
			 call->socket_path, version);
		return -EPROTO;
	}
	return 0;
}

/* Send one request on a connection that has passed the hello, read the Ack. */
static int agent_exchange(const struct cni_call *call, int fd, const uint8_t *msg, size_t len,
			  int netns_fd, uint8_t *reply, size_t cap, struct cni_error *err)
{
	ssize_t n;
	int rc;

	rc = agent_send(fd, msg, len, netns_fd);
	if (rc) {
		cni_fail(err, CNI_ERR_TRY_AGAIN, strerror(-rc),
			 "sending to ztunnel agent at %s failed", call->socket_path);
		return rc;
	}
	n = agent_recv(fd, reply, cap);
	if (n < 0) {
		cni_fail(err, CNI_ERR_TRY_AGAIN, strerror((int)-n),
			 "ztunnel agent at %s did not answer", call->socket_path);
		return (int)n;
	}
	return (int)n;
}

/* A request and its answer; a NACK is an error that quotes the agent. */
static int agent_request(const struct cni_call *call, int fd, const struct zds_request *req,
			 int netns_fd, struct cni_error *err)
{
	uint8_t buf[ZDS_MAX_MESSAGE];
	char nack[512];
	int n = zds_encode_request(req, buf, sizeof(buf));
	int rc;

	if (n < 0)
		return cni_fail(err, CNI_ERR_OTHER, strerror(-n), "cannot encode request");
	n = agent_exchange(call, fd, buf, (size_t)n, netns_fd, buf, sizeof(buf), err);
	if (n < 0)
		return n;
	rc = zds_decode_ack(buf, (size_t)n, nack, sizeof(nack));
	if (rc)
		return cni_fail(err, CNI_ERR_OTHER, strerror(-rc),
				"ztunnel agent at %s sent a malformed response", call->socket_path);
	if (nack[0])
		return cni_fail(err, CNI_ERR_OTHER, NULL, "ztunnel agent at %s refused pod %s/%s: %s",
				call->socket_path, call->pod_namespace, call->pod_name, nack);
	return 0;
}

/* ---- commands ---- */

static int open_netns(const struct cni_call *call, int *fd_out, struct cni_error *err)
{
	struct statfs st;
	int fd;

	if (!call->netns || !call->netns[0])
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "CNI_NETNS is not set");
	fd = open(call->netns, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cni_fail(err, CNI_ERR_INVALID_ENV, strerror(errno), "cannot open CNI_NETNS %s",
				call->netns);
	if (fstatfs(fd, &st) || st.f_type != CNI_NSFS_MAGIC) {
		close(fd);
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL,
				"CNI_NETNS %s is not a network namespace", call->netns);
	}
	*fd_out = fd;
	return 0;
}

static int cmd_add(struct cni_call *call, struct cni_error *err)
{
	struct zds_request req = { .kind = ZDS_REQ_ADD, .has_info = 1 };
	int netns_fd = -1, fd = -1, rc;
	json_t *result;

	rc = require_prev_result(call, err);
	if (rc || (rc = fill_uid(call, &req, err)))
		return rc;
	snprintf(req.name, sizeof(req.name), "%s", call->pod_name);
	snprintf(req.namespace_, sizeof(req.namespace_), "%s", call->pod_namespace);
	rc = open_netns(call, &netns_fd, err);
	if (rc)
		goto out;
	rc = agent_connect(call, &fd, err);
	if (rc || (rc = agent_hello(call, fd, err)) ||
	    (rc = agent_request(call, fd, &req, netns_fd, err)))
		goto out;
	result = json_deep_copy(call->prev_result);
	if (!result || json_object_set_new(result, "cniVersion", json_string(call->cni_version))) {
		json_decref(result);
		rc = cni_fail(err, CNI_ERR_OTHER, NULL, "out of memory");
		goto out;
	}
	json_dumpf(result, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(result);
out:
	if (fd >= 0)
		close(fd);
	if (netns_fd >= 0)
		close(netns_fd);
	return rc;
}

/* DEL is idempotent: with no agent listening there is nothing to undo. */
static int cmd_del(struct cni_call *call, struct cni_error *err)
{
	struct zds_request req = { .kind = ZDS_REQ_DEL };
	int fd = -1, rc;

	rc = fill_uid(call, &req, err);
	if (rc)
		return rc;
	rc = agent_connect(call, &fd, err);
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return 0;
	if (rc || (rc = agent_hello(call, fd, err)))
		goto out;
	rc = agent_request(call, fd, &req, -1, err);
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* CHECK: the agent answers with a valid hello. */
static int cmd_check(struct cni_call *call, struct cni_error *err)
{
	int fd = -1, rc;

	rc = require_prev_result(call, err);
	if (rc)
		return rc;
	rc = agent_connect(call, &fd, err);
	if (!rc)
		rc = agent_hello(call, fd, err);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int run(struct cni_call *call, struct cni_error *err)
{
	int rc;

	if (!call->command || !call->command[0])
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "CNI_COMMAND is not set");
	if (strcmp(call->command, "VERSION") == 0)
		return cni_print_version();
	if (strcmp(call->command, "ADD") && strcmp(call->command, "DEL") &&
	    strcmp(call->command, "CHECK"))
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "unknown CNI_COMMAND %.32s",
				call->command);
	rc = read_config(&call->config, err);
	if (rc || (rc = check_config(call, err)))
		return rc;
	rc = parse_cni_args(call, getenv("CNI_ARGS"), err);
	if (rc)
		return rc;
	if (!call->container_id || !call->container_id[0])
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "CNI_CONTAINERID is not set");
	if (strcmp(call->command, "ADD") == 0)
		return cmd_add(call, err);
	if (strcmp(call->command, "DEL") == 0)
		return cmd_del(call, err);
	return cmd_check(call, err);
}

int main(void)
{
	struct cni_call call = {
		.command = getenv("CNI_COMMAND"),
		.container_id = getenv("CNI_CONTAINERID"),
		.netns = getenv("CNI_NETNS"),
	};
	struct cni_error err = { .code = CNI_ERR_OTHER };
	int rc = run(&call, &err);

	if (rc)
		cni_print_error(call.cni_version, &err);
	fflush(stdout);
	json_decref(call.config);
	return rc ? 1 : 0;
}
