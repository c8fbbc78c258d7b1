/* tls x509: key generation, certificate skeletons, extensions and atomic PEM file output. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

EVP_PKEY *tls_key_generate(void)
{
	return EVP_EC_gen("P-256");
}

static int set_random_serial(X509 *x)
{
	unsigned char raw[16];
	BIGNUM *bn = NULL;
	int ret = -EIO;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	raw[0] &= 0x7f;		/* a positive INTEGER in 16 octets */
	raw[0] |= 0x01;		/* and never zero */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (!bn)
		goto out;
	if (!BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	ret = 0;
out:
	BN_free(bn);
	return ret;
}

int tls_x509_init(X509 *x, EVP_PKEY *key, time_t not_before, time_t not_after)
{
	if (!X509_set_version(x, X509_VERSION_3))
		return -EIO;
	if (set_random_serial(x))
		return -EIO;
	if (!ASN1_TIME_set(X509_getm_notBefore(x), not_before) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), not_after))
		return -EINVAL;
	if (!X509_set_pubkey(x, key))
		return -EIO;
	return 0;
}

int tls_x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (!ext)
		return -EINVAL;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

int tls_asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

int tls_pem_emit_cert(BIO *bio, const void *x509)
{
	return PEM_write_bio_X509(bio, (X509 *)x509) ? 0 : -EIO;
}

int tls_pem_emit_key(BIO *bio, const void *pkey)
{
	return PEM_write_bio_PrivateKey(bio, (EVP_PKEY *)pkey, NULL, NULL, 0, NULL, NULL) ? 0 : -EIO;
}

int tls_pem_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* Writes emit's output into the open fd (which this takes over) and syncs it. */
static int write_fd(int fd, tls_pem_emit_fn emit, const void *arg)
{
	BIO *bio = BIO_new_fd(fd, BIO_CLOSE);
	int ret;

	if (!bio) {
		close(fd);
		return -ENOMEM;
	}
	ret = emit(bio, arg);
	if (!ret && BIO_flush(bio) != 1)
		ret = -EIO;
	if (!ret && fsync(fd))
		ret = -errno;
	BIO_free(bio);
	return ret;
}

int tls_pem_write(const char *path, mode_t mode, tls_pem_emit_fn emit, const void *arg)
{
	char tmp[PATH_MAX];
	int fd, ret;

	if (!path || !*path)
		return -EINVAL;
	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);	/* created 0600: a key is never readable by others, even briefly */
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode)) {
		ret = -errno;
		close(fd);
		goto fail;
	}
	ret = write_fd(fd, emit, arg);
	if (ret)
		goto fail;
	if (rename(tmp, path)) {
		ret = -errno;
		goto fail;
	}
	return 0;
fail:
	unlink(tmp);
	return ret;
}
