/* ztunnel-cni: chained CNI plugin (spec 1.0.0) that enrolls pods with the ztunnel agent over ZDS. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cni.h"

#define CNI_IO_TIMEOUT_SEC 10
#define CNI_NSFS_MAGIC 0x6e736673	/* statfs f_type of /proc/<pid>/ns/net and its bind mounts */

static void cni_print_error(const char *version, struct cni_error *err)
{
	char *out = cni_error_json(version, err);

	if (out)
		fputs(out, stdout);
	free(out);
	fputc('\n', stdout);
	fprintf(stderr, "ztunnel-cni: %s%s%s\n", err->msg, err->details[0] ? ": " : "",
		err->details);
}

static int cni_print_version(void)
{
	json_t *versions = json_array();
	json_t *out;

	for (size_t i = 0; i < cni_n_supported_versions; i++)
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

/* ---- input ---- */

/* All of stdin into *buf (malloc'd, the caller frees), at most CNI_MAX_CONFIG bytes. */
static int read_stdin(char **buf_out, size_t *len_out, struct cni_error *err)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap), *grown;
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
	*buf_out = buf;
	*len_out = len;
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
	char *result;

	rc = cni_require_prev_result(call, err);
	if (rc || (rc = cni_fill_uid(call, &req, err)))
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
	result = cni_add_result(call);
	if (!result) {
		rc = cni_fail(err, CNI_ERR_OTHER, NULL, "out of memory");
		goto out;
	}
	printf("%s\n", result);
	free(result);
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

	rc = cni_fill_uid(call, &req, err);
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

	rc = cni_require_prev_result(call, err);
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
	char *config = NULL;
	size_t len = 0;
	int rc;

	if (!call->command || !call->command[0])
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "CNI_COMMAND is not set");
	if (strcmp(call->command, "VERSION") == 0)
		return cni_print_version();
	if (strcmp(call->command, "ADD") && strcmp(call->command, "DEL") &&
	    strcmp(call->command, "CHECK"))
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "unknown CNI_COMMAND %.32s",
				call->command);
	rc = read_stdin(&config, &len, err);
	if (rc)
		return rc;
	rc = cni_parse_input(call, config, len, getenv("CNI_ARGS"), err);
	free(config);
	if (rc)
		return rc;
	if (strcmp(call->command, "ADD") == 0)
		return cmd_add(call, err);
	if (strcmp(call->command, "DEL") == 0)
		return cmd_del(call, err);
	return cmd_check(call, err);
}

int main(int argc, char **argv)
{
	struct cni_call call = {
		.command = getenv("CNI_COMMAND"),
		.container_id = getenv("CNI_CONTAINERID"),
		.netns = getenv("CNI_NETNS"),
	};
	struct cni_error err = { .code = CNI_ERR_OTHER };
	int rc;

	/* a runtime calls the plugin without arguments; these are the node installer's */
	if (argc > 1 && (strcmp(argv[1], "install") == 0 || strcmp(argv[1], "uninstall") == 0))
		return cni_install_main(argc - 1, argv + 1);
	rc = run(&call, &err);

	if (rc)
		cni_print_error(call.cni_version, &err);
	fflush(stdout);
	json_decref(call.config);
	return rc ? 1 : 0;
}
