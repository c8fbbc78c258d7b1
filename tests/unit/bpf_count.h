/* bpf_count: the BPF unit tests' reading of a capture program's per-CPU counters. */
#ifndef ZTUNNEL_TEST_BPF_COUNT_H
#define ZTUNNEL_TEST_BPF_COUNT_H

#include <stdint.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* Counter `which` of the per-CPU array map_fd, summed over CPUs; 0 if it cannot be read. */
static uint64_t bpf_count(int map_fd, uint32_t which)
{
	uint64_t vals[512] = { 0 }, n = 0;
	int cpus = libbpf_num_possible_cpus();

	if (cpus <= 0 || cpus > 512 || bpf_map_lookup_elem(map_fd, &which, vals) < 0)
		return 0;
	for (int c = 0; c < cpus; c++)
		n += vals[c];
	return n;
}

#endif
