/* cni_fuzz: libFuzzer target for the CNI plugin's input (network config JSON and CNI_ARGS) and the
 * JSON it answers with, as an ADD runs them up to the agent exchange.
 *
 * Input: an optional first line "CNI_ARGS=<value>\n", then the network config as on stdin.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the plugin prints is one JSON object; returns it (the caller frees). */
static json_t *printed(char *text)
{
	json_t *doc;

	if (!text)
		abort();
	doc = json_loads(text, 0, NULL);
	if (!json_is_object(doc))
		abort();
	free(text);
	return doc;
}

/* ADD after the input checks: the ZDS request encodes, the result is prevResult re-versioned. */
static int add(struct cni_call *call, struct cni_error *err)
{
	struct zds_request req = { .kind = ZDS_REQ_ADD, .has_info = 1 };
	uint8_t buf[ZDS_MAX_MESSAGE];
	json_t *doc;
	int rc = cni_require_prev_result(call, err);

	if (rc || (rc = cni_fill_uid(call, &req, err)))
		return rc;
	if (!req.uid[0] || strlen(call->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		abort();
	snprintf(req.name, sizeof(req.name), "%s", call->pod_name);
	snprintf(req.namespace_, sizeof(req.namespace_), "%s", call->pod_namespace);
	if (zds_encode_request(&req, buf, sizeof(buf)) <= 0)
		abort();	/* whatever CNI_ARGS let through fits a ZDS message */
	doc = printed(cni_add_result(call));
	if (strcmp(json_string_value(json_object_get(doc, "cniVersion")), call->cni_version))
		abort();
	json_decref(doc);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cni_call call = { .command = "ADD", .container_id = "ctr-fuzz", .netns = "/nonexistent" };
	struct cni_error err = { .code = CNI_ERR_OTHER };
	const char *config = (const char *)data, *nl;
	char args[512] = "";
	size_t len = size;
	json_t *doc;
	int rc;

	if (size > 9 && !memcmp(data, "CNI_ARGS=", 9) && (nl = memchr(data, '\n', size)) &&
	    (size_t)(nl - config) - 9 < sizeof(args)) {
		memcpy(args, config + 9, (size_t)(nl - config) - 9);
		len -= (size_t)(nl + 1 - config);
		config = nl + 1;
	}
	rc = cni_parse_input(&call, config, len, args, &err);
	if (!rc)
		rc = add(&call, &err);
	if (rc) {
		doc = printed(cni_error_json(call.cni_version, &err));
		if (json_integer_value(json_object_get(doc, "code")) != (json_int_t)err.code)
			abort();
		json_decref(doc);
	}
	json_decref(call.config);
	return 0;
}
