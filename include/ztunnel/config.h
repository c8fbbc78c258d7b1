/* config: the agent's settings, read from upstream ztunnel's environment variables. */
#ifndef ZTUNNEL_CONFIG_H
#define ZTUNNEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ztunnel/hbone.h>

struct config {
	const char *local_xds_path;	/* LOCAL_XDS_PATH */
	const char *local_xds;		/* LOCAL_XDS: the same YAML inline */
	const char *node_name;		/* NODE_NAME */
	const char *trust_domain;	/* TRUST_DOMAIN, cluster.local */
	const char *ca_cert;		/* ZTUNNEL_CA_CERT: signing CA certificate (PEM) */
	const char *ca_key;		/* ZTUNNEL_CA_KEY: its private key */
	unsigned secret_ttl;		/* SECRET_TTL, seconds (24h) */
	unsigned workers;		/* ZTUNNEL_WORKER_THREADS: N, N% or 0, max(2, 25%) */
	const char *cni_socket;		/* ZTUNNEL_CNI_SOCKET, /var/run/ztunnel/cni.sock */
	const char *state_dir;		/* ZTUNNEL_STATE_DIR, /var/run/ztunnel */
	const char *redirect_mode;	/* ZTUNNEL_REDIRECT: nftables (default), ebpf or none */
	const char *bpf_pin_dir;	/* ZTUNNEL_BPF_PIN_DIR, /sys/fs/bpf/ztunnel (ebpf) */
	bool bpf_sockmap;		/* ZTUNNEL_BPF_SOCKMAP: the socket fast path (ebpf only) */
	const char *bpf_cgroup;		/* ZTUNNEL_BPF_CGROUP: where sock_ops attaches */
	const char *log_level;		/* ZTUNNEL_LOG: error|warn|info|debug */
	const char *log_format;		/* LOG_FORMAT: text or json */
	const char *metrics_mode;	/* ZTUNNEL_METRICS: on (default) or off */
	unsigned grace_seconds;		/* TERMINATION_GRACE_PERIOD_SECONDS, 5 */
	unsigned admin_port, metrics_port, ready_port;	/* 15000, 15020, 15021 */
	/* control plane (issue 4): unset = local config, local CA, our CNI plugin */
	const char *xds_address;	/* XDS_ADDRESS: delta ADS instead of LOCAL_XDS_PATH */
	const char *xds_root_ca;	/* XDS_ROOT_CA */
	bool xds_on_demand;		/* XDS_ON_DEMAND: addresses looked up when needed */
	const char *ca_address;		/* CA_ADDRESS: Istio's CA instead of ZTUNNEL_CA_* */
	const char *ca_root_ca;		/* CA_ROOT_CA */
	const char *auth_token;		/* AUTH_TOKEN: path of the bearer token file */
	const char *cluster_id;		/* CLUSTER_ID, Kubernetes */
	const char *cluster_domain;	/* CLUSTER_DOMAIN, cluster.local */
	const char *pod_name;		/* POD_NAME */
	const char *pod_namespace;	/* POD_NAMESPACE */
	const char *instance_ip;	/* INSTANCE_IP */
	const char *inpod_uds;		/* INPOD_UDS: istio-cni's ZDS socket (enrollment by istio-cni) */
	bool dns_capture;		/* ISTIO_META_DNS_CAPTURE, true: the DNS proxy in each pod */
	const char *dns_proxy_addr;	/* DNS_PROXY_ADDR, 127.0.0.1:15053 (inside the pods) */
	const char *dns_upstreams;	/* DNS_UPSTREAMS: "ip[:port],..." instead of /etc/resolv.conf */
	struct hbone_settings hbone;	/* HTTP2_*, POOL_*, PACKET_MARK */
};

/*
 * Fills cfg from the environment (upstream's variable names where upstream has one).
 * 0, or -EINVAL with "VARIABLE: what is wrong" in err.
 */
int config_from_env(struct config *cfg, char *err, size_t errlen);
/* Parses "90", "90s", "5m", "24h", "100ms" into milliseconds. 0 or -EINVAL. */
int config_parse_duration_ms(const char *text, uint64_t *ms);
#define CONFIG_MAX_WORKERS 64
/* ZTUNNEL_WORKER_THREADS as upstream: "4" threads, "25%" of cores (rounded up) or "0" for all
 * of them (these two capped at CONFIG_MAX_WORKERS). 0, or -EINVAL (not one of those) / -ERANGE
 * (a number above CONFIG_MAX_WORKERS). */
int config_parse_workers(const char *text, unsigned cores, unsigned *out);

#endif
