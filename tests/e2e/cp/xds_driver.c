/* xds_driver: runs the xDS client alone against a control plane and reports each snapshot
 * (one summary line on stdout, the full state as JSON in argv[1]), until SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <ztunnel/state.h>
#include <ztunnel/xds.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void dump(struct state_snapshot *snap, const char *path, bool synced)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "{\"synced\": %s, ", synced ? "true" : "false");
	state_dump_json(snap, f);
	fprintf(f, "}\n");
	fclose(f);
	rename(tmp, path);
}

int main(int argc, char **argv)
{
	struct xds_config cfg = {
		.address = getenv("XDS_ADDRESS"), .token_path = getenv("XDS_TOKEN_PATH"),
		.cluster_id = getenv("CLUSTER_ID"), .node_name = getenv("NODE_NAME"),
		.pod_name = getenv("POD_NAME"), .pod_namespace = getenv("POD_NAMESPACE"),
		.instance_ip = getenv("INSTANCE_IP"), .cluster_domain = getenv("CLUSTER_DOMAIN"),
	};
	struct timespec tick = { 0, 20 * 1000000 };
	unsigned long seen = 0;
	bool was_synced = false;
	struct state_store *store;
	struct xds_client *c;

	if (argc != 2) {
		fprintf(stderr, "usage: XDS_ADDRESS=http://h:p xds_driver STATE_JSON\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	store = state_store_new();
	c = store ? xds_client_start(&cfg, store) : NULL;
	if (!c) {
		perror("xds_client_start");
		return 1;
	}
	while (!stop) {
		unsigned long gen = state_store_generation(store);
		bool synced = xds_client_synced(c);

		if (gen != seen || synced != was_synced) {
			struct state_snapshot *snap = state_store_current(store);

			if (snap) {
				dump(snap, argv[1], synced);
				printf("gen=%lu synced=%d workloads=%zu services=%zu policies=%zu\n",
				       gen, synced, snap->n_workloads, snap->n_services,
				       snap->n_policies);
				fflush(stdout);
				state_snapshot_put(&snap);
			}
			seen = gen;
			was_synced = synced;
		}
		nanosleep(&tick, NULL);
	}
	xds_client_stop(&c);
	state_store_free(&store);
	return 0;
}
