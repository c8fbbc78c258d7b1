/* inpod/pending.c: pods waiting to be enrolled (workload not in the state yet, or a failed
 * attempt), retried when the state changes and every INPOD_RETRY_MS. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ztunnel/io.h>
#include <ztunnel/log.h>
#include <ztunnel/state.h>

#include "pods-int.h"

struct pending_pod {
	char uid[256];
	char name[128];
	char namespace_[64];
	int netns_fd;			/* owned */
	uint64_t next_try_ms;
	struct pending_pod *next;
};

static void pending_free(struct pending_pod *p)
{
	if (p->netns_fd >= 0)
		close(p->netns_fd);
	free(p);
}

/* Unlinks uid's entry (lock held); NULL when none. */
static struct pending_pod *pending_take(struct inpod *ip, const char *uid)
{
	for (struct pending_pod **pp = &ip->pending; *pp; pp = &(*pp)->next) {
		struct pending_pod *p = *pp;

		if (strcmp(p->uid, uid) == 0) {
			*pp = p->next;
			ip->n_pending--;
			return p;
		}
	}
	return NULL;
}

int inpod_pending_put(struct inpod *ip, const char *uid, const char *name, const char *namespace_,
		      int netns_fd)
{
	struct pending_pod *p, *old;

	if (netns_fd < 0)
		return -EBADF;
	p = calloc(1, sizeof(*p));
	pthread_mutex_lock(&ip->lock);
	old = pending_take(ip, uid);
	if (p && ip->n_pending < INPOD_MAX_PENDING) {
		snprintf(p->uid, sizeof(p->uid), "%s", uid);
		snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
		snprintf(p->namespace_, sizeof(p->namespace_), "%s", namespace_ ? namespace_ : "");
		p->netns_fd = netns_fd;
		p->next_try_ms = io_now_ms() + INPOD_RETRY_MS;
		p->next = ip->pending;
		ip->pending = p;
		ip->n_pending++;
		netns_fd = -1;
	}
	pthread_mutex_unlock(&ip->lock);
	if (old)
		pending_free(old);
	if (netns_fd < 0)
		return old ? 0 : 1;
	free(p);
	close(netns_fd);
	log_warn("pod dropped: too many pods waiting", "uid=%s limit=%d", uid, INPOD_MAX_PENDING);
	return -ENOSPC;
}

void inpod_pending_drop(struct inpod *ip, const char *uid)
{
	struct pending_pod *p;

	pthread_mutex_lock(&ip->lock);
	p = pending_take(ip, uid);
	pthread_mutex_unlock(&ip->lock);
	if (p)
		pending_free(p);
}

void inpod_retry_pending(struct inpod *ip)
{
	unsigned long gen = state_store_generation(ip->cfg.store);
	bool changed = gen != ip->pending_gen;
	uint64_t now = io_now_ms();
	struct pending_pod *due = NULL, *p;
	char err[300];

	ip->pending_gen = gen;
	pthread_mutex_lock(&ip->lock);
	for (struct pending_pod **pp = &ip->pending; *pp;) {
		p = *pp;
		if (!changed && now < p->next_try_ms) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		ip->n_pending--;
		p->next = due;
		due = p;
	}
	pthread_mutex_unlock(&ip->lock);
	while ((p = due)) {
		due = p->next;
		err[0] = 0;
		/* consumes the fd: back on the list if it still cannot be enrolled */
		if (inpod_enroll_again(ip, p->uid, p->name, p->namespace_, p->netns_fd, err,
				       sizeof(err)) < 0)
			log_info("retrying pod enrollment failed", "uid=%s pod=%s/%s error=\"%s\"",
				 p->uid, p->namespace_, p->name, err);
		p->netns_fd = -1;
		pending_free(p);
	}
}

void inpod_pending_for_each(struct inpod *ip, void (*fn)(const char *uid, void *arg), void *arg)
{
	for (struct pending_pod *p = ip->pending; p; p = p->next)
		fn(p->uid, arg);
}

void inpod_pending_dump_json(struct inpod *ip, FILE *out)
{
	fputs(",\"pendingPods\":[", out);
	for (struct pending_pod *p = ip->pending; p; p = p->next) {
		fprintf(out, "%s{\"uid\":", p == ip->pending ? "" : ",");
		state_json_string(out, p->uid);
		fputs(",\"name\":", out);
		state_json_string(out, p->name);
		fputs(",\"namespace\":", out);
		state_json_string(out, p->namespace_);
		fputc('}', out);
	}
	fputc(']', out);
}

void inpod_pending_free(struct inpod *ip)
{
	while (ip->pending) {
		struct pending_pod *p = ip->pending;

		ip->pending = p->next;
		pending_free(p);
	}
	ip->n_pending = 0;
}
