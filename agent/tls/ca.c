/* tls ca: the signing CA — loading it from PEM files, generating a throw-away one, writing it. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ztunnel/tls.h"

#define CA_VALIDITY_SECONDS (3650L * 86400L)	/* ten years */
#define CA_TRUST_DOMAIN_MAX 64			/* X.520 upper bound of an O attribute */

void tls_ca_free(struct tls_ca **ca)
{
	if (!ca || !*ca)
		return;
	X509_free((*ca)->cert);
	EVP_PKEY_free((*ca)->key);
	free(*ca);
	*ca = NULL;
}

static FILE *open_or_explain(const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");

	if (!fp)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return fp;
}

static X509 *load_ca_cert(const char *path, char *err, size_t errlen)
{
	FILE *fp = open_or_explain(path, err, errlen);
	X509 *cert;

	if (!fp)
		return NULL;
	cert = PEM_read_X509(fp, NULL, tls_pem_no_passphrase, NULL);
	fclose(fp);
	ERR_clear_error();
	if (!cert) {
		snprintf(err, errlen, "%s: no PEM certificate found", path);
		return NULL;
	}
	if (X509_check_ca(cert) != 1) {
		snprintf(err, errlen, "%s: not a CA certificate (needs basicConstraints CA:TRUE)", path);
		X509_free(cert);
		return NULL;
	}
	return cert;
}

static EVP_PKEY *load_ca_key(const char *path, char *err, size_t errlen)
{
	FILE *fp = open_or_explain(path, err, errlen);
	EVP_PKEY *key;

	if (!fp)
		return NULL;
	key = PEM_read_PrivateKey(fp, NULL, tls_pem_no_passphrase, NULL);
	fclose(fp);
	ERR_clear_error();
	if (!key) {
		snprintf(err, errlen, "%s: no unencrypted PEM private key found", path);
		return NULL;
	}
	if (!EVP_PKEY_is_a(key, "EC") && !EVP_PKEY_is_a(key, "RSA")) {
		snprintf(err, errlen, "%s: unsupported key type %s (ECDSA or RSA)", path,
			 EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "?");
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

struct tls_ca *tls_ca_load(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	struct tls_ca *ca = calloc(1, sizeof(*ca));

	if (!ca) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ca->cert = load_ca_cert(cert_path, err, errlen);
	if (!ca->cert)
		goto fail;
	ca->key = load_ca_key(key_path, err, errlen);
	if (!ca->key)
		goto fail;
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "%s: private key does not match certificate %s", key_path,
			 cert_path);
		goto fail;
	}
	return ca;
fail:
	tls_ca_free(&ca);
	return NULL;
}

static bool trust_domain_ok(const char *td)
{
	size_t n = td ? strnlen(td, CA_TRUST_DOMAIN_MAX + 1) : 0;

	if (n == 0 || n > CA_TRUST_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (td[i] <= ' ' || td[i] == 0x7f || td[i] == '/')
			return false;
	return true;
}

/* Fills x as a self-signed CA certificate for key, subject O=td. */
static int build_ca_cert(X509 *x, EVP_PKEY *key, const char *td)
{
	X509_NAME *name = X509_get_subject_name(x);
	time_t now = time(NULL);

	if (tls_x509_init(x, key, now - 60, now + CA_VALIDITY_SECONDS))
		return -EIO;
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)td, -1,
					-1, 0))
		return -EINVAL;
	if (!X509_set_issuer_name(x, name))
		return -EIO;
	if (tls_x509_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
	    tls_x509_add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    tls_x509_add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    tls_x509_add_ext(x, x, NID_authority_key_identifier, "keyid:always"))
		return -EIO;
	if (!X509_sign(x, key, EVP_sha256()))
		return -EIO;
	return 0;
}

struct tls_ca *tls_ca_generate(const char *trust_domain)
{
	struct tls_ca *ca = NULL;
	int err = EIO;

	if (!trust_domain_ok(trust_domain)) {
		errno = EINVAL;
		return NULL;
	}
	ca = calloc(1, sizeof(*ca));
	if (!ca) {
		errno = ENOMEM;
		return NULL;
	}
	ca->key = tls_key_generate();
	ca->cert = X509_new();
	if (!ca->key || !ca->cert)
		goto fail;
	if (build_ca_cert(ca->cert, ca->key, trust_domain))
		goto fail;
	return ca;
fail:
	ERR_clear_error();
	tls_ca_free(&ca);
	errno = err;
	return NULL;
}

int tls_ca_write(const struct tls_ca *ca, const char *cert_path, const char *key_path)
{
	int ret;

	if (!ca || !ca->cert || !ca->key)
		return -EINVAL;
	ret = tls_pem_write(key_path, 0600, tls_pem_emit_key, ca->key);
	if (ret)
		return ret;
	return tls_pem_write(cert_path, 0644, tls_pem_emit_cert, ca->cert);
}
