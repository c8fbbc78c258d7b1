/* ca: workload certificates from Istio's CA (IstioCertificateService/CreateCertificate). */
#ifndef ZTUNNEL_CA_H
#define ZTUNNEL_CA_H

#include <stdbool.h>
#include <ztunnel/tls.h>

struct ca_client_config {
	const char *address;		/* CA_ADDRESS, "https://istiod.istio-system.svc:15012" */
	const char *root_ca_path;	/* CA_ROOT_CA: PEM roots to verify the CA server */
	const char *token_path;		/* bearer token file (projected SA token), re-read per call */
	const char *cluster_id;		/* CLUSTER_ID, "Kubernetes" */
	unsigned ttl_seconds;		/* SECRET_TTL */
	int timeout_ms;			/* per call, 10 s */
};

struct ca_client;
struct ca_client *ca_client_new(const struct ca_client_config *cfg);
void ca_client_free(struct ca_client **c);

/*
 * Gets a certificate for spiffe_id: a new ECDSA P-256 key and CSR (PEM, one URI SAN, no CN),
 * IstioCertificateRequest{csr=1, validity_duration=3, metadata=4 Struct{"ImpersonatedIdentity":
 * spiffe_id}} with headers authorization: Bearer <token> and clusterid, to
 * /istio.v1.auth.IstioCertificateService/CreateCertificate. The reply's cert_chain (leaf first,
 * root last) is checked: the leaf matches our key and carries exactly spiffe_id. *root receives
 * the last certificate of the chain (the trust anchor; caller frees). NULL with a reason in err.
 */
struct tls_cert *ca_client_issue(struct ca_client *c, const char *spiffe_id, X509 **root,
				 char *err, size_t errlen);

/*
 * The certificate-fetch CLI behind the agent's main(): argv[0] is the subcommand,
 *   ca-fetch [--root-ca PEM] [--token FILE] [--cluster-id ID] [--ttl SECONDS] [--timeout-ms MS]
 *            ADDRESS SPIFFE_ID CERT_OUT KEY_OUT ROOT_OUT
 * One ca_client_issue call; writes the leaf + intermediates, the key (0600) and the root as PEM
 * and prints one line "identity=... not_before=... not_after=... intermediates=N".
 * Returns an exit code: 0 done, 1 failed (reason on stderr), 2 usage error.
 */
int ca_tool_main(int argc, char **argv);
/* Whether subcommand is one of ca_tool_main's. */
bool ca_tool_handles(const char *subcommand);

#endif
