/* dns/settings: DNS_PROXY_ADDR, DNS_UPSTREAMS or resolv.conf's nameservers, and the dump. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/dns.h>

/* "ip" or "ip:port" (IPv4) into sa; default_port when no port. 0 or -EINVAL. */
static int parse_addr(const char *text, size_t len, uint16_t default_port, struct sockaddr_in *sa)
{
	char buf[64], *colon, *end;
	unsigned long port = default_port;

	while (len && isspace((unsigned char)*text)) {
		text++;
		len--;
	}
	while (len && isspace((unsigned char)text[len - 1]))
		len--;
	if (!len || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';
	colon = strchr(buf, ':');
	if (colon) {
		*colon = '\0';
		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (errno || end == colon + 1 || *end || port == 0 || port > 65535)
			return -EINVAL;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, buf, &sa->sin_addr) == 1 ? 0 : -EINVAL;
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
		if (parse_addr(p, len, 53, &set->upstream[set->n_upstreams]) < 0) {
			snprintf(err, errlen, "DNS_UPSTREAMS: \"%.*s\" is not an IPv4 address[:port]",
				 (int)len, p);
			return -EINVAL;
		}
		set->n_upstreams++;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* resolv.conf: "nameserver <IPv4>" lines, as glibc reads them (the first three). IPv6
 * nameservers are skipped: the proxy forwards over IPv4 only. */
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
		if (parse_addr(p, strcspn(p, " \t\r\n#;"), 53, &set->upstream[set->n_upstreams]) == 0)
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

void dns_dump_json(const struct dns_settings *set, FILE *out)
{
	char ip[INET_ADDRSTRLEN];

	fprintf(out, "\"dns\":{\"enabled\":%s", set->enabled ? "true" : "false");
	inet_ntop(AF_INET, &set->listen.sin_addr, ip, sizeof(ip));
	fprintf(out, ",\"address\":\"%s:%u\",\"upstreams\":[", ip, ntohs(set->listen.sin_port));
	for (unsigned i = 0; i < set->n_upstreams; i++) {
		inet_ntop(AF_INET, &set->upstream[i].sin_addr, ip, sizeof(ip));
		fprintf(out, "%s\"%s:%u\"", i ? "," : "", ip, ntohs(set->upstream[i].sin_port));
	}
	fputs("]}", out);
}
