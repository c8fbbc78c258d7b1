/* localcfg_fuzz: libFuzzer target for the local config YAML loader (parse, walk, free). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/lookup.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/localcfg/yaml.c"
#include "../../agent/localcfg/fields.c"
#include "../../agent/localcfg/objects.c"
#include "../../agent/localcfg/policy.c"
#include "../../agent/localcfg/localcfg.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whatever loads must be walkable by the look-ups the datapath uses. */
static void exercise(const struct state_snapshot *s)
{
	char id[512];

	for (size_t i = 0; i < s->n_workloads; i++) {
		const struct state_workload *w = &s->workloads[i];

		state_workload_identity(w, id, sizeof(id));
		for (size_t j = 0; j < w->n_ips; j++)
			if (!state_lookup_ip(s, &w->ips[j]))
				abort();
	}
	for (size_t i = 0; i < s->n_services; i++) {
		const struct state_service *svc = &s->services[i];
		uint16_t target;

		for (size_t j = 0; j < svc->n_ports; j++)
			state_service_pick(s, svc, svc->ports[j].service_port, (uint32_t)i, &target);
		if (!strchr(svc->hostname, '/') && !state_lookup_hostname(s, svc->hostname))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct state_snapshot *s;

	s = localcfg_load_buffer("fuzz.yaml", (const char *)data, size, err, sizeof(err));
	if (s) {
		exercise(s);
		state_snapshot_put(&s);
		if (s)
			abort();
	} else if (strncmp(err, "fuzz.yaml", 9) != 0) {
		abort();	/* every failure explains itself */
	}
	return 0;
}
