/* dns/settings: DNS_PROXY_ADDR, DNS_UPSTREAMS or resolv.conf's nameservers, and the dump. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/addr.h>
#include <ztunnel/dns.h>

/* text[0..len) without surrounding blanks into buf, NUL-terminated. 0 or -EINVAL (empty, or
 * too long for buf). */
static int copy_trimmed(char *buf, size_t size, const char *text, size_t len)
{
	while (len && isspace((unsigned char)*text)) {
		text++;
		len--;
	}
	while (len && isspace((unsigned char)text[len - 1]))
		len--;
	if (!len || len >= size)
		return -EINVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return 0;
}

/* A port 1..65535 in text (all of it). 0 or -EINVAL. */
static int parse_port(const char *text, unsigned long *port)
{
	char *end;

	errno = 0;
	*port = strtoul(text, &end, 10);
	return errno || end == text || *end || *port == 0 || *port > 65535 ? -EINVAL : 0;
}

/* "ip" or "ip:port" (IPv4) into sa; default_port when no port. 0 or -EINVAL. */
static int parse_addr(const char *text, size_t len, uint16_t default_port, struct sockaddr_in *sa)
{
	char buf[64], *colon;
	unsigned long port = default_port;

	if (copy_trimmed(buf, sizeof(buf), text, len) < 0)
		return -EINVAL;
	colon = strchr(buf, ':');
	if (colon) {
		*colon = '\0';
		if (parse_port(colon + 1, &port) < 0)
			return -EINVAL;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, buf, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

/* A resolver: "ip", "ip:port", "v6", "[v6]" or "[v6]:port" (port 53 when none) into sa, an
 * IPv4 one as ::ffff:a.b.c.d. 0 or -EINVAL. */
static int parse_upstream(const char *text, size_t len, struct sockaddr_in6 *sa)
{
	char buf[INET6_ADDRSTRLEN + 8], *host = buf, *port = NULL, *end;
	unsigned long n = 53;
	struct sockaddr_storage v4 = { .ss_family = AF_INET };
	struct sockaddr_in *in = (void *)&v4;

	if (copy_trimmed(buf, sizeof(buf), text, len) < 0)
		return -EINVAL;
	if (buf[0] == '[') {
		end = strchr(buf, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		*end = '\0';
		host = buf + 1;
		port = end[1] ? end + 2 : NULL;
	} else if (strchr(buf, ':') && strchr(buf, ':') == strrchr(buf, ':')) {
		port = strchr(buf, ':');	/* one colon: IPv4 with a port */
		*port++ = '\0';
	}
	if (port && parse_port(port, &n) < 0)
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_port = htons((uint16_t)n);
		io_addr_map(&v4);
		memcpy(sa, &v4, sizeof(*sa));
		return 0;
	}
	sa->sin6_family = AF_INET6;
	sa->sin6_port = htons((uint16_t)n);
	return inet_pton(AF_INET6, host, &sa->sin6_addr) == 1 ? 0 : -EINVAL;
}

static int parse_upstreams(struct dns_settings *set, const char *list, char *err, size_t errlen)
{
	const char *p = list;

	set->n_upstreams = 0;
	while (*p) {
		size_t len = strcspn(p, ",");

		if (set->n_upstreams >= DNS_MAX_UPSTREAMS) {
			snprintf(err, errlen, "DNS_UPSTREAMS: more than %d resolvers", DNS_MAX_UPSTREAMS);
			return -EINVAL;
		}
		if (parse_upstream(p, len, &set->upstream[set->n_upstreams]) < 0) {
			snprintf(err, errlen, "DNS_UPSTREAMS: \"%.*s\" is not an address (ip[:port], "
				 "[ipv6][:port])", (int)len, p);
			return -EINVAL;
		}
		set->n_upstreams++;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* resolv.conf: "nameserver <IPv4 or IPv6>" lines, as glibc reads them (the first three; an
 * IPv6 one with a zone, fe80::1%eth0, is skipped). */
static void read_resolv_conf(struct dns_settings *set, const char *path)
{
	char line[512];
	FILE *f = fopen(path, "re");

	set->n_upstreams = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && set->n_upstreams < DNS_MAX_UPSTREAMS) {
		char *p = line;

		while (isspace((unsigned char)*p))
			p++;
		if (strncmp(p, "nameserver", 10) != 0 || !isspace((unsigned char)p[10]))
			continue;
		p += 10;
		while (isspace((unsigned char)*p))
			p++;
		if (parse_upstream(p, strcspn(p, " \t\r\n#;"), &set->upstream[set->n_upstreams]) == 0)
			set->n_upstreams++;
	}
	fclose(f);
}

int dns_settings_init(struct dns_settings *set, bool enabled, const char *addr,
		      const char *upstreams, const char *resolv_conf, const char *domain,
		      uint32_t mark, char *err, size_t errlen)
{
	size_t i;

	memset(set, 0, sizeof(*set));
	set->enabled = enabled;
	set->mark = mark;
	if (parse_addr(addr, strlen(addr), 15053, &set->listen) < 0) {
		snprintf(err, errlen, "DNS_PROXY_ADDR: \"%s\" is not an IPv4 address:port", addr);
		return -EINVAL;
	}
	if (!domain || !*domain || strlen(domain) >= sizeof(set->domain) - 1) {
		snprintf(err, errlen, "CLUSTER_DOMAIN: \"%s\" is not a domain", domain ? domain : "");
		return -EINVAL;
	}
	for (i = 0; domain[i]; i++)
		set->domain[i] = (char)tolower((unsigned char)domain[i]);
	if (i && set->domain[i - 1] == '.')
		set->domain[i - 1] = '\0';
	if (upstreams && *upstreams)
		return parse_upstreams(set, upstreams, err, errlen);
	read_resolv_conf(set, resolv_conf);
	return 0;
}

void dns_settings_ipv6(struct dns_settings *set, bool on)
{
	unsigned n = 0;

	set->ipv6 = on;
	for (unsigned i = 0; i < set->n_upstreams; i++)
		if (on || IN6_IS_ADDR_V4MAPPED(&set->upstream[i].sin6_addr))
			set->upstream[n++] = set->upstream[i];
	set->n_upstreams = n;
}

void dns_dump_json(const struct dns_settings *set, FILE *out)
{
	char ip[INET6_ADDRSTRLEN];

	fprintf(out, "\"dns\":{\"enabled\":%s", set->enabled ? "true" : "false");
	inet_ntop(AF_INET, &set->listen.sin_addr, ip, sizeof(ip));
	fprintf(out, ",\"address\":\"%s:%u\",\"upstreams\":[", ip, ntohs(set->listen.sin_port));
	for (unsigned i = 0; i < set->n_upstreams; i++) {
		const struct sockaddr_in6 *u = &set->upstream[i];
		bool v4 = IN6_IS_ADDR_V4MAPPED(&u->sin6_addr);

		if (v4)
			inet_ntop(AF_INET, &u->sin6_addr.s6_addr[12], ip, sizeof(ip));
		else
			inet_ntop(AF_INET6, &u->sin6_addr, ip, sizeof(ip));
		fprintf(out, "%s\"%s%s%s:%u\"", i ? "," : "", v4 ? "" : "[", ip, v4 ? "" : "]",
			ntohs(u->sin6_port));
	}
	fputs("]}", out);
}
