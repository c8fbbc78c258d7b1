/* tls cert: workload leaf certificates — issuing them from a CA, writing and parsing them. */
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ztunnel/tls.h"

#define CERT_BACKDATE_SECONDS 60	/* tolerate a peer whose clock is slightly behind */

void tls_cert_free(struct tls_cert **cert)
{
	if (!cert || !*cert)
		return;
	X509_free((*cert)->cert);
	EVP_PKEY_free((*cert)->key);
	sk_X509_pop_free((*cert)->chain, X509_free);
	free(*cert);
	*cert = NULL;
}

GENERAL_NAMES *tls_uri_san(const char *uri)
{
	GENERAL_NAMES *names = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

	if (!names || !gn || !ia5 || !ASN1_STRING_set(ia5, uri, (int)strlen(uri)))
		goto fail;
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(names, gn))
		goto fail;
	return names;
fail:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	return NULL;
}

/* subjectAltName = exactly one URI; critical because the subject is empty (RFC 5280 4.2.1.6). */
static int add_uri_san(X509 *x, const char *uri)
{
	GENERAL_NAMES *names = tls_uri_san(uri);
	int ret;

	if (!names)
		return -ENOMEM;
	ret = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 1, X509V3_ADD_DEFAULT) == 1 ? 0
											   : -EIO;
	GENERAL_NAMES_free(names);
	return ret;
}

static int build_leaf(X509 *x, EVP_PKEY *key, const struct tls_ca *ca, const char *id,
		      time_t not_before, time_t not_after)
{
	if (tls_x509_init(x, key, not_before, not_after))
		return -EIO;
	if (!X509_set_issuer_name(x, X509_get_subject_name(ca->cert)))
		return -EIO;
	if (add_uri_san(x, id) ||
	    tls_x509_add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    tls_x509_add_ext(x, ca->cert, NID_key_usage,
			     "critical,digitalSignature,keyEncipherment") ||
	    tls_x509_add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    tls_x509_add_ext(x, ca->cert, NID_subject_key_identifier, "hash") ||
	    tls_x509_add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always"))
		return -EIO;
	if (!X509_sign(x, ca->key, EVP_sha256()))
		return -EIO;
	return 0;
}

/* The intermediates a peer needs: none when the CA is a root (the peer holds it as anchor). */
static STACK_OF(X509) *chain_for(const struct tls_ca *ca)
{
	STACK_OF(X509) *chain = sk_X509_new_null();

	if (!chain)
		return NULL;
	if (X509_get_extension_flags(ca->cert) & EXFLAG_SS)
		return chain;
	if (!X509_up_ref(ca->cert))
		goto fail;
	if (!sk_X509_push(chain, ca->cert)) {
		X509_free(ca->cert);
		goto fail;
	}
	return chain;
fail:
	sk_X509_free(chain);
	return NULL;
}

struct tls_cert *tls_ca_issue(const struct tls_ca *ca, const char *spiffe_id, unsigned ttl_seconds)
{
	struct tls_spiffe parsed;
	struct tls_cert *cert = NULL;
	time_t now = time(NULL);
	int err = EIO;

	if (!ca || !ca->cert || !ca->key || ttl_seconds == 0 ||
	    tls_spiffe_parse(spiffe_id, &parsed)) {
		errno = EINVAL;
		return NULL;
	}
	cert = calloc(1, sizeof(*cert));
	if (!cert) {
		errno = ENOMEM;
		return NULL;
	}
	cert->not_before = now - CERT_BACKDATE_SECONDS;
	cert->not_after = now + (time_t)ttl_seconds;
	snprintf(cert->identity, sizeof(cert->identity), "%s", spiffe_id);
	cert->key = tls_key_generate();
	cert->cert = X509_new();
	cert->chain = chain_for(ca);
	if (!cert->key || !cert->cert || !cert->chain)
		goto fail;
	if (build_leaf(cert->cert, cert->key, ca, spiffe_id, cert->not_before, cert->not_after))
		goto fail;
	return cert;
fail:
	ERR_clear_error();
	tls_cert_free(&cert);
	errno = err;
	return NULL;
}

static int emit_leaf_and_chain(BIO *bio, const void *arg)
{
	const struct tls_cert *cert = arg;

	if (tls_pem_emit_cert(bio, cert->cert))
		return -EIO;
	for (int i = 0; cert->chain && i < sk_X509_num(cert->chain); i++)
		if (tls_pem_emit_cert(bio, sk_X509_value(cert->chain, i)))
			return -EIO;
	return 0;
}

int tls_cert_write(const struct tls_cert *cert, const char *cert_path, const char *key_path)
{
	int ret;

	if (!cert || !cert->cert || !cert->key)
		return -EINVAL;
	ret = tls_pem_write(key_path, 0600, tls_pem_emit_key, cert->key);
	if (ret)
		return ret;
	return tls_pem_write(cert_path, 0644, emit_leaf_and_chain, cert);
}

static const char PEM_MARK[] = "-----BEGIN";

X509 *tls_cert_parse(const void *data, size_t len)
{
	const unsigned char *p = data;
	X509 *x = NULL;
	BIO *bio;

	if (!data || len == 0 || len > INT_MAX)
		goto out;
	if (len >= sizeof(PEM_MARK) - 1 && !memcmp(data, PEM_MARK, sizeof(PEM_MARK) - 1)) {
		bio = BIO_new_mem_buf(data, (int)len);
		if (bio)
			x = PEM_read_bio_X509(bio, NULL, tls_pem_no_passphrase, NULL);
		BIO_free(bio);
	} else {
		x = d2i_X509(NULL, &p, (long)len);
	}
out:
	ERR_clear_error();
	if (!x)
		errno = EINVAL;
	return x;
}
