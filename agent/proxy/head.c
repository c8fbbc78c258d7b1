/* proxy head: the inbound checks of an HBONE CONNECT's :authority, pure functions over text. */
#include <errno.h>
#include <string.h>

#include <ztunnel/proxy.h>
#include <ztunnel/redirect.h>

bool proxy_agent_port(uint16_t port)
{
	switch (port) {
	case REDIRECT_PORT_OUTBOUND: case REDIRECT_PORT_INBOUND_PLAIN:
	case REDIRECT_PORT_INBOUND_HBONE: case REDIRECT_PORT_DNS:
	case 15000: case 15020: case 15021:
		return true;
	}
	return false;
}

/* A port as a client writes it, once: 1 to 65535 in decimal digits, no sign, space or
 * leading zero ("08080" is not 8080: a second spelling of one port is not accepted). */
static int parse_port(const char *s, uint16_t *port)
{
	unsigned long p = 0;
	size_t n;

	if (s[0] < '1' || s[0] > '9')
		return -EINVAL;
	for (n = 0; s[n]; n++) {
		if (n == 5 || s[n] < '0' || s[n] > '9')
			return -EINVAL;
		p = p * 10 + (unsigned long)(s[n] - '0');
	}
	if (p > 65535)
		return -EINVAL;
	*port = (uint16_t)p;
	return 0;
}

int proxy_parse_authority(const char *a, struct state_ip *ip, uint16_t *port)
{
	char host[64];
	const char *colon = strrchr(a, ':');
	bool bracketed = a[0] == '[';
	size_t hl;
	uint16_t p;

	if (!colon || parse_port(colon + 1, &p) < 0)
		return -EINVAL;
	hl = (size_t)(colon - a);
	if (bracketed) {
		if (hl < 3 || a[hl - 1] != ']')
			return -EINVAL;
		a++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, a, hl);
	host[hl] = '\0';
	/* v6 exactly when bracketed; no "network/" prefix */
	if (bracketed != (strchr(host, ':') != NULL) || strchr(host, '/'))
		return -EINVAL;
	if (state_ip_parse(host, ip) < 0)
		return -EINVAL;
	*port = p;
	return 0;
}

const char *proxy_check_authority(const char *authority, const struct state_ip *pod_ips,
				  size_t n_ips, struct state_ip *ip, uint16_t *port)
{
	size_t i;

	if (proxy_parse_authority(authority, ip, port) < 0)
		return "malformed :authority";
	for (i = 0; i < n_ips && !state_ip_equal(&pod_ips[i], ip); i++)
		;
	if (i == n_ips)
		return "destination IP is not this pod";
	if (proxy_agent_port(*port))
		return "destination is a port of the agent";
	return NULL;
}
