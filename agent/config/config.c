/* config: environment variables into the agent's settings, with a clear error per variable. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/config.h>
#include <ztunnel/redirect.h>

#include "config-int.h"

int config_parse_duration_ms(const char *text, uint64_t *ms)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "", 1000 },
	};
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *text == '-')
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) == 0) {
			if (v > UINT64_MAX / units[i].mult)
				return -EINVAL;
			*ms = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_workers(const char *text, unsigned cores, unsigned *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *text == '-' || (*end && strcmp(end, "%") != 0))
		return -EINVAL;
	if (cores < 1)
		cores = 1;
	if (*end || v == 0) {	/* a share of the cores (rounded up), or all: at most the cap */
		if (*end && (v < 1 || v > 100))
			return -EINVAL;
		v = *end ? (v * cores + 99) / 100 : cores;
		if (v > CONFIG_MAX_WORKERS)
			v = CONFIG_MAX_WORKERS;
	} else if (v > CONFIG_MAX_WORKERS) {
		return -ERANGE;
	}
	*out = (unsigned)v;
	return 0;
}

/* The cores this process may run on (its affinity, which a cpuset limits). */
unsigned config_usable_cores(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	return (unsigned)CPU_COUNT(&set);
}

enum kind { K_STRING, K_UINT, K_DURATION_S, K_DURATION_MS, K_BOOL, K_WORKERS };

struct setting {
	const char *env;
	enum kind kind;
	size_t offset;
	uint64_t min, max;
};

#define CFG(f) offsetof(struct config, f)
static const struct setting settings[] = {
	{ "LOCAL_XDS_PATH", K_STRING, CFG(local_xds_path), 0, 0 },
	{ "LOCAL_XDS", K_STRING, CFG(local_xds), 0, 0 },
	{ "NODE_NAME", K_STRING, CFG(node_name), 0, 0 },
	{ "TRUST_DOMAIN", K_STRING, CFG(trust_domain), 0, 0 },
	{ "ZTUNNEL_CA_CERT", K_STRING, CFG(ca_cert), 0, 0 },
	{ "ZTUNNEL_CA_KEY", K_STRING, CFG(ca_key), 0, 0 },
	{ "SECRET_TTL", K_DURATION_S, CFG(secret_ttl), 4, 365 * 24 * 3600 },
	{ "ZTUNNEL_WORKER_THREADS", K_WORKERS, CFG(workers), 0, 0 },
	{ "ZTUNNEL_CNI_SOCKET", K_STRING, CFG(cni_socket), 0, 0 },
	{ "ZTUNNEL_STATE_DIR", K_STRING, CFG(state_dir), 0, 0 },
	{ "ZTUNNEL_REDIRECT", K_STRING, CFG(redirect_mode), 0, 0 },
	{ "ZTUNNEL_BPF_PIN_DIR", K_STRING, CFG(bpf_pin_dir), 0, 0 },
	{ "ZTUNNEL_BPF_SOCKMAP", K_BOOL, CFG(bpf_sockmap), 0, 0 },
	{ "ZTUNNEL_LEAST_LOADED_WORKER", K_BOOL, CFG(least_loaded), 0, 0 },
	{ "ZTUNNEL_BPF_CGROUP", K_STRING, CFG(bpf_cgroup), 0, 0 },
	{ "ZTUNNEL_LOG", K_STRING, CFG(log_level), 0, 0 },
	{ "LOG_FORMAT", K_STRING, CFG(log_format), 0, 0 },
	{ "ZTUNNEL_METRICS", K_STRING, CFG(metrics_mode), 0, 0 },
	{ "TERMINATION_GRACE_PERIOD_SECONDS", K_UINT, CFG(grace_seconds), 0, 3600 },
	{ "ZTUNNEL_ADMIN_PORT", K_UINT, CFG(admin_port), 1, 65535 },
	{ "ZTUNNEL_METRICS_PORT", K_UINT, CFG(metrics_port), 1, 65535 },
	{ "ZTUNNEL_READINESS_PORT", K_UINT, CFG(ready_port), 1, 65535 },
	{ "XDS_ADDRESS", K_STRING, CFG(xds_address), 0, 0 },
	{ "XDS_ROOT_CA", K_STRING, CFG(xds_root_ca), 0, 0 },
	{ "XDS_ON_DEMAND", K_BOOL, CFG(xds_on_demand), 0, 0 },
	{ "CA_ADDRESS", K_STRING, CFG(ca_address), 0, 0 },
	{ "CA_ROOT_CA", K_STRING, CFG(ca_root_ca), 0, 0 },
	{ "AUTH_TOKEN", K_STRING, CFG(auth_token), 0, 0 },
	{ "CLUSTER_ID", K_STRING, CFG(cluster_id), 0, 0 },
	{ "CLUSTER_DOMAIN", K_STRING, CFG(cluster_domain), 0, 0 },
	{ "POD_NAME", K_STRING, CFG(pod_name), 0, 0 },
	{ "POD_NAMESPACE", K_STRING, CFG(pod_namespace), 0, 0 },
	{ "INSTANCE_IP", K_STRING, CFG(instance_ip), 0, 0 },
	{ "INPOD_UDS", K_STRING, CFG(inpod_uds), 0, 0 },
	{ "ISTIO_META_DNS_CAPTURE", K_BOOL, CFG(dns_capture), 0, 0 },
	{ "IPV6_ENABLED", K_BOOL, CFG(ipv6_enabled), 0, 0 },
	{ "DNS_PROXY_ADDR", K_STRING, CFG(dns_proxy_addr), 0, 0 },
	{ "DNS_UPSTREAMS", K_STRING, CFG(dns_upstreams), 0, 0 },
	{ "HTTP2_STREAM_WINDOW_SIZE", K_UINT, CFG(hbone.stream_window), 65535, 1u << 30 },
	{ "HTTP2_CONNECTION_WINDOW_SIZE", K_UINT, CFG(hbone.conn_window), 65535, (1u << 31) - 1 },
	{ "HTTP2_FRAME_SIZE", K_UINT, CFG(hbone.frame_size), 16384, (1u << 24) - 1 },
	{ "POOL_MAX_STREAMS_PER_CONNECTION", K_UINT, CFG(hbone.max_streams_per_conn), 1, 10000 },
	{ "POOL_UNUSED_RELEASE_TIMEOUT", K_DURATION_MS, CFG(hbone.idle_release_ms), 100, 86400000 },
	{ "ZTUNNEL_POOL_MAX_CONNS_PER_PEER", K_UINT, CFG(hbone.max_conns_per_peer), 1, 64 },
	{ "ZTUNNEL_POOL_SPARE_RELEASE_TIMEOUT", K_DURATION_MS, CFG(hbone.spare_release_ms), 100,
	  86400000 },
	/* upstream's fixed 10 s / 20 s; settable here so that tests need not wait 30 s */
	{ "LOCALHOST_APP_TUNNEL", K_BOOL, CFG(hbone.localhost_app_tunnel), 0, 0 },
	{ "ZTUNNEL_KTLS", K_BOOL, CFG(hbone.ktls), 0, 0 },
	{ "ZTUNNEL_HTTP2_KEEPALIVE_INTERVAL", K_DURATION_MS, CFG(hbone.keepalive_interval_ms), 100,
	  86400000 },
	{ "ZTUNNEL_HTTP2_KEEPALIVE_TIMEOUT", K_DURATION_MS, CFG(hbone.keepalive_timeout_ms), 100,
	  86400000 },
	{ "PACKET_MARK", K_UINT, CFG(hbone.mark), 1, 0xffffffffu },
	{ "ZTUNNEL_MAX_PENDING_HANDSHAKES", K_UINT, CFG(hbone.max_pending_handshakes), 0, 1u << 20 },
	{ "ZTUNNEL_MAX_PENDING_HANDSHAKES_PER_SOURCE", K_UINT, CFG(hbone.max_pending_per_source), 0,
	  1u << 20 },
	{ "ZTUNNEL_APP_BUFFER_LIMIT", K_UINT, CFG(hbone.app_buffer_limit), 0, 0xffffffffu },
	/* what upstream's chart sets (issue 13); derive.c completes them */
	{ "RUST_LOG", K_STRING, CFG(rust_log), 0, 0 },
	{ "ISTIO_META_CLUSTER_ID", K_STRING, CFG(meta_cluster_id), 0, 0 },
	{ "NETWORK", K_STRING, CFG(network), 0, 0 },
	{ "SERVICE_ACCOUNT", K_STRING, CFG(service_account), 0, 0 },
	{ "INPOD_ENABLED", K_BOOL, CFG(inpod_enabled), 0, 0 },
	{ "ZTUNNEL_CPU_LIMIT", K_UINT, CFG(cpu_limit), 1, 1u << 16 },
	{ "CONNECTION_TERMINATION_DEADLINE", K_DURATION_MS, CFG(drain_ms), 0, 3600000 },
	{ "KEEPALIVE_ENABLED", K_BOOL, CFG(keepalive.enabled), 0, 0 },
	{ "KEEPALIVE_TIME", K_DURATION_S, CFG(keepalive.time_s), 1, 32767 },
	{ "KEEPALIVE_INTERVAL", K_DURATION_S, CFG(keepalive.interval_s), 1, 32767 },
	{ "KEEPALIVE_RETRIES", K_UINT, CFG(keepalive.retries), 1, 127 },
	{ "ZTUNNEL_IO_MULTISHOT", K_BOOL, CFG(io_multishot), 0, 0 },
};

static int apply(struct config *cfg, const struct setting *s, const char *v, char *err, size_t len)
{
	void *field = (char *)cfg + s->offset;
	uint64_t n;
	char *end;

	if (s->kind == K_STRING) {
		*(const char **)field = v;
		return 0;
	}
	if (s->kind == K_WORKERS) {
		int ret = config_parse_workers(v, config_usable_cores(), (unsigned *)field);

		if (ret < 0)
			snprintf(err, len, "%s: \"%s\" is not a number of threads (1..%d), a share of "
				 "the cores (1%%..100%%) or 0 for all of them", s->env, v,
				 CONFIG_MAX_WORKERS);
		return ret;
	}
	if (s->kind == K_BOOL) {	/* as upstream: exactly "true" or "false" */
		if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
			snprintf(err, len, "%s: \"%s\" is not true or false", s->env, v);
			return -EINVAL;
		}
		*(bool *)field = v[0] == 't';
		return 0;
	}
	if (s->kind == K_UINT) {
		errno = 0;
		n = strtoull(v, &end, 0);
		if (errno || end == v || *end || *v == '-')
			goto bad;
	} else {
		if (config_parse_duration_ms(v, &n) < 0)
			goto bad;
		if (s->kind == K_DURATION_S)
			n /= 1000;
	}
	if (n < s->min || n > s->max) {
		snprintf(err, len, "%s: %s is outside %llu..%llu", s->env, v,
			 (unsigned long long)s->min, (unsigned long long)s->max);
		return -EINVAL;
	}
	*(unsigned *)field = (unsigned)n;
	return 0;
bad:
	snprintf(err, len, "%s: \"%s\" is not a valid %s", s->env, v,
		 s->kind == K_UINT ? "number" : "duration (e.g. 30s, 5m, 24h)");
	return -EINVAL;
}

int config_from_env(struct config *cfg, char *err, size_t len)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->trust_domain = "cluster.local";
	cfg->secret_ttl = 24 * 3600;
	cfg->workers = 0;	/* unset: max(2, 25% of the cores), derive.c (ZTUNNEL_CPU_LIMIT) */
	cfg->cni_socket = "/var/run/ztunnel/cni.sock";
	cfg->state_dir = "/var/run/ztunnel";
	cfg->redirect_mode = NULL;	/* nftables, or none when istio-cni enrolls (INPOD_UDS) */
	cfg->bpf_pin_dir = REDIRECT_BPF_PIN_DIR;
	cfg->cluster_id = "Kubernetes";
	cfg->cluster_domain = "cluster.local";
	cfg->log_level = NULL;		/* unset: RUST_LOG's level, else info */
	cfg->log_format = "text";
	cfg->metrics_mode = "on";
	cfg->grace_seconds = CONFIG_UNSET;
	cfg->drain_ms = CONFIG_UNSET;
	cfg->inpod_enabled = true;
	cfg->keepalive = (struct io_keepalive){ true, 180, 180, 9 };
	cfg->admin_port = 15000;
	cfg->metrics_port = 15020;
	cfg->ready_port = 15021;
	cfg->dns_capture = true;	/* upstream's default */
	cfg->least_loaded = true;
	cfg->ipv6_enabled = true;	/* upstream's default */
	cfg->dns_proxy_addr = "127.0.0.1:15053";
	hbone_settings_default(&cfg->hbone);
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		const char *v = getenv(settings[i].env);

		if (v && *v && apply(cfg, &settings[i], v, err, len) < 0)
			return -EINVAL;
	}
	if (config_derive(cfg, err, len) < 0)
		return -EINVAL;
	if (!cfg->redirect_mode)
		cfg->redirect_mode = cfg->inpod_uds ? "none" : "nftables";
	if (!redirect_backend(cfg->redirect_mode)) {
		snprintf(err, len, "ZTUNNEL_REDIRECT: \"%s\" is not nftables, ebpf or none", cfg->redirect_mode);
		return -EINVAL;
	}
	if (cfg->bpf_sockmap && strcmp(cfg->redirect_mode, "ebpf") != 0) {
		/* the pairs are found by their addresses: only the NAT-less capture keeps them */
		snprintf(err, len, "ZTUNNEL_BPF_SOCKMAP=true needs ZTUNNEL_REDIRECT=ebpf (is %s)",
			 cfg->redirect_mode);
		return -EINVAL;
	}
	if (!cfg->bpf_cgroup)
		cfg->bpf_cgroup = redirect_sockmap_default_cgroup();
	if (redirect_mark_check(cfg->hbone.mark, err, len) < 0)
		return -EINVAL;
	if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0) {
		snprintf(err, len, "LOG_FORMAT: \"%s\" is not text or json", cfg->log_format);
		return -EINVAL;
	}
	if (strcmp(cfg->metrics_mode, "on") != 0 && strcmp(cfg->metrics_mode, "off") != 0) {
		snprintf(err, len, "ZTUNNEL_METRICS: \"%s\" is not on or off", cfg->metrics_mode);
		return -EINVAL;
	}
	if (!cfg->ca_cert != !cfg->ca_key) {
		snprintf(err, len, "ZTUNNEL_CA_CERT and ZTUNNEL_CA_KEY go together");
		return -EINVAL;
	}
	return 0;
}
