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
 * IO_RING_BUF_SIZE (4 MiB) of received bytes in ring buffers, however many sockets it serves.
 * The kernel picks a buffer only when bytes arrive; the socket that got it gives it back as soon
 * as its owner is done with the bytes (the next io_sock_read, or close). Once no buffer is out
 * and none was taken for a while, the pages go back to the system (MADV_DONTNEED): the kernel
 * writes into ring buffers only in this worker's own io_uring_enter (task work), never while
 * the worker runs this code.
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
	r->next = calloc(count, sizeof(*r->next));
	r->len = calloc(count, sizeof(*r->len));
	if (!r->next || !r->len)
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
	r->trimmed = true;	/* nothing touched yet */
	return 0;
fail_arrays:
	free(r->next);
	free(r->len);
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
	free(r->next);
	free(r->len);
	munmap(r->mem, (size_t)r->count * r->size);
	munmap(r->br, ring_bytes(r->count));
	memset(r, 0, sizeof(*r));
}

uint8_t *io_buf_ring_take(struct io_buf_ring *r, unsigned bid, uint32_t len)
{
	r->out++;
	r->len[bid] = len;
	r->used = true;
	r->trimmed = false;
	return r->mem + (size_t)bid * r->size;
}

uint8_t *io_buf_ring_data(const struct io_buf_ring *r, unsigned bid)
{
	return r->mem + (size_t)bid * r->size;
}

void io_buf_ring_put(struct io_buf_ring *r, unsigned bid)
{
	r->out--;
	ring_add(r, bid);
}

size_t io_buf_ring_trim(struct io_buf_ring *r, uint64_t now_ms, uint64_t idle_ms)
{
	if (!r->registered || r->trimmed || r->out)
		return 0;
	if (r->used) {		/* taken since the last look: quiet from now */
		r->used = false;
		r->quiet_since_ms = now_ms;
		return 0;
	}
	if (now_ms - r->quiet_since_ms < idle_ms)
		return 0;
	madvise(r->mem, (size_t)r->count * r->size, MADV_DONTNEED);
	r->trimmed = true;
	return (size_t)r->count * r->size;
}
