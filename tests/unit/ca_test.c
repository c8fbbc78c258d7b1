// unit-standalone
/* ca unit tests: the CSR's shape, the request's exact protobuf bytes, token reading, and the
 * checks on a CA reply chain (key, identity, path to the root, garbage), the CLI's usage. */
#include "../../agent/ca/chain.c"
#include "../../agent/ca/client.c"
#include "../../agent/ca/csr.c"
#include "../../agent/ca/tool.c"
#include "../../agent/grpc/call.c"
#include "../../agent/grpc/recv.c"
#include "../../agent/grpc/session.c"
#include "../../agent/grpc/transport.c"
#include "../../agent/io/buf.c"
#include "../../agent/tls/ktls.c"
#include "../../agent/tls/xprt.c"
#include "../../agent/tls/ca.c"
#include "../../agent/tls/cert.c"
#include "../../agent/tls/identity.c"
#include "../../agent/tls/x509.c"
#include "ca.pb-c.c"
#include "google_struct.pb-c.c"

#include "check.h"

#define ID "spiffe://cluster.local/ns/default/sa/app"

static void test_csr(void)
{
	const char *bad[] = { "", "spiffe://td", "http://td/ns/a/sa/b", "spiffe://td/ns//sa/b" };
	STACK_OF(X509_EXTENSION) *exts = NULL;
	GENERAL_NAMES *names = NULL;
	X509_EXTENSION *ext;
	X509_REQ *req = NULL;
	EVP_PKEY *key = NULL;
	char *pem = NULL;
	BIO *bio;
	int crit = -1;

	CHECK(ca_csr_new(ID, &key, &pem) == 0 && key && pem, "csr");
	bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	CHECK(req, "the CSR parses as PEM");
	if (req) {
		CHECK(X509_REQ_verify(req, key) == 1, "signed by our key");
		CHECK(X509_NAME_entry_count(X509_REQ_get_subject_name(req)) == 0, "no subject / CN");
		CHECK(X509_REQ_get_signature_nid(req) == NID_ecdsa_with_SHA256, "ECDSA SHA-256");
		exts = X509_REQ_get_extensions(req);
		CHECK(exts && sk_X509_EXTENSION_num(exts) == 1, "one requested extension");
		ext = exts && sk_X509_EXTENSION_num(exts) ? sk_X509_EXTENSION_value(exts, 0) : NULL;
		names = ext ? X509V3_EXT_d2i(ext) : NULL;
		crit = ext ? X509_EXTENSION_get_critical(ext) : -1;
	}
	CHECK(crit == 1, "the SAN is critical");
	CHECK(names && sk_GENERAL_NAME_num(names) == 1 &&
		      sk_GENERAL_NAME_value(names, 0)->type == GEN_URI &&
		      !strcmp((const char *)ASN1_STRING_get0_data(
				      sk_GENERAL_NAME_value(names, 0)->d.uniformResourceIdentifier),
			      ID),
	      "one URI SAN = the identity");
	CHECK(key && EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) == 256, "P-256 key");
	GENERAL_NAMES_free(names);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	BIO_free(bio);
	EVP_PKEY_free(key);
	free(pem);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(ca_csr_new(bad[i], &key, &pem) == -EINVAL && !key && !pem, "'%s'", bad[i]);
	}
}

/* The request bytes equal what Python's protobuf (grpc_tools) makes from the same values. */
static void test_request_bytes(void)
{
	static const uint8_t want[] = "\n\x01x\x18\x05\"&\n$\n\x14ImpersonatedIdentity\x12\x0c"
				      "\x1a\nspiffe://a";
	Istio__V1__Auth__IstioCertificateRequest *back;
	uint8_t *buf = NULL;
	size_t len = 0;

	CHECK(encode_request("x", 5, "spiffe://a", &buf, &len) == 0, "encode");
	CHECK(len == sizeof(want) - 1 && !memcmp(buf, want, len), "bytes (len %zu)", len);
	back = istio__v1__auth__istio_certificate_request__unpack(NULL, len, buf);
	CHECK(back && back->metadata && back->metadata->n_fields == 1 &&
		      !strcmp(back->metadata->fields[0]->key, "ImpersonatedIdentity"),
	      "round trip");
	if (back)
		istio__v1__auth__istio_certificate_request__free_unpacked(back, NULL);
	free(buf);
}

static char tmpdir[] = "/tmp/ca_test.XXXXXX";

static int token_of(const char *content, char *out, size_t len, char *err)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/token", tmpdir);
	f = fopen(path, "w");
	if (!f)
		return -EIO;
	fputs(content, f);
	fclose(f);
	return read_token(path, out, len, err, 256);
}

static void test_token(void)
{
	char tok[64], err[256];

	CHECK(token_of("  abc.def-ghi\n\n", tok, sizeof(tok), err) == 0 && !strcmp(tok, "abc.def-ghi"),
	      "trimmed: '%s'", tok);
	CHECK(token_of(" \n", tok, sizeof(tok), err) == -EINVAL && strstr(err, "empty"), "%s", err);
	CHECK(token_of("a\rb", tok, sizeof(tok), err) == -EINVAL && strstr(err, "control"), "%s",
	      err);
	CHECK(token_of("0123456789012345678901234567890123456789012345678901234567890123456789",
		       tok, sizeof(tok), err) == -EINVAL && strstr(err, "too large"), "%s", err);
	CHECK(read_token("/nonexistent/token", tok, sizeof(tok), err, sizeof(err)) == -ENOENT,
	      "%s", err);
}

static char *pem_of(X509 *x, const char *extra)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_X509(bio, x);
	n = BIO_get_mem_data(bio, &data);
	out = malloc((size_t)n + strlen(extra) + 1);
	memcpy(out, data, (size_t)n);
	strcpy(out + n, extra);
	BIO_free(bio);
	return out;
}

enum chain_case { C_OK, C_ONE_ELEMENT, C_OTHER_KEY, C_OTHER_ID, C_OTHER_ROOT, C_LEAF_ONLY,
		  C_EMPTY, C_GARBAGE, C_DAMAGED, C_TOO_MANY };

static const struct {
	enum chain_case kind;
	const char *err;	/* NULL: accepted */
} chain_cases[] = {
	{ C_OK, NULL },
	{ C_ONE_ELEMENT, NULL },
	{ C_OTHER_KEY, "public key is not the one in our CSR" },
	{ C_OTHER_ID, "is for 'spiffe://cluster.local/ns/evil/sa/x', not the requested" },
	{ C_OTHER_ROOT, "does not verify against the returned root" },
	{ C_LEAF_ONLY, "holds 1 certificate" },
	{ C_EMPTY, "holds 0 certificate" },
	{ C_GARBAGE, "cert_chain[0] is not PEM" },
	{ C_DAMAGED, "cert_chain[1] is not PEM" },
	{ C_TOO_MANY, "is not PEM" },
};

struct chain_fixture {
	struct tls_ca *ca, *other;
	struct tls_cert *leaf, *evil;
	EVP_PKEY *stranger;
};

/* Fills pems for one case; returns how many and which key the "CSR" had. */
static size_t chain_setup(const struct chain_fixture *fx, enum chain_case kind, char **pems,
			  EVP_PKEY **key)
{
	X509 *root = kind == C_OTHER_ROOT ? fx->other->cert : fx->ca->cert;
	X509 *leaf = kind == C_OTHER_ID ? fx->evil->cert : fx->leaf->cert;
	size_t n = 2;

	*key = kind == C_OTHER_KEY ? fx->stranger : fx->leaf->key;
	if (kind == C_OTHER_ID)
		*key = fx->evil->key;
	pems[0] = pem_of(leaf, "");
	pems[1] = pem_of(root, kind == C_DAMAGED ? "-----BEGIN CERTIFICATE-----\nMIIB\n" : "");
	if (kind == C_ONE_ELEMENT) {
		char *both = pem_of(leaf, pems[1]);

		free(pems[0]);
		free(pems[1]);
		pems[0] = both;
		pems[1] = NULL;
		n = 1;
	} else if (kind == C_LEAF_ONLY) {
		n = 1;
	} else if (kind == C_EMPTY) {
		n = 0;
	} else if (kind == C_GARBAGE) {
		strcpy(pems[0], "garbage");
	} else if (kind == C_TOO_MANY) {
		free(pems[0]);
		pems[0] = malloc(1);
		pems[0][0] = '\0';
		for (int i = 0; i < CA_MAX_CHAIN_CERTS; i++) {
			char *more = pem_of(leaf, pems[0]);

			free(pems[0]);
			pems[0] = more;
		}
	}
	return n;
}

static void test_chain(void)
{
	struct chain_fixture fx = {
		.ca = tls_ca_generate("cluster.local"),
		.other = tls_ca_generate("cluster.local"),
		.stranger = EVP_EC_gen("P-256"),
	};

	fx.leaf = fx.ca ? tls_ca_issue(fx.ca, ID, 3600) : NULL;
	fx.evil = fx.ca ? tls_ca_issue(fx.ca, "spiffe://cluster.local/ns/evil/sa/x", 3600) : NULL;
	if (!fx.ca || !fx.other || !fx.stranger || !fx.leaf || !fx.evil) {
		CHECK(0, "fixture");
		return;
	}
	for (size_t i = 0; i < sizeof(chain_cases) / sizeof(chain_cases[0]); i++) {
		char *pems[2] = { NULL, NULL }, err[256] = "";
		EVP_PKEY *key;
		X509 *root = NULL;
		size_t n = chain_setup(&fx, chain_cases[i].kind, pems, &key);
		struct tls_cert *cert = ca_chain_accept(pems, n, key, ID, &root, err, sizeof(err));

		if (!chain_cases[i].err) {
			CHECK(cert && root && !X509_cmp(root, fx.ca->cert), "case %zu: %s", i, err);
			CHECK(cert && !strcmp(cert->identity, ID) && sk_X509_num(cert->chain) == 0 &&
				      cert->not_after > time(NULL) + 3000 &&
				      cert->not_before <= time(NULL),
			      "case %zu: fields", i);
		} else {
			CHECK(!cert && !root && strstr(err, chain_cases[i].err),
			      "case %zu: err '%s'", i, err);
		}
		tls_cert_free(&cert);
		X509_free(root);
		free(pems[0]);
		free(pems[1]);
	}
	tls_cert_free(&fx.leaf);
	tls_cert_free(&fx.evil);
	tls_ca_free(&fx.ca);
	tls_ca_free(&fx.other);
	EVP_PKEY_free(fx.stranger);
}

static void test_client_and_tool(void)
{
	struct ca_client_config cfg = { .address = "http://127.0.0.1:1", .timeout_ms = 1000 };
	struct ca_client *c;
	char err[512];
	X509 *root = NULL;
	char *usage1[] = { "ca-fetch", "http://x:1", ID }, *usage2[] = { "ca-fetch", "--ttl", "0",
		"a", "b", "c", "d", "e" }, *other[] = { "cert-issue" };

	CHECK(!ca_client_new(&(struct ca_client_config){ 0 }) && errno == EINVAL, "no address");
	c = ca_client_new(&cfg);
	CHECK(c, "client");
	CHECK(!ca_client_issue(c, "not-spiffe", &root, err, sizeof(err)) && strstr(err, "CSR"),
	      "%s", err);
	CHECK(!ca_client_issue(c, ID, &root, err, sizeof(err)) && !root &&
		      strstr(err, "Connection refused"),
	      "%s", err);
	ca_client_free(&c);
	CHECK(!c, "freed");
	CHECK(ca_tool_handles("ca-fetch") && !ca_tool_handles("ca-init") && !ca_tool_handles(NULL),
	      "handles");
	CHECK(ca_tool_main(3, usage1) == 2, "too few arguments");
	CHECK(ca_tool_main(8, usage2) == 2, "bad ttl");
	CHECK(ca_tool_main(1, other) == 2, "other subcommand");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);	/* FAIL lines survive a sanitizer exit */
	if (!mkdtemp(tmpdir)) {
		printf("FAIL mkdtemp\n");
		return 1;
	}
	test_csr();
	test_request_bytes();
	test_token();
	test_chain();
	test_client_and_tool();
	unlink(strcat(strcpy((char[160]){ 0 }, tmpdir), "/token"));
	rmdir(tmpdir);
	if (failures)
		printf("%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
