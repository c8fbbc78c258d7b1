/* iobuf: the worker's pool of fixed-size I/O buffers and the byte queues built from them. */
#ifndef ZTUNNEL_IOBUF_H
#define ZTUNNEL_IOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Buffer classes. A socket holds a buffer only while bytes are in it: an idle connection holds
 * none. Freed buffers are kept for reuse up to a bound per class and given back to the system
 * once the class has been quiet for a while, so memory returns after a storm.
 */
enum io_buf_class { IO_BUF_16K, IO_BUF_64K, IO_BUF_256K, IO_BUF_CLASSES };

struct io_buf_free;

struct io_buf_class_pool {
	struct io_buf_free *free;	/* cached buffers, linked through their first bytes; owned */
	unsigned n_free;
	unsigned in_use;
	uint64_t last_get_ms;
};

struct io_slab;

/* Slot sizes of the object slabs: 512 bytes (a tunnelled stream), 1 KiB (a relay), 2 KiB (an
 * HBONE connection) and 4 KiB. */
#define IO_OBJ_CLASSES 4

/* The slabs of per-connection objects of one slot size. */
struct io_obj_pool {
	struct io_slab *partial;	/* slabs with a free object; owned (mmap) */
	struct io_slab *spare;		/* an empty slab kept for the next burst, or NULL */
	unsigned n_slabs;
	size_t in_use;
	size_t n_dirty;			/* freed objects whose pages are still resident */
	uint64_t last_alloc_ms;		/* 0: allocated since the last trim */
};

/* One per worker; used only on the worker's thread. */
struct io_buf_pool {
	struct io_buf_class_pool cls[IO_BUF_CLASSES];
	struct io_obj_pool obj[IO_OBJ_CLASSES];
};

/*
 * The worker's provided buffer ring (io_uring buffer group): sockets read with multishot recv
 * and the kernel picks a buffer only when bytes arrive, so a connection waiting for bytes holds
 * none. IO_RING_BUFS buffers of IO_RING_BUF_SIZE: at most 2 MiB per worker, however many
 * sockets; a buffer goes back to the ring when its socket's owner is done with the bytes. When
 * the ring is empty a socket reads as without it (poll, then recv into a pool buffer).
 */
#define IO_RING_BUFS 64
#define IO_RING_BUF_SIZE (32 * 1024)

struct io_buf_ring_slot {
	uint16_t next;			/* the next buffer queued on the same socket */
	bool out;			/* handed to user space by a completion */
	bool dirty;			/* written since its pages were last given back */
	uint32_t len;			/* the bytes the kernel put in it */
};

struct io_uring_buf_ring;
struct io_buf_ring {
	struct io_uring_buf_ring *br;	/* the ring shared with the kernel; owned (mmap) */
	uint8_t *mem;			/* count * size bytes of buffers; owned (mmap) */
	struct io_buf_ring_slot *slot;	/* count of them; owned */
	unsigned count, size;
	unsigned out;			/* buffers the kernel handed to user space, not put back */
	bool registered;		/* false: no ring (turned off, or the kernel refused it) */
	bool used;			/* a buffer taken since the last trim */
	uint64_t quiet_since_ms;
	/* counters (worker thread only) */
	uint64_t recvs;			/* completions that carried a buffer */
	uint64_t enobufs;		/* multishot recvs ended because the ring was empty */
	uint64_t fallbacks;		/* reads done with poll + recv into a pool buffer instead */
	uint64_t cancels;		/* multishot recvs stopped because their socket queued too much */
	uint64_t delivered;		/* reads delivered from queued ring buffers, of which */
	uint64_t spans;			/* ... adjacent buffers as one read (no copy) */
	uint64_t gathered;		/* ... buffers copied into one pool buffer */
};

/* Size in bytes of a class. */
size_t io_buf_size(enum io_buf_class cls);
/* A buffer of the class: from the cache or malloc. NULL when out of memory. */
uint8_t *io_buf_get(struct io_buf_pool *p, enum io_buf_class cls);
/* Gives *buf back (cached or freed) and clears the pointer. NULL is fine. */
void io_buf_put(struct io_buf_pool *p, enum io_buf_class cls, uint8_t **buf);
/* Frees cached buffers of classes unused for idle_ms (the worker's tick calls it). Returns the
 * number of bytes handed back to the allocator. */
size_t io_buf_trim(struct io_buf_pool *p, uint64_t now_ms, uint64_t idle_ms);
/* Frees every cached buffer (worker exit). */
void io_buf_pool_clear(struct io_buf_pool *p);
/* Bytes in buffers handed out and not given back. */
size_t io_buf_in_use_bytes(const struct io_buf_pool *p);

/*
 * Per-connection objects (up to 4 KiB) in slots of 512 bytes, 1, 2 or 4 KiB (the smallest that
 * fits), in slabs apart from the heap: when a storm's connections are gone their pages go back
 * to the system, where freed heap objects between long-lived ones would pin theirs. Zeroed;
 * NULL when out of memory (EINVAL: over 4 KiB). An object must be freed on the worker that
 * allocated it. io_obj_free(NULL) is fine.
 */
void *io_obj_alloc(struct io_buf_pool *p, size_t size);
void io_obj_free(struct io_buf_pool *p, void *obj);
/* The tick: gives back the pages of freed objects (when quiet, or when many are kept) and the
 * spare empty slab once unused for idle_ms. Returns the bytes given back. */
size_t io_obj_trim(struct io_buf_pool *p, uint64_t now_ms, uint64_t idle_ms);
/* Objects allocated and not freed. */
size_t io_obj_in_use(const struct io_buf_pool *p);

/*
 * A FIFO of bytes in 64 KiB pool chunks: memory follows what is queued, not a fixed maximum.
 * Owned by one object on one worker; chunks go back to the pool as they drain.
 */
struct io_bufq_chunk;
struct io_bufq {
	struct io_bufq_chunk *head, *tail;	/* owned */
	size_t len;				/* bytes queued */
};

/* Appends len bytes (copied). 0 or -ENOMEM (nothing appended then). */
int io_bufq_append(struct io_buf_pool *p, struct io_bufq *q, const uint8_t *data, size_t len);
/* The first contiguous run of queued bytes, or NULL (len 0) when empty. */
const uint8_t *io_bufq_peek(const struct io_bufq *q, size_t *len);
/* Drops n bytes from the front (n <= q->len). */
void io_bufq_consume(struct io_buf_pool *p, struct io_bufq *q, size_t n);

#endif
