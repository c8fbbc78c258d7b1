/* tls ctx: HBONE SSL_CTXs — TLS 1.3 only, ALPN h2 both ways, mutual auth against one root. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/tls1.h>
#include <stdio.h>
#include <string.h>

#include "ztunnel/tls.h"

#include "internal.h"

static const char CTX_SUITES[] = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
static const char CTX_GROUPS[] = "X25519:P-256";
static const unsigned char CTX_ALPN[] = "\x02h2";	/* wire format: length, then name */
#define CTX_ALPN_LEN (sizeof(CTX_ALPN) - 1)
#define CTX_VERIFY_DEPTH 8

/* Whether a wire-format ALPN list offers "h2". */
static bool alpn_offers_h2(const unsigned char *list, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = list[i++];

		if (n > len - i)
			return false;
		if (n == CTX_ALPN_LEN - 1 && !memcmp(list + i, CTX_ALPN + 1, n))
			return true;
		i += n;
	}
	return false;
}

/* Server: select h2, or fail the handshake (no_application_protocol) when it is not offered. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	if (!alpn_offers_h2(in, inlen))
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = CTX_ALPN + 1;
	*outlen = CTX_ALPN_LEN - 1;
	return SSL_TLSEXT_ERR_OK;
}

/* Server: the ALPN callback never runs for a ClientHello without ALPN, so refuse that here. */
static int client_hello_check(SSL *ssl, int *alert, void *arg)
{
	const unsigned char *ext;
	size_t len;

	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation,
				       &ext, &len)) {
		*alert = SSL_AD_NO_APPLICATION_PROTOCOL;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

/*
 * Client: a server that ignored our ALPN would leave the connection without h2. In TLS 1.3
 * EncryptedExtensions (ALPN) precede the server's Certificate, so check while verifying it.
 */
static int client_verify(int preverify_ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	const unsigned char *proto = NULL;
	unsigned int len = 0;

	if (!preverify_ok || !ssl || X509_STORE_CTX_get_error_depth(store) != 0)
		return preverify_ok;
	SSL_get0_alpn_selected(ssl, &proto, &len);
	if (len != CTX_ALPN_LEN - 1 || memcmp(proto, CTX_ALPN + 1, len)) {
		X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

/* Protocol version, suites, groups, no resumption or tickets. */
static int set_protocol(SSL_CTX *ctx)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, CTX_SUITES) || !SSL_CTX_set1_groups_list(ctx, CTX_GROUPS))
		return -EIO;
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!SSL_CTX_set_num_tickets(ctx, 0))
		return -EIO;
	return 0;
}

static int set_identity(SSL_CTX *ctx, const struct tls_cert *cert)
{
	if (SSL_CTX_use_certificate(ctx, cert->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, cert->key) != 1)
		return -EIO;
	if (cert->chain && SSL_CTX_set1_chain(ctx, cert->chain) != 1)
		return -EIO;
	if (SSL_CTX_check_private_key(ctx) != 1)
		return -EKEYREJECTED;
	return 0;
}

/* Only root is trusted; the peer must present a certificate chaining to it. */
static int set_verify(SSL_CTX *ctx, X509 *root, enum tls_role role)
{
	X509_STORE *store = X509_STORE_new();

	if (!store)
		return -ENOMEM;
	if (X509_STORE_add_cert(store, root) != 1) {
		X509_STORE_free(store);
		return -EIO;
	}
	SSL_CTX_set_cert_store(ctx, store);	/* ctx owns it now */
	SSL_CTX_set_verify_depth(ctx, CTX_VERIFY_DEPTH);
	if (role == TLS_SERVER) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		return 0;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, client_verify);
	return 0;
}

static int set_alpn(SSL_CTX *ctx, enum tls_role role)
{
	if (role == TLS_SERVER) {
		SSL_CTX_set_client_hello_cb(ctx, client_hello_check, NULL);
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		return 0;
	}
	/* note the inverted convention: 0 is success */
	return SSL_CTX_set_alpn_protos(ctx, CTX_ALPN, CTX_ALPN_LEN) == 0 ? 0 : -EIO;
}

SSL_CTX *tls_ctx_new(const struct tls_cert *cert, X509 *root, enum tls_role role, char *err,
		     size_t errlen)
{
	char reason[256];
	const char *what;
	SSL_CTX *ctx;

	if (!err)
		errlen = 0;
	if (!cert || !cert->cert || !cert->key || !root) {
		snprintf(err, errlen, "tls context: missing certificate, key or root");
		return NULL;
	}
	what = "create";
	ctx = SSL_CTX_new(role == TLS_SERVER ? TLS_server_method() : TLS_client_method());
	if (!ctx)
		goto fail;
	what = "protocol settings";
	if (set_protocol(ctx))
		goto fail;
	what = "certificate and key";
	if (set_identity(ctx, cert))
		goto fail;
	what = "trust root";
	if (set_verify(ctx, root, role))
		goto fail;
	what = "alpn";
	if (set_alpn(ctx, role))
		goto fail;
	if (role == TLS_SERVER &&
	    !SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"ztunnel", 7))
		goto fail;
	SSL_CTX_set_keylog_callback(ctx, tls_ktls_keylog);	/* ZTUNNEL_KTLS's key; else a no-op */
	ERR_clear_error();
	return ctx;
fail:
	snprintf(err, errlen, "tls %s context: %s: %s", role == TLS_SERVER ? "server" : "client",
		 what, *tls_last_error(reason, sizeof(reason)) ? reason : "failed");
	SSL_CTX_free(ctx);
	return NULL;
}
