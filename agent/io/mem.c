/* io mem: how the process asks glibc's allocator to give freed memory back to the system. */
#include <malloc.h>

#include <ztunnel/io.h>

void io_mem_init(void)
{
	/* Setting the thresholds turns off glibc's dynamic mmap threshold: otherwise the first
	 * freed 256 KiB buffer raises it, later ones come from the heaps, and a heap whose top is
	 * pinned by one live object never shrinks (RSS ratcheted after each connection storm). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
}

void io_mem_trim(void)
{
	/* frees whole free pages inside every arena too, not only at the top of the main heap */
	malloc_trim(0);
}
