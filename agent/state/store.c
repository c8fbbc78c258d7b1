/* state/store.c: the published snapshot, swapped under a short mutex, with a generation counter. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <ztunnel/state.h>

struct state_store {
	pthread_mutex_t lock;		/* guards current; held only to swap or take a reference */
	struct state_snapshot *current;	/* owns one reference */
	unsigned long generation;	/* atomic; bumped after each swap */
};

struct state_store *state_store_new(void)
{
	struct state_store *store = calloc(1, sizeof(*store));
	int ret;

	if (!store) {
		errno = ENOMEM;
		return NULL;
	}
	ret = pthread_mutex_init(&store->lock, NULL);
	if (ret) {
		free(store);
		errno = ret;
		return NULL;
	}
	return store;
}

void state_store_free(struct state_store **store)
{
	if (!store || !*store)
		return;
	state_snapshot_put(&(*store)->current);
	pthread_mutex_destroy(&(*store)->lock);
	free(*store);
	*store = NULL;
}

/* A NULL snap is ignored: once published, the store always has a snapshot. */
void state_store_publish(struct state_store *store, struct state_snapshot *snap)
{
	struct state_snapshot *old;

	if (!store || !snap)
		return;
	state_snapshot_index(snap);	/* once, before any worker reads it; if it fails, scans */
	pthread_mutex_lock(&store->lock);
	old = store->current;
	store->current = snap;
	__atomic_add_fetch(&store->generation, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&store->lock);
	/* Freeing a large snapshot happens outside the lock, so readers never wait for it. */
	state_snapshot_put(&old);
}

struct state_snapshot *state_store_current(struct state_store *store)
{
	struct state_snapshot *snap;

	if (!store)
		return NULL;
	pthread_mutex_lock(&store->lock);
	snap = state_snapshot_get(store->current);
	pthread_mutex_unlock(&store->lock);
	return snap;
}

unsigned long state_store_generation(const struct state_store *store)
{
	return store ? __atomic_load_n(&store->generation, __ATOMIC_ACQUIRE) : 0;
}
