/* config/derive: upstream's precedence rules and in-cluster defaults, applied after the table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/config.h>
#include <ztunnel/log.h>
#include <ztunnel/state.h>

#include "config-int.h"

static const struct { const char *name; const char *ours; int rank; } rust_levels[] = {
	{ "off", "error", 0 },   { "error", "error", 0 }, { "warn", "warn", 1 },
	{ "info", "info", 2 },   { "debug", "debug", 3 }, { "trace", "debug", 3 },
};

static int level_rank(const char *word, size_t n)
{
	for (size_t i = 0; i < sizeof(rust_levels) / sizeof(rust_levels[0]); i++)
		if (strlen(rust_levels[i].name) == n && strncasecmp(word, rust_levels[i].name, n) == 0)
			return (int)i;
	return -1;
}

static bool ztunnel_target(const char *t, size_t n)
{
	return (n == 7 && strncmp(t, "ztunnel", 7) == 0) ||
	       (n > 9 && strncmp(t, "ztunnel::", 9) == 0);
}

int config_rust_log_level(const char *rust_log, const char **level, char *err, size_t len)
{
	int bare = -1, ours = -1;
	const char *p = rust_log;

	while (*p) {
		size_t n = strcspn(p, ","), tn;
		const char *eq = memchr(p, '=', n);
		int lv;

		while (n && (*p == ' ' || *p == '\t'))
			p++, n--;
		tn = eq ? (size_t)(eq - p) : n;
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == 0)
			goto next;
		if (!eq) {		/* "level", or a target alone (all its levels) */
			lv = level_rank(p, n);
			if (lv >= 0)
				bare = lv;
			else if (ztunnel_target(p, n))
				ours = 4;	/* "debug" */
			goto next;
		}
		lv = level_rank(eq + 1, n - tn - 1);
		if (lv < 0) {
			snprintf(err, len, "RUST_LOG: \"%.*s\" is not a level (error, warn, info, "
				 "debug, trace, off)", (int)(n - tn - 1), eq + 1);
			return -EINVAL;
		}
		if (ztunnel_target(p, tn) && (ours < 0 || rust_levels[lv].rank > rust_levels[ours].rank))
			ours = lv;
next:
		p += strcspn(p, ",");
		if (*p)
			p++;
	}
	*level = ours >= 0 ? rust_levels[ours].ours : bare >= 0 ? rust_levels[bare].ours : "info";
	return 0;
}

/* "host:port" -> "https://host:port" in buf, as upstream completes a bare address. */
static int with_scheme(const char **addr, char *buf, size_t size, const char *env, char *err,
		       size_t len)
{
	if (!*addr || strstr(*addr, "://"))
		return 0;
	if ((size_t)snprintf(buf, size, "https://%s", *addr) >= size) {
		snprintf(err, len, "%s: address too long", env);
		return -EINVAL;
	}
	*addr = buf;
	return 0;
}

static void default_file(const char **field, const char *path)
{
	if (!*field && access(path, R_OK) == 0)
		*field = path;
}

static unsigned drain_from_grace(unsigned secs)
{
	unsigned d = secs > 10 ? secs - 5 : secs > 1 ? secs - 1 : 1;

	return d * 1000;
}

int config_derive(struct config *cfg, char *err, size_t len)
{
	const char *k8s = getenv("KUBERNETES_SERVICE_HOST");
	const char *workers_env = getenv("ZTUNNEL_WORKER_THREADS");
	unsigned cpus;

	if (cfg->meta_cluster_id)
		cfg->cluster_id = cfg->meta_cluster_id;
	if (cfg->log_level && log_level_from_name(cfg->log_level) < 0) {
		snprintf(err, len, "ZTUNNEL_LOG: \"%s\" is not a level (error, warn, info, debug)",
			 cfg->log_level);
		return -EINVAL;
	}
	if (!cfg->log_level && cfg->rust_log &&
	    config_rust_log_level(cfg->rust_log, &cfg->log_level, err, len) < 0)
		return -EINVAL;
	if (!cfg->log_level)
		cfg->log_level = "info";
	if (!cfg->inpod_enabled) {
		snprintf(err, len, "INPOD_ENABLED: false (upstream's shared node proxy) is not "
			 "supported: this agent serves each pod inside its own network namespace");
		return -EINVAL;
	}
	/* upstream's chart says INPOD_ENABLED=true and relies on upstream's INPOD_UDS default:
	 * istio-cni enrolls pods (and has installed the capture rules) */
	if (getenv("INPOD_ENABLED") && *getenv("INPOD_ENABLED") && !cfg->inpod_uds)
		cfg->inpod_uds = CONFIG_INPOD_UDS;
	cfg->in_kubernetes = k8s && *k8s;
	if (cfg->in_kubernetes) {	/* upstream's defaults inside a cluster */
		if (!cfg->xds_address && !cfg->local_xds_path && !getenv("LOCAL_XDS"))
			cfg->xds_address = CONFIG_K8S_ISTIOD;
		if (!cfg->ca_address && !cfg->ca_cert)
			cfg->ca_address = CONFIG_K8S_ISTIOD;
		default_file(&cfg->xds_root_ca, CONFIG_K8S_ROOT_CERT);
		default_file(&cfg->ca_root_ca, CONFIG_K8S_ROOT_CERT);
		default_file(&cfg->auth_token, CONFIG_K8S_TOKEN);
	}
	if (with_scheme(&cfg->xds_address, cfg->xds_address_buf, sizeof(cfg->xds_address_buf),
			"XDS_ADDRESS", err, len) < 0 ||
	    with_scheme(&cfg->ca_address, cfg->ca_address_buf, sizeof(cfg->ca_address_buf),
			"CA_ADDRESS", err, len) < 0)
		return -EINVAL;
	if (cfg->drain_ms == CONFIG_UNSET)
		cfg->drain_ms = cfg->grace_seconds == CONFIG_UNSET ? 5000
								 : drain_from_grace(cfg->grace_seconds);
	/* upstream counts ZTUNNEL_CPU_LIMIT's CPUs, when given, for "N%", "0" and the default */
	cpus = cfg->cpu_limit ? cfg->cpu_limit : config_usable_cores();
	if (cfg->cpu_limit && cfg->workers && workers_env && *workers_env &&
	    config_parse_workers(workers_env, cpus, &cfg->workers) < 0)
		return -EINVAL;		/* parsed once already: cannot fail now */
	if (cfg->workers == 0) {	/* upstream: max(2, 25% of the cores) */
		cfg->workers = (cpus + 3) / 4 > 2 ? (cpus + 3) / 4 : 2;
		if (cfg->workers > CONFIG_MAX_WORKERS)
			cfg->workers = CONFIG_MAX_WORKERS;
	}
	return 0;
}

void config_dump_json(const struct config *cfg, FILE *out)
{
	const char *strs[][2] = {
		{ "clusterId", cfg->cluster_id },	{ "network", cfg->network },
		{ "serviceAccount", cfg->service_account }, { "xdsAddress", cfg->xds_address },
		{ "caAddress", cfg->ca_address },	{ "logLevel", cfg->log_level },
	};

	fputs("\"agent\":{", out);
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		fprintf(out, "\"%s\":", strs[i][0]);
		state_json_string(out, strs[i][1] ? strs[i][1] : "");
		fputc(',', out);
	}
	fprintf(out, "\"inKubernetes\":%s,\"workers\":%u,\"drainDeadlineMs\":%u,"
		"\"ioMultishot\":%s,\"ipv6\":%s,"
		"\"keepalive\":{\"enabled\":%s,\"time\":%u,\"interval\":%u,\"retries\":%u}}",
		cfg->in_kubernetes ? "true" : "false", cfg->workers, cfg->drain_ms,
		cfg->io_multishot ? "true" : "false", cfg->ipv6_enabled ? "true" : "false",
		cfg->keepalive.enabled ? "true" : "false", cfg->keepalive.time_s,
		cfg->keepalive.interval_s, cfg->keepalive.retries);
}
