/* inpod pods: enrolling and removing pods, and remembering them on disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/inpod.h>
#include <ztunnel/log.h>
#include <ztunnel/redirect.h>

#include "inpod_private.h"
#include "pods-int.h"

struct inpod *inpod_new(const struct inpod_config *cfg)
{
	struct inpod *ip = calloc(1, sizeof(*ip));

	if (ip) {
		ip->cfg = *cfg;
		pthread_mutex_init(&ip->lock, NULL);
	}
	return ip;
}

unsigned inpod_count(struct inpod *ip)
{
	unsigned n;

	pthread_mutex_lock(&ip->lock);
	n = ip->n;
	pthread_mutex_unlock(&ip->lock);
	return n;
}

void inpod_update_gauges(struct inpod *ip)
{
	time_t earliest = 0;

	if (!ip->cfg.metrics)
		return;
	for (struct identity_ctx *ic = ip->ids; ic; ic = ic->next)
		if (!earliest || ic->not_after < earliest)
			earliest = ic->not_after;
	metrics_gauge_set(ip->cfg.metrics, METRICS_ENROLLED_PODS, ip->n);
	metrics_gauge_set(ip->cfg.metrics, METRICS_CERT_EXPIRY_SECONDS, earliest);
}

void inpod_dump_json(struct inpod *ip, FILE *out)
{
	char buf[INET6_ADDRSTRLEN];
	bool first = true;

	pthread_mutex_lock(&ip->lock);
	inpod_certs_dump_json(ip, out);
	fputs(",\"pods\":[", out);
	first = true;
	for (struct enrolled *e = ip->pods; e; e = e->next, first = false) {
		fprintf(out, "%s{\"uid\":", first ? "" : ",");
		state_json_string(out, e->pod->uid);
		fputs(",\"name\":", out);
		state_json_string(out, e->pod->name);
		fputs(",\"namespace\":", out);
		state_json_string(out, e->pod->namespace_);
		fputs(",\"identity\":", out);
		state_json_string(out, e->pod->identity);
		fputs(",\"ips\":[", out);
		for (size_t i = 0; i < e->pod->n_ips; i++) {
			fputs(i ? "," : "", out);
			state_json_string(out, state_ip_format(&e->pod->ips[i], buf, sizeof(buf)));
		}
		fputs("]", out);
		if (ip->cfg.redirect) {
			fputs(",\"capture\":", out);
			redirect_pod_dump_json(ip->cfg.redirect, &e->pod->capture, out);
		}
		fputc('}', out);
	}
	fputc(']', out);
	inpod_pending_dump_json(ip, out);
	pthread_mutex_unlock(&ip->lock);
}

void inpod_unlisten_all(struct inpod *ip)
{
	pthread_mutex_lock(&ip->lock);
	for (struct enrolled *e = ip->pods; e; e = e->next)
		proxy_unlisten_pod(ip->cfg.px, e->pod);
	pthread_mutex_unlock(&ip->lock);
}

void inpod_for_each_pod(struct inpod *ip, void (*fn)(const char *uid, void *arg), void *arg)
{
	pthread_mutex_lock(&ip->lock);
	for (struct enrolled *e = ip->pods; e; e = e->next)
		fn(e->pod->uid, arg);
	inpod_pending_for_each(ip, fn, arg);
	pthread_mutex_unlock(&ip->lock);
}

bool inpod_enrolled_in(struct inpod *ip, const char *uid, int netns_fd)
{
	struct stat have, got;

	if (fstat(netns_fd, &got) < 0)
		return false;
	for (struct enrolled *e = ip->pods; e; e = e->next)
		if (strcmp(e->pod->uid, uid) == 0)
			return fstat(e->pod->netns_fd, &have) == 0 && have.st_dev == got.st_dev &&
			       have.st_ino == got.st_ino;
	return false;
}

/* What runs inside the pod's netns: the capture backend's install or remove. */
struct rules_call {
	const struct redirect *redirect;
	struct redirect_pod *pod;
	char *why;
	size_t len;
};

static int install_rules(void *arg)
{
	struct rules_call *rc = arg;

	return redirect_pod_install(rc->redirect, rc->pod, rc->why, rc->len);
}

static int remove_rules(void *arg)
{
	struct rules_call *rc = arg;

	return redirect_pod_remove(rc->redirect, rc->pod, rc->why, rc->len);
}

/* The backend's view of the pod: its netns and addresses (listeners come with them). */
static void capture_view(struct proxy_pod *pod)
{
	struct redirect_pod *c = &pod->capture;

	c->key = pod->uid;
	c->netns_fd = pod->netns_fd;
	c->n_ipv4 = c->n_ipv6 = 0;
	for (size_t i = 0; i < pod->n_ips; i++)
		if (pod->ips[i].family == AF_INET && c->n_ipv4 < REDIRECT_MAX_ADDRS)
			c->ipv4[c->n_ipv4++] = pod->ips[i].v4.s_addr;
		else if (pod->ips[i].family == AF_INET6 && c->n_ipv6 < REDIRECT_MAX_ADDRS)
			c->ipv6[c->n_ipv6++] = pod->ips[i].v6;
}

static bool uid_ok(const char *uid)
{
	if (!uid[0] || uid[0] == '.' || strlen(uid) > 200)
		return false;
	for (const char *p = uid; *p; p++)
		if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
		      (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
			return false;
	return true;
}

static void state_path(const struct inpod *ip, const char *kind, const char *uid, char *buf,
		       size_t len)
{
	snprintf(buf, len, "%s/%s/%s", ip->cfg.state_dir, kind, uid);
}

/* Pins the netns with a bind mount and writes the pod record, so a restart finds it. */
static int persist(struct inpod *ip, const char *uid, const char *name, const char *namespace_,
		   int netns_fd)
{
	char path[512], src[64];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/netns", ip->cfg.state_dir);
	mkdir(ip->cfg.state_dir, 0700);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/pods", ip->cfg.state_dir);
	mkdir(path, 0700);
	state_path(ip, "netns", uid, path, sizeof(path));
	umount2(path, MNT_DETACH);
	fd = open(path, O_CREAT | O_RDONLY | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	close(fd);
	snprintf(src, sizeof(src), "/proc/self/fd/%d", netns_fd);
	if (mount(src, path, NULL, MS_BIND, NULL) < 0)
		return -errno;
	state_path(ip, "pods", uid, path, sizeof(path));
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "%s\n%s\n", name, namespace_);
	return fclose(f) == 0 ? 0 : -EIO;
}

static void forget(struct inpod *ip, const char *uid)
{
	char path[512];

	state_path(ip, "netns", uid, path, sizeof(path));
	umount2(path, MNT_DETACH);
	unlink(path);
	state_path(ip, "pods", uid, path, sizeof(path));
	unlink(path);
}

static struct proxy_pod *pod_new(const struct state_workload *w, const char *uid, int netns_fd)
{
	struct proxy_pod *pod = calloc(1, sizeof(*pod));

	if (!pod)
		return NULL;
	pod->refcount = 1;
	pod->netns_fd = netns_fd;
	snprintf(pod->uid, sizeof(pod->uid), "%s", uid);
	snprintf(pod->name, sizeof(pod->name), "%s", w->name ? w->name : "");
	snprintf(pod->namespace_, sizeof(pod->namespace_), "%s", w->namespace_ ? w->namespace_ : "");
	snprintf(pod->service_account, sizeof(pod->service_account), "%s",
		 w->service_account ? w->service_account : "default");
	snprintf(pod->trust_domain, sizeof(pod->trust_domain), "%s",
		 w->trust_domain && w->trust_domain[0] ? w->trust_domain : "cluster.local");
	state_workload_identity(w, pod->identity, sizeof(pod->identity));
	snprintf(pod->network, sizeof(pod->network), "%s", w->network ? w->network : "");
	for (size_t i = 0; i < w->n_ips && i < PROXY_MAX_POD_IPS; i++)
		pod->ips[pod->n_ips++] = w->ips[i];
	return pod;
}

static void detach(struct inpod *ip, const char *uid);

static int attach(struct inpod *ip, struct proxy_pod *pod, char *err, size_t len)
{
	struct identity_ctx *ic = inpod_identity_get(ip, pod->identity, err, len);
	char why[200] = "";
	struct rules_call rc = { ip->cfg.redirect, &pod->capture, why, sizeof(why) };
	int ret;

	if (!ic)
		return -EPROTO;
	pod->server_ctx = ic->server;
	pod->client_ctx = ic->client;
	SSL_CTX_up_ref(ic->server);
	SSL_CTX_up_ref(ic->client);
	/* listeners first: a backend may hand connections to them (ebpf's sockmap) */
	capture_view(pod);
	ret = proxy_listen_pod(ip->cfg.px, pod);
	if (ret < 0) {
		snprintf(err, len, "opening listeners in the pod: %s", strerror(-ret));
		return ret;
	}
	if (ip->cfg.redirect) {
		ret = inpod_in_netns(pod->netns_fd, install_rules, &rc);
		if (ret < 0) {
			snprintf(err, len, "installing capture rules: %s", why);
			proxy_unlisten_pod(ip->cfg.px, pod);
			return ret;
		}
	}
	return ret;
}

/* Asks the control plane for the pod's workload: by its xDS uid when the name is known. */
static bool demand_pod(struct inpod *ip, const char *uid, const char *namespace_, const char *name)
{
	const char *cluster = ip->cfg.cluster_id && *ip->cfg.cluster_id ? ip->cfg.cluster_id :
									  "Kubernetes";
	char key[600];

	if (namespace_ && *namespace_ && name && *name)
		snprintf(key, sizeof(key), "%s//Pod/%s/%s", cluster, namespace_, name);
	else
		snprintf(key, sizeof(key), "%s", uid);
	return ip->cfg.demand_wait(ip->cfg.demand_ctx, key, INPOD_DEMAND_WAIT_MS);
}

/* The workload of a pod is not in the state (yet): it waits, pinned, for the next try. */
static void wait_for_workload(struct inpod *ip, const char *uid, const char *name,
			      const char *namespace_, int netns_fd, bool persisted)
{
	int ret;

	if (!persisted && (ret = persist(ip, uid, name, namespace_, netns_fd)) < 0)
		log_warn("cannot remember the pod", "uid=%s dir=%s error=\"%s\"", uid,
			 ip->cfg.state_dir, strerror(-ret));
	if (inpod_pending_put(ip, uid, name, namespace_, netns_fd) == 1)
		log_info("pod waiting for its workload", "uid=%s pod=%s/%s", uid, namespace_, name);
}

/*
 * retry: a failure leaves the pod pending for another try (istio-cni mode, restored pods and
 * retries; the CNI plugin's ADD reports its failure instead). may_demand: ask the control
 * plane for an unknown workload and wait a little.
 */
static int enroll(struct inpod *ip, const char *uid, const char *name, const char *namespace_,
		  int netns_fd, bool persisted, bool retry, bool may_demand, char *err,
		  size_t errlen)
{
	struct state_snapshot *snap = state_store_current(ip->cfg.store);
	const struct state_workload *w;
	struct proxy_pod *pod = NULL;
	struct enrolled *e;
	int ret = 0;

	if (!uid_ok(uid)) {
		snprintf(err, errlen, "invalid pod uid \"%s\"", uid);
		ret = -EINVAL;
		goto out;
	}
	w = snap ? state_lookup_pod(snap, uid, namespace_, name) : NULL;
	if (!w && may_demand && ip->cfg.demand_wait && demand_pod(ip, uid, namespace_, name)) {
		state_snapshot_put(&snap);
		snap = state_store_current(ip->cfg.store);
		w = snap ? state_lookup_pod(snap, uid, namespace_, name) : NULL;
	}
	if (!w) {
		wait_for_workload(ip, uid, name, namespace_, netns_fd, persisted);
		netns_fd = -1;
		goto out;
	}
	inpod_pending_drop(ip, uid);
	if (w->protocol != STATE_PROTO_HBONE) {
		log_info("pod not captured", "uid=%s pod=%s/%s reason=\"%s\"", uid, namespace_, name,
			 "workload protocol is not HBONE");
		goto out;
	}
	detach(ip, uid);
	pod = pod_new(w, uid, netns_fd);
	e = calloc(1, sizeof(*e));
	if (!pod || !e) {
		free(e);
		snprintf(err, errlen, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	netns_fd = -1;
	ret = attach(ip, pod, err, errlen);
	if (ret == 0 && !persisted &&
	    (ret = persist(ip, uid, pod->name, pod->namespace_, pod->netns_fd)) < 0) {
		snprintf(err, errlen, "remembering the pod in %s: %s", ip->cfg.state_dir, strerror(-ret));
		proxy_unlisten_pod(ip->cfg.px, pod);
	}
	if (ret < 0) {
		free(e);
		if (retry)
			inpod_pending_put(ip, uid, name, namespace_, dup(pod->netns_fd));
		goto out;
	}
	e->pod = pod;
	pod = NULL;
	pthread_mutex_lock(&ip->lock);
	e->next = ip->pods;
	ip->pods = e;
	ip->n++;
	inpod_update_gauges(ip);
	pthread_mutex_unlock(&ip->lock);
	if (ip->cfg.metrics)
		metrics_pod_started(ip->cfg.metrics);
	log_info("pod enrolled", "uid=%s pod=%s/%s identity=%s", uid, namespace_, name,
		 e->pod->identity);
out:
	if (netns_fd >= 0)
		close(netns_fd);
	proxy_pod_put(pod);
	state_snapshot_put(&snap);
	return ret;
}

int inpod_enroll(struct inpod *ip, const char *uid, const char *name, const char *namespace_,
		 int netns_fd, bool persisted, char *err, size_t errlen)
{
	return enroll(ip, uid, name, namespace_, netns_fd, persisted, persisted, true, err, errlen);
}

int inpod_enroll_again(struct inpod *ip, const char *uid, const char *name,
		       const char *namespace_, int netns_fd, char *err, size_t errlen)
{
	return enroll(ip, uid, name, namespace_, netns_fd, true, true, false, err, errlen);
}

/* Takes the pod out of the datapath; its record on disk stays. */
static void detach(struct inpod *ip, const char *uid)
{
	struct enrolled **pp, *e;
	char why[200] = "";
	struct rules_call rc = { ip->cfg.redirect, NULL, why, sizeof(why) };

	for (pp = &ip->pods; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->pod->uid, uid) == 0)
			break;
	if (!*pp)
		return;
	pthread_mutex_lock(&ip->lock);
	e = *pp;
	*pp = e->next;
	ip->n--;
	inpod_update_gauges(ip);
	pthread_mutex_unlock(&ip->lock);
	proxy_unlisten_pod(ip->cfg.px, e->pod);
	rc.pod = &e->pod->capture;
	if (ip->cfg.redirect && inpod_in_netns(e->pod->netns_fd, remove_rules, &rc) < 0)
		log_warn("removing capture rules failed", "uid=%s error=\"%s\"", uid, why);
	log_info("pod removed", "uid=%s pod=%s/%s", uid, e->pod->namespace_, e->pod->name);
	proxy_pod_put(e->pod);
	free(e);
}

int inpod_remove(struct inpod *ip, const char *uid)
{
	if (!uid_ok(uid))	/* it names files in the state dir */
		return -EINVAL;
	detach(ip, uid);
	inpod_pending_drop(ip, uid);
	forget(ip, uid);
	inpod_identities_release_unused(ip);
	return 0;
}

static void restore_one(struct inpod *ip, const char *uid)
{
	char path[512], name[256] = "", ns[256] = "", err[300] = "";
	FILE *f;
	int fd;

	state_path(ip, "pods", uid, path, sizeof(path));
	f = fopen(path, "re");
	if (!f || !fgets(name, sizeof(name), f) || !fgets(ns, sizeof(ns), f)) {
		if (f)
			fclose(f);
		log_warn("forgetting unreadable pod record", "uid=%s", uid);
		forget(ip, uid);
		return;
	}
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
	ns[strcspn(ns, "\n")] = '\0';
	state_path(ip, "netns", uid, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_warn("forgetting pod whose netns is gone", "uid=%s pod=%s/%s", uid, ns, name);
		forget(ip, uid);
		return;
	}
	/* a failure leaves it pending: retried in 5 s */
	if (inpod_enroll(ip, uid, name, ns, fd, true, err, sizeof(err)) < 0)
		log_warn("pod not restored yet", "uid=%s pod=%s/%s error=\"%s\"", uid, ns, name,
			 err);
}

int inpod_restore(struct inpod *ip)
{
	char path[512];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/pods", ip->cfg.state_dir);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (uid_ok(de->d_name))
			restore_one(ip, de->d_name);
	closedir(d);
	return (int)ip->n;
}

void inpod_free(struct inpod **ipp)
{
	struct inpod *ip = *ipp;

	if (!ip)
		return;
	while (ip->pods) {
		struct enrolled *e = ip->pods;

		ip->pods = e->next;
		proxy_pod_put(e->pod);
		free(e);
	}
	inpod_pending_free(ip);
	inpod_certs_free(ip);
	free(ip);
	*ipp = NULL;
}
