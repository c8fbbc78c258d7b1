/* ca chain: checking the CA reply chain (leaf key, identity, path to the root) into a tls_cert. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca-int.h"

/* Appends every PEM certificate of text to certs. 0, or -EINVAL for garbage or too many. */
static int parse_pems(const char *text, STACK_OF(X509) *certs)
{
	size_t len = strnlen(text, CA_MAX_PEM_LEN + 1);
	BIO *bio;
	X509 *x;
	int found = 0, ret = 0;
	unsigned long e;

	if (len == 0 || len > CA_MAX_PEM_LEN)
		return -EINVAL;
	bio = BIO_new_mem_buf(text, (int)len);
	if (!bio)
		return -ENOMEM;
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (sk_X509_num(certs) >= CA_MAX_CHAIN_CERTS || !sk_X509_push(certs, x)) {
			X509_free(x);
			ret = -EINVAL;
			break;
		}
		found++;
	}
	e = ERR_peek_last_error();
	if (!ret && (!found || (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)))
		ret = -EINVAL;	/* nothing, or a damaged certificate after good ones */
	ERR_clear_error();
	BIO_free(bio);
	return ret;
}

static int asn1_epoch(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

/* The leaf verifies through the middle certificates to the last one, which is the anchor. */
static int verify_path(X509 *leaf, STACK_OF(X509) *middle, X509 *root, char *err, size_t errlen)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ret = -ENOMEM;

	if (!store || !ctx || X509_STORE_add_cert(store, root) != 1)
		goto out;
	X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_STORE_CTX_init(ctx, store, leaf, middle) != 1)
		goto out;
	ret = 0;
	if (X509_verify_cert(ctx) != 1) {
		snprintf(err, errlen, "the leaf does not verify against the returned root: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		ret = -EPERM;
	}
out:
	if (ret == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ret;
}

/* The leaf is ours: our public key and exactly the requested identity. */
static int check_leaf(X509 *leaf, EVP_PKEY *key, const char *spiffe_id, char *err, size_t errlen)
{
	char id[TLS_SPIFFE_MAX];
	int ret;

	if (EVP_PKEY_eq(X509_get0_pubkey(leaf), key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "the leaf's public key is not the one in our CSR");
		return -EPERM;
	}
	ret = tls_cert_identity(leaf, id, sizeof(id));
	if (ret) {
		snprintf(err, errlen, "the leaf has no single spiffe:// URI SAN (%s)", strerror(-ret));
		return -EPERM;
	}
	if (strcmp(id, spiffe_id)) {
		snprintf(err, errlen, "the leaf is for '%s', not the requested '%s'", id, spiffe_id);
		return -EPERM;
	}
	return 0;
}

/* A tls_cert taking new references to leaf, key and the middle certificates. */
static struct tls_cert *cert_new(X509 *leaf, EVP_PKEY *key, STACK_OF(X509) *middle,
				 const char *spiffe_id)
{
	struct tls_cert *cert = calloc(1, sizeof(*cert));

	if (!cert)
		return NULL;
	snprintf(cert->identity, sizeof(cert->identity), "%s", spiffe_id);
	if (asn1_epoch(X509_get0_notBefore(leaf), &cert->not_before) ||
	    asn1_epoch(X509_get0_notAfter(leaf), &cert->not_after))
		goto fail;
	cert->chain = X509_chain_up_ref(middle);
	if (!cert->chain || X509_up_ref(leaf) != 1)
		goto fail;
	cert->cert = leaf;
	if (EVP_PKEY_up_ref(key) != 1)
		goto fail;
	cert->key = key;
	return cert;
fail:
	tls_cert_free(&cert);
	return NULL;
}

struct tls_cert *ca_chain_accept(char *const *pems, size_t n, EVP_PKEY *key,
				 const char *spiffe_id, X509 **root, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = sk_X509_new_null(), *middle = sk_X509_new_null();
	struct tls_cert *cert = NULL;
	X509 *leaf, *anchor;
	int num;

	*root = NULL;
	if (!certs || !middle) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!pems[i] || parse_pems(pems[i], certs)) {
			snprintf(err, errlen, "cert_chain[%zu] is not PEM certificates", i);
			goto out;
		}
	}
	num = sk_X509_num(certs);
	if (num < 2) {
		snprintf(err, errlen, "cert_chain holds %d certificate(s); want leaf ... root", num);
		goto out;
	}
	leaf = sk_X509_value(certs, 0);
	anchor = sk_X509_value(certs, num - 1);
	for (int i = 1; i < num - 1; i++)
		if (!sk_X509_push(middle, sk_X509_value(certs, i))) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	if (check_leaf(leaf, key, spiffe_id, err, errlen) ||
	    verify_path(leaf, middle, anchor, err, errlen))
		goto out;
	cert = cert_new(leaf, key, middle, spiffe_id);
	if (!cert || X509_up_ref(anchor) != 1) {
		snprintf(err, errlen, "cannot read the leaf's validity, or out of memory");
		tls_cert_free(&cert);
		goto out;
	}
	*root = anchor;
out:
	sk_X509_free(middle);	/* borrowed pointers */
	sk_X509_pop_free(certs, X509_free);
	return cert;
}
