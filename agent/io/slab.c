/* io slab: a worker's per-connection objects (512 B to 4 KiB) in slabs apart from the heap. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <ztunnel/iobuf.h>

/*
 * glibc gives back only whole free pages: a 3 KiB stream freed between small objects that stay
 * (HPACK entries, TLS state of pooled connections) pins its page for good, which is how RSS
 * stayed up after a storm. Here objects live in 256 KiB slabs of one slot size that share pages
 * with nothing else: the pages of freed objects go back to the system (MADV_DONTNEED) once the
 * worker is quiet or keeps many of them, and an empty slab is unmapped, whatever stays.
 */
#define PAGE 4096
#define SLAB_SIZE (64 * PAGE)
#define SLAB_PAGES 63		/* page 0 is the header */
#define SLAB_OBJS (SLAB_PAGES * 8)	/* of the smallest slot */
#define MAP_WORDS ((SLAB_OBJS + 63) / 64)
#define DIRTY_KEEP 256		/* freed objects kept resident for reuse, per class and worker */
#define QUIET_MS 1000

static const uint32_t slot_size[IO_OBJ_CLASSES] = { 512, 1024, 2048, 4096 };
_Static_assert(SLAB_PAGES * (PAGE / 512) <= 64 * MAP_WORDS, "a slab's maps hold its objects");

struct io_slab {
	struct io_slab *prev, *next;	/* in its class's list of slabs with a free object */
	uint64_t free[MAP_WORDS];	/* bit i: object i is free */
	uint64_t dirty[MAP_WORDS];	/* bit i: free, and its bytes still resident */
	unsigned used, cls, per_page;
	uint64_t empty_since_ms;	/* the spare: when it emptied (0: not looked at yet) */
};

static bool bit(const uint64_t *m, unsigned i)
{
	return m[i / 64] & (1ull << (i % 64));
}

static void bit_set(uint64_t *m, unsigned i)
{
	m[i / 64] |= 1ull << (i % 64);
}

static void bit_clear(uint64_t *m, unsigned i)
{
	m[i / 64] &= ~(1ull << (i % 64));
}

static bool none(const uint64_t *m)
{
	for (unsigned k = 0; k < MAP_WORDS; k++)
		if (m[k])
			return false;
	return true;
}

/* The first set bit; m has one. */
static unsigned first(const uint64_t *m)
{
	unsigned k = 0;

	while (!m[k])
		k++;
	return 64 * k + (unsigned)__builtin_ctzll(m[k]);
}

static unsigned count(const uint64_t *m)
{
	unsigned n = 0;

	for (unsigned k = 0; k < MAP_WORDS; k++)
		n += (unsigned)__builtin_popcountll(m[k]);
	return n;
}

static void *obj_at(struct io_slab *s, unsigned i)
{
	return (uint8_t *)s + PAGE + (size_t)i * slot_size[s->cls];
}

static struct io_slab *slab_new(unsigned cls)
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
	s->cls = cls;
	s->per_page = PAGE / slot_size[cls];
	for (unsigned i = 0; i < SLAB_PAGES * s->per_page; i++)
		bit_set(s->free, i);	/* fresh pages are zero and not resident */
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
	unsigned cls = 0, i;
	struct io_obj_pool *o;
	struct io_slab *s;
	void *obj;

	if (size > slot_size[IO_OBJ_CLASSES - 1]) {
		errno = EINVAL;
		return NULL;
	}
	while (size > slot_size[cls])
		cls++;
	o = &p->obj[cls];
	s = o->partial;
	if (!s) {
		s = slab_new(cls);
		if (!s)
			return NULL;
		o->n_slabs++;
		link_slab(o, s);
	}
	if (s == o->spare)
		o->spare = NULL;
	i = first(s->free);
	bit_clear(s->free, i);
	obj = obj_at(s, i);
	if (bit(s->dirty, i)) {	/* resident, with an old object's bytes */
		bit_clear(s->dirty, i);
		o->n_dirty--;
		memset(obj, 0, slot_size[cls]);
	}
	s->used++;
	if (none(s->free))
		unlink_slab(o, s);
	o->in_use++;
	o->last_alloc_ms = 0;	/* "used since the last look" */
	return obj;
}

static void slab_release(struct io_obj_pool *o, struct io_slab *s)
{
	unlink_slab(o, s);
	o->n_slabs--;
	o->n_dirty -= count(s->dirty);
	munmap(s, SLAB_SIZE);
}

void io_obj_free(struct io_buf_pool *p, void *obj)
{
	struct io_slab *s;
	struct io_obj_pool *o;
	unsigned i;

	if (!obj)
		return;
	s = (struct io_slab *)((uintptr_t)obj & ~(uintptr_t)(SLAB_SIZE - 1));
	o = &p->obj[s->cls];
	i = (unsigned)(((uintptr_t)obj - (uintptr_t)s - PAGE) / slot_size[s->cls]);
	if (none(s->free))
		link_slab(o, s);
	bit_set(s->free, i);
	bit_set(s->dirty, i);
	o->n_dirty++;
	s->used--;
	o->in_use--;
	if (s->used > 0)
		return;
	/* one empty slab per class stays for the next burst (until quiet); more go now */
	if (o->spare && o->spare != s) {
		slab_release(o, s);
		return;
	}
	o->spare = s;
	s->empty_since_ms = 0;
}

/* A page can go when every object on it is free and one of them still has bytes there. */
static bool page_releasable(const struct io_slab *s, unsigned pg)
{
	bool dirty = false;

	for (unsigned k = 0; k < s->per_page; k++) {
		unsigned i = pg * s->per_page + k;

		if (!bit(s->free, i))
			return false;
		dirty |= bit(s->dirty, i);
	}
	return dirty;
}

/* Gives back the pages of freed objects, in runs of pages. */
static size_t clean_slab(struct io_obj_pool *o, struct io_slab *s)
{
	size_t freed = 0;

	for (unsigned pg = 0; pg < SLAB_PAGES;) {
		unsigned n = 0;

		while (pg + n < SLAB_PAGES && page_releasable(s, pg + n))
			n++;
		if (!n) {
			pg++;
			continue;
		}
		madvise(obj_at(s, pg * s->per_page), (size_t)n * PAGE, MADV_DONTNEED);
		for (unsigned i = pg * s->per_page; i < (pg + n) * s->per_page; i++) {
			if (bit(s->dirty, i)) {
				bit_clear(s->dirty, i);
				o->n_dirty--;
			}
		}
		freed += (size_t)n * PAGE;
		pg += n;
	}
	return freed;
}

static size_t trim_class(struct io_obj_pool *o, uint64_t now_ms, uint64_t idle_ms)
{
	size_t freed = 0;

	if (o->last_alloc_ms == 0)
		o->last_alloc_ms = now_ms;
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
	/* every slab with a dirty object has a free one, so it is on the partial list */
	if (o->n_dirty && (now_ms - o->last_alloc_ms >= QUIET_MS || o->n_dirty > DIRTY_KEEP))
		for (struct io_slab *s = o->partial; s; s = s->next)
			freed += clean_slab(o, s);
	return freed;
}

size_t io_obj_trim(struct io_buf_pool *p, uint64_t now_ms, uint64_t idle_ms)
{
	size_t freed = 0;

	for (int i = 0; i < IO_OBJ_CLASSES; i++)
		freed += trim_class(&p->obj[i], now_ms, idle_ms);
	return freed;
}

size_t io_obj_in_use(const struct io_buf_pool *p)
{
	size_t n = 0;

	for (int i = 0; i < IO_OBJ_CLASSES; i++)
		n += p->obj[i].in_use;
	return n;
}
