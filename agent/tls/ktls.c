/* tls ktls: the ZTUNNEL_KTLS probe after a handshake: TCP_ULP "tls", or one log line and user space. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include <ztunnel/log.h>
#include <ztunnel/tls-xprt.h>

#include "internal.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

static atomic_bool ktls_logged;

/* Says once per process why records stay in user space. */
static void log_once(const char *why, int err)
{
	if (atomic_exchange(&ktls_logged, true))
		return;
	log_warn("kTLS unavailable, TLS stays in user space",
		 "setting=ZTUNNEL_KTLS reason=\"%s\" error=\"%s\"", why, strerror(err));
}


/*
 * After the handshake, with ZTUNNEL_KTLS on: attaches the kernel's TLS upper-layer protocol.
 * Where the kernel has no CONFIG_TLS (ENOENT) the connection goes on in user space. Where it
 * attaches, the socket passes bytes through until keys are installed, and installing them
 * (TLS_TX/TLS_RX from the TLS 1.3 traffic secrets and record sequence numbers) is not done:
 * OpenSSL 3.0 exposes neither to a custom BIO, so records stay in user space there too, said
 * once. Returns 0 when the kernel took the keys (never, today), -errno otherwise.
 */
int tls_ktls_start(struct tls_xprt *x)
{
	static const char ulp[] = "tls";

	if (x->fd < 0 || x->plain)
		return -EBADF;
	if (setsockopt(x->fd, IPPROTO_TCP, TCP_ULP, ulp, sizeof(ulp)) < 0) {
		int err = errno;

		log_once(err == ENOENT ? "the kernel has no TLS ULP (CONFIG_TLS)"
				       : "cannot attach the TLS ULP", err);
		return -err;
	}
	log_once("TLS ULP attached but key hand-off is not implemented", EOPNOTSUPP);
	return -EOPNOTSUPP;
}
