/* Unit tests: HBONE pool keying, :authority parsing and settings from the environment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/config.h>
#include <ztunnel/hbone.h>
#include <ztunnel/proxy.h>

#include "check.h"

static void base_target(struct hbone_target *t)
{
	memset(t, 0, sizeof(*t));
	struct state_ip ip;

	state_ip_parse("10.1.2.3", &ip);
	struct sockaddr_in *in = (struct sockaddr_in *)&t->hbone_addr;

	in->sin_family = AF_INET;
	in->sin_addr = ip.v4;
	in->sin_port = htons(15008);
	strcpy(t->authority, "10.1.2.3:8080");
	strcpy(t->src_identity, "spiffe://cluster.local/ns/a/sa/client");
	strcpy(t->dst_identity, "spiffe://cluster.local/ns/b/sa/server");
	t->netns_fd = 7;
	t->client_ctx = (SSL_CTX *)0x1000;
}

static void test_pool_key(void)
{
	static const struct {
		const char *what;
		int change;
		int same;
	} cases[] = {
		{ "identical", 0, 1 },
		{ "other app port (authority) shares the connection",
		  0x1, 1 },
		{ "other source identity", 0x2, 0 },
		{ "other destination identity", 0x3, 0 },
		{ "other destination address", 0x4, 0 },
		{ "other source pod netns", 0x5, 0 },
		{ "other client context", 0x6, 0 },
		{ "other HBONE port", 0x7, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hbone_target a, b;

		base_target(&a);
		base_target(&b);
		switch (cases[i].change) {
		case 1: strcpy(b.authority, "10.1.2.3:9090"); break;
		case 2: strcpy(b.src_identity, "spiffe://cluster.local/ns/a/sa/other"); break;
		case 3: strcpy(b.dst_identity, "spiffe://cluster.local/ns/b/sa/other"); break;
		case 4: ((struct sockaddr_in *)&b.hbone_addr)->sin_addr.s_addr ^= htonl(1); break;
		case 5: b.netns_fd = 8; break;
		case 6: b.client_ctx = (SSL_CTX *)0x2000; break;
		case 7: ((struct sockaddr_in *)&b.hbone_addr)->sin_port = htons(15009); break;
		}
		CHECK(hbone_target_same_pool(&a, &b) == cases[i].same, "pool key: %s", cases[i].what);
		CHECK(hbone_target_same_pool(&b, &a) == cases[i].same, "pool key symmetric: %s",
		      cases[i].what);
	}
}

static void test_authority(void)
{
	static const struct { const char *in; int ok; const char *ip; unsigned port; } cases[] = {
		{ "10.0.0.1:80", 1, "10.0.0.1", 80 },
		{ "10.0.0.1:65535", 1, "10.0.0.1", 65535 },
		{ "[fd00::1]:8080", 1, "fd00::1", 8080 },
		{ "[::1]:1", 1, "::1", 1 },
		{ "10.0.0.1", 0, NULL, 0 },
		{ "10.0.0.1:", 0, NULL, 0 },
		{ "10.0.0.1:0", 0, NULL, 0 },
		{ "10.0.0.1:65536", 0, NULL, 0 },
		{ "10.0.0.1:80x", 0, NULL, 0 },
		{ "10.0.0.1:-80", 0, NULL, 0 },
		{ ":80", 0, NULL, 0 },
		{ "example.com:80", 0, NULL, 0 },
		{ "fd00::1:80", 0, NULL, 0 },
		{ "[fd00::1:80", 0, NULL, 0 },
		{ "[]:80", 0, NULL, 0 },
		{ "net/10.0.0.1:80", 0, NULL, 0 },
		{ "999.0.0.1:80", 0, NULL, 0 },
		{ "", 0, NULL, 0 },
		{ "[10.0.0.1]:80", 0, NULL, 0 },
		{ "10.0.0.1:+80", 0, NULL, 0 },
		{ "10.0.0.1: 80", 0, NULL, 0 },
		/* one spelling per port: no leading zero, sign, space, empty or 6-digit port */
		{ "10.201.2.2:08080", 0, NULL, 0 },
		{ "10.201.2.2:00080", 0, NULL, 0 },
		{ "10.201.2.2:00", 0, NULL, 0 },
		{ "[fd00::1]:0443", 0, NULL, 0 },
		{ "10.201.2.2:080800", 0, NULL, 0 },
		{ "10.201.2.2:000000000000008080", 0, NULL, 0 },
		{ "10.201.2.2:99999", 0, NULL, 0 },
		{ "10.201.2.2:4294967376", 0, NULL, 0 },
		{ "10.201.2.2:8080 ", 0, NULL, 0 },
		{ "10.201.2.2 :8080", 0, NULL, 0 },
		{ " 10.201.2.2:8080", 0, NULL, 0 },
		{ "10.201.2.2:-0", 0, NULL, 0 },
		{ "[fd00::1]:", 0, NULL, 0 },
		{ "[fd00::1]", 0, NULL, 0 },
		{ "010.201.2.2:8080", 0, NULL, 0 },
		{ "10.201.2.2:8080", 1, "10.201.2.2", 8080 },
		{ "10.201.2.2:10", 1, "10.201.2.2", 10 },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80", 0, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct state_ip ip, want;
		uint16_t port = 0;
		int ret = proxy_parse_authority(cases[i].in, &ip, &port);

		CHECK((ret == 0) == cases[i].ok, "authority \"%s\": ret %d", cases[i].in, ret);
		if (ret == 0 && cases[i].ok) {
			state_ip_parse(cases[i].ip, &want);
			CHECK(state_ip_equal(&ip, &want), "authority \"%s\": ip", cases[i].in);
			CHECK(port == cases[i].port, "authority \"%s\": port %u", cases[i].in, port);
		}
	}
}

/* The inbound :authority checks before policy: each refusal names its reason, a parsed
 * authority reports its destination even when refused. */
static void test_authority_checks(void)
{
	static const struct { const char *in; const char *why; unsigned port; } cases[] = {
		{ "10.201.2.2:8080", NULL, 8080 },
		{ "[fd00::2]:80", NULL, 80 },
		{ "[::ffff:10.201.2.2]:80", NULL, 80 },	/* v4-mapped is the same address */
		{ "10.201.2.2:08080", "malformed :authority", 0 },
		{ "10.201.2.9:8080", "destination IP is not this pod", 8080 },
		{ "[fd00::3]:8080", "destination IP is not this pod", 8080 },
		{ "10.201.2.2:15008", "destination is a port of the agent", 15008 },
		{ "10.201.2.2:15021", "destination is a port of the agent", 15021 },
	};
	struct state_ip pod[2], ip;
	uint16_t port;

	state_ip_parse("10.201.2.2", &pod[0]);
	state_ip_parse("fd00::2", &pod[1]);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why;

		port = 0;
		why = proxy_check_authority(cases[i].in, pod, 2, &ip, &port);
		CHECK(why == cases[i].why || (why && cases[i].why && !strcmp(why, cases[i].why)),
		      "authority \"%s\": %s", cases[i].in, why ? why : "passes");
		CHECK(port == cases[i].port, "authority \"%s\": port %u", cases[i].in, port);
	}
	CHECK(proxy_check_authority("10.201.2.2:80", pod, 0, &ip, &port) != NULL,
	      "a pod without addresses accepts no destination");
}

static void test_durations(void)
{
	static const struct { const char *in; int ok; unsigned long long ms; } cases[] = {
		{ "90", 1, 90000 }, { "90s", 1, 90000 }, { "5m", 1, 300000 }, { "24h", 1, 86400000 },
		{ "100ms", 1, 100 }, { "0s", 1, 0 }, { "", 0, 0 }, { "s", 0, 0 }, { "5d", 0, 0 },
		{ "-5s", 0, 0 }, { "5 s", 0, 0 }, { "1.5s", 0, 0 }, { "99999999999999999999h", 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 0;
		int ret = config_parse_duration_ms(cases[i].in, &ms);

		CHECK((ret == 0) == cases[i].ok, "duration \"%s\": ret %d", cases[i].in, ret);
		if (ret == 0)
			CHECK(ms == cases[i].ms, "duration \"%s\": %llu ms", cases[i].in,
			      (unsigned long long)ms);
	}
}

static void test_workers(void)
{
	static const struct { const char *in; unsigned cores, want; int ret; } cases[] = {
		{ "4", 2, 4, 0 }, { "1", 64, 1, 0 }, { "0", 2, 2, 0 }, { "0", 48, 48, 0 },
		{ "25%", 2, 1, 0 }, { "25%", 16, 4, 0 }, { "25%", 10, 3, 0 }, { "100%", 8, 8, 0 },
		{ "50%", 0, 1, 0 }, { "64", 1, 64, 0 }, { "65", 1, 0, -ERANGE },
		{ "0", 128, 64, 0 }, { "100%", 200, 64, 0 }, { "0%", 8, 0, -EINVAL }, { "101%", 8, 0, -EINVAL },
		{ "25 %", 8, 0, -EINVAL }, { "%", 8, 0, -EINVAL }, { "", 8, 0, -EINVAL },
		{ "-2", 8, 0, -EINVAL }, { "2x", 8, 0, -EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned got = 0;
		int ret = config_parse_workers(cases[i].in, cases[i].cores, &got);

		CHECK(ret == cases[i].ret && (ret || got == cases[i].want),
		      "workers \"%s\" on %u cores: ret %d, %u threads (want %d, %u)", cases[i].in,
		      cases[i].cores, ret, got, cases[i].ret, cases[i].want);
	}
}

static void test_env(void)
{
	static const struct { const char *var, *value; int ok; const char *msg; } cases[] = {
		{ NULL, NULL, 1, NULL },
		{ "ZTUNNEL_WORKER_THREADS", "4", 1, NULL },
		{ "ZTUNNEL_WORKER_THREADS", "0", 1, NULL },
		{ "ZTUNNEL_WORKER_THREADS", "25%", 1, NULL },
		{ "ZTUNNEL_WORKER_THREADS", "two", 0, "ZTUNNEL_WORKER_THREADS: \"two\" is not a number" },
		{ "ZTUNNEL_WORKER_THREADS", "65", 0, "(1..64)" },
		{ "ZTUNNEL_WORKER_THREADS", "0%", 0, "a share of the cores" },
		{ "ZTUNNEL_WORKER_THREADS", "101%", 0, "ZTUNNEL_WORKER_THREADS" },
		{ "ZTUNNEL_WORKER_THREADS", "-1", 0, "ZTUNNEL_WORKER_THREADS" },
		{ "SECRET_TTL", "1h", 1, NULL },
		{ "SECRET_TTL", "1s", 0, "SECRET_TTL" },
		{ "SECRET_TTL", "soon", 0, "not a valid duration" },
		{ "POOL_UNUSED_RELEASE_TIMEOUT", "30s", 1, NULL },
		{ "HTTP2_FRAME_SIZE", "100", 0, "HTTP2_FRAME_SIZE" },
		{ "PACKET_MARK", "0x539", 1, NULL },
		{ "ZTUNNEL_REDIRECT", "iptables", 0, "ZTUNNEL_REDIRECT" },
		{ "ZTUNNEL_CA_CERT", "/x.pem", 0, "go together" },
		{ "XDS_ON_DEMAND", "true", 1, NULL },
		{ "XDS_ON_DEMAND", "false", 1, NULL },
		{ "XDS_ON_DEMAND", "yes", 0, "XDS_ON_DEMAND: \"yes\" is not true or false" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config cfg;
		char err[256] = "";

		if (cases[i].var)
			setenv(cases[i].var, cases[i].value, 1);
		int ret = config_from_env(&cfg, err, sizeof(err));

		CHECK((ret == 0) == cases[i].ok, "env %s=%s: ret %d (%s)", cases[i].var,
		      cases[i].value, ret, err);
		if (cases[i].msg)
			CHECK(strstr(err, cases[i].msg), "env %s=%s: message \"%s\"", cases[i].var,
			      cases[i].value, err);
		if (cases[i].var)
			unsetenv(cases[i].var);
	}
	setenv("POOL_UNUSED_RELEASE_TIMEOUT", "30s", 1);
	setenv("PACKET_MARK", "0x539", 1);
	struct config cfg;
	char err[256];

	CHECK(config_from_env(&cfg, err, sizeof(err)) == 0, "env defaults: %s", err);
	CHECK(cfg.hbone.idle_release_ms == 30000, "pool idle %u", cfg.hbone.idle_release_ms);
	CHECK(cfg.hbone.mark == 0x539, "mark %#x", cfg.hbone.mark);
	CHECK(cfg.workers >= 2 && cfg.secret_ttl == 86400, "defaults workers/ttl");
	CHECK(!cfg.xds_on_demand, "on demand is off by default");
	setenv("XDS_ON_DEMAND", "true", 1);
	CHECK(config_from_env(&cfg, err, sizeof(err)) == 0 && cfg.xds_on_demand, "XDS_ON_DEMAND=true");
	unsetenv("XDS_ON_DEMAND");
	CHECK(cfg.hbone.stream_window == 4u << 20 && cfg.hbone.conn_window == 16u << 20,
	      "upstream window defaults");
}

int main(void)
{
	test_pool_key();
	test_authority();
	test_authority_checks();
	test_durations();
	test_workers();
	test_env();
	if (failures) {
		printf("%d checks failed\n", failures);
		return 1;
	}
	printf("proxy_test: all checks passed\n");
	return 0;
}
