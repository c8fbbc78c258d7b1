/* inpod: enrolled pods, their network namespaces, listeners and the CNI enrollment socket. */
#ifndef ZTUNNEL_INPOD_H
#define ZTUNNEL_INPOD_H

#include <stdint.h>

/* Remembers the agent's own network namespace; call once at start, before any setns. */
int inpod_netns_init(void);
/*
 * A non-blocking, close-on-exec socket created inside the network namespace netns_fd (the
 * calling thread enters it and comes back), with SO_MARK mark (0: none). fd or -errno.
 */
int inpod_socket(int netns_fd, int family, int type, uint32_t mark);
/* Runs fn(arg) with the calling thread inside netns_fd; returns fn's result or -errno. */
int inpod_in_netns(int netns_fd, int (*fn)(void *arg), void *arg);

#endif

#include <poll.h>
#ifndef ZTUNNEL_INPOD_ENROLL
#define ZTUNNEL_INPOD_ENROLL
#include <stdbool.h>
#include <stddef.h>

#include <stdio.h>

#include <ztunnel/metrics.h>
#include <ztunnel/proxy.h>
#include <ztunnel/redirect.h>
#include <ztunnel/state.h>
#include <ztunnel/tls.h>

/* Enrolled pods on this node and what they need: owned by the control thread. */
struct inpod_config {
	struct proxy *px;		/* borrowed */
	struct state_store *store;	/* borrowed */
	/* issues a certificate for identity (ttl seconds); *root gets the trust anchor (caller
	 * frees). NULL with a reason in err. The local CA or Istio's CA. */
	struct tls_cert *(*issue)(void *ctx, const char *identity, unsigned ttl, X509 **root,
				  char *err, size_t errlen);
	void *issue_ctx;
	unsigned cert_ttl;		/* seconds (SECRET_TTL) */
	const char *state_dir;		/* enrolled pods survive restarts here */
	const struct redirect *redirect;	/* borrowed: the capture backend and mark; NULL:
						 * nothing is installed in pods */
	struct metrics *metrics;	/* borrowed; enrolled pods and certificate gauges */
	/* on demand (XDS_ON_DEMAND): asks the control plane for a pod's workload that the state
	 * does not have ("<cluster_id>//Pod/<ns>/<name>") and waits up to timeout_ms */
	bool (*demand_wait)(void *ctx, const char *name, int timeout_ms);
	void *demand_ctx;
	const char *cluster_id;		/* CLUSTER_ID, Kubernetes */
};

/* How long enrollment waits for an on-demand answer (within the CNI plugin's 10 s, beside the
 * certificate request). */
#define INPOD_DEMAND_WAIT_MS 1500

struct inpod;

struct inpod *inpod_new(const struct inpod_config *cfg);
void inpod_free(struct inpod **ip);
/*
 * Enrolls a pod whose netns is netns_fd (owned from now): if its workload (by uid, else
 * namespace/name) is HBONE, installs the capture rules, opens listeners and, unless persisted
 * (already recorded, or istio-cni mode where istio-cni replays its snapshot), records it in the
 * state dir. A pod whose workload is not HBONE is left alone and 0 returned. A pod whose
 * workload is not in the state yet (on demand: not even after asking) is remembered and waits:
 * it is enrolled when the state has it (inpod_retry_pending), and 0 returned. -errno with a
 * reason in err when enrolling failed: nothing of it is left behind, except when persisted,
 * then it is tried again every 5 s (as upstream does for istio-cni's pods) until removed.
 */
int inpod_enroll(struct inpod *ip, const char *uid, const char *name, const char *namespace_,
		 int netns_fd, bool persisted, char *err, size_t errlen);
/* Renews certificates past half their lifetime (retrying with backoff, keeping the valid one);
 * pods switch to the new contexts for new connections. Cheap when nothing is due. */
void inpod_rotate(struct inpod *ip);
/* Tries again the pods waiting for their workload (when the state changed) or after a failed
 * enrollment (every 5 s). Control thread; cheap when nothing is due. */
void inpod_retry_pending(struct inpod *ip);
/* Removes a pod's rules and listeners and forgets it; unknown uid is fine. */
int inpod_remove(struct inpod *ip, const char *uid);
/* Re-enrolls the pods remembered in the state dir (after a restart). Returns how many. */
int inpod_restore(struct inpod *ip);
/* Number of enrolled pods. */
unsigned inpod_count(struct inpod *ip);
/* Writes "certificates" (identity, notAfter) and "pods" (uid, name, namespace, identity, ips)
 * as JSON object members. Safe from any thread. */
void inpod_dump_json(struct inpod *ip, FILE *out);
/* Stops every pod's listeners (drain); rules stay for the next agent. */
void inpod_unlisten_all(struct inpod *ip);

/* The CNI plugin's socket: SOCK_SEQPACKET, ZDS messages. fd or -errno. */
int inpod_cni_listen(const char *path);
/* Serves one readable event on the listening socket (accept) or a client socket. */
struct inpod_cni_server;
struct inpod_cni_server *inpod_cni_server_new(struct inpod *ip, int listen_fd);
void inpod_cni_server_free(struct inpod_cni_server **s);
/* Fills pollfds (up to max) with the sockets to watch; returns how many. */
int inpod_cni_pollfds(struct inpod_cni_server *s, struct pollfd *fds, int max);
/* Handles the poll results for those sockets. */
void inpod_cni_handle(struct inpod_cni_server *s, const struct pollfd *fds, int n);
/*
 * istio-cni mode: a ZDS client of istio-cni's socket (INPOD_UDS). Connects (non-blocking, backoff
 * 10 ms to 15 s while it cannot), sends ZdsHello{version=1}, then serves WorkloadRequests: Add
 * (exactly one netns fd) enrolls, Keep marks a known pod as still there, SnapshotSent removes
 * every enrolled pod neither added nor kept since the connection began, Del removes; each is
 * answered with an Ack (error text on failure). Driven by the control thread's poll loop.
 */
struct inpod_zds_client;
struct inpod_zds_client *inpod_zds_client_new(struct inpod *ip, const char *path);
void inpod_zds_client_free(struct inpod_zds_client **c);
/* The socket to watch (0 or 1 pollfd) and the longest the caller may sleep (ms). */
int inpod_zds_client_pollfds(struct inpod_zds_client *c, struct pollfd *fds, int max,
			     int *timeout_ms);
/* Handles the poll result (connects, reconnects when the backoff is over, serves messages). */
void inpod_zds_client_handle(struct inpod_zds_client *c, const struct pollfd *fds, int n);
/* Connected and past the first SnapshotSent (readiness). */
bool inpod_zds_client_synced(const struct inpod_zds_client *c);
/* Calls fn for the uid of each enrolled pod (control thread). */
void inpod_for_each_pod(struct inpod *ip, void (*fn)(const char *uid, void *arg), void *arg);
#endif
