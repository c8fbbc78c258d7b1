/* cert fuzz: PEM or DER bytes into tls_cert_parse and tls_cert_identity, text into tls_spiffe_parse. */
#include "../../agent/tls/cert.c"
#include "../../agent/tls/identity.c"
#include "../../agent/tls/x509.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char id[TLS_SPIFFE_MAX], small[24], text[TLS_SPIFFE_MAX + 8];
	struct tls_spiffe parsed;
	X509 *x;
	int ret;

	x = tls_cert_parse(data, size);
	if (x) {
		ret = tls_cert_identity(x, id, sizeof(id));
		if (ret == 0 && tls_spiffe_parse(id, &parsed) != 0)
			__builtin_trap();	/* an accepted identity must be a valid SPIFFE id */
		ret = tls_cert_identity(x, small, sizeof(small));
		if (ret == 0 && strnlen(small, sizeof(small)) >= sizeof(small))
			__builtin_trap();
		X509_free(x);
	}
	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		if (tls_spiffe_parse(text, &parsed) == 0 &&
		    (!*parsed.trust_domain || !*parsed.namespace_ || !*parsed.service_account))
			__builtin_trap();	/* accepted ids never have empty parts */
	}
	return 0;
}
