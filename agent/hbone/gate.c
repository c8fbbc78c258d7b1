/* hbone gate: node-wide bounds: inbound handshakes pending (in all, per source), bytes queued to apps. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "hbone-int.h"

#define GATE_BUCKETS 1024

struct gate_source {
	struct gate_source *next;
	uint8_t addr[16];
	unsigned pending;
};

struct hbone_gate {
	pthread_mutex_t lock;
	unsigned max_total, max_per_source;
	unsigned total;
	uint64_t app_bytes;	/* atomic */
	uint64_t app_limit;
	struct gate_source *buckets[GATE_BUCKETS];	/* sources with pending > 0; owned */
};

struct hbone_gate *hbone_gate_new(const struct hbone_settings *set)
{
	struct hbone_gate *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	pthread_mutex_init(&g->lock, NULL);
	g->max_total = set->max_pending_handshakes ? set->max_pending_handshakes : UINT32_MAX;
	g->max_per_source = set->max_pending_per_source ? set->max_pending_per_source : UINT32_MAX;
	g->app_limit = set->app_buffer_limit ? set->app_buffer_limit : UINT64_MAX;
	return g;
}

void hbone_gate_free(struct hbone_gate **gp)
{
	struct hbone_gate *g = *gp;

	if (!g)
		return;
	for (unsigned i = 0; i < GATE_BUCKETS; i++) {
		while (g->buckets[i]) {
			struct gate_source *s = g->buckets[i];

			g->buckets[i] = s->next;
			free(s);
		}
	}
	pthread_mutex_destroy(&g->lock);
	free(g);
	*gp = NULL;
}

/* v4 addresses as v4-mapped v6, so one key shape serves both */
static void key_of(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

static unsigned bucket_of(const uint8_t key[16])
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % GATE_BUCKETS;
}

int hbone_gate_enter(struct hbone_gate *g, const struct sockaddr_storage *peer)
{
	struct gate_source *s, **pp;
	uint8_t key[16];
	int ret = 0;

	if (!g)
		return 0;
	key_of(peer, key);
	pthread_mutex_lock(&g->lock);
	if (g->total >= g->max_total) {
		ret = -EBUSY;
		goto out;
	}
	for (pp = &g->buckets[bucket_of(key)]; (s = *pp); pp = &s->next)
		if (memcmp(s->addr, key, 16) == 0)
			break;
	if (s && s->pending >= g->max_per_source) {
		ret = -EMLINK;
		goto out;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			ret = -ENOMEM;
			goto out;
		}
		memcpy(s->addr, key, 16);
		*pp = s;
	}
	s->pending++;
	g->total++;
out:
	pthread_mutex_unlock(&g->lock);
	return ret;
}

void hbone_gate_leave(struct hbone_gate *g, const struct sockaddr_storage *peer)
{
	struct gate_source *s, **pp;
	uint8_t key[16];

	if (!g)
		return;
	key_of(peer, key);
	pthread_mutex_lock(&g->lock);
	for (pp = &g->buckets[bucket_of(key)]; (s = *pp); pp = &s->next) {
		if (memcmp(s->addr, key, 16) != 0)
			continue;
		g->total--;
		if (--s->pending == 0) {
			*pp = s->next;
			free(s);
		}
		break;
	}
	pthread_mutex_unlock(&g->lock);
}

unsigned hbone_gate_pending(struct hbone_gate *g)
{
	unsigned n;

	if (!g)
		return 0;
	pthread_mutex_lock(&g->lock);
	n = g->total;
	pthread_mutex_unlock(&g->lock);
	return n;
}

bool hgate_app_add(struct hbone_gate *g, size_t n)
{
	if (!g)
		return true;
	return __atomic_add_fetch(&g->app_bytes, n, __ATOMIC_RELAXED) <= g->app_limit;
}

void hgate_app_release(struct hbone_gate *g, size_t n)
{
	if (g && n)
		__atomic_sub_fetch(&g->app_bytes, n, __ATOMIC_RELAXED);
}
