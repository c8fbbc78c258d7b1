/* cni config: the plugin's input (network config JSON, CNI_ARGS) and its JSON answers. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cni.h"

const char *const cni_supported_versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0" };
const size_t cni_n_supported_versions =
	sizeof(cni_supported_versions) / sizeof(cni_supported_versions[0]);

int cni_fail(struct cni_error *err, enum cni_code code, const char *details, const char *fmt, ...)
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

char *cni_error_json(const char *version, struct cni_error *err)
{
	const char *v = version ? version : CNI_SPEC_VERSION;
	json_t *out = json_pack("{s:s, s:i, s:s, s:s}", "cniVersion", v, "code", (int)err->code,
				"msg", err->msg, "details", err->details);
	char *text;

	if (!out) {
		ascii_only(err->msg);
		ascii_only(err->details);
		out = json_pack("{s:s, s:i, s:s, s:s}", "cniVersion", v, "code", (int)err->code,
				"msg", err->msg, "details", err->details);
	}
	text = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	return text;
}

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

static int check_config(struct cni_call *call, struct cni_error *err)
{
	json_t *v = json_object_get(call->config, "cniVersion");
	json_t *sock = json_object_get(call->config, "ztunnel_socket");
	bool known = false;

	if (!json_is_string(v))
		return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL,
				"network config has no string cniVersion");
	for (size_t i = 0; i < cni_n_supported_versions; i++)
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

int cni_parse_input(struct cni_call *call, const char *config, size_t len, const char *args,
		    struct cni_error *err)
{
	json_error_t jerr;
	int rc;

	if (len > CNI_MAX_CONFIG)
		return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL,
				"network config on stdin is larger than %d bytes", CNI_MAX_CONFIG);
	call->config = json_loadb(config, len, 0, &jerr);
	if (!json_is_object(call->config)) {
		json_decref(call->config);
		call->config = NULL;
		return cni_fail(err, CNI_ERR_INVALID_CONFIG, jerr.text,
				"network config on stdin is not a JSON object");
	}
	rc = check_config(call, err);
	if (rc || (rc = parse_cni_args(call, args, err)))
		return rc;
	if (!call->container_id || !call->container_id[0])
		return cni_fail(err, CNI_ERR_INVALID_ENV, NULL, "CNI_CONTAINERID is not set");
	return 0;
}

int cni_require_prev_result(const struct cni_call *call, struct cni_error *err)
{
	if (call->prev_result)
		return 0;
	return cni_fail(err, CNI_ERR_INVALID_CONFIG, NULL,
			"ztunnel-cni is a chained plugin and needs a prevResult (put it after the "
			"main plugin in the conflist)");
}

int cni_fill_uid(const struct cni_call *call, struct zds_request *req, struct cni_error *err)
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

char *cni_add_result(const struct cni_call *call)
{
	json_t *result = json_deep_copy(call->prev_result);
	char *text = NULL;

	if (result && !json_object_set_new(result, "cniVersion", json_string(call->cni_version)))
		text = json_dumps(result, JSON_COMPACT);
	json_decref(result);
	return text;
}
