/* localcfg_fuzz: libFuzzer target for the local config YAML loader (parse, walk, dump, free). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/lookup.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/state/index.c"
#include "../../agent/localcfg/yaml.c"
#include "../../agent/localcfg/fields.c"
#include "../../agent/localcfg/objects.c"
#include "../../agent/localcfg/policy.c"
#include "../../agent/localcfg/localcfg.c"

#include "walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct state_snapshot *s;

	s = localcfg_load_buffer("fuzz.yaml", (const char *)data, size, err, sizeof(err));
	if (s) {
		fuzz_walk_lookups(s);
		fuzz_walk_dump(s);
		state_snapshot_put(&s);
		if (s)
			abort();
	} else if (strncmp(err, "fuzz.yaml", 9) != 0) {
		abort();	/* every failure explains itself */
	}
	return 0;
}
