// unit-standalone
/* iobuf_test: the worker's buffer pool, byte queues and object slabs; socket address helpers. */
#include <stdlib.h>
#include <string.h>

#include "../../agent/io/buf.c"
#include "../../agent/io/slab.c"
#include "../../agent/io/addr.c"
#include <arpa/inet.h>
#include "check.h"

static size_t resident_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, rss = 0;

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * 4;
}

/* Buffers are recycled up to the class bound, and the cache goes once the class is quiet. */
static void test_pool_recycles_and_shrinks(void)
{
	struct io_buf_pool p = { 0 };
	uint8_t *bufs[100];

	for (int i = 0; i < 100; i++)
		bufs[i] = io_buf_get(&p, IO_BUF_16K);
	CHECK(io_buf_in_use_bytes(&p) == 100 * 16384, "in use %zu", io_buf_in_use_bytes(&p));
	for (int i = 0; i < 100; i++)
		io_buf_put(&p, IO_BUF_16K, &bufs[i]);
	CHECK(bufs[0] == NULL, "put clears the pointer");
	CHECK(p.cls[IO_BUF_16K].n_free == 64, "cache holds its bound, got %u", p.cls[IO_BUF_16K].n_free);
	uint8_t *again = io_buf_get(&p, IO_BUF_16K);

	CHECK(p.cls[IO_BUF_16K].n_free == 63, "a get reuses a cached buffer");
	io_buf_put(&p, IO_BUF_16K, &again);
	CHECK(io_buf_trim(&p, 1000, 2000) == 0, "a class used since the last look is kept");
	CHECK(io_buf_trim(&p, 2000, 2000) == 0, "not quiet long enough");
	CHECK(io_buf_trim(&p, 3000, 2000) == 64 * 16384, "quiet: every cached buffer freed");
	CHECK(p.cls[IO_BUF_16K].n_free == 0 && io_buf_in_use_bytes(&p) == 0, "pool empty");
}

/* The queue keeps bytes in order across chunks and gives chunks back as it drains. */
static void test_bufq_order_and_release(void)
{
	struct io_buf_pool p = { 0 };
	struct io_bufq q = { 0 };
	size_t total = 300 * 1000, got = 0, len;
	uint8_t *src = malloc(total), *dst = malloc(total);
	const uint8_t *seg;

	for (size_t i = 0; i < total; i++)
		src[i] = (uint8_t)(i * 7 + i / 251);
	for (size_t off = 0; off < total; off += 1000)
		CHECK(io_bufq_append(&p, &q, src + off, 1000) == 0, "append at %zu", off);
	CHECK(q.len == total, "queued %zu", q.len);
	while ((seg = io_bufq_peek(&q, &len))) {
		size_t n = len > 777 ? 777 : len;	/* odd drains cross chunk ends */

		memcpy(dst + got, seg, n);
		got += n;
		io_bufq_consume(&p, &q, n);
	}
	CHECK(got == total && memcmp(src, dst, total) == 0, "bytes in order (%zu)", got);
	CHECK(q.len == 0 && !q.head && !q.tail, "queue empty");
	CHECK(p.cls[IO_BUF_64K].in_use == 0, "every chunk given back (%u)", p.cls[IO_BUF_64K].in_use);
	CHECK(io_bufq_append(&p, &q, src, 10) == 0 && q.len == 10, "reusable after draining");
	io_bufq_consume(&p, &q, q.len);
	CHECK(q.len == 0 && p.cls[IO_BUF_64K].in_use == 0, "draining gives chunks back");
	io_buf_pool_clear(&p);
	free(src);
	free(dst);
}

/* Objects are zeroed; freed objects' pages and empty slabs go back to the system, even when
 * a few long-lived objects stay in every slab. */
static void test_slabs_return_memory(void)
{
	struct io_buf_pool p = { 0 };
	enum { N = 20000 };
	void **objs = calloc(N, sizeof(*objs));
	size_t before = resident_kb(), peak;

	for (int i = 0; i < N; i++) {
		objs[i] = io_obj_alloc(&p, 3000);
		CHECK(objs[i] && ((uint8_t *)objs[i])[2999] == 0, "object %d zeroed", i);
		memset(objs[i], 0xab, 3000);
	}
	peak = resident_kb();
	CHECK(peak > before + 60000, "20,000 objects resident (%zu -> %zu kB)", before, peak);
	CHECK(io_obj_alloc(&p, 5000) == NULL, "over 4 KiB is refused");
	/* all but every 50th go: each slab keeps one or two live objects */
	for (int i = 0; i < N; i++)
		if (i % 50)
			io_obj_free(&p, objs[i]);
	CHECK(io_obj_in_use(&p) == N / 50, "in use %zu", io_obj_in_use(&p));
	io_obj_trim(&p, 1000, 2000);
	io_obj_trim(&p, 2500, 2000);	/* quiet for 1.5 s */
	CHECK(resident_kb() < before + 4000, "pages of freed objects back: %zu kB, was %zu (peak %zu)",
	      resident_kb(), before, peak);
	void *again = io_obj_alloc(&p, 3000);

	CHECK(again && ((uint8_t *)again)[0] == 0 && ((uint8_t *)again)[4095] == 0,
	      "a reused page is zero");
	io_obj_free(&p, again);
	for (int i = 0; i < N; i += 50)
		io_obj_free(&p, objs[i]);
	CHECK(p.obj[3].n_slabs == 1 && p.obj[3].spare, "one spare slab left (%u)",
	      p.obj[3].n_slabs);
	io_obj_trim(&p, 5000, 2000);
	io_obj_trim(&p, 8000, 2000);
	CHECK(p.obj[3].n_slabs == 0 && p.obj[3].n_dirty == 0, "the spare goes when quiet");
	io_obj_free(&p, NULL);
	free(objs);
}

/* Two 2 KiB objects share a page: it goes back only when both are free. */
static void test_small_slots_share_pages(void)
{
	struct io_buf_pool p = { 0 };
	uint8_t *a = io_obj_alloc(&p, 1500), *b = io_obj_alloc(&p, 2048), *c;

	CHECK(a && b && b == a + 2048, "neighbouring slots (%p %p)", (void *)a, (void *)b);
	memset(a, 1, 2048);
	memset(b, 2, 2048);
	io_obj_free(&p, a);
	io_obj_trim(&p, 1000, 5000);
	io_obj_trim(&p, 3000, 5000);
	CHECK(b[0] == 2 && b[2047] == 2, "a live neighbour keeps its bytes");
	CHECK(p.obj[2].n_dirty == 1, "the freed half waits for its neighbour");
	c = io_obj_alloc(&p, 1100);
	CHECK(c == a && c[0] == 0 && c[2047] == 0, "the freed slot comes back zeroed");
	io_obj_free(&p, b);
	io_obj_free(&p, c);
	CHECK(p.obj[2].n_slabs == 1 && p.obj[2].spare, "an empty slab is kept as the spare");
	io_obj_trim(&p, 10000, 5000);
	io_obj_trim(&p, 16000, 5000);
	CHECK(p.obj[2].n_slabs == 0, "and goes when quiet");
}

/* The small classes: a 512-byte object (a stream) or a 1 KiB one (a relay) takes its own slot,
 * per_page to a page; a slab holds 63 pages of them (more than the 2 KiB class's 126 objects),
 * a page goes back only when all of its objects are free, and every slot of a full slab is
 * distinct and reused. */
static void test_small_class(unsigned cls, size_t size)
{
	struct io_buf_pool p = { 0 };
	const int per_page = (int)(4096 / size), per_slab = 63 * per_page, n = per_slab + 10;
	uint8_t **o = calloc((size_t)n, sizeof(*o));
	bool distinct = true;

	for (int i = 0; i < n; i++) {
		o[i] = io_obj_alloc(&p, size);
		CHECK(o[i] && o[i][size - 1] == 0, "%zu: object %d", size, i);
		memset(o[i], 0x5a, size);
	}
	CHECK(o[1] == o[0] + size && o[per_page - 1] == o[0] + (per_page - 1) * size,
	      "%zu: %d slots to a page", size, per_page);
	for (unsigned k = 0; k < IO_OBJ_CLASSES; k++)
		CHECK(p.obj[k].n_slabs == (k == cls ? 2u : 0u), "%zu: %u slabs of class %u", size,
		      p.obj[k].n_slabs, k);
	for (int i = 0; i < per_slab && distinct; i++)
		for (int j = i + 1; j < per_slab; j++)
			if (o[i] == o[j]) {
				distinct = false;
				break;
			}
	CHECK(distinct, "%zu: a full slab's slots are distinct", size);
	for (int i = 0; i < per_page - 1; i++)
		io_obj_free(&p, o[i]);
	io_obj_trim(&p, 1000, 5000);
	io_obj_trim(&p, 3000, 5000);
	CHECK(o[per_page - 1][0] == 0x5a && p.obj[cls].n_dirty == (size_t)per_page - 1,
	      "%zu: the freed wait for the last of their page", size);
	io_obj_free(&p, o[per_slab - 1]);	/* the last slot of the first slab */
	for (int i = 0; i < per_page - 1; i++)
		CHECK(io_obj_alloc(&p, size - 8) == o[i], "%zu: slot %d comes back", size, i);
	o[per_slab - 1] = io_obj_alloc(&p, size - 8);
	CHECK(o[per_slab - 1] && o[per_slab - 1][0] == 0, "%zu: the last slot comes back zeroed",
	      size);
	for (int i = 0; i < n; i++)
		io_obj_free(&p, o[i]);
	CHECK(io_obj_in_use(&p) == 0 && p.obj[cls].n_slabs == 1, "%zu: all freed, a spare kept",
	      size);
	io_obj_trim(&p, 10000, 5000);
	io_obj_trim(&p, 16000, 5000);
	CHECK(p.obj[cls].n_slabs == 0, "%zu: and the spare goes when quiet", size);
	free(o);
}

/* A packed address gives back the address and port it was packed from, in 20 bytes; an empty or
 * non-IP one packs as none and unpacks as family 0. */
static void test_addr_pack(void)
{
	struct sockaddr_storage ss, back;
	struct sockaddr_in6 *in6 = (void *)&ss;
	struct sockaddr_in *in = (void *)&ss;
	struct io_addr a;

	CHECK(sizeof(struct io_addr) == 20, "packed address %zu bytes", sizeof(struct io_addr));
	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(15008);
	inet_pton(AF_INET, "10.201.2.2", &in->sin_addr);
	io_addr_pack(&a, &ss);
	CHECK(a.family == AF_INET && a.port == 15008, "v4 packed (%u %u)", a.family, a.port);
	CHECK(io_addr_unpack(&a, &back) == sizeof(struct sockaddr_in) &&
	      memcmp(&back, &ss, sizeof(ss)) == 0, "v4 unpacked the same");
	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(443);
	inet_pton(AF_INET6, "fd00:201:2::2", &in6->sin6_addr);
	io_addr_pack(&a, &ss);
	CHECK(io_addr_unpack(&a, &back) == sizeof(struct sockaddr_in6) &&
	      memcmp(&back, &ss, sizeof(ss)) == 0, "v6 unpacked the same");
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	io_addr_pack(&a, &ss);
	CHECK(a.family == 0 && io_addr_unpack(&a, &back) == 0 && back.ss_family == 0,
	      "a non-IP address is none");
}

/* A dual-stack socket's ::ffff:a.b.c.d peer becomes the AF_INET one (port kept); real IPv6 and
 * IPv4 addresses stay as they are. */
static void test_addr_unmap(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (void *)&ss;
	struct sockaddr_in *in = (void *)&ss;
	char buf[INET6_ADDRSTRLEN];

	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(15001);
	inet_pton(AF_INET6, "::ffff:10.201.1.2", &in6->sin6_addr);
	CHECK(io_addr_unmap(&ss) && ss.ss_family == AF_INET && ntohs(in->sin_port) == 15001 &&
	      strcmp(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)), "10.201.1.2") == 0 &&
	      io_addr_len(&ss) == sizeof(struct sockaddr_in), "v4-mapped made v4: %s", buf);
	CHECK(!io_addr_unmap(&ss) && ss.ss_family == AF_INET, "v4 left alone");
	CHECK(io_addr_map(&ss) && ss.ss_family == AF_INET6 && ntohs(in6->sin6_port) == 15001 &&
	      strcmp(inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)), "::ffff:10.201.1.2") == 0,
	      "v4 mapped back: %s", buf);
	CHECK(!io_addr_map(&ss) && ss.ss_family == AF_INET6, "an IPv6 address is not mapped again");
	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(80);
	inet_pton(AF_INET6, "fd00:201:1::2", &in6->sin6_addr);
	CHECK(!io_addr_unmap(&ss) && ss.ss_family == AF_INET6 &&
	      io_addr_len(&ss) == sizeof(struct sockaddr_in6), "IPv6 left alone");
	inet_pton(AF_INET6, "::10.1.2.3", &in6->sin6_addr);	/* v4-compatible: not mapped */
	CHECK(!io_addr_unmap(&ss) && ss.ss_family == AF_INET6, "v4-compatible left alone");
	ss.ss_family = AF_UNIX;
	CHECK(io_addr_len(&ss) == 0 && !io_addr_unmap(&ss), "another family");
}

int main(void)
{
	test_addr_unmap();
	test_addr_pack();
	test_pool_recycles_and_shrinks();
	test_bufq_order_and_release();
	test_slabs_return_memory();
	test_small_slots_share_pages();
	test_small_class(0, 512);
	test_small_class(1, 1024);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
