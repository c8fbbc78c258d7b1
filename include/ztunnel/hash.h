/* hash: FNV-1a, the one string/byte hash of the agent's in-memory tables (state index, names). */
#ifndef ZTUNNEL_HASH_H
#define ZTUNNEL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_INIT 2166136261u

/* FNV-1a of n bytes at p continued from h (HASH_FNV_INIT to start): a key fed in pieces hashes
 * the same as whole. */
static inline uint32_t hash_fnv1a(uint32_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

#endif
