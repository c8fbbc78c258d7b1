/* xds/demand.c: the set of names asked for on demand and not answered yet. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xds-int.h"

static ssize_t demand_index(const struct xds_demands *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->names[i], name) == 0)
			return (ssize_t)i;
	return -1;
}

bool xds_demands_pending(const struct xds_demands *d, const char *name)
{
	return name && demand_index(d, name) >= 0;
}

static int demands_grow(struct xds_demands *d)
{
	size_t cap = d->cap ? d->cap * 2 : 16;
	char **names = realloc(d->names, cap * sizeof(*names));
	bool *sent;

	if (!names)
		return -ENOMEM;
	d->names = names;
	sent = realloc(d->sent, cap * sizeof(*sent));
	if (!sent)
		return -ENOMEM;
	d->sent = sent;
	d->cap = cap;
	return 0;
}

int xds_demands_add(struct xds_demands *d, const char *name)
{
	size_t len = name ? strnlen(name, XDS_MAX_NAME + 1) : 0;

	if (!len || len > XDS_MAX_NAME || strcmp(name, "*") == 0)
		return -EINVAL;
	if (demand_index(d, name) >= 0)
		return 0;
	if (d->n >= XDS_MAX_DEMANDS)
		return -ENOSPC;
	if (d->n == d->cap && demands_grow(d))
		return -ENOMEM;
	d->names[d->n] = strdup(name);
	if (!d->names[d->n])
		return -ENOMEM;
	d->sent[d->n++] = false;
	return 1;
}

/* Moves pending name (if it is) into out[*n]. */
static void answer_one(struct xds_demands *d, const char *name, char **out, size_t *n)
{
	ssize_t i = name ? demand_index(d, name) : -1;

	if (i < 0)
		return;
	out[(*n)++] = d->names[i];
	d->n--;
	d->names[i] = d->names[d->n];
	d->sent[i] = d->sent[d->n];
}

char **xds_demands_answer(struct xds_demands *d,
			  const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *resp,
			  size_t *n)
{
	char **out;

	*n = 0;
	if (!d->n)
		return NULL;
	out = calloc(d->n, sizeof(*out));	/* each pending name is answered at most once */
	if (!out)
		return NULL;
	for (size_t i = 0; i < resp->n_resources && d->n; i++) {
		const Envoy__Service__Discovery__V3__Resource *r = resp->resources[i];

		answer_one(d, r->name, out, n);
		for (size_t j = 0; j < r->n_aliases && d->n; j++)
			answer_one(d, r->aliases[j], out, n);
	}
	for (size_t i = 0; i < resp->n_removed_resources && d->n; i++)
		answer_one(d, resp->removed_resources[i], out, n);
	if (!*n) {
		free(out);
		return NULL;
	}
	return out;
}

const char **xds_demands_to_send(struct xds_demands *d, bool all, size_t *n)
{
	const char **out;

	*n = 0;
	for (size_t i = 0; i < d->n; i++)
		*n += all || !d->sent[i];
	if (!*n)
		return NULL;
	out = calloc(*n, sizeof(*out));
	if (!out) {
		*n = 0;
		return NULL;	/* retried on the next wake-up */
	}
	*n = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (!all && d->sent[i])
			continue;
		out[(*n)++] = d->names[i];
		d->sent[i] = true;
	}
	return out;
}

void xds_names_free(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

void xds_demands_clear(struct xds_demands *d)
{
	xds_names_free(d->names, d->n);
	free(d->sent);
	memset(d, 0, sizeof(*d));
}
