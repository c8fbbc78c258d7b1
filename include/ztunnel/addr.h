/* addr: socket addresses as the agent passes them on (v4-mapped v6 made v4, lengths, probes). */
#ifndef ZTUNNEL_ADDR_H
#define ZTUNNEL_ADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* An IP address and port as a long-lived object keeps it (an access record names three): 20
 * bytes where a sockaddr_storage takes 128. Family AF_INET, AF_INET6, or 0 for none. No IPv6
 * scope or flow label: the ends of a proxied connection are pod and node addresses, never
 * link-local ones. */
struct io_addr {
	uint16_t family;
	uint16_t port;		/* host order */
	uint8_t ip[16];		/* IPv4: the first 4 bytes */
};

/* A dual-stack ([::]) socket reports an IPv4 peer as ::ffff:a.b.c.d: rewrites such an address in
 * place into the AF_INET one (same port), so that look-ups, policies and logs see one form.
 * true when ss was changed; any other address is left as it is. */
bool io_addr_unmap(struct sockaddr_storage *ss);
/* The reverse, for a dual-stack socket's peer or target: rewrites an AF_INET address in place
 * into ::ffff:a.b.c.d (same port). true when ss was changed; any other address is left. */
bool io_addr_map(struct sockaddr_storage *ss);
/* sizeof the sockaddr of ss's family (sockaddr_in or sockaddr_in6), 0 for another family. */
socklen_t io_addr_len(const struct sockaddr_storage *ss);
/* Packs ss (AF_INET or AF_INET6; any other family packs as none) into a. */
void io_addr_pack(struct io_addr *a, const struct sockaddr_storage *ss);
/* The sockaddr of a into ss (zeroed first; family 0 when a is none). Returns its length, 0 for
 * none. Packing and unpacking give back the address and port. */
socklen_t io_addr_unpack(const struct io_addr *a, struct sockaddr_storage *ss);
/* Whether this kernel has IPv6: false only when socket(AF_INET6) fails with EAFNOSUPPORT (the
 * module absent, ipv6.disable=1). Creates and closes one socket in the calling thread's netns. */
bool io_addr_ipv6_supported(void);

#endif
