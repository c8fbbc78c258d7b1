/* tls identity: SPIFFE ids — parsing, formatting, and reading them from certificates and peers. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "ztunnel/tls.h"

static const char SPIFFE_SCHEME[] = "spiffe://";
#define SPIFFE_SCHEME_LEN (sizeof(SPIFFE_SCHEME) - 1)

/* SPIFFE allows letters, digits, '.', '-' and '_' in the trust domain and path segments. */
static bool spiffe_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

/*
 * Cuts the next '/'-terminated segment (the last one ends at the string's end) out of *cursor:
 * writes its NUL, returns its start, or NULL when it is empty, ".", ".." or has a bad char.
 */
static const char *next_segment(char **cursor, bool last)
{
	char *start = *cursor, *p = start;
	size_t n;

	while (*p && *p != '/') {
		if (!spiffe_char_ok(*p))
			return NULL;
		p++;
	}
	n = (size_t)(p - start);
	if (n == 0 || last != (*p == '\0'))
		return NULL;
	if ((n == 1 && start[0] == '.') || (n == 2 && start[0] == '.' && start[1] == '.'))
		return NULL;
	*p = '\0';
	*cursor = last ? p : p + 1;
	return start;
}

int tls_spiffe_parse(const char *id, struct tls_spiffe *out)
{
	const char *ns_key, *sa_key;
	char *cursor;
	size_t len;

	if (!id || !out)
		return -EINVAL;
	len = strnlen(id, TLS_SPIFFE_MAX);
	if (len >= TLS_SPIFFE_MAX || len <= SPIFFE_SCHEME_LEN ||
	    memcmp(id, SPIFFE_SCHEME, SPIFFE_SCHEME_LEN))
		return -EINVAL;
	memcpy(out->buf, id + SPIFFE_SCHEME_LEN, len - SPIFFE_SCHEME_LEN + 1);
	cursor = out->buf;
	out->trust_domain = next_segment(&cursor, false);
	ns_key = out->trust_domain ? next_segment(&cursor, false) : NULL;
	out->namespace_ = ns_key ? next_segment(&cursor, false) : NULL;
	sa_key = out->namespace_ ? next_segment(&cursor, false) : NULL;
	out->service_account = sa_key ? next_segment(&cursor, true) : NULL;
	if (!out->service_account || strcmp(ns_key, "ns") || strcmp(sa_key, "sa")) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	return 0;
}

const char *tls_spiffe_format(const char *td, const char *ns, const char *sa, char *buf, size_t len)
{
	int n;

	if (!buf || len == 0 || !ns || !*ns)
		return NULL;
	if (!td || !*td)
		td = "cluster.local";
	if (!sa || !*sa)
		sa = "default";
	n = snprintf(buf, len, "%s%s/ns/%s/sa/%s", SPIFFE_SCHEME, td, ns, sa);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return NULL;
	}
	return buf;
}

/* The one URI in names: 0 with *uri set, -ENOENT when there is none, -EPROTO for several. */
static int single_uri(const GENERAL_NAMES *names, const ASN1_IA5STRING **uri)
{
	int found = 0;

	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);

		if (gn->type != GEN_URI)
			continue;
		if (found++)
			return -EPROTO;
		*uri = gn->d.uniformResourceIdentifier;
	}
	return found ? 0 : -ENOENT;
}

/* Copies a URI SAN when it is a well-formed SPIFFE id (no NULs, the exact shape). */
static int copy_spiffe(const ASN1_IA5STRING *uri, char *buf, size_t len)
{
	const unsigned char *data = ASN1_STRING_get0_data(uri);
	int n = ASN1_STRING_length(uri);
	struct tls_spiffe parsed;
	char tmp[TLS_SPIFFE_MAX];

	if (!data || n <= 0 || n >= TLS_SPIFFE_MAX || memchr(data, '\0', (size_t)n))
		return -EPROTO;
	memcpy(tmp, data, (size_t)n);
	tmp[n] = '\0';
	if (tls_spiffe_parse(tmp, &parsed))
		return -EPROTO;
	if ((size_t)n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, tmp, (size_t)n + 1);
	return 0;
}

int tls_cert_identity(X509 *cert, char *buf, size_t len)
{
	const ASN1_IA5STRING *uri = NULL;
	GENERAL_NAMES *names;
	int crit = -1, ret;

	if (!cert || !buf || len == 0)
		return -EINVAL;
	buf[0] = '\0';
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
	if (!names) {
		ERR_clear_error();
		/* -1: no SAN extension; -2: several (ambiguous); otherwise it did not parse */
		return crit == -1 ? -ENOENT : -EPROTO;
	}
	ret = single_uri(names, &uri);
	if (!ret)
		ret = copy_spiffe(uri, buf, len);
	GENERAL_NAMES_free(names);
	return ret;
}

int tls_peer_identity(SSL *ssl, char *buf, size_t len)
{
	X509 *peer;

	if (!ssl || !buf || len == 0)
		return -EINVAL;
	buf[0] = '\0';
	if (!SSL_is_init_finished(ssl))
		return -ENOTCONN;
	peer = SSL_get0_peer_certificate(ssl);
	if (!peer)
		return -ENOENT;
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return -EPERM;
	return tls_cert_identity(peer, buf, len);
}

const char *tls_last_error(char *buf, size_t len)
{
	unsigned long code = ERR_peek_last_error();

	if (!buf || len == 0)
		return "";
	buf[0] = '\0';
	if (code)
		ERR_error_string_n(code, buf, len);
	ERR_clear_error();
	return buf;
}
