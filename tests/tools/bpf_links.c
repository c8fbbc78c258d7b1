/* bpf_links: what BPF programs are attached in the current network namespace, one per line:
 * "sk_lookup <program>" for the netns's sk_lookup hook and "tcx_ingress <interface> <program>"
 * for each interface's tcx ingress. Run inside a pod (ip netns exec) the tests count with it
 * what the eBPF backend attached; Debian 12's bpftool predates tcx links. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#define TCX_INGRESS 46	/* enum bpf_attach_type BPF_TCX_INGRESS (kernel 6.6) */
#define MAX_PROGS 64

static void show(const char *hook, const char *where, int target, unsigned type)
{
	uint32_t ids[MAX_PROGS], n = MAX_PROGS, flags = 0;

	if (bpf_prog_query(target, (enum bpf_attach_type)type, 0, &flags, ids, &n) < 0) {
		if (errno != ENOENT && errno != EINVAL)
			fprintf(stderr, "bpf_links: %s %s: %s\n", hook, where, strerror(errno));
		return;
	}
	for (uint32_t i = 0; i < n && i < MAX_PROGS; i++) {
		struct bpf_prog_info info;
		uint32_t len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(ids[i]);

		memset(&info, 0, sizeof(info));
		if (fd >= 0) {
			bpf_obj_get_info_by_fd(fd, &info, &len);
			close(fd);
		}
		printf("%s %s%s%s\n", hook, where, where[0] ? " " : "", info.name[0] ? info.name : "-");
	}
}

int main(void)
{
	struct if_nameindex *ifs = if_nameindex();
	int netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

	if (netns < 0 || !ifs) {
		perror("bpf_links");
		return 1;
	}
	show("sk_lookup", "", netns, BPF_SK_LOOKUP);
	for (struct if_nameindex *i = ifs; i->if_index; i++)
		show("tcx_ingress", i->if_name, (int)i->if_index, TCX_INGRESS);
	if_freenameindex(ifs);
	close(netns);
	return 0;
}
