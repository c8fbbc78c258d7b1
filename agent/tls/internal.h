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

struct tls_xprt;
/* ktls.c: after the handshake of a transport with kTLS asked for. 0 or -errno. */
int tls_ktls_start(struct tls_xprt *x);

#endif
