/* main: wires the modules together and runs the control thread (enrollment, reload, drain). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <ztunnel/addr.h>
#include <ztunnel/admin.h>
#include <ztunnel/ca.h>
#include <ztunnel/config.h>
#include <ztunnel/inpod.h>
#include <ztunnel/io.h>
#include <ztunnel/localcfg.h>
#include <ztunnel/log.h>
#include <ztunnel/metrics.h>
#include <ztunnel/proxy.h>
#include <ztunnel/dns.h>
#include <ztunnel/redirect.h>
#include <ztunnel/state.h>
#include <ztunnel/tls.h>
#include <ztunnel/xds.h>

/* The control thread's view of the agent; admin callbacks read it from their thread. */
struct agent {
	struct config cfg;
	struct state_store *store;
	struct tls_ca *ca;
	struct metrics *metrics;
	struct proxy *px;
	struct inpod *ip;
	struct inpod_cni_server *cni;
	struct inpod_zds_client *zds;	/* istio-cni mode (INPOD_UDS) */
	struct xds_client *xds;		/* XDS_ADDRESS mode */
	struct ca_client *ca_client;	/* CA_ADDRESS mode */
	struct admin *admin;
	struct localcfg_watch *watch;	/* LOCAL_XDS_PATH mode */
	uint64_t next_trim_ms;		/* next hand-back of free memory to the system */
	struct redirect redirect;	/* the capture backend and the agent's mark */
	struct dns_settings dns_set;	/* ISTIO_META_DNS_CAPTURE, DNS_PROXY_ADDR, DNS_UPSTREAMS */
	struct dns *dns;		/* the DNS proxy on the workers */
	int ready;			/* atomic */
	int drain_requested;		/* atomic: set by /quitquitquit */
};

static struct state_snapshot *load_state(const struct config *cfg, char *err, size_t len)
{
	if (cfg->xds_address)
		return state_snapshot_new();	/* filled by the xDS client */
	if (cfg->local_xds_path)
		return localcfg_load_file(cfg->local_xds_path, err, len);
	/* LOCAL_XDS set but empty is refused like an empty file, not taken for "no mesh" */
	if (cfg->local_xds || getenv("LOCAL_XDS"))
		return localcfg_load_buffer("LOCAL_XDS", cfg->local_xds ? cfg->local_xds : "",
					    cfg->local_xds ? strlen(cfg->local_xds) : 0, err, len);
	log_warn("no LOCAL_XDS_PATH: starting with an empty mesh", NULL);
	return state_snapshot_new();
}

static void publish(struct agent *a, struct state_snapshot *snap)
{
	log_info("configuration loaded", "workloads=%zu services=%zu policies=%zu "
		 "peer_authentications=%zu node=%s", snap->n_workloads, snap->n_services,
		 snap->n_policies, snap->n_peer_auths, a->cfg.node_name ? a->cfg.node_name : "-");
	state_store_publish(a->store, snap);
}

/* Applies LOCAL_XDS_PATH once a change is complete (at once when forced); the watch logs a
 * refused file and the old state stays. */
static void maybe_reload(struct agent *a, bool force)
{
	struct state_snapshot *snap = localcfg_watch_check(a->watch, force);

	if (snap)
		publish(a, snap);
}

static struct tls_ca *load_ca(const struct config *cfg)
{
	char err[512];
	struct tls_ca *ca;

	if (!cfg->ca_cert) {
		log_info("no ZTUNNEL_CA_CERT: using a throw-away CA (only this agent trusts it)", NULL);
		return tls_ca_generate(cfg->trust_domain);
	}
	ca = tls_ca_load(cfg->ca_cert, cfg->ca_key, err, sizeof(err));
	if (!ca)
		fprintf(stderr, "ztunnel: cannot load the signing CA: %s\n", err);
	return ca;
}

/* Certificate sources for the pods' identities: the signing CA given by files, or Istio's CA. */
static struct tls_cert *issue_local(void *ctx, const char *id, unsigned ttl, X509 **root,
				   char *err, size_t len)
{
	struct agent *a = ctx;
	struct tls_cert *cert = tls_ca_issue(a->ca, id, ttl);

	if (!cert) {
		snprintf(err, len, "cannot issue a certificate for %s: %s", id, strerror(errno));
		return NULL;
	}
	X509_up_ref(a->ca->cert);
	*root = a->ca->cert;
	return cert;
}

static struct tls_cert *issue_remote(void *ctx, const char *id, unsigned ttl, X509 **root,
				     char *err, size_t len)
{
	return ca_client_issue(((struct agent *)ctx)->ca_client, id, root, err, len);
}

static int signal_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);	/* before any thread: they inherit it */
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC);
}

/* ---- admin sources (called on the admin thread) ---- */

static void dump_config(void *ctx, FILE *out)
{
	struct agent *a = ctx;
	struct state_snapshot *snap = state_store_current(a->store);

	fputc('{', out);
	if (snap)
		state_dump_json(snap, out);
	else
		fputs("\"workloads\":[],\"services\":[],\"policies\":[],\"peerAuthentications\":[]", out);
	fputc(',', out);
	inpod_dump_json(a->ip, out);
	fputc(',', out);
	redirect_dump_json(&a->redirect, out);
	fputc(',', out);
	config_dump_json(&a->cfg, out);
	fputc(',', out);
	dns_dump_json(&a->dns_set, out);
	fputc(',', out);
	admin_limits_dump_json(out);
	fputs("}\n", out);
	state_snapshot_put(&snap);
}

static bool is_ready(void *ctx)
{
	struct agent *a = ctx;

	return __atomic_load_n(&a->ready, __ATOMIC_ACQUIRE) &&
	       (!a->xds || xds_client_synced(a->xds)) &&
	       (!a->zds || inpod_zds_client_synced(a->zds));
}

static void request_drain(void *ctx)
{
	__atomic_store_n(&((struct agent *)ctx)->drain_requested, 1, __ATOMIC_RELEASE);
}

/* Stops accepting, lets open connections finish until the grace period ends. */
static void drain(struct agent *a)
{
	uint64_t deadline = io_now_ms() + a->cfg.drain_ms;
	int64_t open;

	__atomic_store_n(&a->ready, 0, __ATOMIC_RELEASE);
	proxy_drain(a->px);
	inpod_unlisten_all(a->ip);
	log_info("draining", "deadline=%ums open_connections=%lld", a->cfg.drain_ms,
		 (long long)metrics_gauge_get(a->metrics, METRICS_ACTIVE_CONNECTIONS));
	while ((open = metrics_gauge_get(a->metrics, METRICS_ACTIVE_CONNECTIONS)) > 0 &&
	       io_now_ms() < deadline)
		usleep(50 * 1000);
	if (open > 0)
		log_warn("grace period over: closing connections still open", "open=%lld",
			 (long long)open);
	else
		log_info("drained: no connection left", NULL);
}

static void control_loop(struct agent *a, int sfd)
{
	struct pollfd fds[64];

	for (;;) {
		int timeout = 200, n = inpod_cni_pollfds(a->cni, fds, 60), z = 0;

		if (a->zds)
			z = inpod_zds_client_pollfds(a->zds, fds + n, 2, &timeout);
		fds[n + z] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		fds[n + z + 1] = (struct pollfd){ .fd = localcfg_watch_fd(a->watch), .events = POLLIN };
		if (poll(fds, (nfds_t)(n + z) + 2, timeout < 200 ? timeout : 200) < 0 && errno != EINTR)
			break;
		if (fds[n + z].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGHUP) {
				maybe_reload(a, true);
				continue;
			}
			log_info("shutting down", "signal=%u", si.ssi_signo);
			break;
		}
		if (__atomic_load_n(&a->drain_requested, __ATOMIC_ACQUIRE)) {
			log_info("shutting down", "reason=quitquitquit");
			break;
		}
		inpod_cni_handle(a->cni, fds, n);
		if (a->zds)
			inpod_zds_client_handle(a->zds, fds + n, z);
		inpod_rotate(a->ip);
		if (io_now_ms() >= a->next_trim_ms) {
			io_mem_trim();
			a->next_trim_ms = io_now_ms() + 5000;
		}
		maybe_reload(a, false);
		inpod_retry_pending(a->ip);
	}
	drain(a);
}

static int usage(void)
{
	fprintf(stderr, "usage: ztunnel [proxy ztunnel] run the agent (settings from the environment)\n"
			"       ztunnel ca-init CERT KEY [TRUST_DOMAIN]\n"
			"       ztunnel cert-issue CA_CERT CA_KEY SPIFFE_ID CERT KEY [TTL_SECONDS]\n"
			"       ztunnel redirect-clean  remove what the ebpf backend pinned "
			"(ZTUNNEL_BPF_PIN_DIR) and its pods' rules\n");
	return 2;
}

/* `ztunnel redirect-clean`: the settings of the agent it cleans up after, from the env. */
static int redirect_clean_main(void)
{
	struct config cfg;
	struct redirect r;
	char err[512];

	if (config_from_env(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "ztunnel: %s\n", err);
		return 2;
	}
	if (inpod_netns_init() < 0) {
		fprintf(stderr, "ztunnel: redirect-clean: cannot open the agent's netns: %s\n",
			strerror(errno));
		return 1;
	}
	r = (struct redirect){ redirect_backend("ebpf"), cfg.hbone.mark, cfg.bpf_pin_dir };
	return redirect_clean(&r, cfg.state_dir, inpod_in_netns, stdout) < 0 ? 1 : 0;
}

/* On-demand look-ups: the datapath and enrollment ask the xDS client. */
static int demand(void *ctx, const char *name)
{
	return xds_client_demand(((struct agent *)ctx)->xds, name);
}

static bool demand_wait(void *ctx, const char *name, int timeout_ms)
{
	return xds_client_demand_wait(((struct agent *)ctx)->xds, name, timeout_ms);
}

static void demand_answered(void *ctx, const char *name)
{
	proxy_demand_answered(((struct agent *)ctx)->px, name);
}

static int start_serving(struct agent *a)
{
	struct admin_config ac = { .admin_port = (uint16_t)a->cfg.admin_port,
				   .metrics_port = (uint16_t)a->cfg.metrics_port,
				   .ready_port = (uint16_t)a->cfg.ready_port };
	struct admin_sources src = { .metrics = a->metrics, .config_dump = dump_config,
				     .ready = is_ready, .drain = request_drain, .ctx = a };
	char err[400];
	int lfd, swept;

	/* one mark: the agent's sockets (hbone settings) and the backend's rules */
	a->redirect = (struct redirect){ redirect_backend(a->cfg.redirect_mode), a->cfg.hbone.mark,
					 a->cfg.bpf_pin_dir };
	if (redirect_probe(&a->redirect, err, sizeof(err)) < 0 ||
	    (a->cfg.bpf_sockmap &&
	     redirect_sockmap_start(a->cfg.bpf_cgroup, a->cfg.hbone.mark, err, sizeof(err)) < 0)) {
		fprintf(stderr, "ztunnel: %s\n", err);
		return -1;
	}
	metrics_set_redirect_backend(a->metrics, a->redirect.ops->name);
	swept = redirect_restore(&a->redirect);	/* before the pods come back */
	if (swept > 0)
		log_info("capture of gone pods removed", "backend=%s pods=%d", a->redirect.ops->name,
			 swept);
	a->px = proxy_new(a->cfg.workers, a->store, &a->cfg.hbone, a->metrics,
			  strcmp(a->cfg.metrics_mode, "off") != 0);
	if (!a->px)
		return -1;
	proxy_set_redirect(a->px, &a->redirect);
	if (!a->cfg.least_loaded)
		proxy_set_hash_placement(a->px);
	{
		struct io_worker *ws[CONFIG_MAX_WORKERS];

		for (unsigned i = 0; i < a->cfg.workers && i < CONFIG_MAX_WORKERS; i++)
			ws[i] = proxy_io_worker(a->px, i);
		a->dns = dns_new(&a->dns_set, ws, a->cfg.workers, a->store, a->metrics);
		if (!a->dns)
			return -1;
		proxy_set_dns(a->px, a->dns);
	}
	if (a->xds && a->cfg.xds_on_demand) {
		proxy_set_demand(a->px, demand, a);
		xds_client_on_answer(a->xds, demand_answered, a);
	}
	a->ip = inpod_new(&(struct inpod_config){
		.px = a->px, .store = a->store, .cert_ttl = a->cfg.secret_ttl,
		.issue = a->ca_client ? issue_remote : issue_local, .issue_ctx = a,
		.state_dir = a->cfg.state_dir, .metrics = a->metrics,
		.redirect = &a->redirect,
		.demand_wait = a->cfg.xds_on_demand ? demand_wait : NULL, .demand_ctx = a,
		.cluster_id = a->cfg.cluster_id });
	if (!a->ip)
		return -1;
	a->admin = admin_start(&ac, &src);
	if (!a->admin) {
		fprintf(stderr, "ztunnel: cannot open the admin ports %u/%u/%u: %s\n", ac.admin_port,
			ac.metrics_port, ac.ready_port, strerror(errno));
		return -1;
	}
	if (a->cfg.inpod_uds) {
		/* istio-cni owns the truth: it replays its snapshot on every connection */
		a->zds = inpod_zds_client_new(a->ip, a->cfg.inpod_uds);
		if (!a->zds)
			return -1;
	} else {
		inpod_restore(a->ip);
	}
	lfd = inpod_cni_listen(a->cfg.cni_socket);
	if (lfd < 0) {
		fprintf(stderr, "ztunnel: cannot listen on %s: %s\n", a->cfg.cni_socket,
			strerror(-lfd));
		return -1;
	}
	a->cni = inpod_cni_server_new(a->ip, lfd);
	return a->cni ? 0 : -1;
}

int main(int argc, char **argv)
{
	static struct agent a;
	struct state_snapshot *snap;
	char err[512];
	int sfd;

	if (argc > 1 && tls_tool_handles(argv[1]))
		return tls_tool_main(argc - 1, argv + 1);
	if (argc > 1 && ca_tool_handles(argv[1]))
		return ca_tool_main(argc - 1, argv + 1);
	if (argc == 2 && strcmp(argv[1], "redirect-clean") == 0)
		return redirect_clean_main();
	/* upstream's image runs "ztunnel proxy ztunnel": the same as no arguments */
	if (argc == 3 && strcmp(argv[1], "proxy") == 0 && strcmp(argv[2], "ztunnel") == 0)
		argc = 1;
	if (argc > 1)
		return usage();
	io_mem_init();
	if (config_from_env(&a.cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "ztunnel: %s\n", err);
		return 2;
	}
	log_set_level_name(a.cfg.log_level);
	log_set_json(strcmp(a.cfg.log_format, "json") == 0);
	io_sock_set_keepalive(&a.cfg.keepalive);
	io_sock_set_multishot(a.cfg.io_multishot);
	if (a.cfg.ipv6_enabled && !io_addr_ipv6_supported()) {
		log_warn("IPv6 is not available in this kernel (socket(AF_INET6): address family "
			 "not supported): IPv4 only, as with IPV6_ENABLED=false", NULL);
		a.cfg.ipv6_enabled = false;
	}
	a.cfg.hbone.ipv6 = a.cfg.ipv6_enabled;
	admin_raise_nofile();
	sfd = signal_fd();
	if (a.cfg.local_xds_path && !a.cfg.xds_address &&
	    !(a.watch = localcfg_watch_new(a.cfg.local_xds_path)))
		return 1;
	snap = load_state(&a.cfg, err, sizeof(err));
	if (!snap) {
		fprintf(stderr, "ztunnel: invalid configuration: %s\n", err);
		return 1;
	}
	if (a.cfg.ca_address)
		a.ca_client = ca_client_new(&(struct ca_client_config){
			.address = a.cfg.ca_address, .root_ca_path = a.cfg.ca_root_ca,
			.token_path = a.cfg.auth_token, .cluster_id = a.cfg.cluster_id,
			/* connect and call each get this: together under the CNI plugin's 10 s */
			.ttl_seconds = a.cfg.secret_ttl, .timeout_ms = 4000 });
	else
		a.ca = load_ca(&a.cfg);
	if (dns_settings_init(&a.dns_set, a.cfg.dns_capture, a.cfg.dns_proxy_addr,
			      a.cfg.dns_upstreams, "/etc/resolv.conf", a.cfg.cluster_domain,
			      a.cfg.hbone.mark, err, sizeof(err)) < 0) {
		fprintf(stderr, "ztunnel: %s\n", err);
		return 1;
	}
	dns_settings_ipv6(&a.dns_set, a.cfg.ipv6_enabled);
	if (a.dns_set.enabled && !a.dns_set.n_upstreams)
		log_warn("dns proxy has no upstream resolver: names outside the mesh get SERVFAIL",
			 "resolv_conf=/etc/resolv.conf%s", "");
	a.store = state_store_new();
	a.metrics = metrics_new();
	if ((!a.ca && !a.ca_client) || !a.store || !a.metrics || inpod_netns_init() < 0)
		return 1;
	publish(&a, snap);
	if (a.cfg.xds_address) {
		a.xds = xds_client_start(&(struct xds_config){
			.address = a.cfg.xds_address, .root_ca_path = a.cfg.xds_root_ca,
			.token_path = a.cfg.auth_token, .cluster_id = a.cfg.cluster_id,
			.node_name = a.cfg.node_name, .pod_name = a.cfg.pod_name,
			.pod_namespace = a.cfg.pod_namespace, .instance_ip = a.cfg.instance_ip,
			.cluster_domain = a.cfg.cluster_domain,
			.on_demand = a.cfg.xds_on_demand }, a.store);
		if (!a.xds) {
			fprintf(stderr, "ztunnel: cannot start the xDS client: %s\n", strerror(errno));
			return 1;
		}
	}
	if (start_serving(&a) < 0)
		return 1;
	__atomic_store_n(&a.ready, 1, __ATOMIC_RELEASE);
	log_info("ready", "workers=%u cni_socket=%s pods=%u admin=127.0.0.1:%u metrics=:%u "
		 "readiness=:%u", a.cfg.workers, a.cfg.cni_socket, inpod_count(a.ip),
		 a.cfg.admin_port, a.cfg.metrics_port, a.cfg.ready_port);
	control_loop(&a, sfd);
	inpod_cni_server_free(&a.cni);
	unlink(a.cfg.cni_socket);
	admin_stop(&a.admin);
	xds_client_stop(&a.xds);
	proxy_free(&a.px);
	redirect_sockmap_stop();
	localcfg_watch_free(&a.watch);
	log_info("stopped", NULL);
	return 0;
}
