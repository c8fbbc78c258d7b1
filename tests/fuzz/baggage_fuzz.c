/* baggage_fuzz: libFuzzer target for the parser of a peer's baggage header
 * (proxy_baggage_parse), as the agent runs it on the value nghttp2 delivers.
 *
 * Input: the header value. Whatever it holds, every field parsed is NUL-terminated inside its
 * buffer and holds only label- and log-safe bytes (no blank, quote, comma, semicolon,
 * backslash, '=' or control byte); parsing it again from what was kept gives the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/proxy/proxy-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define VALUE_CAP 256	/* hbone_meta.baggage: a longer header is not kept */

static void check_field(const char *f, size_t cap)
{
	size_t n = strnlen(f, cap);

	if (n == cap)
		abort();
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)f[i];

		if (ch <= 0x20 || ch >= 0x7f || strchr("\",;\\=", ch))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char value[VALUE_CAP];
	struct proxy_baggage b, again;
	char *fields[] = { b.cluster, b.namespace_, b.workload, b.service, b.revision,
			   b.region, b.zone };
	size_t caps[] = { sizeof(b.cluster), sizeof(b.namespace_), sizeof(b.workload),
			  sizeof(b.service), sizeof(b.revision), sizeof(b.region), sizeof(b.zone) };
	char text[1024];

	if (size >= sizeof(value) || memchr(data, 0, size))
		return 0;
	memcpy(value, data, size);
	value[size] = '\0';
	proxy_baggage_parse(value, &b);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		check_field(fields[i], caps[i]);
	snprintf(text, sizeof(text), "k8s.cluster.name=%s,k8s.namespace.name=%s,"
		 "k8s.deployment.name=%s,service.name=%s,service.version=%s,cloud.region=%s,"
		 "cloud.availability_zone=%s", b.cluster, b.namespace_, b.workload, b.service,
		 b.revision, b.region, b.zone);
	proxy_baggage_parse(text, &again);
	if (memcmp(&b, &again, sizeof(b)) != 0 &&
	    (strcmp(b.cluster, again.cluster) || strcmp(b.namespace_, again.namespace_) ||
	     strcmp(b.workload, again.workload) || strcmp(b.service, again.service) ||
	     strcmp(b.revision, again.revision) || strcmp(b.region, again.region) ||
	     strcmp(b.zone, again.zone)))
		abort();
	return 0;
}
