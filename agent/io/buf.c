/* io buf: the per-worker buffer pool (fixed classes, bounded cache, shrinking when quiet). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/iobuf.h>

struct io_buf_free {
	struct io_buf_free *next;
};

static const size_t class_size[IO_BUF_CLASSES] = {
	[IO_BUF_16K] = 16 * 1024,
	[IO_BUF_64K] = 64 * 1024,
	[IO_BUF_256K] = 256 * 1024,
};

/* At most this many bytes of each class stay cached: 1 MiB, 2 MiB, 2 MiB per worker. */
static const unsigned class_cache[IO_BUF_CLASSES] = {
	[IO_BUF_16K] = 64,
	[IO_BUF_64K] = 32,
	[IO_BUF_256K] = 8,
};

size_t io_buf_size(enum io_buf_class cls)
{
	return class_size[cls];
}

uint8_t *io_buf_get(struct io_buf_pool *p, enum io_buf_class cls)
{
	struct io_buf_class_pool *c = &p->cls[cls];
	struct io_buf_free *f = c->free;

	if (f) {
		c->free = f->next;
		c->n_free--;
	} else {
		f = malloc(class_size[cls]);
		if (!f)
			return NULL;
	}
	c->in_use++;
	c->last_get_ms = 0;	/* "used since the last trim" */
	return (uint8_t *)f;
}

void io_buf_put(struct io_buf_pool *p, enum io_buf_class cls, uint8_t **buf)
{
	struct io_buf_class_pool *c = &p->cls[cls];
	struct io_buf_free *f = (struct io_buf_free *)*buf;

	if (!f)
		return;
	*buf = NULL;
	c->in_use--;
	if (c->n_free >= class_cache[cls]) {
		free(f);
		return;
	}
	f->next = c->free;
	c->free = f;
	c->n_free++;
}

static size_t drop_cached(struct io_buf_class_pool *c, size_t size)
{
	size_t n = 0;

	while (c->free) {
		struct io_buf_free *f = c->free;

		c->free = f->next;
		free(f);
		n += size;
	}
	c->n_free = 0;
	return n;
}

size_t io_buf_trim(struct io_buf_pool *p, uint64_t now_ms, uint64_t idle_ms)
{
	size_t freed = 0;

	for (int i = 0; i < IO_BUF_CLASSES; i++) {
		struct io_buf_class_pool *c = &p->cls[i];

		if (c->last_get_ms == 0) {	/* used since the last look: quiet from now */
			c->last_get_ms = now_ms;
			continue;
		}
		if (c->n_free && now_ms - c->last_get_ms >= idle_ms)
			freed += drop_cached(c, class_size[i]);
	}
	return freed;
}

void io_buf_pool_clear(struct io_buf_pool *p)
{
	for (int i = 0; i < IO_BUF_CLASSES; i++)
		drop_cached(&p->cls[i], class_size[i]);
}

size_t io_buf_in_use_bytes(const struct io_buf_pool *p)
{
	size_t n = 0;

	for (int i = 0; i < IO_BUF_CLASSES; i++)
		n += p->cls[i].in_use * class_size[i];
	return n;
}

/* ---- byte queue ---- */

#define CHUNK_CLASS IO_BUF_64K

struct io_bufq_chunk {
	struct io_bufq_chunk *next;
	uint32_t start, end;	/* bytes [start, end) of data are queued */
	uint8_t data[];
};

static size_t chunk_room(void)
{
	return io_buf_size(CHUNK_CLASS) - sizeof(struct io_bufq_chunk);
}

static void put_chunk(struct io_buf_pool *p, struct io_bufq_chunk *c)
{
	uint8_t *b = (uint8_t *)c;

	io_buf_put(p, CHUNK_CLASS, &b);
}

int io_bufq_append(struct io_buf_pool *p, struct io_bufq *q, const uint8_t *data, size_t len)
{
	size_t room = q->tail ? chunk_room() - q->tail->end : 0;
	size_t need = len > room ? len - room : 0, done;
	struct io_bufq_chunk *chain = NULL, **link = &chain;

	/* take every chunk needed first, so a failure appends nothing */
	for (size_t n = (need + chunk_room() - 1) / chunk_room(); n > 0; n--) {
		struct io_bufq_chunk *c = (void *)io_buf_get(p, CHUNK_CLASS);

		if (!c) {
			while (chain) {
				struct io_bufq_chunk *next = chain->next;

				put_chunk(p, chain);
				chain = next;
			}
			return -ENOMEM;
		}
		c->next = NULL;
		c->start = c->end = 0;
		*link = c;
		link = &c->next;
	}
	done = len < room ? len : room;
	if (done) {
		memcpy(q->tail->data + q->tail->end, data, done);
		q->tail->end += (uint32_t)done;
	}
	if (chain) {
		if (q->tail)
			q->tail->next = chain;
		else
			q->head = chain;
	}
	for (struct io_bufq_chunk *c = chain; c; c = c->next) {
		size_t n = len - done < chunk_room() ? len - done : chunk_room();

		memcpy(c->data, data + done, n);
		c->end = (uint32_t)n;
		done += n;
		q->tail = c;
	}
	q->len += len;
	return 0;
}

const uint8_t *io_bufq_peek(const struct io_bufq *q, size_t *len)
{
	if (!q->head) {
		*len = 0;
		return NULL;
	}
	*len = q->head->end - q->head->start;
	return q->head->data + q->head->start;
}

void io_bufq_consume(struct io_buf_pool *p, struct io_bufq *q, size_t n)
{
	q->len -= n;
	while (n > 0 && q->head) {
		struct io_bufq_chunk *c = q->head;
		size_t have = c->end - c->start;

		if (n < have) {
			c->start += (uint32_t)n;
			return;
		}
		n -= have;
		q->head = c->next;
		if (!q->head)
			q->tail = NULL;
		put_chunk(p, c);
	}
}
