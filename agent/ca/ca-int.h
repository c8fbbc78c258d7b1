/* ca internal: CSR building and checking the CA's reply chain, shared by the client and tests. */
#ifndef ZTUNNEL_CA_INT_H
#define ZTUNNEL_CA_INT_H

#include <openssl/evp.h>
#include <stddef.h>

#include "ztunnel/tls.h"

#define CA_MAX_CHAIN_CERTS 16		/* certificates across all cert_chain elements */
#define CA_MAX_PEM_LEN (1u << 20)	/* one cert_chain element */

/*
 * A fresh ECDSA P-256 key (*key, caller frees) and its CSR as a NUL-terminated PEM string (*pem,
 * malloc'd, caller frees): empty subject, one critical URI SAN spiffe_id in an extension
 * request, signed with SHA-256. 0 or -errno (-EINVAL for a malformed identity).
 */
int ca_csr_new(const char *spiffe_id, EVP_PKEY **key, char **pem);

/*
 * Checks a CreateCertificate reply: pems[0..n) each hold one or more PEM certificates, leaf
 * first, root last. The leaf must carry key's public key and exactly spiffe_id, and verify up
 * the chain to the root. Returns a new tls_cert (it takes its own reference to key; chain =
 * the certificates between leaf and root) and *root (caller frees), or NULL with err set.
 */
struct tls_cert *ca_chain_accept(char *const *pems, size_t n, EVP_PKEY *key,
				 const char *spiffe_id, X509 **root, char *err, size_t errlen);

#endif
