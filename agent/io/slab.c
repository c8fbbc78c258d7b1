/* io slab: a worker's small per-connection objects, kept apart from the heap in slabs of one size. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <ztunnel/iobuf.h>

/*
 * glibc gives back only whole free pages: a 3 KiB stream freed between small objects that stay
 * (HPACK entries, TLS state of pooled connections) pins its page for good, which is how RSS
 * stayed up after a storm. Here every slab holds objects of one size class and nothing else,
 * so once a storm's connections are gone their slabs are empty and unmapped.
 */
#define SLAB_SIZE (256 * 1024)

struct io_obj_free {
	struct io_obj_free *next;
};

struct io_slab {
	struct io_slab *prev, *next;	/* in its class's list of slabs with room */
	struct io_obj_free *free;	/* freed objects */
	uint32_t fresh;			/* offset of the first never-used object */
	uint32_t used;
	uint32_t cls;
	uint64_t empty_since_ms;	/* the spare: when it emptied */
};

static const uint32_t obj_size[IO_OBJ_CLASSES] = { 256, 512, 1024, 2048, 4096 };

static uint32_t first_offset(uint32_t cls)
{
	uint32_t sz = obj_size[cls];

	return (uint32_t)((sizeof(struct io_slab) + sz - 1) / sz * sz);
}

static struct io_slab *slab_new(uint32_t cls)
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
	s->fresh = first_offset(cls);
	return s;
}

static void link_slab(struct io_obj_class *c, struct io_slab *s)
{
	s->prev = NULL;
	s->next = c->partial;
	if (c->partial)
		c->partial->prev = s;
	c->partial = s;
}

static void unlink_slab(struct io_obj_class *c, struct io_slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->partial = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static bool slab_full(const struct io_slab *s)
{
	return !s->free && s->fresh + obj_size[s->cls] > SLAB_SIZE;
}

void *io_obj_alloc(struct io_buf_pool *p, size_t size)
{
	uint32_t cls = 0;
	struct io_obj_class *c;
	struct io_slab *s;
	void *obj;

	while (cls < IO_OBJ_CLASSES && obj_size[cls] < size)
		cls++;
	if (cls == IO_OBJ_CLASSES) {
		errno = EINVAL;
		return NULL;
	}
	c = &p->obj[cls];
	s = c->partial;
	if (!s) {
		s = slab_new(cls);
		if (!s)
			return NULL;
		c->n_slabs++;
		link_slab(c, s);
	}
	if (s == c->spare)
		c->spare = NULL;
	if (s->free) {
		obj = s->free;
		s->free = s->free->next;
	} else {
		obj = (uint8_t *)s + s->fresh;
		s->fresh += obj_size[cls];
	}
	s->used++;
	if (slab_full(s))
		unlink_slab(c, s);
	c->in_use++;
	return memset(obj, 0, obj_size[cls]);
}

static void slab_release(struct io_obj_class *c, struct io_slab *s)
{
	unlink_slab(c, s);
	c->n_slabs--;
	munmap(s, SLAB_SIZE);
}

void io_obj_free(struct io_buf_pool *p, void *obj)
{
	struct io_slab *s;
	struct io_obj_class *c;
	struct io_obj_free *f = obj;

	if (!obj)
		return;
	s = (struct io_slab *)((uintptr_t)obj & ~(uintptr_t)(SLAB_SIZE - 1));
	c = &p->obj[s->cls];
	if (slab_full(s))
		link_slab(c, s);
	f->next = s->free;
	s->free = f;
	s->used--;
	c->in_use--;
	if (s->used > 0)
		return;
	/* one empty slab per class stays for the next burst (until quiet); more go now */
	if (c->spare && c->spare != s) {
		slab_release(c, s);
		return;
	}
	c->spare = s;
	s->empty_since_ms = 0;
}

size_t io_obj_trim(struct io_buf_pool *p, uint64_t now_ms, uint64_t idle_ms)
{
	size_t freed = 0;

	for (int i = 0; i < IO_OBJ_CLASSES; i++) {
		struct io_obj_class *c = &p->obj[i];
		struct io_slab *s = c->spare;

		if (!s)
			continue;
		if (s->empty_since_ms == 0) {
			s->empty_since_ms = now_ms;
			continue;
		}
		if (now_ms - s->empty_since_ms >= idle_ms) {
			c->spare = NULL;
			slab_release(c, s);
			freed += SLAB_SIZE;
		}
	}
	return freed;
}

size_t io_obj_in_use(const struct io_buf_pool *p)
{
	size_t n = 0;

	for (int i = 0; i < IO_OBJ_CLASSES; i++)
		n += p->obj[i].in_use;
	return n;
}
