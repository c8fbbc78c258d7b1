/* tls ktls: the ZTUNNEL_KTLS step after a handshake: the kernel's TLS ULP, or user space. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <ztunnel/tls-xprt.h>

#include "internal.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

/*
 * After the handshake, with ZTUNNEL_KTLS on: attaches the kernel's TLS upper-layer protocol.
 * Where the kernel has no CONFIG_TLS (ENOENT, as on the machines this was written on) the
 * connection goes on in user space. Where it attaches, the socket passes bytes through until
 * keys are installed, and installing them (TLS_TX/TLS_RX from the TLS 1.3 traffic secrets and
 * the record sequence numbers) is not implemented: OpenSSL 3.0 hands neither to a custom BIO,
 * so records stay in user space there too. x->ktls_err and x->reason say which; the caller
 * logs it (once). Returns 0 when the kernel took the keys (never, today), -errno otherwise.
 */
int tls_ktls_start(struct tls_xprt *x)
{
	static const char ulp[] = "tls";

	if (x->fd < 0 || x->plain)
		x->ktls_err = -EBADF;
	else if (setsockopt(x->fd, IPPROTO_TCP, TCP_ULP, ulp, sizeof(ulp)) < 0)
		x->ktls_err = -errno;
	else
		x->ktls_err = -EOPNOTSUPP;
	snprintf(x->reason, sizeof(x->reason), "%s (%s)",
		 x->ktls_err == -ENOENT ? "the kernel has no TLS ULP (CONFIG_TLS)" :
		 x->ktls_err == -EOPNOTSUPP ? "TLS ULP attached, key hand-off not implemented" :
		 "cannot attach the TLS ULP", strerror(-x->ktls_err));
	return x->ktls_err;
}
