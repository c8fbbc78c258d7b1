/* config_test: what upstream's chart sets is read as upstream reads it: RUST_LOG's level,
 * ISTIO_META_CLUSTER_ID over CLUSTER_ID, the drain deadline from CONNECTION_TERMINATION_DEADLINE
 * or the grace period, in-cluster istiod defaults, a scheme added to a bare address, KEEPALIVE_*,
 * the worker count from ZTUNNEL_CPU_LIMIT, IPV6_ENABLED (default true); a malformed value is a
 * start-up error naming it. */
#include <stdlib.h>
#include <string.h>

#include <ztunnel/config.h>

#include "check.h"

static const char *vars[] = {
	"RUST_LOG", "ZTUNNEL_LOG", "ISTIO_META_CLUSTER_ID", "CLUSTER_ID", "TERMINATION_GRACE_PERIOD_SECONDS",
	"CONNECTION_TERMINATION_DEADLINE", "KUBERNETES_SERVICE_HOST", "XDS_ADDRESS", "CA_ADDRESS",
	"LOCAL_XDS_PATH", "KEEPALIVE_ENABLED", "KEEPALIVE_TIME", "KEEPALIVE_INTERVAL",
	"KEEPALIVE_RETRIES", "ZTUNNEL_CPU_LIMIT", "ZTUNNEL_WORKER_THREADS", "INPOD_ENABLED",
	"NETWORK", "SERVICE_ACCOUNT", "ZTUNNEL_CA_CERT", "ZTUNNEL_CA_KEY", "INPOD_UDS",
	"ZTUNNEL_KTLS",
	"IPV6_ENABLED",
};

/* env: "NAME=value\0NAME=value\0\0"; the config it gives, or -EINVAL with err */
static int load(const char *env, struct config *cfg, char *err, size_t len)
{
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	for (const char *p = env; *p; p += strlen(p) + 1)
		putenv((char *)p);
	err[0] = 0;
	return config_from_env(cfg, err, len);
}

static const struct { const char *rust_log, *level; } rust_logs[] = {
	{ "info\0", "info" },
	{ "debug\0", "debug" },
	{ "trace\0", "debug" },
	{ "off\0", "error" },
	{ "ztunnel=debug\0", "debug" },
	{ "warn,ztunnel::proxy=trace\0", "debug" },
	{ "info,hyper=debug\0", "info" },
	{ "ztunnel=warn,ztunnel::dns=error\0", "warn" },
	{ " warn , h2=trace \0", "warn" },
	{ "ztunnel\0", "debug" },
	{ "WARN\0", "warn" },
};

int main(void)
{
	struct config cfg;
	char err[512], env[256];

	for (size_t i = 0; i < sizeof(rust_logs) / sizeof(rust_logs[0]); i++) {
		snprintf(env, sizeof(env), "RUST_LOG=%s", rust_logs[i].rust_log);
		env[strlen(env) + 1] = 0;
		CHECK(load(env, &cfg, err, sizeof(err)) == 0, "RUST_LOG=%s: %s", rust_logs[i].rust_log, err);
		CHECK(strcmp(cfg.log_level, rust_logs[i].level) == 0, "RUST_LOG=%s gave %s, want %s",
		      rust_logs[i].rust_log, cfg.log_level, rust_logs[i].level);
	}
	CHECK(load("ZTUNNEL_LOG=verbose\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "ZTUNNEL_LOG") && strstr(err, "verbose"),
	      "ZTUNNEL_LOG that is not a level is an error naming the variable");
	CHECK(load("RUST_LOG=debug\0ZTUNNEL_LOG=warn\0", &cfg, err, sizeof(err)) == 0 &&
	      strcmp(cfg.log_level, "warn") == 0, "ZTUNNEL_LOG wins over RUST_LOG");
	CHECK(load("RUST_LOG=ztunnel=loud\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "RUST_LOG") && strstr(err, "loud"), "bad RUST_LOG: %s", err);

	CHECK(load("\0", &cfg, err, sizeof(err)) == 0 && cfg.ipv6_enabled, "IPV6_ENABLED: true");
	CHECK(load("IPV6_ENABLED=false\0", &cfg, err, sizeof(err)) == 0 && !cfg.ipv6_enabled,
	      "IPV6_ENABLED=false read");
	CHECK(load("IPV6_ENABLED=maybe\0", &cfg, err, sizeof(err)) < 0 && strstr(err, "IPV6_ENABLED"),
	      "bad IPV6_ENABLED: %s", err);
	CHECK(load("CLUSTER_ID=a\0ISTIO_META_CLUSTER_ID=b\0", &cfg, err, sizeof(err)) == 0 &&
	      strcmp(cfg.cluster_id, "b") == 0, "ISTIO_META_CLUSTER_ID wins");
	CHECK(load("\0", &cfg, err, sizeof(err)) == 0 && strcmp(cfg.cluster_id, "Kubernetes") == 0 &&
	      cfg.drain_ms == 5000 && !cfg.xds_address && !cfg.ca_address && !cfg.in_kubernetes,
	      "defaults outside a cluster: %s drain %u", cfg.cluster_id, cfg.drain_ms);
	CHECK(load("TERMINATION_GRACE_PERIOD_SECONDS=30\0", &cfg, err, sizeof(err)) == 0 &&
	      cfg.drain_ms == 25000, "grace 30 s -> drain %u ms", cfg.drain_ms);
	CHECK(load("TERMINATION_GRACE_PERIOD_SECONDS=4\0", &cfg, err, sizeof(err)) == 0 &&
	      cfg.drain_ms == 3000, "grace 4 s -> drain %u ms", cfg.drain_ms);
	CHECK(load("TERMINATION_GRACE_PERIOD_SECONDS=1\0", &cfg, err, sizeof(err)) == 0 &&
	      cfg.drain_ms == 1000, "grace 1 s -> drain %u ms", cfg.drain_ms);
	CHECK(load("TERMINATION_GRACE_PERIOD_SECONDS=30\0CONNECTION_TERMINATION_DEADLINE=7s\0", &cfg,
		   err, sizeof(err)) == 0 && cfg.drain_ms == 7000, "explicit deadline %u", cfg.drain_ms);
	CHECK(load("CONNECTION_TERMINATION_DEADLINE=soon\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "CONNECTION_TERMINATION_DEADLINE"), "bad deadline: %s", err);

	CHECK(load("KUBERNETES_SERVICE_HOST=10.96.0.1\0", &cfg, err, sizeof(err)) == 0 &&
	      cfg.in_kubernetes && cfg.xds_address && cfg.ca_address &&
	      strcmp(cfg.xds_address, "https://istiod.istio-system.svc:15012") == 0 &&
	      strcmp(cfg.ca_address, "https://istiod.istio-system.svc:15012") == 0,
	      "in-cluster istiod defaults: %s", err);
	CHECK(load("KUBERNETES_SERVICE_HOST=10.96.0.1\0LOCAL_XDS_PATH=/x.yaml\0", &cfg, err,
		   sizeof(err)) == 0 && !cfg.xds_address, "a local config keeps xDS off in a cluster");
	CHECK(load("XDS_ADDRESS=istiod-canary.istio-system.svc:15012\0CA_ADDRESS=http://h:1\0", &cfg,
		   err, sizeof(err)) == 0 &&
	      strcmp(cfg.xds_address, "https://istiod-canary.istio-system.svc:15012") == 0 &&
	      strcmp(cfg.ca_address, "http://h:1") == 0, "scheme added to a bare address only");

	CHECK(load("KEEPALIVE_TIME=30s\0KEEPALIVE_INTERVAL=1m\0KEEPALIVE_RETRIES=3\0", &cfg, err,
		   sizeof(err)) == 0 && cfg.keepalive.enabled && cfg.keepalive.time_s == 30 &&
	      cfg.keepalive.interval_s == 60 && cfg.keepalive.retries == 3, "keepalive: %s", err);
	CHECK(load("KEEPALIVE_ENABLED=false\0", &cfg, err, sizeof(err)) == 0 &&
	      !cfg.keepalive.enabled, "keepalive off");
	CHECK(load("KEEPALIVE_ENABLED=maybe\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "KEEPALIVE_ENABLED"), "bad keepalive flag: %s", err);
	CHECK(load("\0", &cfg, err, sizeof(err)) == 0 && !cfg.hbone.ktls, "kTLS off by default");
	CHECK(load("ZTUNNEL_KTLS=true\0", &cfg, err, sizeof(err)) == 0 && cfg.hbone.ktls,
	      "ZTUNNEL_KTLS=true: %s", err);
	CHECK(load("ZTUNNEL_KTLS=sometimes\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "ZTUNNEL_KTLS"), "bad kTLS flag: %s", err);
	CHECK(load("KEEPALIVE_RETRIES=0\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "KEEPALIVE_RETRIES"), "bad retries: %s", err);

	CHECK(load("ZTUNNEL_CPU_LIMIT=4\0", &cfg, err, sizeof(err)) == 0 && cfg.workers == 2,
	      "4 CPUs -> %u workers", cfg.workers);
	CHECK(load("ZTUNNEL_CPU_LIMIT=32\0", &cfg, err, sizeof(err)) == 0 && cfg.workers == 8,
	      "32 CPUs -> %u workers", cfg.workers);
	CHECK(load("ZTUNNEL_CPU_LIMIT=32\0ZTUNNEL_WORKER_THREADS=3\0", &cfg, err, sizeof(err)) == 0 &&
	      cfg.workers == 3, "ZTUNNEL_WORKER_THREADS wins: %u", cfg.workers);
	CHECK(load("ZTUNNEL_CPU_LIMIT=32\0ZTUNNEL_WORKER_THREADS=50%\0", &cfg, err, sizeof(err)) == 0 &&
	      cfg.workers == 16, "50%% of ZTUNNEL_CPU_LIMIT's 32 cores: %u", cfg.workers);
	CHECK(load("ZTUNNEL_CPU_LIMIT=6\0ZTUNNEL_WORKER_THREADS=0\0", &cfg, err, sizeof(err)) == 0 &&
	      cfg.workers == 6, "0: all of ZTUNNEL_CPU_LIMIT's 6 cores: %u", cfg.workers);
	CHECK(load("ZTUNNEL_CPU_LIMIT=1.5\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "ZTUNNEL_CPU_LIMIT"), "bad CPU limit: %s", err);

	CHECK(load("INPOD_ENABLED=true\0NETWORK=net1\0SERVICE_ACCOUNT=ztunnel\0", &cfg, err,
		   sizeof(err)) == 0 && strcmp(cfg.network, "net1") == 0 &&
	      strcmp(cfg.service_account, "ztunnel") == 0, "accepted: %s", err);
	CHECK(cfg.inpod_uds && strcmp(cfg.inpod_uds, "/var/run/ztunnel/ztunnel.sock") == 0 &&
	      strcmp(cfg.redirect_mode, "none") == 0, "INPOD_ENABLED: istio-cni's socket, no capture");
	CHECK(load("\0", &cfg, err, sizeof(err)) == 0 && !cfg.inpod_uds &&
	      strcmp(cfg.redirect_mode, "nftables") == 0, "no INPOD_ENABLED: our plugin, nftables");
	CHECK(load("INPOD_ENABLED=false\0", &cfg, err, sizeof(err)) < 0 &&
	      strstr(err, "INPOD_ENABLED"), "INPOD_ENABLED=false refused: %s", err);
	printf("%s\n", failures ? "config_test: FAILED" : "config_test: ok");
	return failures != 0;
}
