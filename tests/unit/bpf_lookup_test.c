// unit-standalone
/* bpf_lookup_test: the sk_lookup capture decision, run in the kernel with BPF_PROG_TEST_RUN:
 * outbound TCP goes to the 15001 listener, the pod's own address, loopback and traffic from
 * other interfaces are left alone, a missing listener drops, and the DNS hook steers port 53
 * (UDP and TCP) to the 15053 sockets only when it is switched on; IPv6 the same, to an IPv6
 * 15001 listener and the [::1] DNS sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf_count.h"
#include "check.h"
#include "capture.h"
#include "sk_lookup.skel.h"

#define POD "10.201.1.2"
#define POD6 "fd00:201:1::2"
#define TEST_IFINDEX 0	/* a test run's context has no ingress interface */

/* A socket on 127.0.0.1, or [::1] (IPv6 only), listening for TCP, with its cookie. */
static int sock_on_loopback(int family, int type, uint64_t *cookie)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr *sa = family == AF_INET ? (struct sockaddr *)&a : (struct sockaddr *)&a6;
	socklen_t salen = family == AF_INET ? sizeof(a) : sizeof(a6);
	socklen_t len = sizeof(*cookie);
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, sa, salen) < 0 || (type == SOCK_STREAM && listen(fd, 4) < 0) ||
	    getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) < 0) {
		printf("bpf_lookup_test: socket (family %d): %s\n", family, strerror(errno));
		exit(1);
	}
	return fd;
}

struct lookup {
	int verdict;		/* SK_PASS, SK_DROP, or -1 if the run failed */
	uint64_t cookie;	/* of the socket the program selected, 0 for none */
};

/* The program's verdict on the lookup ctx, and the socket it selected. */
static struct lookup test_run(struct zt_sk_lookup *s, struct bpf_sk_lookup *ctx)
{
	struct lookup r = { -1, 0 };

	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = ctx, .ctx_size_in = sizeof(*ctx),
		    .ctx_out = ctx, .ctx_size_out = sizeof(*ctx), .repeat = 1);
	if (bpf_prog_test_run_opts(bpf_program__fd(s->progs.zt_sk_lookup), &opts) == 0) {
		r.verdict = (int)opts.retval;
		r.cookie = ctx->cookie;
	} else {
		printf("  test run: %s\n", strerror(errno));
	}
	return r;
}

static struct lookup run(struct zt_sk_lookup *s, int proto, const char *dst, uint32_t dport)
{
	struct bpf_sk_lookup ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.family = AF_INET;
	ctx.protocol = (uint32_t)proto;
	inet_pton(AF_INET, POD, &ctx.remote_ip4);
	ctx.remote_port = htons(40000);
	inet_pton(AF_INET, dst, &ctx.local_ip4);
	ctx.local_port = dport;
	return test_run(s, &ctx);
}

/* An IPv6 lookup of proto to [dst]:dport from the pod. */
static struct lookup run6(struct zt_sk_lookup *s, int proto, const char *dst, uint32_t dport)
{
	struct bpf_sk_lookup ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.family = AF_INET6;
	ctx.protocol = (uint32_t)proto;
	inet_pton(AF_INET6, POD6, ctx.remote_ip6);
	ctx.remote_port = htons(40000);
	inet_pton(AF_INET6, dst, ctx.local_ip6);
	ctx.local_port = dport;
	return test_run(s, &ctx);
}

/* dns: 0 off, 1 IPv4, 2 IPv4 and IPv6 (the agent's dns_capture). */
static struct zt_sk_lookup *load(uint32_t dns, uint32_t lo_ifindex)
{
	struct zt_sk_lookup *s = zt_sk_lookup__open();
	struct in_addr pod;

	if (!s)
		return NULL;
	inet_pton(AF_INET, POD, &pod);
	s->rodata->pod_addrs[0] = pod.s_addr;
	s->rodata->n_pod_addrs = 1;
	inet_pton(AF_INET6, POD6, (void *)s->rodata->pod_addrs6[0]);
	s->rodata->n_pod_addrs6 = 1;
	s->rodata->loopback_ifindex = lo_ifindex;
	s->rodata->dns_capture = dns;
	if (zt_sk_lookup__load(s) < 0) {
		zt_sk_lookup__destroy(s);
		return NULL;
	}
	return s;
}

static void put(struct zt_sk_lookup *s, uint32_t slot, int fd)
{
	uint64_t v = (uint64_t)fd;

	CHECK(bpf_map_update_elem(bpf_map__fd(s->maps.zt_listeners), &slot, &v, BPF_ANY) == 0,
	      "socket into slot %u: %s", slot, strerror(errno));
}

static uint64_t count(struct zt_sk_lookup *s, uint32_t which)
{
	return bpf_count(bpf_map__fd(s->maps.zt_counts), which);
}

/* IPv6: outbound TCP to the IPv6 15001 listener (the pod's own address and ::1 left alone), DNS
 * to the [::1] sockets only with dns_capture 2, and an IPv4 socket cannot take an IPv6 lookup. */
static void test_ipv6(void)
{
	uint64_t out_c, out4_c, udp_c, tcp_c;
	int out = sock_on_loopback(AF_INET6, SOCK_STREAM, &out_c);
	int out4 = sock_on_loopback(AF_INET, SOCK_STREAM, &out4_c);
	int udp = sock_on_loopback(AF_INET6, SOCK_DGRAM, &udp_c);
	int tcp = sock_on_loopback(AF_INET6, SOCK_STREAM, &tcp_c);
	struct zt_sk_lookup *s = load(1, TEST_IFINDEX);
	struct lookup r;

	CHECK(s != NULL, "load for IPv6");
	if (!s)
		return;
	put(s, ZT_SLOT_OUTBOUND, out4);
	r = run6(s, IPPROTO_TCP, "fd00:201:2::2", 8080);
	CHECK(r.verdict == SK_DROP, "an IPv4-only 15001 socket cannot take IPv6: dropped, not by");
	put(s, ZT_SLOT_OUTBOUND, out);
	r = run6(s, IPPROTO_TCP, "fd00:201:2::2", 8080);
	CHECK(r.verdict == SK_PASS && r.cookie == out_c, "IPv6 outbound TCP goes to 15001");
	r = run6(s, IPPROTO_TCP, POD6, 8080);
	CHECK(r.verdict == SK_PASS && r.cookie == 0, "IPv6 TCP to the pod's own address left alone");
	r = run6(s, IPPROTO_TCP, "::1", 8080);
	CHECK(r.verdict == SK_PASS && r.cookie == 0, "IPv6 TCP to ::1 left alone");
	put(s, ZT_SLOT_DNS6_UDP, udp);
	r = run6(s, IPPROTO_UDP, "fd00:53::1", 53);
	CHECK(r.verdict == SK_PASS && r.cookie == 0, "dns_capture 1: an IPv6 query is left alone");
	zt_sk_lookup__destroy(s);
	s = load(2, TEST_IFINDEX);
	CHECK(s != NULL, "load with IPv6 DNS");
	if (s) {
		put(s, ZT_SLOT_OUTBOUND, out);
		put(s, ZT_SLOT_DNS6_UDP, udp);
		put(s, ZT_SLOT_DNS6_TCP, tcp);
		r = run6(s, IPPROTO_UDP, "fd00:53::1", 53);
		CHECK(r.verdict == SK_PASS && r.cookie == udp_c, "an IPv6 UDP query goes to [::1]");
		r = run6(s, IPPROTO_TCP, "fd00:53::1", 53);
		CHECK(r.verdict == SK_PASS && r.cookie == tcp_c, "an IPv6 TCP query goes to [::1]");
		r = run6(s, IPPROTO_UDP, "::1", 53);
		CHECK(r.verdict == SK_PASS && r.cookie == 0, "a resolver on ::1 is left alone");
		CHECK(count(s, ZT_COUNT_DNS) == 2, "two IPv6 DNS steers counted");
		zt_sk_lookup__destroy(s);
	}
	close(out);
	close(out4);
	close(udp);
	close(tcp);
}

int main(void)
{
	uint64_t out_c, udp_c, tcp_c;
	int out = sock_on_loopback(AF_INET, SOCK_STREAM, &out_c);
	int dns_udp = sock_on_loopback(AF_INET, SOCK_DGRAM, &udp_c);
	int dns_tcp = sock_on_loopback(AF_INET, SOCK_STREAM, &tcp_c);
	struct zt_sk_lookup *s = load(0, TEST_IFINDEX);
	struct lookup r;

	if (!s) {
		printf("bpf_lookup_test: SKIP (cannot load sk_lookup: %s; needs CAP_BPF)\n",
		       strerror(errno));
		return 77;
	}
	put(s, ZT_SLOT_OUTBOUND, out);
	r = run(s, IPPROTO_TCP, "10.201.2.2", 8080);
	CHECK(r.verdict == SK_PASS && r.cookie == out_c,
	      "outbound TCP to another pod goes to the 15001 listener (verdict %d)", r.verdict);
	r = run(s, IPPROTO_TCP, POD, 8080);
	CHECK(r.verdict == SK_PASS && r.cookie == 0, "TCP to the pod's own address is left alone");
	r = run(s, IPPROTO_TCP, "127.0.0.1", 8080);
	CHECK(r.verdict == SK_PASS && r.cookie == 0, "TCP to loopback is left alone");
	r = run(s, IPPROTO_UDP, "10.96.0.10", 53);
	CHECK(r.verdict == SK_PASS && r.cookie == 0, "without the DNS hook a query is left alone");
	r = run(s, IPPROTO_TCP, "10.96.0.10", 53);
	CHECK(r.verdict == SK_PASS && r.cookie == out_c,
	      "without the DNS hook TCP to port 53 is ordinary outbound TCP");
	CHECK(count(s, ZT_COUNT_OUTBOUND) == 2, "two outbound steers counted (%llu)",
	      (unsigned long long)count(s, ZT_COUNT_OUTBOUND));
	uint32_t slot = ZT_SLOT_OUTBOUND;

	bpf_map_delete_elem(bpf_map__fd(s->maps.zt_listeners), &slot);
	r = run(s, IPPROTO_TCP, "10.201.2.2", 8080);
	CHECK(r.verdict == SK_DROP, "with no 15001 listener outbound TCP is dropped, not let by");
	CHECK(count(s, ZT_COUNT_NO_LISTENER) == 1, "and counted");
	zt_sk_lookup__destroy(s);

	/* what arrives from another interface than the one the capture route delivers on */
	s = load(0, 1);
	CHECK(s != NULL, "load with lo = 1");
	if (s) {
		put(s, ZT_SLOT_OUTBOUND, out);
		r = run(s, IPPROTO_TCP, "10.201.2.2", 8080);
		CHECK(r.verdict == SK_PASS && r.cookie == 0,
		      "TCP that did not arrive over lo (inbound from outside) is not outbound");
		zt_sk_lookup__destroy(s);
	}

	s = load(1, TEST_IFINDEX);
	CHECK(s != NULL, "load with the DNS hook");
	if (s) {
		put(s, ZT_SLOT_OUTBOUND, out);
		r = run(s, IPPROTO_UDP, "10.96.0.10", 53);
		CHECK(r.verdict == SK_DROP, "DNS on, no 15053 socket yet: the query is dropped");
		put(s, ZT_SLOT_DNS_UDP, dns_udp);
		put(s, ZT_SLOT_DNS_TCP, dns_tcp);
		r = run(s, IPPROTO_UDP, "10.96.0.10", 53);
		CHECK(r.verdict == SK_PASS && r.cookie == udp_c, "a UDP query goes to 15053/udp");
		r = run(s, IPPROTO_TCP, "10.96.0.10", 53);
		CHECK(r.verdict == SK_PASS && r.cookie == tcp_c, "a TCP query goes to 15053/tcp");
		r = run(s, IPPROTO_UDP, "127.0.0.53", 53);
		CHECK(r.verdict == SK_PASS && r.cookie == 0, "a resolver on loopback is left alone");
		r = run(s, IPPROTO_UDP, "10.96.0.10", 5353);
		CHECK(r.verdict == SK_PASS && r.cookie == 0, "other UDP is left alone");
		r = run(s, IPPROTO_TCP, "10.201.2.2", 8080);
		CHECK(r.verdict == SK_PASS && r.cookie == out_c, "outbound TCP still goes to 15001");
		CHECK(count(s, ZT_COUNT_DNS) == 2, "two DNS steers counted");
		zt_sk_lookup__destroy(s);
	}
	close(out);
	close(dns_udp);
	close(dns_tcp);
	test_ipv6();
	printf("%s\n", failures ? "FAILED" : "bpf_lookup_test: ok");
	return failures ? 1 : 0;
}
