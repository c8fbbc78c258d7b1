/* inpod certs: one certificate per identity on this node, its TLS contexts, rotation at half-life. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ztunnel/io.h>
#include <ztunnel/log.h>

#include "inpod_private.h"
#include "pods-int.h"

#define RETIRE_GRACE_S 60	/* long after any worker finished with a pointer it read */
#define BACKOFF_MIN_MS 500	/* upstream's per-identity retry: 500 ms doubling to 150 s */
#define BACKOFF_MAX_MS 150000

/* Issues a certificate from the configured source and builds both contexts. */
static int make_ctxs(struct inpod *ip, const char *id, struct identity_ctx *out, char *err,
		     size_t len)
{
	X509 *root = NULL;
	struct tls_cert *cert = ip->cfg.issue(ip->cfg.issue_ctx, id, ip->cfg.cert_ttl, &root, err,
					      len);

	out->server = out->client = NULL;
	if (!cert)
		return -EPROTO;
	out->server = tls_ctx_new(cert, root, TLS_SERVER, err, len);
	if (out->server)
		out->client = tls_ctx_new(cert, root, TLS_CLIENT, err, len);
	/*
	 * Half-life counts from when we got the cert: CAs backdate not_before for clock skew
	 * (minutes), which made a short-lived cert due at once and rotated it on every tick.
	 */
	out->not_before = cert->not_before > time(NULL) ? cert->not_before : time(NULL);
	out->not_after = cert->not_after;
	tls_cert_free(&cert);
	X509_free(root);
	if (!out->client) {
		SSL_CTX_free(out->server);
		out->server = NULL;
		return -EPROTO;
	}
	return 0;
}

struct identity_ctx *inpod_identity_get(struct inpod *ip, const char *id, char *err, size_t len)
{
	struct identity_ctx *ic;

	for (ic = ip->ids; ic; ic = ic->next)
		if (strcmp(ic->identity, id) == 0)
			return ic;
	ic = calloc(1, sizeof(*ic));
	if (!ic) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	snprintf(ic->identity, sizeof(ic->identity), "%s", id);
	if (make_ctxs(ip, id, ic, err, len) < 0) {
		free(ic);
		return NULL;
	}
	log_info("certificate issued", "identity=%s ttl=%us not_after=%lld", id, ip->cfg.cert_ttl,
		 (long long)ic->not_after);
	pthread_mutex_lock(&ip->lock);
	ic->next = ip->ids;
	ip->ids = ic;
	inpod_update_gauges(ip);
	pthread_mutex_unlock(&ip->lock);
	return ic;
}

static void retire(struct inpod *ip, SSL_CTX *ctx)
{
	struct retired_ctx *r = calloc(1, sizeof(*r));

	if (!r) {
		/* keeping it forever is safe; freeing it now may not be */
		log_warn("cannot track an old TLS context: kept", NULL);
		return;
	}
	r->ctx = ctx;
	r->at = time(NULL);
	r->next = ip->retired;
	ip->retired = r;
}

static void free_retired(struct inpod *ip, bool all)
{
	struct retired_ctx **pp = &ip->retired, *r;
	time_t now = time(NULL);

	while ((r = *pp)) {
		if (all || now - r->at >= RETIRE_GRACE_S) {
			*pp = r->next;
			SSL_CTX_free(r->ctx);
			free(r);
		} else {
			pp = &r->next;
		}
	}
}

/* Points every pod of ic's identity at fresh contexts; the old ones retire. Lock held. */
static void swap_pods(struct inpod *ip, struct identity_ctx *ic, const struct identity_ctx *fresh)
{
	for (struct enrolled *e = ip->pods; e; e = e->next) {
		struct proxy_pod *pod = e->pod;

		if (strcmp(pod->identity, ic->identity) != 0)
			continue;
		SSL_CTX_up_ref(fresh->server);
		SSL_CTX_up_ref(fresh->client);
		retire(ip, __atomic_exchange_n(&pod->server_ctx, fresh->server, __ATOMIC_ACQ_REL));
		retire(ip, __atomic_exchange_n(&pod->client_ctx, fresh->client, __ATOMIC_ACQ_REL));
	}
	retire(ip, ic->server);
	retire(ip, ic->client);
	ic->server = fresh->server;
	ic->client = fresh->client;
	ic->not_before = fresh->not_before;
	ic->not_after = fresh->not_after;
}

static void rotate_one(struct inpod *ip, struct identity_ctx *ic, uint64_t now_ms)
{
	struct identity_ctx fresh = { 0 };
	char err[300] = "";

	if (make_ctxs(ip, ic->identity, &fresh, err, sizeof(err)) < 0) {
		ic->backoff_ms = ic->backoff_ms ? ic->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (ic->backoff_ms > BACKOFF_MAX_MS)
			ic->backoff_ms = BACKOFF_MAX_MS;
		ic->next_try_ms = now_ms + ic->backoff_ms;
		log_warn("certificate rotation failed, keeping the current one", "identity=%s "
			 "not_after=%lld retry_in=%ums error=\"%s\"", ic->identity,
			 (long long)ic->not_after, ic->backoff_ms, err);
		return;
	}
	ic->backoff_ms = 0;
	ic->next_try_ms = 0;
	pthread_mutex_lock(&ip->lock);
	swap_pods(ip, ic, &fresh);
	inpod_update_gauges(ip);
	pthread_mutex_unlock(&ip->lock);
	log_info("certificate rotated", "identity=%s not_after=%lld", ic->identity,
		 (long long)ic->not_after);
}

void inpod_rotate(struct inpod *ip)
{
	time_t now = time(NULL);
	uint64_t now_ms = io_now_ms();

	free_retired(ip, false);
	for (struct identity_ctx *ic = ip->ids; ic; ic = ic->next) {
		time_t half = ic->not_before + (ic->not_after - ic->not_before) / 2;

		if (now >= half && now_ms >= ic->next_try_ms)
			rotate_one(ip, ic, now_ms);
	}
}

static bool identity_in_use(struct inpod *ip, const char *id)
{
	for (struct enrolled *e = ip->pods; e; e = e->next)
		if (strcmp(e->pod->identity, id) == 0)
			return true;
	return false;
}

void inpod_identities_release_unused(struct inpod *ip)
{
	struct identity_ctx **pp = &ip->ids, *ic;

	pthread_mutex_lock(&ip->lock);
	while ((ic = *pp)) {
		if (identity_in_use(ip, ic->identity)) {
			pp = &ic->next;
			continue;
		}
		*pp = ic->next;
		log_info("certificate released: no pod of this identity left", "identity=%s",
			 ic->identity);
		retire(ip, ic->server);	/* an inbound accept may still be starting with it */
		retire(ip, ic->client);
		free(ic);
	}
	inpod_update_gauges(ip);
	pthread_mutex_unlock(&ip->lock);
}

void inpod_certs_dump_json(struct inpod *ip, FILE *out)
{
	bool first = true;

	fputs("\"certificates\":[", out);
	for (struct identity_ctx *ic = ip->ids; ic; ic = ic->next, first = false) {
		struct tm tm;
		char when[40];

		gmtime_r(&ic->not_after, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(out, "%s{\"identity\":", first ? "" : ",");
		state_json_string(out, ic->identity);
		fprintf(out, ",\"notAfter\":\"%s\",\"expiresInSeconds\":%lld}", when,
			(long long)(ic->not_after - time(NULL)));
	}
	fputc(']', out);
}

void inpod_certs_free(struct inpod *ip)
{
	while (ip->ids) {
		struct identity_ctx *ic = ip->ids;

		ip->ids = ic->next;
		SSL_CTX_free(ic->server);
		SSL_CTX_free(ic->client);
		free(ic);
	}
	free_retired(ip, true);
}
