/* policy_fuzz: libFuzzer target: YAML bytes -> snapshot -> policy_check on a few requests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/state/index.c"
#include "../../agent/localcfg/yaml.c"
#include "../../agent/localcfg/fields.c"
#include "../../agent/localcfg/objects.c"
#include "../../agent/localcfg/policy.c"
#include "../../agent/localcfg/localcfg.c"
#include "../../agent/policy/match.c"
#include "../../agent/policy/peerauth.c"
#include "../../agent/policy/check.c"

#include "walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct state_snapshot *s;

	s = localcfg_load_buffer("fuzz.yaml", (const char *)data, size, err, sizeof(err));
	if (!s)
		return 0;
	fuzz_walk_policies(s);
	state_snapshot_put(&s);
	return 0;
}
