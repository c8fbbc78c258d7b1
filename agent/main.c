/* main: wires the modules together and runs the control thread (enrollment, signals). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <ztunnel/config.h>
#include <ztunnel/inpod.h>
#include <ztunnel/localcfg.h>
#include <ztunnel/log.h>
#include <ztunnel/proxy.h>
#include <ztunnel/state.h>
#include <ztunnel/tls.h>

static struct state_snapshot *load_state(const struct config *cfg)
{
	char err[512];
	struct state_snapshot *snap;

	if (cfg->local_xds_path)
		snap = localcfg_load_file(cfg->local_xds_path, err, sizeof(err));
	else if (cfg->local_xds)
		snap = localcfg_load_buffer("LOCAL_XDS", cfg->local_xds, strlen(cfg->local_xds), err,
					    sizeof(err));
	else {
		log_warn("no LOCAL_XDS_PATH: starting with an empty mesh", NULL);
		return state_snapshot_new();
	}
	if (!snap)
		fprintf(stderr, "ztunnel: invalid configuration: %s\n", err);
	return snap;
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

static void control_loop(struct inpod_cni_server *cni, int sfd)
{
	struct pollfd fds[64];

	for (;;) {
		int n = inpod_cni_pollfds(cni, fds, 63);

		fds[n] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		if (poll(fds, (nfds_t)n + 1, 1000) < 0 && errno != EINTR)
			break;
		if (fds[n].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				log_info("shutting down", "signal=%u", si.ssi_signo);
			return;
		}
		inpod_cni_handle(cni, fds, n);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: ztunnel                 run the agent (settings from the environment)\n"
			"       ztunnel ca-init CERT KEY [TRUST_DOMAIN]\n"
			"       ztunnel cert-issue CA_CERT CA_KEY SPIFFE_ID CERT KEY [TTL_SECONDS]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct state_snapshot *snap;
	struct state_store *store;
	struct tls_ca *ca;
	struct proxy *px;
	struct inpod *ip;
	struct inpod_cni_server *cni;
	char err[512];
	int sfd, lfd;

	if (argc > 1 && tls_tool_handles(argv[1]))
		return tls_tool_main(argc - 1, argv + 1);
	if (argc > 1)
		return usage();
	if (config_from_env(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "ztunnel: %s\n", err);
		return 2;
	}
	log_set_level_name(cfg.log_level);
	sfd = signal_fd();
	snap = load_state(&cfg);
	if (!snap)
		return 1;
	ca = load_ca(&cfg);
	if (!ca || inpod_netns_init() < 0)
		return 1;
	store = state_store_new();
	if (!store)
		return 1;
	log_info("configuration loaded", "workloads=%zu services=%zu policies=%zu node=%s",
		 snap->n_workloads, snap->n_services, snap->n_policies,
		 cfg.node_name ? cfg.node_name : "-");
	state_store_publish(store, snap);
	px = proxy_new(cfg.workers, store, &cfg.hbone);
	if (!px)
		return 1;
	ip = inpod_new(&(struct inpod_config){ .px = px, .store = store, .ca = ca,
						.cert_ttl = cfg.secret_ttl,
						.state_dir = cfg.state_dir,
						.install_rules = strcmp(cfg.redirect_mode, "none") != 0 });
	if (!ip)
		return 1;
	inpod_restore(ip);
	lfd = inpod_cni_listen(cfg.cni_socket);
	if (lfd < 0) {
		fprintf(stderr, "ztunnel: cannot listen on %s: %s\n", cfg.cni_socket, strerror(-lfd));
		return 1;
	}
	cni = inpod_cni_server_new(ip, lfd);
	if (!cni)
		return 1;
	log_info("ready", "workers=%u cni_socket=%s pods=%u", cfg.workers, cfg.cni_socket,
		 inpod_count(ip));
	control_loop(cni, sfd);
	inpod_cni_server_free(&cni);
	unlink(cfg.cni_socket);
	proxy_free(&px);
	inpod_free(&ip);
	tls_ca_free(&ca);
	state_store_free(&store);
	return 0;
}
