/* tls internal: X.509 building blocks and PEM file output shared by the CA and leaf code. */
#ifndef ZTUNNEL_TLS_INTERNAL_H
#define ZTUNNEL_TLS_INTERNAL_H

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/types.h>
#include <time.h>

/* A fresh ECDSA P-256 key pair, or NULL. */
EVP_PKEY *tls_key_generate(void);
/* Sets version 3, a random positive 128-bit serial, the validity window and the public key. */
int tls_x509_init(X509 *x, EVP_PKEY *key, time_t not_before, time_t not_after);
/* Adds one extension written in openssl.cnf syntax ("critical,CA:TRUE"); issuer may be x. */
int tls_x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value);
/* An ASN1_TIME as seconds since the epoch; 0 or -EINVAL. */
int tls_asn1_time(const ASN1_TIME *t, time_t *out);

/* Writes path atomically (temporary file, then rename) with mode; emit writes the content. */
typedef int (*tls_pem_emit_fn)(BIO *bio, const void *arg);
int tls_pem_write(const char *path, mode_t mode, tls_pem_emit_fn emit, const void *arg);
int tls_pem_emit_cert(BIO *bio, const void *x509);
int tls_pem_emit_key(BIO *bio, const void *pkey);
/* A PEM passphrase callback that refuses, so encrypted input fails instead of prompting a tty. */
int tls_pem_no_passphrase(char *buf, int size, int rwflag, void *u);

/* ktls.c: ZTUNNEL_KTLS for a transport (see tls-xprt.h) */
#include <linux/tls.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

struct tls_xprt;
/* The kernel's TLS_TX parameters (linux/tls.h), by cipher. */
union tls_ktls_info {
	struct tls_crypto_info info;
	struct tls12_crypto_info_aes_gcm_128 g128;
	struct tls12_crypto_info_aes_gcm_256 g256;
};
/* At tls_xprt_init with ktls: x->ktls_keys, and x found from its SSL by the keylog callback. */
int tls_ktls_attach(struct tls_xprt *x);
/* Wipes and frees x->ktls_keys. */
void tls_ktls_free(struct tls_xprt *x);
/* SSL_CTX_set_keylog_callback's callback of every HBONE context: keeps our traffic secret for
 * a transport with kTLS asked for, ignores everything else. */
void tls_ktls_keylog(const SSL *ssl, const char *line);
/* Counts the records in ciphertext written after the handshake (their sequence numbers). */
void tls_ktls_count(struct tls_xprt *x, const uint8_t *p, size_t len);
/* The TLS_TX parameters for the secret (TLS 1.3 AES-GCM, key and iv by HKDF-Expand-Label) and
 * record sequence seq. 0, -EOPNOTSUPP (another cipher) or -EIO. */
int tls_ktls_crypto_info(const SSL *ssl, const uint8_t *secret, size_t slen, uint64_t seq,
			 union tls_ktls_info *ci, socklen_t *len);
/* After the handshake: attaches TCP_ULP "tls". 0 (keys pending) or -errno (x->reason). */
int tls_ktls_start(struct tls_xprt *x);
/* Once the queue is drained: TLS_TX. 0 (records now sealed by the kernel), -EAGAIN (not
 * pending or not drained), else -errno with x->reason (user space from here on). */
int tls_ktls_install(struct tls_xprt *x);

#endif
