/* ca csr: the workload key and its certificate signing request (one URI SAN, no subject). */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "ca-int.h"

/* The extension request: subjectAltName = URI:spiffe_id, critical as the subject is empty. */
static int add_san_request(X509_REQ *req, const char *uri)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *names = tls_uri_san(uri);
	X509_EXTENSION *ext = NULL;
	int ret = -ENOMEM;

	if (!exts || !names)
		goto out;
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 1, names);
	if (!ext || !sk_X509_EXTENSION_push(exts, ext))
		goto out;
	ext = NULL;
	ret = X509_REQ_add_extensions(req, exts) == 1 ? 0 : -EIO;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(names);
	return ret;
}

/* The PEM text of req as a malloc'd string. */
static char *req_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *pem = NULL;
	long n;

	if (!bio || PEM_write_bio_X509_REQ(bio, req) != 1)
		goto out;
	n = BIO_get_mem_data(bio, &data);
	if (n <= 0)
		goto out;
	pem = malloc((size_t)n + 1);
	if (pem) {
		memcpy(pem, data, (size_t)n);
		pem[n] = '\0';
	}
out:
	BIO_free(bio);
	return pem;
}

int ca_csr_new(const char *spiffe_id, EVP_PKEY **key, char **pem)
{
	struct tls_spiffe parsed;
	X509_REQ *req = NULL;
	int ret = -EIO;

	*key = NULL;
	*pem = NULL;
	if (!spiffe_id || tls_spiffe_parse(spiffe_id, &parsed))
		return -EINVAL;
	*key = EVP_EC_gen("P-256");
	req = X509_REQ_new();
	if (!*key || !req)
		goto fail;
	if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_set_pubkey(req, *key) != 1)
		goto fail;
	ret = add_san_request(req, spiffe_id);
	if (ret)
		goto fail;
	ret = -EIO;
	if (X509_REQ_sign(req, *key, EVP_sha256()) <= 0)
		goto fail;
	*pem = req_pem(req);
	if (!*pem)
		goto fail;
	X509_REQ_free(req);
	return 0;
fail:
	ERR_clear_error();
	X509_REQ_free(req);
	EVP_PKEY_free(*key);
	*key = NULL;
	return ret;
}
