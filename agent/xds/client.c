/* xds/client.c: the delta ADS client thread: connect, subscribe, apply, ACK/NACK, reconnect. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <ztunnel/grpc.h>
#include <ztunnel/log.h>
#include <ztunnel/xds.h>

#include "xds-int.h"

#define XDS_BACKOFF_MIN_MS 10
#define XDS_BACKOFF_MAX_MS 15000
#define XDS_CONNECT_TIMEOUT_MS 3000
#define XDS_POLL_MS 200
#define XDS_TOKEN_MAX 65536

typedef Envoy__Service__Discovery__V3__DeltaDiscoveryResponse xds_pb_response;

struct xds_client {
	struct xds_config cfg;		/* strings point into strs */
	char *strs[9];			/* owned copies of the caller's strings */
	struct state_store *store;	/* not owned */
	struct xds_table tables[XDS_N_KINDS];	/* owned; only the client thread touches them */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t answered;	/* a demand was answered */
	bool stopping;			/* under lock */
	struct xds_demands demands;	/* under lock */
	void (*answer_fn)(void *arg, const char *name);	/* under lock */
	void *answer_arg;
	int wake_fd;			/* eventfd: a demand is waiting to be sent */
	int synced;			/* atomic bit mask of kinds applied at least once */
	unsigned int seed;
};

static bool client_stopping(struct xds_client *c)
{
	bool s;

	pthread_mutex_lock(&c->lock);
	s = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(unsigned int ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	return until;
}

/* Sleeps ms unless stopped first. */
static void client_sleep(struct xds_client *c, unsigned int ms)
{
	struct timespec until = deadline_in(ms);

	pthread_mutex_lock(&c->lock);
	while (!c->stopping && pthread_cond_timedwait(&c->wake, &c->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&c->lock);
}

/* The token file's contents without trailing white space, or NULL (errno set). */
static char *token_read(const char *path)
{
	char *buf = malloc(XDS_TOKEN_MAX + 1);
	ssize_t n = -1, got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && buf) {
		while (got < XDS_TOKEN_MAX && (n = read(fd, buf + got, XDS_TOKEN_MAX - got)) > 0)
			got += n;
	}
	if (fd >= 0)
		close(fd);
	if (!buf || n < 0) {
		free(buf);
		errno = errno ? errno : EIO;
		return NULL;
	}
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r' || buf[got - 1] == ' '))
		got--;
	buf[got] = 0;
	return buf;
}

static int client_send(struct xds_client *c, struct grpc_stream *s, enum xds_kind kind,
		       const struct xds_request *r)
{
	uint8_t *msg;
	size_t len;
	int ret = xds_request_pack(&c->cfg, &c->tables[kind], kind, r, &msg, &len);

	if (ret)
		return ret;
	ret = grpc_stream_send(s, msg, len);
	free(msg);
	return ret;
}

static void tables_reset(struct xds_client *c)
{
	for (int k = 0; k < XDS_N_KINDS; k++)
		xds_table_clear(&c->tables[k]);
}

/* Tells whoever waits for the names resp answers (after the state that answers them is out). */
static void client_answer(struct xds_client *c, const xds_pb_response *resp)
{
	void (*fn)(void *arg, const char *name);
	void *arg;
	char **names;
	size_t n;

	pthread_mutex_lock(&c->lock);
	names = xds_demands_answer(&c->demands, resp, &n);
	fn = c->answer_fn;
	arg = c->answer_arg;
	if (n)
		pthread_cond_broadcast(&c->answered);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < n; i++) {
		log_debug("xds on-demand answer", "name=%s", names[i]);
		if (fn)
			fn(arg, names[i]);
	}
	xds_names_free(names, n);
}

/* Applies resp to its table and publishes the whole set; error_out gets a NACK's reason. */
static int client_apply(struct xds_client *c, enum xds_kind kind, const xds_pb_response *resp,
			char *why, size_t whylen)
{
	struct state_snapshot *snap;
	int ret;

	ret = xds_apply(&c->tables[kind], kind, resp, why, whylen);
	if (ret)
		return ret;
	snap = xds_snapshot_build(c->tables, why, whylen);
	if (!snap)
		return errno == EINVAL ? -EPROTO : -errno;
	state_store_publish(c->store, snap);
	__atomic_or_fetch(&c->synced, 1 << kind, __ATOMIC_RELEASE);
	log_info("xds update applied", "type=%s nonce=%s added=%zu removed=%zu total=%zu",
		 resp->type_url, resp->nonce, resp->n_resources, resp->n_removed_resources,
		 c->tables[kind].n);
	return 0;
}

/* One response: apply and ACK, or NACK. <0 ends the stream (the tables are then reset when
 * they may be inconsistent). */
static int client_handle(struct xds_client *c, struct grpc_stream *s, const uint8_t *msg,
			 size_t len)
{
	char why[512] = "";
	xds_pb_response *resp;
	int kind, ret;

	resp = envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, msg);
	if (!resp) {
		log_warn("xds response undecodable, reconnecting", "bytes=%zu", len);
		return -EPROTO;
	}
	kind = xds_kind_of(resp->type_url);
	if (kind < 0) {
		/* never subscribed: a NACK would carry a type_url this client cannot name */
		log_warn("xds response of an unknown type ignored", "type=%.100s nonce=%.100s",
			 resp->type_url, resp->nonce);
		ret = 0;
		goto out;
	}
	ret = client_apply(c, kind, resp, why, sizeof(why));
	if (ret == -EINVAL) {
		log_warn("xds update rejected (NACK)", "type=%s nonce=%s error=\"%s\"",
			 resp->type_url, resp->nonce, why);
		ret = client_send(c, s, kind,
				  &(struct xds_request){ .nonce = resp->nonce, .error = why });
	} else if (ret) {
		log_error("xds update failed, resynchronizing", "type=%s error=\"%s\"",
			  resp->type_url, why);
		tables_reset(c);
	} else {
		ret = client_send(c, s, kind, &(struct xds_request){ .nonce = resp->nonce });
	}
	if (kind == XDS_KIND_ADDRESS)
		client_answer(c, resp);	/* a NACK answers too: the caller goes on without it */
out:
	envoy__service__discovery__v3__delta_discovery_response__free_unpacked(resp, NULL);
	return ret;
}

/*
 * Sends the names waiting for an answer: on a new stream (first) all of them, in the Address
 * subscription itself, which then (on demand) subscribes to nothing else: "*" in and out, as
 * upstream does. Later, only those not sent yet, in a request of their own.
 */
static int client_send_demands(struct xds_client *c, struct grpc_stream *s, bool first)
{
	static const char *const star[] = { "*" };
	struct xds_request r = { .first = first };
	const char **names, **sub = NULL;
	size_t n;
	uint64_t v;
	int ret = -ENOMEM;

	if (read(c->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("xds wake-up read failed", "error=\"%s\"", strerror(errno));
	pthread_mutex_lock(&c->lock);
	names = xds_demands_to_send(&c->demands, first, &n);
	pthread_mutex_unlock(&c->lock);
	if (!first && !n)
		return 0;
	if (first && (sub = calloc(n + 1, sizeof(*sub))) == NULL)
		goto out;
	if (first) {
		sub[0] = star[0];
		if (n)
			memcpy(sub + 1, names, n * sizeof(*names));
		r.subscribe = sub;
		r.n_subscribe = n + 1;
		r.unsubscribe = star;
		r.n_unsubscribe = 1;
	} else {
		r.subscribe = names;
		r.n_subscribe = n;
	}
	for (size_t i = 0; i < n; i++)
		log_info("xds on-demand request", "name=%s", names[i]);
	ret = client_send(c, s, XDS_KIND_ADDRESS, &r);
out:
	free(sub);
	free(names);
	return ret;
}

/* Subscribes (Address first) and serves responses until the stream ends or stop. */
static int client_stream(struct xds_client *c, struct grpc_stream *s, bool *progressed)
{
	char err[256] = "";
	int ret = 0, status = -1;

	for (int k = 0; !ret && k < XDS_N_KINDS; k++)
		ret = k == XDS_KIND_ADDRESS && c->cfg.on_demand ?
			      client_send_demands(c, s, true) :
			      client_send(c, s, k, &(struct xds_request){ .first = true });
	while (!ret && !client_stopping(c)) {
		uint8_t *msg = NULL;
		size_t len = 0;

		if (c->cfg.on_demand && (ret = client_send_demands(c, s, false)) < 0)
			break;

		ret = grpc_stream_recv(s, &msg, &len, XDS_POLL_MS, &status, err, sizeof(err));
		if (ret == 1) {
			ret = client_handle(c, s, msg, len);
			*progressed = *progressed || !ret;
		}
		free(msg);
	}
	if (ret < 0)
		log_warn("xds stream ended", "address=%s status=%d error=\"%s\"", c->cfg.address,
			 status, err[0] ? err : strerror(-ret));
	return ret;
}

static int client_session(struct xds_client *c, bool *progressed)
{
	struct grpc_metadata md[2];
	struct grpc_channel *ch = NULL;
	struct grpc_stream *s = NULL;
	char *token = NULL, *bearer = NULL, err[256] = "";
	size_t n_md = 0;
	int ret = -EIO;

	md[n_md++] = (struct grpc_metadata){ "clusterid", c->cfg.cluster_id };
	if (c->cfg.token_path && *c->cfg.token_path) {
		token = token_read(c->cfg.token_path);
		if (!token || asprintf(&bearer, "Bearer %s", token) < 0) {
			bearer = NULL;
			log_warn("xds token unreadable", "path=%s error=\"%s\"", c->cfg.token_path,
				 strerror(errno));
			goto out;
		}
		md[n_md++] = (struct grpc_metadata){ "authorization", bearer };
	}
	ch = grpc_channel_open(c->cfg.address, c->cfg.root_ca_path, md, n_md,
			       XDS_CONNECT_TIMEOUT_MS, err, sizeof(err));
	if (ch)
		s = grpc_stream_open(ch, XDS_ADS_PATH, err, sizeof(err));
	if (!s) {
		log_warn("xds connect failed", "address=%s error=\"%s\"", c->cfg.address, err);
		goto out;
	}
	log_info("xds connected", "address=%s", c->cfg.address);
	grpc_channel_set_wake_fd(ch, c->wake_fd);
	ret = client_stream(c, s, progressed);
out:
	grpc_stream_close(&s);
	grpc_channel_close(&ch);
	free(bearer);
	free(token);
	return ret;
}

static void *client_main(void *arg)
{
	struct xds_client *c = arg;
	unsigned int backoff = XDS_BACKOFF_MIN_MS, delay;

	while (!client_stopping(c)) {
		bool progressed = false;

		client_session(c, &progressed);
		if (progressed)
			backoff = XDS_BACKOFF_MIN_MS;
		/* jitter: between half and all of the current step */
		delay = backoff / 2 + (unsigned int)rand_r(&c->seed) % (backoff / 2 + 1);
		client_sleep(c, delay);
		backoff = backoff * 2 > XDS_BACKOFF_MAX_MS ? XDS_BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

static void client_free(struct xds_client *c)
{
	tables_reset(c);
	xds_demands_clear(&c->demands);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	pthread_cond_destroy(&c->answered);
	for (size_t i = 0; i < sizeof(c->strs) / sizeof(c->strs[0]); i++)
		free(c->strs[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->wake);
	free(c);
}

/* Copies the caller's strings so the config may go away after start. */
static int client_copy_config(struct xds_client *c, const struct xds_config *cfg)
{
	const char *const in[9] = { cfg->address, cfg->root_ca_path, cfg->token_path,
				    cfg->cluster_id, cfg->node_name, cfg->pod_name,
				    cfg->pod_namespace, cfg->instance_ip, cfg->cluster_domain };
	const char **out[9] = { &c->cfg.address, &c->cfg.root_ca_path, &c->cfg.token_path,
				&c->cfg.cluster_id, &c->cfg.node_name, &c->cfg.pod_name,
				&c->cfg.pod_namespace, &c->cfg.instance_ip, &c->cfg.cluster_domain };

	for (int i = 0; i < 9; i++) {
		if (!in[i])
			continue;
		c->strs[i] = strdup(in[i]);
		if (!c->strs[i])
			return -ENOMEM;
		*out[i] = c->strs[i];
	}
	c->cfg.on_demand = cfg->on_demand;
	if (!c->cfg.cluster_id || !*c->cfg.cluster_id)
		c->cfg.cluster_id = "Kubernetes";
	return 0;
}

struct xds_client *xds_client_start(const struct xds_config *cfg, struct state_store *store)
{
	struct xds_client *c;
	int ret;

	if (!cfg || !cfg->address || !*cfg->address || !store) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->answered, NULL);
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->store = store;
	if (cfg->on_demand)	/* readiness waits for policies only: addresses come when asked */
		c->synced = 1 << XDS_KIND_ADDRESS;
	c->seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
	ret = c->wake_fd < 0 ? -errno : client_copy_config(c, cfg);
	if (!ret)
		ret = -pthread_create(&c->thread, NULL, client_main, c);
	if (ret) {
		client_free(c);
		errno = -ret;
		return NULL;
	}
	return c;
}

bool xds_client_synced(struct xds_client *c)
{
	int all = (1 << XDS_N_KINDS) - 1;

	return c && (__atomic_load_n(&c->synced, __ATOMIC_ACQUIRE) & all) == all;
}

void xds_client_stop(struct xds_client **cp)
{
	struct xds_client *c = cp ? *cp : NULL;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->wake);
	pthread_cond_broadcast(&c->answered);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	client_free(c);
	*cp = NULL;
}

int xds_client_demand(struct xds_client *c, const char *name)
{
	uint64_t one = 1;
	int ret;

	if (!c || !c->cfg.on_demand)
		return -ENOTSUP;
	pthread_mutex_lock(&c->lock);
	ret = xds_demands_add(&c->demands, name);
	pthread_mutex_unlock(&c->lock);
	if (ret == 1 && write(c->wake_fd, &one, sizeof(one)) < 0)
		log_debug("xds wake-up write failed", "error=\"%s\"", strerror(errno));
	return ret < 0 ? ret : 0;
}

bool xds_client_demand_wait(struct xds_client *c, const char *name, int timeout_ms)
{
	struct timespec until;
	bool pending;

	if (xds_client_demand(c, name) < 0)
		return false;
	until = deadline_in(timeout_ms > 0 ? (unsigned int)timeout_ms : 0);
	pthread_mutex_lock(&c->lock);
	while ((pending = xds_demands_pending(&c->demands, name)) && !c->stopping &&
	       pthread_cond_timedwait(&c->answered, &c->lock, &until) != ETIMEDOUT)
		;
	pending = xds_demands_pending(&c->demands, name);
	pthread_mutex_unlock(&c->lock);
	return !pending;
}

void xds_client_on_answer(struct xds_client *c, void (*fn)(void *arg, const char *name), void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->answer_fn = fn;
	c->answer_arg = arg;
	pthread_mutex_unlock(&c->lock);
}
