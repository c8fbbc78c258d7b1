/* proxy meta: upstream's HBONE request metadata: baggage (built from a workload, parsed from a
 * peer), forwarded and traceparent. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>


#include "proxy-int.h"

/* W3C baggage-octet (printable ASCII but space, '"', ',', ';', '\'), less '=' and '%': the
 * upstream parser splits on '=' and does not decode. */
static bool value_octet(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && ch != '"' && ch != ',' && ch != ';' && ch != '\\' &&
	       ch != '=' && ch != '%';
}

/* Appends ",key=value" (value percent-encoded where it must be) if it fits whole. */
static void add_member(char *buf, size_t len, size_t *at, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = *at;

	if (!value || !*value)
		return;
	if (n && n + 1 < len)
		buf[n++] = ',';
	for (const char *k = key; *k && n + 1 < len; k++)
		buf[n++] = *k;
	if (n + 1 < len)
		buf[n++] = '=';
	for (const unsigned char *v = (const unsigned char *)value; *v && n + 1 < len; v++) {
		if (value_octet(*v)) {
			buf[n++] = (char)*v;
		} else if (n + 3 < len) {
			buf[n++] = '%';
			buf[n++] = hex[*v >> 4];
			buf[n++] = hex[*v & 15];
		} else {
			n = len;	/* does not fit */
		}
	}
	if (n + 1 >= len) {	/* cut: the member is left out */
		buf[*at] = '\0';
		return;
	}
	buf[n] = '\0';
	*at = n;
}

size_t proxy_baggage_encode(const struct state_workload *w, char *buf, size_t len)
{
	size_t at = 0;

	if (!len)
		return 0;
	buf[0] = '\0';
	if (!w)
		return 0;
	/* upstream's order; the workload kind is Deployment (the state has no workload_type) */
	add_member(buf, len, &at, "k8s.cluster.name", w->cluster_id);
	add_member(buf, len, &at, "k8s.namespace.name", w->namespace_);
	add_member(buf, len, &at, "k8s.deployment.name", w->workload_name);
	add_member(buf, len, &at, "service.name", w->canonical_name);
	add_member(buf, len, &at, "service.version", w->canonical_revision);
	add_member(buf, len, &at, "cloud.region", w->locality.region);
	add_member(buf, len, &at, "cloud.availability_zone", w->locality.zone);
	return at;
}

/* The field of b a baggage key fills, or NULL for a key upstream ignores. */
static char *field_of(struct proxy_baggage *b, const char *k, size_t kl, size_t *cap)
{
	static const struct { const char *key; size_t off, cap; } keys[] = {
#define F(k, f) { k, offsetof(struct proxy_baggage, f), sizeof(((struct proxy_baggage *)0)->f) }
		F("k8s.cluster.name", cluster),
		F("k8s.namespace.name", namespace_),
		F("k8s.deployment.name", workload),
		F("k8s.cronjob.name", workload),
		F("k8s.pod.name", workload),
		F("k8s.job.name", workload),
		F("service.name", service),
		F("service.version", revision),
		F("cloud.region", region),
		F("cloud.availability_zone", zone),
#undef F
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i].key) == kl && memcmp(keys[i].key, k, kl) == 0) {
			*cap = keys[i].cap;
			return (char *)b + keys[i].off;
		}
	return NULL;
}

void proxy_baggage_parse(const char *v, struct proxy_baggage *b)
{
	memset(b, 0, sizeof(*b));
	while (v && *v) {
		const char *end = strchr(v, ','), *eq, *val, *vend;
		size_t cap, n;
		char *f;

		if (!end)
			end = v + strlen(v);
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		eq = memchr(v, '=', (size_t)(end - v));
		const char *kend = eq;

		while (kend && kend > v && (kend[-1] == ' ' || kend[-1] == '\t'))
			kend--;
		if (eq && (f = field_of(b, v, (size_t)(kend - v), &cap))) {
			val = eq + 1;
			while (val < end && (*val == ' ' || *val == '\t'))
				val++;
			/* the value ends at a property (';'), another '=' (upstream keeps parts[1])
			 * or trailing blanks */
			for (vend = val; vend < end && *vend != ';' && *vend != '='; vend++)
				;
			while (vend > val && (vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			n = (size_t)(vend - val);
			bool ok = n > 0 && n < cap;

			for (size_t i = 0; ok && i < n; i++)
				ok = value_octet((unsigned char)val[i]) || val[i] == '%';
			if (ok) {	/* else: kept out of labels and logs, as absent */
				memcpy(f, val, n);
				f[n] = '\0';
			}
		}
		v = *end ? end + 1 : end;
	}
}

/* RFC 7230 tchar: what a bare Forwarded host= value may hold. */
static bool token(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

void proxy_forwarded(const struct sockaddr_storage *client, const char *host, char *buf,
		     size_t len)
{
	char addr[64];
	int n = snprintf(buf, len, "for=\"%s\"", access_addr(client, addr, sizeof(addr)));

	if (n > 0 && (size_t)n < len && token(host))
		snprintf(buf + n, len - (size_t)n, ";host=%s", host);
	if (n < 0 || (size_t)n >= len || strlen(buf) + 1 >= len)
		snprintf(buf, len, "for=\"%s\"", addr);	/* a host that did not fit is left out */
}

/* Trace ids need to be unique, not secret: a per-thread xoshiro256** seeded once from the
 * kernel, instead of the DRBG (which asks getpid() at every call) on each connection. */
static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t trace_rand(void)
{
	static __thread uint64_t st[4];
	static __thread bool seeded;
	uint64_t r, t;

	if (!seeded) {
		uint64_t z;

		if (getrandom(&z, sizeof(z), 0) != sizeof(z))
			z = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&z;
		for (int i = 0; i < 4; i++) {	/* splitmix64 spreads the seed over the state */
			uint64_t x = (z += 0x9e3779b97f4a7c15ULL);

			x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
			x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
			st[i] = x ^ (x >> 31);
		}
		seeded = true;
	}
	r = rotl(st[1] * 5, 7) * 9;
	t = st[1] << 17;
	st[2] ^= st[0];
	st[3] ^= st[1];
	st[1] ^= st[2];
	st[0] ^= st[3];
	st[2] ^= t;
	st[3] = rotl(st[3], 45);
	return r;
}

static char *put_hex(char *p, uint64_t v, int digits)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = digits - 1; i >= 0; i--, v >>= 4)
		p[i] = hex[v & 15];
	return p + digits;
}

int proxy_traceparent(char *buf, size_t len)
{
	uint64_t hi = trace_rand(), lo = trace_rand(), span = trace_rand();
	char *p = buf;

	if (len < 56) {
		if (len)
			buf[0] = '\0';
		return -1;
	}
	if (!hi && !lo)	/* an all-zero trace id is invalid (W3C) */
		lo = 1;
	if (!span)	/* and so is an all-zero parent id */
		span = 1;
	memcpy(p, "00-", 3);
	p = put_hex(p + 3, hi, 16);
	p = put_hex(p, lo, 16);
	*p++ = '-';
	p = put_hex(p, span, 16);
	memcpy(p, "-00", 4);
	return 0;
}

static size_t put_addr(uint8_t *p, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		memcpy(p, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return 4;
	}
	memcpy(p, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	return 16;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port :
					  ((const struct sockaddr_in6 *)ss)->sin6_port;
}

ssize_t proxy_ppv2_header(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
			  const char *identity, uint8_t *buf, size_t len)
{
	static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
	size_t idl = identity ? strlen(identity) : 0, alen, n = 16;
	uint16_t sp, dp;

	if (src->ss_family != dst->ss_family ||
	    (src->ss_family != AF_INET && src->ss_family != AF_INET6) || idl > 0xffff)
		return -1;
	alen = src->ss_family == AF_INET ? 12 : 36;
	if (len < 16 + alen + (idl ? 3 + idl : 0))
		return -1;
	memcpy(buf, sig, sizeof(sig));
	buf[12] = 0x21;				/* version 2, PROXY */
	buf[13] = src->ss_family == AF_INET ? 0x11 : 0x21;	/* TCP over IPv4 / IPv6 */
	n += put_addr(buf + n, src);
	n += put_addr(buf + n, dst);
	sp = port_of(src);
	dp = port_of(dst);
	memcpy(buf + n, &sp, 2);		/* already in network order */
	memcpy(buf + n + 2, &dp, 2);
	n += 4;
	if (idl) {	/* upstream's TLV 0xD0: the peer's SPIFFE identity */
		buf[n++] = 0xD0;
		buf[n++] = (uint8_t)(idl >> 8);
		buf[n++] = (uint8_t)idl;
		memcpy(buf + n, identity, idl);
		n += idl;
	}
	buf[14] = (uint8_t)((n - 16) >> 8);
	buf[15] = (uint8_t)(n - 16);
	return (ssize_t)n;
}
