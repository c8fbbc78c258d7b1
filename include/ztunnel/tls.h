/* tls: the signing CA, per-identity certificates, HBONE TLS contexts and SPIFFE identity checks. */
#ifndef ZTUNNEL_TLS_H
#define ZTUNNEL_TLS_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define TLS_SPIFFE_MAX 512	/* longest identity accepted, with the "spiffe://" */

/* A CA that signs workload certificates: its certificate and private key. */
struct tls_ca {
	X509 *cert;	/* owned */
	EVP_PKEY *key;	/* owned */
};

/*
 * Loads a CA from PEM files (certificate, then private key; ECDSA or RSA). Returns a new CA,
 * or NULL with a one-line reason in err (which file, what is wrong).
 */
struct tls_ca *tls_ca_load(const char *cert_path, const char *key_path, char *err, size_t errlen);
/* A throw-away self-signed ECDSA P-256 CA valid for 10 years, or NULL. */
struct tls_ca *tls_ca_generate(const char *trust_domain);
/* Writes the CA as PEM (key file mode 0600). 0 or -errno. */
int tls_ca_write(const struct tls_ca *ca, const char *cert_path, const char *key_path);
void tls_ca_free(struct tls_ca **ca);

/* A workload certificate with its key. */
struct tls_cert {
	X509 *cert;		/* owned; leaf */
	EVP_PKEY *key;		/* owned */
	STACK_OF(X509) *chain;	/* owned; intermediates up to (not including) the root; may be empty */
	time_t not_before;
	time_t not_after;
	char identity[TLS_SPIFFE_MAX];	/* the URI SAN */
};

/*
 * Issues a fresh ECDSA P-256 leaf for spiffe_id ("spiffe://td/ns/x/sa/y"), one URI SAN, no CN,
 * valid from one minute ago for ttl_seconds, usable for client and server auth.
 * Returns a new cert, or NULL with errno set (EINVAL for a malformed identity).
 */
struct tls_cert *tls_ca_issue(const struct tls_ca *ca, const char *spiffe_id, unsigned ttl_seconds);
void tls_cert_free(struct tls_cert **cert);

/* Writes cert as PEM: the leaf then its chain to cert_path, the key to key_path (mode 0600). */
int tls_cert_write(const struct tls_cert *cert, const char *cert_path, const char *key_path);
/*
 * Parses one certificate from PEM ("-----BEGIN CERTIFICATE-----", the first one) or DER bytes.
 * Returns a new X509 the caller frees, or NULL with errno EINVAL.
 */
X509 *tls_cert_parse(const void *data, size_t len);

enum tls_role { TLS_CLIENT, TLS_SERVER };

/*
 * An SSL_CTX for HBONE with cert as our identity and root as the only trust anchor:
 * TLS 1.3 only, suites AES-256-GCM-SHA384 then AES-128-GCM-SHA256, groups X25519 and P-256,
 * ALPN "h2" (a server refuses a client that does not offer it), no session resumption or
 * tickets. The peer must present a certificate chaining to root (server: client cert required).
 * Identity checks beyond the chain are the caller's (tls_peer_identity). Returns NULL with a
 * reason in err.
 */
SSL_CTX *tls_ctx_new(const struct tls_cert *cert, X509 *root, enum tls_role role, char *err,
		     size_t errlen);

/*
 * The single URI SAN of cert when it is a spiffe:// identity. 0, -ENOENT when there is no URI
 * SAN, -EPROTO when there are several or it is not spiffe://, -ENAMETOOLONG when buf is short.
 */
int tls_cert_identity(X509 *cert, char *buf, size_t len);
/* The verified peer's identity after a completed handshake (tls_cert_identity of its leaf). */
int tls_peer_identity(SSL *ssl, char *buf, size_t len);

/* An identity split into parts; strings point into `buf`. */
struct tls_spiffe {
	char buf[TLS_SPIFFE_MAX];
	const char *trust_domain;
	const char *namespace_;
	const char *service_account;
};
/* Parses "spiffe://td/ns/NS/sa/SA" (exactly that shape, no empty parts). 0 or -EINVAL. */
int tls_spiffe_parse(const char *id, struct tls_spiffe *out);
/* Formats "spiffe://td/ns/ns/sa/sa" into buf; empty td = cluster.local, empty sa = default. */
const char *tls_spiffe_format(const char *td, const char *ns, const char *sa, char *buf, size_t len);

/* A subjectAltName value holding exactly the URI uri (caller frees with GENERAL_NAMES_free);
 * NULL on allocation failure. For certificates and certificate requests alike. */
GENERAL_NAMES *tls_uri_san(const char *uri);

/* A human-readable reason for the last OpenSSL error on this thread ("" if none); clears it. */
const char *tls_last_error(char *buf, size_t len);

/*
 * The certificate CLI behind the agent's main(): argv[0] is the subcommand,
 *   ca-init CERT_OUT KEY_OUT [TRUST_DOMAIN]
 *   cert-issue CA_CERT CA_KEY SPIFFE_ID CERT_OUT KEY_OUT [TTL_SECONDS]
 * Returns an exit code: 0 done, 1 failed (reason on stderr), 2 usage error.
 */
int tls_tool_main(int argc, char **argv);
/* Whether subcommand is one of tls_tool_main's. */
bool tls_tool_handles(const char *subcommand);

#endif
