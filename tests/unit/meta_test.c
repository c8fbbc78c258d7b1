/* meta_test: HBONE metadata: baggage built from a workload and parsed from hostile peers,
 * forwarded, traceparent. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/proxy/proxy-int.h"

#include "check.h"

static void test_encode(void)
{
	struct state_workload w = {
		.cluster_id = "Kubernetes", .namespace_ = "default", .workload_name = "client-v1",
		.canonical_name = "client", .canonical_revision = "v1",
		.locality = { .region = "eu-west1", .zone = "eu-west1-b" },
	};
	char buf[256], small[40];

	proxy_baggage_encode(&w, buf, sizeof(buf));
	CHECK(strcmp(buf, "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,"
			  "k8s.deployment.name=client-v1,service.name=client,service.version=v1,"
			  "cloud.region=eu-west1,cloud.availability_zone=eu-west1-b") == 0,
	      "full baggage: %s", buf);
	w.locality.region = w.locality.zone = NULL;
	w.cluster_id = NULL;
	w.canonical_revision = "";
	proxy_baggage_encode(&w, buf, sizeof(buf));
	CHECK(strcmp(buf, "k8s.namespace.name=default,k8s.deployment.name=client-v1,"
			  "service.name=client") == 0, "empty members left out: %s", buf);
	w.canonical_name = "a b,c=d\r\n\"%";
	proxy_baggage_encode(&w, buf, sizeof(buf));
	CHECK(strstr(buf, "service.name=a%20b%2Cc%3Dd%0D%0A%22%25"), "encoded: %s", buf);
	CHECK(!strpbrk(buf, " \r\n\""), "header-safe: %s", buf);
	proxy_baggage_encode(&w, small, sizeof(small));
	CHECK(strcmp(small, "k8s.namespace.name=default") == 0,
	      "members that do not fit are left out whole: %s", small);
	proxy_baggage_encode(NULL, buf, sizeof(buf));
	CHECK(buf[0] == '\0', "no workload: empty");
}

static void test_parse(void)
{
	struct proxy_baggage b;
	char big[2000];

	proxy_baggage_parse("k8s.cluster.name=K1,k8s.namespace.name=NS1,k8s.deployment.name=N1,"
			    "service.name=N2,service.version=V1,cloud.region=r,"
			    "cloud.availability_zone=z", &b);
	CHECK(!strcmp(b.cluster, "K1") && !strcmp(b.namespace_, "NS1") &&
	      !strcmp(b.workload, "N1") && !strcmp(b.service, "N2") && !strcmp(b.revision, "V1") &&
	      !strcmp(b.region, "r") && !strcmp(b.zone, "z"), "upstream's keys");
	proxy_baggage_parse("k8s.cluster.name=,k8s.namespace.name=,service.name=", &b);
	CHECK(!b.cluster[0] && !b.namespace_[0] && !b.service[0], "empty values are absent");
	proxy_baggage_parse(" k8s.pod.name = p1 ;prop=1 , foo=bar,k8s.job.name", &b);
	CHECK(!strcmp(b.workload, "p1"), "blanks and properties around a value: '%s'", b.workload);
	proxy_baggage_parse("service.name=a\"b,k8s.namespace.name=x y,service.version=1=2", &b);
	CHECK(!b.service[0] && !b.namespace_[0], "values with quotes or spaces are refused");
	CHECK(!strcmp(b.revision, "1"), "a second '=' ends the value, as upstream: %s", b.revision);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "service.name=", 13);
	proxy_baggage_parse(big, &b);
	CHECK(!b.service[0], "an over-long value is absent, not cut");
	proxy_baggage_parse(",,,=,==,service.name=ok,", &b);
	CHECK(!strcmp(b.service, "ok"), "junk members skipped");
	proxy_baggage_parse(NULL, &b);
	CHECK(!b.service[0], "NULL");
}

static void test_forwarded(void)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	char buf[128];

	in->sin_family = AF_INET;
	inet_pton(AF_INET, "10.201.1.2", &in->sin_addr);
	in->sin_port = htons(54321);
	proxy_forwarded(&ss, NULL, buf, sizeof(buf));
	CHECK(!strcmp(buf, "for=\"10.201.1.2:54321\""), "%s", buf);
	proxy_forwarded(&ss, "web.default.svc.cluster.local", buf, sizeof(buf));
	CHECK(!strcmp(buf, "for=\"10.201.1.2:54321\";host=web.default.svc.cluster.local"), "%s",
	      buf);
	proxy_forwarded(&ss, "bad host;x=1", buf, sizeof(buf));
	CHECK(!strcmp(buf, "for=\"10.201.1.2:54321\""), "a non-token host is left out: %s", buf);
	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "fd00::1", &in6->sin6_addr);
	in6->sin6_port = htons(80);
	proxy_forwarded(&ss, NULL, buf, sizeof(buf));
	CHECK(!strcmp(buf, "for=\"[fd00::1]:80\""), "v6: %s", buf);
}

static void test_traceparent(void)
{
	char a[56], b[56];

	CHECK(proxy_traceparent(a, sizeof(a)) == 0 && proxy_traceparent(b, sizeof(b)) == 0,
	      "made");
	CHECK(strlen(a) == 55 && !strncmp(a, "00-", 3) && a[35] == '-' && a[52] == '-' &&
	      !strcmp(a + 52, "-00"), "format: %s", a);
	CHECK(strspn(a + 3, "0123456789abcdef") == 32 && strspn(a + 36, "0123456789abcdef") == 16,
	      "hex ids: %s", a);
	CHECK(strcmp(a, b) != 0, "fresh per call: %s %s", a, b);
	CHECK(proxy_traceparent(a, 20) < 0 && a[0] == '\0', "too small a buffer");
}

static void test_ppv2(void)
{
	struct sockaddr_storage src = { 0 }, dst = { 0 }, v6 = { 0 };
	struct sockaddr_in *s4 = (void *)&src, *d4 = (void *)&dst;
	static const uint8_t want[] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
		0x21, 0x11, 0x00, 0x12,			/* v2 PROXY, TCP4, 12 + 3 + 3 bytes */
		10, 201, 1, 2, 10, 201, 2, 2,		/* src, dst */
		0xd4, 0x31, 0x1f, 0x90,			/* 54321, 8080 */
		0xD0, 0x00, 0x03, 'a', '/', 'b',	/* identity TLV */
	};
	uint8_t buf[128];
	ssize_t n;

	s4->sin_family = d4->sin_family = AF_INET;
	inet_pton(AF_INET, "10.201.1.2", &s4->sin_addr);
	inet_pton(AF_INET, "10.201.2.2", &d4->sin_addr);
	s4->sin_port = htons(54321);
	d4->sin_port = htons(8080);
	n = proxy_ppv2_header(&src, &dst, "a/b", buf, sizeof(buf));
	CHECK(n == (ssize_t)sizeof(want) && memcmp(buf, want, sizeof(want)) == 0,
	      "PROXY v2 header, v4 with the identity TLV (n=%zd)", n);
	n = proxy_ppv2_header(&src, &dst, NULL, buf, sizeof(buf));
	CHECK(n == 28 && buf[15] == 12, "no identity: no TLV (n=%zd)", n);
	CHECK(proxy_ppv2_header(&src, &dst, "a/b", buf, 30) < 0, "buffer too small");
	((struct sockaddr_in6 *)&v6)->sin6_family = AF_INET6;
	CHECK(proxy_ppv2_header(&src, &v6, NULL, buf, sizeof(buf)) < 0, "mixed families refused");
	CHECK(proxy_ppv2_header(&v6, &v6, NULL, buf, sizeof(buf)) == 52 && buf[13] == 0x21,
	      "v6: TCP6, 36 address bytes");
}

int main(void)
{
	test_ppv2();
	test_encode();
	test_parse();
	test_forwarded();
	test_traceparent();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("meta_test: all checks passed\n");
	return 0;
}
