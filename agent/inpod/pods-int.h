/* inpod pods internals: the registry of enrolled pods and identities (pods.c and certs.c only). */
#ifndef ZTUNNEL_INPOD_PODS_INT_H
#define ZTUNNEL_INPOD_PODS_INT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <ztunnel/inpod.h>

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
};

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
