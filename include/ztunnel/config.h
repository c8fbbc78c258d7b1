/* config: the agent's settings, read from upstream ztunnel's environment variables. */
#ifndef ZTUNNEL_CONFIG_H
#define ZTUNNEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ztunnel/hbone.h>
#include <ztunnel/sock.h>

struct config {
	const char *local_xds_path;	/* LOCAL_XDS_PATH */
	const char *local_xds;		/* LOCAL_XDS: the same YAML inline */
	const char *node_name;		/* NODE_NAME */
	const char *trust_domain;	/* TRUST_DOMAIN, cluster.local */
	const char *ca_cert;		/* ZTUNNEL_CA_CERT: signing CA certificate (PEM) */
	const char *ca_key;		/* ZTUNNEL_CA_KEY: its private key */
	unsigned secret_ttl;		/* SECRET_TTL, seconds (24h) */
	unsigned workers;		/* ZTUNNEL_WORKER_THREADS: N, N% or 0, max(2, 25%) */
	unsigned cpu_limit;		/* ZTUNNEL_CPU_LIMIT: the cores N%, 0 and the default count */
	const char *cni_socket;		/* ZTUNNEL_CNI_SOCKET, /var/run/ztunnel/cni.sock */
	const char *state_dir;		/* ZTUNNEL_STATE_DIR, /var/run/ztunnel */
	const char *redirect_mode;	/* ZTUNNEL_REDIRECT: nftables (default), ebpf or none */
	const char *bpf_pin_dir;	/* ZTUNNEL_BPF_PIN_DIR, /sys/fs/bpf/ztunnel (ebpf) */
	bool bpf_sockmap;		/* ZTUNNEL_BPF_SOCKMAP: the socket fast path (ebpf only) */
	bool least_loaded;		/* ZTUNNEL_LEAST_LOADED_WORKER: BPF placement (true) */
	const char *bpf_cgroup;		/* ZTUNNEL_BPF_CGROUP: where sock_ops attaches */
	const char *log_level;		/* ZTUNNEL_LOG, else the level in RUST_LOG: error|warn|info|debug */
	const char *rust_log;		/* RUST_LOG as upstream's chart sets it ("info", "ztunnel=debug") */
	const char *log_format;		/* LOG_FORMAT: text or json */
	const char *metrics_mode;	/* ZTUNNEL_METRICS: on (default) or off */
	unsigned grace_seconds;		/* TERMINATION_GRACE_PERIOD_SECONDS (Kubernetes' grace period) */
	unsigned drain_ms;		/* how long a drain lets connections finish: upstream's
					 * CONNECTION_TERMINATION_DEADLINE, else derived from the grace
					 * period (-5 s, -1 s when <= 10 s, at least 1 s), else 5 s */
	unsigned admin_port, metrics_port, ready_port;	/* 15000, 15020, 15021 */
	/* control plane (issue 4): unset = local config, local CA, our CNI plugin */
	const char *xds_address;	/* XDS_ADDRESS: delta ADS instead of LOCAL_XDS_PATH */
	const char *xds_root_ca;	/* XDS_ROOT_CA */
	bool xds_on_demand;		/* XDS_ON_DEMAND: addresses looked up when needed */
	const char *ca_address;		/* CA_ADDRESS: Istio's CA instead of ZTUNNEL_CA_* */
	const char *ca_root_ca;		/* CA_ROOT_CA */
	const char *auth_token;		/* AUTH_TOKEN: path of the bearer token file */
	const char *cluster_id;		/* ISTIO_META_CLUSTER_ID, else CLUSTER_ID, else Kubernetes */
	const char *meta_cluster_id;	/* ISTIO_META_CLUSTER_ID (upstream's chart sets this one) */
	const char *network;		/* NETWORK: this node's network (one network only) */
	const char *service_account;	/* SERVICE_ACCOUNT: the agent's own, from the downward API */
	bool inpod_enabled;		/* INPOD_ENABLED: must be true; set, it makes INPOD_UDS default
					 * to upstream's /var/run/ztunnel/ztunnel.sock (istio-cni) */
	bool in_kubernetes;		/* KUBERNETES_SERVICE_HOST set: in-cluster defaults apply */
	const char *cluster_domain;	/* CLUSTER_DOMAIN, cluster.local */
	const char *pod_name;		/* POD_NAME */
	const char *pod_namespace;	/* POD_NAMESPACE */
	const char *instance_ip;	/* INSTANCE_IP */
	const char *inpod_uds;		/* INPOD_UDS: istio-cni's ZDS socket (enrollment by istio-cni) */
	bool dns_capture;		/* ISTIO_META_DNS_CAPTURE, true: the DNS proxy in each pod */
	bool ipv6_enabled;		/* IPV6_ENABLED, true: pod listeners on [::] (dual stack),
					 * AAAA answers; false (or a kernel without IPv6): IPv4 */
	const char *dns_proxy_addr;	/* DNS_PROXY_ADDR, 127.0.0.1:15053 (inside the pods) */
	const char *dns_upstreams;	/* DNS_UPSTREAMS: "ip[:port],..." instead of /etc/resolv.conf */
	struct hbone_settings hbone;	/* HTTP2_*, POOL_*, PACKET_MARK */
	struct io_keepalive keepalive;	/* KEEPALIVE_ENABLED/TIME/INTERVAL/RETRIES */
	bool io_multishot;		/* ZTUNNEL_IO_MULTISHOT, false; true: reads from buffer rings */
	/* storage for values the agent completes (a scheme added to a bare host:port) */
	char xds_address_buf[256], ca_address_buf[256];
};

/* Upstream's in-cluster defaults (KUBERNETES_SERVICE_HOST set). */
#define CONFIG_K8S_ISTIOD	"https://istiod.istio-system.svc:15012"
#define CONFIG_K8S_ROOT_CERT	"./var/run/secrets/istio/root-cert.pem"
#define CONFIG_K8S_TOKEN	"./var/run/secrets/tokens/istio-token"
/* upstream's INPOD_UDS, taken when INPOD_ENABLED is set (as upstream's chart does) */
#define CONFIG_INPOD_UDS	"/var/run/ztunnel/ztunnel.sock"

/*
 * Fills cfg from the environment (upstream's variable names where upstream has one).
 * 0, or -EINVAL with "VARIABLE: what is wrong" in err.
 */
int config_from_env(struct config *cfg, char *err, size_t errlen);
/* Writes "agent":{...}, the settings a deployment sets (cluster, network, workers, drain,
 * keepalive, log level), as one JSON member for /config_dump. */
void config_dump_json(const struct config *cfg, FILE *out);
/* Parses "90", "90s", "5m", "24h", "100ms" into milliseconds. 0 or -EINVAL. */
int config_parse_duration_ms(const char *text, uint64_t *ms);
#define CONFIG_MAX_WORKERS 64
/* ZTUNNEL_WORKER_THREADS as upstream: "4" threads, "25%" of cores (rounded up) or "0" for all
 * of them (these two capped at CONFIG_MAX_WORKERS). 0, or -EINVAL (not one of those) / -ERANGE
 * (a number above CONFIG_MAX_WORKERS). */
int config_parse_workers(const char *text, unsigned cores, unsigned *out);

#endif
