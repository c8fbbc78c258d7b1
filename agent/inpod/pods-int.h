/* inpod pods internals: the registry of enrolled pods and identities (pods.c and certs.c only). */
#ifndef ZTUNNEL_INPOD_PODS_INT_H
#define ZTUNNEL_INPOD_PODS_INT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <ztunnel/inpod.h>

struct pending_pod;

/* A certificate and its TLS contexts, shared by the pods of one identity. */
struct identity_ctx {
	char identity[TLS_SPIFFE_MAX];
	time_t not_before, not_after;
	SSL_CTX *server, *client;	/* owned references; swapped by rotation */
	uint64_t next_try_ms;		/* rotation retry after a failure */
	unsigned backoff_ms;
	struct identity_ctx *next;
};

/* A context no longer current, freed after a grace period (a worker may still be starting a
 * connection with the pointer it read). */
struct retired_ctx {
	SSL_CTX *ctx;		/* owned reference */
	time_t at;
	struct retired_ctx *next;
};

struct enrolled {
	struct proxy_pod *pod;		/* reference */
	struct enrolled *next;
};

/* The control thread changes the lists under lock; the admin thread reads them under it. */
struct inpod {
	struct inpod_config cfg;
	pthread_mutex_t lock;
	struct enrolled *pods;
	struct identity_ctx *ids;
	struct retired_ctx *retired;
	unsigned n;
	struct pending_pod *pending;	/* waiting to be enrolled (pending.c) */
	unsigned n_pending;
	unsigned long pending_gen;	/* state generation they were last tried with */
};

/* pending.c: pods waiting for their workload or for another try. All on the control thread;
 * the lock is taken for the list (the admin thread dumps it). */
#define INPOD_RETRY_MS 5000
#define INPOD_MAX_PENDING 4096
/* Keeps (or replaces) uid's entry with netns_fd (owned from now). 1 new, 0 replaced, -ENOSPC
 * (the fd closed) or -EBADF. */
int inpod_pending_put(struct inpod *ip, const char *uid, const char *name, const char *namespace_,
		      int netns_fd);
void inpod_pending_drop(struct inpod *ip, const char *uid);
/* Lock held. */
void inpod_pending_for_each(struct inpod *ip, void (*fn)(const char *uid, void *arg), void *arg);
void inpod_pending_dump_json(struct inpod *ip, FILE *out);
void inpod_pending_free(struct inpod *ip);
/* pods.c: a pending pod's next try (netns_fd consumed; pending again when it cannot be). */
int inpod_enroll_again(struct inpod *ip, const char *uid, const char *name,
		       const char *namespace_, int netns_fd, char *err, size_t errlen);

/* certs.c: the certificate of an identity, issued on first use. NULL with a reason in err. */
struct identity_ctx *inpod_identity_get(struct inpod *ip, const char *id, char *err, size_t len);
/* Drops identities no enrolled pod uses any more (control thread, lock not held). */
void inpod_identities_release_unused(struct inpod *ip);
/* Writes the "certificates" JSON member (lock held). */
void inpod_certs_dump_json(struct inpod *ip, FILE *out);
void inpod_certs_free(struct inpod *ip);
/* Sets the pod and certificate gauges (lock held). */
void inpod_update_gauges(struct inpod *ip);

#endif
