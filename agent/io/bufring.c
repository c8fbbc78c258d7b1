/* io bufring: the worker's provided buffer ring that multishot recvs take their buffers from. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <ztunnel/io.h>

#include "io-int.h"

/*
 * One ring per worker (buffer group IO_RING_BGID): IO_RING_BUFS buffers of IO_RING_BUF_SIZE
 * bytes in one anonymous mapping, so a worker never holds more than IO_RING_BUFS *
 * IO_RING_BUF_SIZE (2 MiB) of received bytes in ring buffers, however many sockets it serves.
 * The kernel picks a buffer only when bytes arrive; the socket that got it gives it back as soon
 * as its owner is done with the bytes (the next io_sock_read, or close). The kernel takes ring
 * buffers in turn, so all of them end up resident: once none was taken for a while, the pages
 * of those back in the ring go back to the system (MADV_DONTNEED). That is safe for a buffer
 * the kernel owns: it writes into one only while running this worker's recvs, in the worker's
 * own io_uring_enter or task work (sockets are polled, never punted to io-wq threads), never
 * while the worker runs this code; a page given back reads as zeroes until written again.
 */

static size_t ring_bytes(unsigned count)
{
	return (count * sizeof(struct io_uring_buf) + 4095) & ~(size_t)4095;
}

static void ring_add(struct io_buf_ring *r, unsigned bid)
{
	io_uring_buf_ring_add(r->br, r->mem + (size_t)bid * r->size, r->size, (unsigned short)bid,
			      io_uring_buf_ring_mask(r->count), 0);
	io_uring_buf_ring_advance(r->br, 1);
}

int io_buf_ring_init(struct io_uring *ring, struct io_buf_ring *r, unsigned count, unsigned size)
{
	struct io_uring_buf_reg reg = { 0 };
	int ret = -ENOMEM;

	memset(r, 0, sizeof(*r));
	r->count = count;
	r->size = size;
	r->br = mmap(NULL, ring_bytes(count), PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
		     -1, 0);
	if (r->br == MAP_FAILED)
		goto fail_br;
	r->mem = mmap(NULL, (size_t)count * size, PROT_READ | PROT_WRITE,
		      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (r->mem == MAP_FAILED)
		goto fail_mem;
	r->slot = calloc(count, sizeof(*r->slot));
	if (!r->slot)
		goto fail_arrays;
	io_uring_buf_ring_init(r->br);
	reg.ring_addr = (unsigned long)r->br;
	reg.ring_entries = count;
	reg.bgid = IO_RING_BGID;
	ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret < 0)
		goto fail_arrays;
	for (unsigned i = 0; i < count; i++)
		ring_add(r, i);
	r->registered = true;
	return 0;
fail_arrays:
	free(r->slot);
	munmap(r->mem, (size_t)count * size);
fail_mem:
	munmap(r->br, ring_bytes(count));
fail_br:
	memset(r, 0, sizeof(*r));
	return ret;
}

void io_buf_ring_free(struct io_uring *ring, struct io_buf_ring *r)
{
	if (!r->registered)
		return;
	io_uring_unregister_buf_ring(ring, IO_RING_BGID);
	free(r->slot);
	munmap(r->mem, (size_t)r->count * r->size);
	munmap(r->br, ring_bytes(r->count));
	memset(r, 0, sizeof(*r));
}

uint8_t *io_buf_ring_take(struct io_buf_ring *r, unsigned bid, uint32_t len)
{
	struct io_buf_ring_slot *b = &r->slot[bid];

	r->out++;
	b->out = true;
	b->dirty = true;
	b->len = len;
	r->used = true;
	return r->mem + (size_t)bid * r->size;
}

uint8_t *io_buf_ring_data(const struct io_buf_ring *r, unsigned bid)
{
	return r->mem + (size_t)bid * r->size;
}

void io_buf_ring_put(struct io_buf_ring *r, unsigned bid)
{
	r->out--;
	r->slot[bid].out = false;
	ring_add(r, bid);
}

size_t io_buf_ring_trim(struct io_buf_ring *r, uint64_t now_ms, uint64_t idle_ms)
{
	size_t given = 0;
	unsigned i, j;

	if (!r->registered)
		return 0;
	if (r->used) {		/* taken since the last look: quiet from now */
		r->used = false;
		r->quiet_since_ms = now_ms;
		return 0;
	}
	if (now_ms - r->quiet_since_ms < idle_ms)
		return 0;
	for (i = 0; i < r->count; i = j + 1) {	/* runs of dirty buffers back in the ring */
		for (j = i; j < r->count && r->slot[j].dirty && !r->slot[j].out; j++)
			r->slot[j].dirty = false;
		if (j == i)
			continue;
		madvise(r->mem + (size_t)i * r->size, (size_t)(j - i) * r->size, MADV_DONTNEED);
		given += (size_t)(j - i) * r->size;
	}
	return given;
}
