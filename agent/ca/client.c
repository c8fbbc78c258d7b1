/* ca client: IstioCertificateService/CreateCertificate calls with bearer token and cluster id. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca-int.h"
#include "ca.pb-c.h"
#include "google_struct.pb-c.h"
#include "ztunnel/ca.h"
#include "ztunnel/grpc.h"

#define CA_METHOD "/istio.v1.auth.IstioCertificateService/CreateCertificate"
#define CA_TOKEN_MAX (16u << 10)	/* projected SA tokens are ~1 KiB */
#define CA_DEFAULT_TTL 86400u
#define CA_DEFAULT_TIMEOUT_MS 10000

struct ca_client {
	char *address;		/* all strings owned */
	char *root_ca_path;	/* NULL: system roots */
	char *token_path;	/* NULL: no authorization header */
	char *cluster_id;	/* NULL: no clusterid header */
	unsigned ttl_seconds;
	int timeout_ms;
};

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src || !src[0])
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

struct ca_client *ca_client_new(const struct ca_client_config *cfg)
{
	struct ca_client *c;

	if (!cfg || !cfg->address || !cfg->address[0]) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ttl_seconds = cfg->ttl_seconds ? cfg->ttl_seconds : CA_DEFAULT_TTL;
	c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : CA_DEFAULT_TIMEOUT_MS;
	if (dup_opt(&c->address, cfg->address) || dup_opt(&c->root_ca_path, cfg->root_ca_path) ||
	    dup_opt(&c->token_path, cfg->token_path) || dup_opt(&c->cluster_id, cfg->cluster_id)) {
		ca_client_free(&c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

void ca_client_free(struct ca_client **cp)
{
	struct ca_client *c = cp ? *cp : NULL;

	if (!c)
		return;
	free(c->address);
	free(c->root_ca_path);
	free(c->token_path);
	free(c->cluster_id);
	free(c);
	*cp = NULL;
}

/* The token file's content without surrounding white space; read on every call (it rotates). */
static int read_token(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	size_t n = 0, start = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
		return -errno;
	}
	while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	while (start < n && isspace((unsigned char)buf[start]))
		start++;
	memmove(buf, buf + start, n - start + 1);
	for (char *c = buf; *c; c++) {
		if ((unsigned char)*c < ' ' || *c == 0x7f) {
			snprintf(err, errlen, "token file %s holds control characters", path);
			return -EINVAL;
		}
	}
	if (!buf[0] || n >= len - 1) {
		snprintf(err, errlen, "token file %s is %s", path, buf[0] ? "too large" : "empty");
		return -EINVAL;
	}
	return 0;
}

/* IstioCertificateRequest{csr, validity_duration, metadata{ImpersonatedIdentity: id}}. */
static int encode_request(const char *csr, unsigned ttl, const char *id, uint8_t **out,
			  size_t *len)
{
	Istio__V1__Auth__IstioCertificateRequest req = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
	Google__Protobuf__Struct md = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Struct__FieldsEntry entry = GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT;
	Google__Protobuf__Struct__FieldsEntry *entries[1] = { &entry };
	Google__Protobuf__Value value = GOOGLE__PROTOBUF__VALUE__INIT;

	value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	value.string_value = (char *)id;
	entry.key = (char *)"ImpersonatedIdentity";
	entry.value = &value;
	md.n_fields = 1;
	md.fields = entries;
	req.csr = (char *)csr;
	req.validity_duration = (int64_t)ttl;
	req.metadata = &md;
	*len = istio__v1__auth__istio_certificate_request__get_packed_size(&req);
	*out = malloc(*len ? *len : 1);
	if (!*out)
		return -ENOMEM;
	istio__v1__auth__istio_certificate_request__pack(&req, *out);
	return 0;
}

/* Opens a channel carrying this call's authorization (fresh token) and clusterid headers. */
static struct grpc_channel *open_channel(struct ca_client *c, char *err, size_t errlen)
{
	char token[CA_TOKEN_MAX], bearer[CA_TOKEN_MAX + 16], why[300];
	struct grpc_metadata md[2];
	struct grpc_channel *ch;
	size_t n = 0;

	if (c->token_path) {
		if (read_token(c->token_path, token, sizeof(token), err, errlen))
			return NULL;
		snprintf(bearer, sizeof(bearer), "Bearer %s", token);
		md[n++] = (struct grpc_metadata){ "authorization", bearer };
	}
	if (c->cluster_id)
		md[n++] = (struct grpc_metadata){ "clusterid", c->cluster_id };
	ch = grpc_channel_open(c->address, c->root_ca_path, md, n, c->timeout_ms, why,
			       sizeof(why));
	if (!ch)
		snprintf(err, errlen, "CA %s: %s", c->address, why);
	return ch;
}

/* One CreateCertificate round trip: the reply's cert_chain, or NULL with err set. */
static Istio__V1__Auth__IstioCertificateResponse *
create_certificate(struct ca_client *c, struct grpc_channel *ch, const uint8_t *req, size_t len,
		   char *err, size_t errlen)
{
	Istio__V1__Auth__IstioCertificateResponse *resp;
	uint8_t *reply = NULL;
	size_t reply_len = 0;
	char why[300];
	int ret;

	ret = grpc_unary(ch, CA_METHOD, req, len, &reply, &reply_len, c->timeout_ms, why,
			 sizeof(why));
	if (ret < 0) {
		snprintf(err, errlen, "CA %s: %s", c->address, why);
		return NULL;
	}
	if (ret != GRPC_OK) {
		snprintf(err, errlen, "CA %s refused: %s (%d): %s", c->address,
			 grpc_status_name(ret), ret, why);
		return NULL;
	}
	resp = istio__v1__auth__istio_certificate_response__unpack(NULL, reply_len, reply);
	free(reply);
	if (!resp)
		snprintf(err, errlen, "CA %s: the reply is not an IstioCertificateResponse",
			 c->address);
	return resp;
}

struct tls_cert *ca_client_issue(struct ca_client *c, const char *spiffe_id, X509 **root,
				 char *err, size_t errlen)
{
	Istio__V1__Auth__IstioCertificateResponse *resp = NULL;
	struct grpc_channel *ch = NULL;
	struct tls_cert *cert = NULL;
	EVP_PKEY *key = NULL;
	char *csr = NULL, why[300];
	uint8_t *req = NULL;
	size_t len;

	*root = NULL;
	if (!c || ca_csr_new(spiffe_id, &key, &csr)) {
		snprintf(err, errlen, "cannot make a CSR for '%s' (want spiffe://TD/ns/NS/sa/SA)",
			 spiffe_id ? spiffe_id : "");
		return NULL;
	}
	if (encode_request(csr, c->ttl_seconds, spiffe_id, &req, &len)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ch = open_channel(c, err, errlen);
	if (!ch)
		goto out;
	resp = create_certificate(c, ch, req, len, err, errlen);
	if (!resp)
		goto out;
	cert = ca_chain_accept(resp->cert_chain, resp->n_cert_chain, key, spiffe_id, root, why,
			       sizeof(why));
	if (!cert)
		snprintf(err, errlen, "CA %s: reply for %s refused: %s", c->address, spiffe_id, why);
out:
	if (resp)
		istio__v1__auth__istio_certificate_response__free_unpacked(resp, NULL);
	grpc_channel_close(&ch);
	free(req);
	free(csr);
	EVP_PKEY_free(key);
	return cert;
}
