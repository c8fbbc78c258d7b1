/* tls ktls: ZTUNNEL_KTLS: our sending keys to the kernel (TLS_TX) once the handshake's bytes are out. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/tls1.h>

#include <ztunnel/tls-xprt.h>

#include "internal.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/*
 * What the hand-off needs, kept only while it is pending: our traffic secret (from OpenSSL's
 * keylog callback; OpenSSL 3.0 has no getter and passes nothing to a custom BIO) and how many
 * records went out under it in user space before the kernel takes over (the record sequence).
 */
struct tls_ktls {
	uint8_t secret[EVP_MAX_MD_SIZE];
	size_t secret_len;
	uint64_t tx_records;
	bool counting_ok;	/* every BIO write after the handshake held whole records */
	bool pending;		/* ULP attached, waiting for the queue to drain */
};

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
	ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int tls_ktls_attach(struct tls_xprt *x)
{
	pthread_once(&ex_once, ex_init);
	if (ex_index < 0 || !(x->ktls_keys = calloc(1, sizeof(*x->ktls_keys))))
		return -ENOMEM;
	x->ktls_keys->counting_ok = true;
	return SSL_set_ex_data(x->ssl, ex_index, x) == 1 ? 0 : -ENOMEM;
}

void tls_ktls_free(struct tls_xprt *x)
{
	if (!x->ktls_keys)
		return;
	OPENSSL_cleanse(x->ktls_keys, sizeof(*x->ktls_keys));
	free(x->ktls_keys);
	x->ktls_keys = NULL;
}

static int hex_nibble(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>": ours is kept, the rest ignored. */
void tls_ktls_keylog(const SSL *ssl, const char *line)
{
	struct tls_xprt *x = ex_index >= 0 ? SSL_get_ex_data(ssl, ex_index) : NULL;
	const char *want = SSL_is_server(ssl) ? "SERVER_TRAFFIC_SECRET_0 " :
						"CLIENT_TRAFFIC_SECRET_0 ";
	const char *hex;
	size_t n = 0;

	if (!x || !x->ktls_keys || strncmp(line, want, strlen(want)) != 0)
		return;
	hex = strchr(line + strlen(want), ' ');
	if (!hex)
		return;
	for (hex++; hex[0] && hex[1] && n < sizeof(x->ktls_keys->secret); hex += 2) {
		int hi = hex_nibble(hex[0]), lo = hex_nibble(hex[1]);

		if (hi < 0 || lo < 0)
			break;
		x->ktls_keys->secret[n++] = (uint8_t)(hi << 4 | lo);
	}
	x->ktls_keys->secret_len = n;
}

void tls_ktls_count(struct tls_xprt *x, const uint8_t *p, size_t len)
{
	while (len >= 5) {
		size_t rl = (size_t)p[3] << 8 | p[4];

		if (rl + 5 > len)
			break;
		x->ktls_keys->tx_records++;
		p += rl + 5;
		len -= rl + 5;
	}
	if (len)
		x->ktls_keys->counting_ok = false;	/* a record across writes: sequence unknown */
}

/* HKDF-Expand-Label(secret, label, "", out_len) of RFC 8446 7.1. */
static int expand_label(const char *digest, const uint8_t *secret, size_t slen, const char *label,
			uint8_t *out, size_t out_len)
{
	uint8_t info[2 + 1 + 6 + 16 + 1];
	size_t ll = strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ret = -EIO;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM p[5];

	if (!kctx || ll > 16)
		goto out;
	info[n++] = (uint8_t)(out_len >> 8);
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(6 + ll);
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, ll);
	n += ll;
	info[n++] = 0;	/* empty context */
	p[0] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	p[1] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0);
	p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, slen);
	p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n);
	p[4] = OSSL_PARAM_construct_end();
	ret = EVP_KDF_derive(kctx, out, out_len, p) == 1 ? 0 : -EIO;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ret;
}

int tls_ktls_crypto_info(const SSL *ssl, const uint8_t *secret, size_t slen, uint64_t seq,
			 union tls_ktls_info *ci, socklen_t *len)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	uint32_t id = c ? SSL_CIPHER_get_id(c) : 0;
	bool big = id == TLS1_3_CK_AES_256_GCM_SHA384;
	uint8_t key[32], iv[12], *k, *civ, *salt, *rs;
	size_t klen = big ? 32 : 16;

	if (!big && id != TLS1_3_CK_AES_128_GCM_SHA256)
		return -EOPNOTSUPP;
	if (expand_label(big ? "SHA384" : "SHA256", secret, slen, "key", key, klen) ||
	    expand_label(big ? "SHA384" : "SHA256", secret, slen, "iv", iv, sizeof(iv)))
		return -EIO;
	memset(ci, 0, sizeof(*ci));
	ci->info.version = TLS_1_3_VERSION;
	if (big) {
		ci->info.cipher_type = TLS_CIPHER_AES_GCM_256;
		k = ci->g256.key, civ = ci->g256.iv, salt = ci->g256.salt, rs = ci->g256.rec_seq;
		*len = sizeof(ci->g256);
	} else {
		ci->info.cipher_type = TLS_CIPHER_AES_GCM_128;
		k = ci->g128.key, civ = ci->g128.iv, salt = ci->g128.salt, rs = ci->g128.rec_seq;
		*len = sizeof(ci->g128);
	}
	memcpy(k, key, klen);
	memcpy(salt, iv, 4);	/* the kernel's nonce: salt || iv, XOR the record sequence */
	memcpy(civ, iv + 4, 8);
	for (int i = 7; i >= 0; i--, seq >>= 8)
		rs[i] = (uint8_t)seq;
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return 0;
}

static int give_up(struct tls_xprt *x, int err, const char *why)
{
	x->ktls_err = err;
	snprintf(x->reason, sizeof(x->reason), "%s (%s)", why, strerror(-err));
	tls_ktls_free(x);
	return err;
}

/*
 * After the handshake: attaches the kernel's TLS upper-layer protocol. Where the kernel has
 * none (ENOENT: no CONFIG_TLS, as on the machines this was written on) the connection goes on
 * in user space. Where it attaches, the keys follow in tls_ktls_install once the handshake's
 * last bytes have left the queue (they must not pass through the kernel's cipher).
 */
int tls_ktls_start(struct tls_xprt *x)
{
	static const char ulp[] = "tls";

	if (x->fd < 0 || x->plain || !x->ktls_keys)
		return give_up(x, -EBADF, "no socket for kTLS");
	if (!x->ktls_keys->secret_len)
		return give_up(x, -ENOKEY, "no traffic secret from the handshake");
	if (setsockopt(x->fd, IPPROTO_TCP, TCP_ULP, ulp, sizeof(ulp)) < 0)
		return give_up(x, -errno, errno == ENOENT ? "the kernel has no TLS ULP (CONFIG_TLS)"
							  : "cannot attach the TLS ULP");
	x->ktls_keys->pending = true;
	x->ktls_err = -EINPROGRESS;
	return 0;
}

/*
 * The driver wrote everything queued and nothing is in flight: TLS_TX with our key and the
 * next record's sequence; from here on tls_xprt_write queues plaintext for the kernel to seal.
 * Receiving stays in user space (TLS_RX would need OpenSSL's buffered input handed over too).
 * Untested on the machines this was written on: their kernels have no CONFIG_TLS.
 */
int tls_ktls_install(struct tls_xprt *x)
{
	union tls_ktls_info ci;
	socklen_t len;
	int ret;

	if (!x->ktls_keys || !x->ktls_keys->pending || x->out_len || x->stage_len)
		return -EAGAIN;
	if (!x->ktls_keys->counting_ok)
		return give_up(x, -EPROTO, "record sequence unknown");
	ret = tls_ktls_crypto_info(x->ssl, x->ktls_keys->secret, x->ktls_keys->secret_len,
				   x->ktls_keys->tx_records, &ci, &len);
	if (ret < 0)
		return give_up(x, ret, "cipher or key derivation not supported for kTLS");
	ret = setsockopt(x->fd, SOL_TLS, TLS_TX, &ci, len) < 0 ? -errno : 0;
	OPENSSL_cleanse(&ci, sizeof(ci));
	if (ret < 0)
		return give_up(x, ret, "the kernel refused the keys (TLS_TX)");
	x->ktls_tx = true;
	x->ktls_err = 0;
	snprintf(x->reason, sizeof(x->reason), "records sent by the kernel (TLS_TX)");
	tls_ktls_free(x);
	return 0;
}
