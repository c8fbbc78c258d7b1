/* hbone_head_fuzz: libFuzzer target for the inbound checks of an HBONE CONNECT's :authority, as
 * the agent runs them on the value nghttp2 delivers (proxy_check_authority).
 *
 * Input: the :authority value. What is accepted is written once: the address and port it
 * parses to print back as the same text (v6 in brackets: the same address and port; a
 * bracketed v4-mapped one: the IPv4 address, as the agent reads it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/proxy.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The stream keeps at most this much of the value (HSTREAM_AUTHORITY_MAX, agent/hbone); longer
 * is refused before the proxy sees it, as is an empty one. */
#define AUTHORITY_CAP 300

static void canonical(const char *in, const struct state_ip *ip, uint16_t port)
{
	char host[INET6_ADDRSTRLEN], text[AUTHORITY_CAP + 16];
	const char *colon = strrchr(in, ':');
	struct state_ip again;
	uint16_t port_again;

	state_ip_format(ip, host, sizeof(host));
	snprintf(text, sizeof(text), "%u", port);
	if (strcmp(colon + 1, text) != 0)
		abort();	/* the port has one spelling */
	if (ip->family == AF_INET && in[0] == '[') {
		/* a bracketed v4-mapped address (::ffff:a.b.c.d, in any IPv6 spelling) is parsed as
		 * the IPv4 one: it must give that address back */
		snprintf(text, sizeof(text), "[::ffff:%s]:%u", host, port);
		if (proxy_parse_authority(text, &again, &port_again) != 0 ||
		    !state_ip_equal(ip, &again) || again.family != AF_INET || port != port_again)
			abort();
		return;
	}
	if (ip->family == AF_INET) {
		snprintf(text, sizeof(text), "%s:%u", host, port);
		if (strcmp(in, text) != 0)
			abort();
		return;
	}
	snprintf(text, sizeof(text), "[%s]:%u", host, port);
	if (proxy_parse_authority(text, &again, &port_again) != 0 ||
	    !state_ip_equal(ip, &again) || port != port_again)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const reasons[] = {
		"malformed :authority", "destination IP is not this pod",
		"destination is a port of the agent",
	};
	char authority[AUTHORITY_CAP];
	struct state_ip pod[2], ip;
	uint16_t port = 0;
	const char *why;
	size_t i;

	if (size == 0 || size >= sizeof(authority))
		return 0;
	memcpy(authority, data, size);
	authority[size] = '\0';
	state_ip_parse("10.201.2.2", &pod[0]);
	state_ip_parse("fd00::2", &pod[1]);
	why = proxy_check_authority(authority, pod, 2, &ip, &port);
	for (i = 0; why && i < sizeof(reasons) / sizeof(reasons[0]) && strcmp(why, reasons[i]); i++)
		;
	if (why && i == sizeof(reasons) / sizeof(reasons[0]))
		abort();
	if (proxy_parse_authority(authority, &ip, &port) != 0) {
		if (!why || strcmp(why, reasons[0]))
			abort();
		return 0;
	}
	if (!port)
		abort();
	canonical(authority, &ip, port);
	/* sent to a pod that has the address: only the agent's own ports are refused */
	pod[0] = ip;
	why = proxy_check_authority(authority, pod, 1, &ip, &port);
	if (proxy_agent_port(port) ? !why || strcmp(why, reasons[2]) : why != NULL)
		abort();
	return 0;
}
