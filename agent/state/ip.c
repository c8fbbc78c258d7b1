/* state/ip.c: parsing, comparing and formatting the IP addresses held in snapshots. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <ztunnel/state.h>

int state_ip_parse(const char *text, struct state_ip *out)
{
	const char *addr;

	if (!text || !out)
		return -EINVAL;
	/* "network/ip": upstream's NetworkAddress splits at the first '/'. */
	addr = strchr(text, '/');
	addr = addr ? addr + 1 : text;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, &out->v4) == 1) {
		out->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, addr, &out->v6) == 1) {
		out->family = AF_INET6;
		state_ip_unmap(out);
		return 0;
	}
	memset(out, 0, sizeof(*out));
	return -EINVAL;
}

/* A v4-mapped v6 address (::ffff:a.b.c.d, as dual-stack sockets report) compares as v4. */
static void ip_canonical(const struct state_ip *in, struct state_ip *out)
{
	memset(out, 0, sizeof(*out));
	if (in->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in->v6)) {
		out->family = AF_INET;
		memcpy(&out->v4, &in->v6.s6_addr[12], 4);
		return;
	}
	out->family = in->family;
	if (in->family == AF_INET)
		out->v4 = in->v4;
	else if (in->family == AF_INET6)
		out->v6 = in->v6;
}

void state_ip_unmap(struct state_ip *ip)
{
	struct state_ip v4;

	if (ip->family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&ip->v6))
		return;
	ip_canonical(ip, &v4);
	*ip = v4;
}

bool state_ip_equal(const struct state_ip *a, const struct state_ip *b)
{
	struct state_ip x, y;

	if (!a || !b)
		return false;
	ip_canonical(a, &x);
	ip_canonical(b, &y);
	if (x.family != y.family)
		return false;
	if (x.family == AF_INET)
		return x.v4.s_addr == y.v4.s_addr;
	if (x.family == AF_INET6)
		return memcmp(&x.v6, &y.v6, sizeof(x.v6)) == 0;
	return false;
}

const char *state_ip_format(const struct state_ip *ip, char *buf, size_t len)
{
	if (!buf || !len)
		return buf;
	buf[0] = '\0';
	if (!ip || (ip->family != AF_INET && ip->family != AF_INET6) ||
	    !inet_ntop(ip->family, ip->family == AF_INET ? (const void *)&ip->v4 :
			(const void *)&ip->v6, buf, (socklen_t)(len > 65535 ? 65535 : len)))
		snprintf(buf, len, "invalid");
	return buf;
}
