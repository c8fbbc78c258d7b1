/* io slab: a worker's per-connection objects, one 4 KiB page each, in slabs apart from the heap. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <ztunnel/iobuf.h>

/*
 * glibc gives back only whole free pages: a 3 KiB stream freed between small objects that stay
 * (HPACK entries, TLS state of pooled connections) pins its page for good, which is how RSS
 * stayed up after a storm. Here each object has a page of its own inside a 256 KiB slab: a
 * freed object's page goes back to the system (MADV_DONTNEED) once the worker is quiet or
 * holds many such pages, and an empty slab is unmapped, whatever the objects that stay.
 */
#define PAGE 4096
#define SLAB_SIZE (64 * PAGE)
#define SLAB_OBJS 63		/* page 0 is the header */
#define DIRTY_KEEP 256		/* freed pages kept resident for reuse, per worker */
#define QUIET_MS 1000

struct io_slab {
	struct io_slab *prev, *next;	/* in the list of slabs with a free object */
	uint64_t free;			/* bit i: object i is free */
	uint64_t dirty;			/* bit i: free, and its page still resident */
	unsigned used;
	uint64_t empty_since_ms;	/* the spare: when it emptied (0: not looked at yet) */
};

static const uint64_t all_free = (1ull << SLAB_OBJS) - 1;

static void *obj_at(struct io_slab *s, unsigned i)
{
	return (uint8_t *)s + (size_t)(i + 1) * PAGE;
}

static struct io_slab *slab_new(void)
{
	/* twice the size, then the unaligned ends go: a slab is found from any object's address */
	uint8_t *raw = mmap(NULL, 2 * SLAB_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t start;
	struct io_slab *s;

	if (raw == MAP_FAILED)
		return NULL;
	start = ((uintptr_t)raw + SLAB_SIZE - 1) & ~(uintptr_t)(SLAB_SIZE - 1);
	if (start > (uintptr_t)raw)
		munmap(raw, start - (uintptr_t)raw);
	munmap((uint8_t *)start + SLAB_SIZE, (uintptr_t)raw + 2 * SLAB_SIZE - start - SLAB_SIZE);
	s = (struct io_slab *)start;
	s->free = all_free;	/* fresh pages are zero and not resident */
	return s;
}

static void link_slab(struct io_obj_pool *o, struct io_slab *s)
{
	s->prev = NULL;
	s->next = o->partial;
	if (o->partial)
		o->partial->prev = s;
	o->partial = s;
}

static void unlink_slab(struct io_obj_pool *o, struct io_slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		o->partial = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

void *io_obj_alloc(struct io_buf_pool *p, size_t size)
{
	struct io_obj_pool *o = &p->obj;
	struct io_slab *s = o->partial;
	unsigned i;
	void *obj;

	if (size > PAGE) {
		errno = EINVAL;
		return NULL;
	}
	if (!s) {
		s = slab_new();
		if (!s)
			return NULL;
		o->n_slabs++;
		link_slab(o, s);
	}
	if (s == o->spare)
		o->spare = NULL;
	i = (unsigned)__builtin_ctzll(s->free);
	s->free &= ~(1ull << i);
	obj = obj_at(s, i);
	if (s->dirty & (1ull << i)) {	/* a resident page with an old object's bytes */
		s->dirty &= ~(1ull << i);
		o->n_dirty--;
		memset(obj, 0, PAGE);
	}
	s->used++;
	if (!s->free)
		unlink_slab(o, s);
	o->in_use++;
	o->last_alloc_ms = 0;	/* "used since the last look" */
	return obj;
}

static void slab_release(struct io_obj_pool *o, struct io_slab *s)
{
	unlink_slab(o, s);
	o->n_slabs--;
	o->n_dirty -= (size_t)__builtin_popcountll(s->dirty);
	munmap(s, SLAB_SIZE);
}

void io_obj_free(struct io_buf_pool *p, void *obj)
{
	struct io_obj_pool *o = &p->obj;
	struct io_slab *s;
	unsigned i;

	if (!obj)
		return;
	s = (struct io_slab *)((uintptr_t)obj & ~(uintptr_t)(SLAB_SIZE - 1));
	i = (unsigned)(((uintptr_t)obj - (uintptr_t)s) / PAGE) - 1;
	if (!s->free)
		link_slab(o, s);
	s->free |= 1ull << i;
	s->dirty |= 1ull << i;
	o->n_dirty++;
	s->used--;
	o->in_use--;
	if (s->used > 0)
		return;
	/* one empty slab stays for the next burst (until quiet); more go now */
	if (o->spare && o->spare != s) {
		slab_release(o, s);
		return;
	}
	o->spare = s;
	s->empty_since_ms = 0;
}

/* Gives the pages of freed objects back, in runs. */
static size_t clean_slab(struct io_obj_pool *o, struct io_slab *s)
{
	size_t freed = 0;

	while (s->dirty) {
		unsigned i = (unsigned)__builtin_ctzll(s->dirty), n = 0;

		while (i + n < SLAB_OBJS && (s->dirty & (1ull << (i + n))))
			n++;
		madvise(obj_at(s, i), (size_t)n * PAGE, MADV_DONTNEED);
		s->dirty &= ~(((1ull << n) - 1) << i);
		o->n_dirty -= n;
		freed += (size_t)n * PAGE;
	}
	return freed;
}

size_t io_obj_trim(struct io_buf_pool *p, uint64_t now_ms, uint64_t idle_ms)
{
	struct io_obj_pool *o = &p->obj;
	size_t freed = 0;
	bool quiet;

	if (o->last_alloc_ms == 0)
		o->last_alloc_ms = now_ms;
	quiet = now_ms - o->last_alloc_ms >= QUIET_MS;
	if (o->spare) {
		if (o->spare->empty_since_ms == 0) {
			o->spare->empty_since_ms = now_ms;
		} else if (now_ms - o->spare->empty_since_ms >= idle_ms) {
			struct io_slab *s = o->spare;

			o->spare = NULL;
			slab_release(o, s);
			freed += SLAB_SIZE;
		}
	}
	/* every slab with a dirty page has a free object, so it is on the partial list */
	if (quiet || o->n_dirty > DIRTY_KEEP)
		for (struct io_slab *s = o->partial; s; s = s->next)
			freed += clean_slab(o, s);
	return freed;
}

size_t io_obj_in_use(const struct io_buf_pool *p)
{
	return p->obj.in_use;
}
