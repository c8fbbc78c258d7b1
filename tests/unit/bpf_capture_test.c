// unit-standalone
/* bpf_capture_test: the tc ingress capture decision, run in the kernel with BPF_PROG_TEST_RUN on
 * crafted packets (a SYN to the pod, to 15008, from a kubelet probe, a non-SYN, another pod), in
 * IPv4 and IPv6. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf_count.h"
#include "check.h"
#include "capture.h"
#include "tc_ingress.skel.h"

#define POD "10.201.2.2"
#define CLIENT "10.201.1.2"
#define POD6 "fd00:201:2::2"
#define CLIENT6 "fd00:201:1::2"

struct packet {
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
} __attribute__((packed));

/* From port 40000 to dport, with the flags asked for. */
static struct tcphdr tcp_header(uint16_t dport, bool syn, bool ack)
{
	struct tcphdr t;

	memset(&t, 0, sizeof(t));
	t.source = htons(40000);
	t.dest = htons(dport);
	t.doff = 5;
	t.syn = syn;
	t.ack = ack;
	return t;
}

static struct packet tcp_packet(const char *src, const char *dst, uint16_t dport, bool syn,
				bool ack)
{
	struct packet p;

	memset(&p, 0, sizeof(p));
	p.eth.h_proto = htons(ETH_P_IP);
	p.ip.version = 4;
	p.ip.ihl = 5;
	p.ip.ttl = 64;
	p.ip.protocol = IPPROTO_TCP;
	p.ip.tot_len = htons(sizeof(p.ip) + sizeof(p.tcp));
	inet_pton(AF_INET, src, &p.ip.saddr);
	inet_pton(AF_INET, dst, &p.ip.daddr);
	p.tcp = tcp_header(dport, syn, ack);
	return p;
}

struct packet6 {
	struct ethhdr eth;
	struct ipv6hdr ip;
	struct tcphdr tcp;
} __attribute__((packed));

static struct packet6 tcp_packet6(const char *src, const char *dst, uint16_t dport, bool syn,
				  bool ack)
{
	struct packet6 p;

	memset(&p, 0, sizeof(p));
	p.eth.h_proto = htons(ETH_P_IPV6);
	p.ip.version = 6;
	p.ip.hop_limit = 64;
	p.ip.nexthdr = IPPROTO_TCP;
	p.ip.payload_len = htons(sizeof(p.tcp));
	inet_pton(AF_INET6, src, &p.ip.saddr);
	inet_pton(AF_INET6, dst, &p.ip.daddr);
	p.tcp = tcp_header(dport, syn, ack);
	return p;
}

/* The program's verdict on the packet at data, or -1 if the run failed. */
static int run_packet(struct zt_tc_ingress *s, void *data, size_t len)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = (uint32_t)len,
		    .repeat = 1);
	int ret = bpf_prog_test_run_opts(bpf_program__fd(s->progs.zt_tc_ingress), &opts);

	return ret < 0 ? -1 : (int)opts.retval;
}

static int verdict(struct zt_tc_ingress *s, struct packet p)
{
	return run_packet(s, &p, sizeof(p));
}

static int verdict6(struct zt_tc_ingress *s, struct packet6 p)
{
	return run_packet(s, &p, sizeof(p));
}

static uint64_t count(struct zt_tc_ingress *s, uint32_t which)
{
	return bpf_count(bpf_map__fd(s->maps.zt_counts), which);
}

/* An IPv6 SYN to POD6:8080 behind n extension headers of type ext (8 bytes each; 44: the
 * fragment header, frag_off as given), in buf; its length. */
static size_t chain6(uint8_t *buf, size_t cap, int n, uint8_t ext, uint16_t frag_off)
{
	struct packet6 p = tcp_packet6(CLIENT6, POD6, 8080, true, false);
	size_t off = sizeof(p.eth) + sizeof(p.ip);

	if (off + (size_t)n * 8 + sizeof(p.tcp) > cap)
		return 0;
	p.ip.nexthdr = n ? ext : IPPROTO_TCP;
	memcpy(buf, &p, off);
	for (int i = 0; i < n; i++, off += 8) {
		memset(buf + off, 0, 8);
		buf[off] = i + 1 < n ? ext : IPPROTO_TCP;	/* next header; hdrlen 0 */
		if (ext == 44)
			memcpy(buf + off + 2, &frag_off, 2);
	}
	memcpy(buf + off, &p.tcp, sizeof(p.tcp));
	return off + sizeof(p.tcp);
}

/* IPv6: the same decisions for the pod's IPv6 address (no probe address: probes are IPv4),
 * through extension headers; a chain too long to walk to the pod is dropped, never let by. */
static void test_ipv6(struct zt_tc_ingress *s)
{
	uint64_t before = count(s, ZT_COUNT_NO_LISTENER);
	struct packet6 icmp = tcp_packet6(CLIENT6, POD6, 8080, true, false);
	uint8_t buf[256];
	size_t n;

	CHECK(verdict6(s, tcp_packet6(CLIENT6, POD6, 8080, true, false)) == TC_ACT_SHOT,
	      "an IPv6 SYN to the pod with no 15006 listener is dropped");
	CHECK(count(s, ZT_COUNT_NO_LISTENER) == before + 1, "and counted");
	CHECK(verdict6(s, tcp_packet6(CLIENT6, POD6, 15008, true, false)) == TC_ACT_OK,
	      "an IPv6 SYN to 15008 goes to the HBONE listener as is");
	CHECK(verdict6(s, tcp_packet6(CLIENT6, POD6, 8080, false, true)) == TC_ACT_OK,
	      "an IPv6 packet of an open connection is left alone");
	CHECK(verdict6(s, tcp_packet6(CLIENT6, "fd00:201:2::9", 8080, true, false)) == TC_ACT_OK,
	      "an IPv6 SYN to another address is not this pod's");
	CHECK(verdict6(s, tcp_packet6(CLIENT6, "::ffff:10.201.2.2", 8080, true, false)) ==
		      TC_ACT_OK, "the v4-mapped form of the pod's IPv4 address is not its IPv6 one");
	icmp.ip.nexthdr = 58;	/* ICMPv6 */
	CHECK(verdict6(s, icmp) == TC_ACT_OK, "ICMPv6 to the pod passes");
	CHECK(count(s, ZT_COUNT_NO_LISTENER) == before + 1, "one IPv6 capture so far");
	n = chain6(buf, sizeof(buf), 1, 0, 0);
	CHECK(run_packet(s, buf, n) == TC_ACT_SHOT && count(s, ZT_COUNT_NO_LISTENER) == before + 2,
	      "a SYN behind a hop-by-hop header is captured too");
	n = chain6(buf, sizeof(buf), 3, 60, 0);
	CHECK(run_packet(s, buf, n) == TC_ACT_SHOT && count(s, ZT_COUNT_NO_LISTENER) == before + 3,
	      "a SYN behind three destination options headers is captured");
	n = chain6(buf, sizeof(buf), 1, 44, 0);
	CHECK(run_packet(s, buf, n) == TC_ACT_SHOT && count(s, ZT_COUNT_NO_LISTENER) == before + 4,
	      "a SYN in a first fragment is captured");
	n = chain6(buf, sizeof(buf), 1, 44, htons(8 << 3));
	CHECK(run_packet(s, buf, n) == TC_ACT_OK, "a later fragment (no TCP header) passes");
	n = chain6(buf, sizeof(buf), 6, 60, 0);
	CHECK(run_packet(s, buf, n) == TC_ACT_SHOT && count(s, ZT_COUNT_NO_LISTENER) == before + 4,
	      "a chain longer than the program walks, to the pod, is dropped uncounted");
	n = chain6(buf, sizeof(buf), 1, 60, 0);
	CHECK(run_packet(s, buf, n - sizeof(struct tcphdr) + 4) == TC_ACT_SHOT,
	      "a TCP header cut short behind an extension header, to the pod, is dropped");
}

int main(void)
{
	struct zt_tc_ingress *s = zt_tc_ingress__open();
	struct in_addr pod, probe;
	int ret;

	if (!s) {
		printf("bpf_capture_test: SKIP (cannot open the program: %s)\n", strerror(errno));
		return 77;
	}
	inet_pton(AF_INET, POD, &pod);
	inet_pton(AF_INET, "169.254.7.127", &probe);
	s->rodata->pod_addrs[0] = pod.s_addr;
	s->rodata->n_pod_addrs = 1;
	s->rodata->probe_addr = probe.s_addr;
	s->rodata->hbone_port = 15008;
	inet_pton(AF_INET6, POD6, (void *)s->rodata->pod_addrs6[0]);
	s->rodata->n_pod_addrs6 = 1;
	ret = zt_tc_ingress__load(s);
	if (ret < 0) {
		printf("bpf_capture_test: SKIP (cannot load: %s; needs CAP_BPF)\n", strerror(-ret));
		zt_tc_ingress__destroy(s);
		return 77;
	}
	/* with no listener in the map: what would be captured is dropped, the rest passes */
	CHECK(verdict(s, tcp_packet(CLIENT, POD, 8080, true, false)) == TC_ACT_SHOT,
	      "a SYN to the pod with no 15006 listener is dropped, not passed to the app");
	CHECK(count(s, ZT_COUNT_NO_LISTENER) == 1, "and counted (%llu)",
	      (unsigned long long)count(s, ZT_COUNT_NO_LISTENER));
	CHECK(verdict(s, tcp_packet(CLIENT, POD, 15008, true, false)) == TC_ACT_OK,
	      "a SYN to 15008 goes to the HBONE listener as is");
	CHECK(verdict(s, tcp_packet("169.254.7.127", POD, 8080, true, false)) == TC_ACT_OK,
	      "a kubelet probe reaches the app");
	CHECK(verdict(s, tcp_packet(CLIENT, POD, 8080, false, true)) == TC_ACT_OK,
	      "a packet of an open connection is left to the socket lookup");
	CHECK(verdict(s, tcp_packet(CLIENT, POD, 8080, true, true)) == TC_ACT_OK,
	      "a SYN-ACK is not a new inbound connection");
	CHECK(verdict(s, tcp_packet(CLIENT, "10.201.2.9", 8080, true, false)) == TC_ACT_OK,
	      "a SYN to another address is not this pod's");
	CHECK(count(s, ZT_COUNT_NO_LISTENER) == 1, "only the one capture was attempted");
	struct packet bad = tcp_packet(CLIENT, POD, 8080, true, false);

	bad.ip.ihl = 15;	/* options past the end of the packet */
	CHECK(verdict(s, bad) == TC_ACT_OK, "a truncated header is left alone");
	test_ipv6(s);
	zt_tc_ingress__destroy(s);
	printf("%s\n", failures ? "FAILED" : "bpf_capture_test: ok");
	return failures ? 1 : 0;
}
