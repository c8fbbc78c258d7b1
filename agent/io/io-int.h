/* io-int: what the io module's files share and nobody else needs (the buffer ring, delivery). */
#ifndef ZTUNNEL_IO_INT_H
#define ZTUNNEL_IO_INT_H

#include <ztunnel/io.h>

#define IO_RING_BGID 0

/* Registers r with count buffers of size bytes (count a power of two <= 32768) in ring.
 * 0 or -errno (r is then unused: sockets read with poll and recv). */
int io_buf_ring_init(struct io_uring *ring, struct io_buf_ring *r, unsigned count, unsigned size);
void io_buf_ring_free(struct io_uring *ring, struct io_buf_ring *r);
/* A completion handed buffer bid (len bytes) to user space: counted out, data returned. */
uint8_t *io_buf_ring_take(struct io_buf_ring *r, unsigned bid, uint32_t len);
uint8_t *io_buf_ring_data(const struct io_buf_ring *r, unsigned bid);
/* Gives buffer bid back to the kernel. */
void io_buf_ring_put(struct io_buf_ring *r, unsigned bid);
/* The tick: the pages of a ring unused for idle_ms with no buffer out go back to the system.
 * Returns the bytes given back. */
size_t io_buf_ring_trim(struct io_buf_ring *r, uint64_t now_ms, uint64_t idle_ms);

/* Delivers the reads io_sock_read found already queued (never from inside io_sock_read: the
 * owner's on_read runs from the loop, as for a completion). The loop calls it after each batch
 * of completions. */
void io_sock_run_ready(struct io_worker *w);

#endif
