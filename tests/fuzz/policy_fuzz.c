/* policy_fuzz: libFuzzer target: YAML bytes -> snapshot -> policy_check on a few requests. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/state/ip.c"
#include "../../agent/state/snapshot.c"
#include "../../agent/localcfg/yaml.c"
#include "../../agent/localcfg/fields.c"
#include "../../agent/localcfg/objects.c"
#include "../../agent/localcfg/policy.c"
#include "../../agent/localcfg/localcfg.c"
#include "../../agent/policy/match.c"
#include "../../agent/policy/peerauth.c"
#include "../../agent/policy/check.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const principals[] = {
	NULL, "", "cluster.local/ns/default/sa/client", "spiffe://td/ns/prod/sa/x",
	"cluster.local/ns//sa/", "a/b", "////",
};
static const char *const addrs[] = { "10.0.0.1", "fd00::1", "::ffff:10.201.1.7", "0.0.0.0" };

/* Every verdict is one of two, explains itself and names a policy that is in the snapshot. */
static void judge(const struct state_snapshot *s, const struct state_workload *w, size_t k)
{
	struct policy_request req = { .dst = w };
	struct policy_result res;
	enum policy_verdict v;

	req.principal = principals[k % (sizeof(principals) / sizeof(principals[0]))];
	state_ip_parse(addrs[k % 4], &req.src_ip);
	if (w && w->n_ips)
		req.dst_ip = w->ips[k % w->n_ips];
	else
		state_ip_parse(addrs[(k + 1) % 4], &req.dst_ip);
	req.dst_port = (uint16_t)(k * 7919);
	v = policy_check(s, &req, &res);
	if ((v != POLICY_ALLOW && v != POLICY_DENY) || v != res.verdict || !res.reason[0] ||
	    !memchr(res.reason, '\0', sizeof(res.reason)))
		abort();
	if (res.policy && (res.policy < s->policies || res.policy >= s->policies + s->n_policies))
		abort();
	if (res.dry_run_would_deny && v != POLICY_ALLOW)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct state_snapshot *s;
	enum state_peer_auth_mode m;

	s = localcfg_load_buffer("fuzz.yaml", (const char *)data, size, err, sizeof(err));
	if (!s)
		return 0;
	for (size_t i = 0; i < s->n_workloads && i < 8; i++) {
		m = policy_peer_auth_mode(s, &s->workloads[i]);
		if (m != STATE_PA_PERMISSIVE && m != STATE_PA_STRICT)
			abort();
		for (size_t k = 0; k < 8; k++)
			judge(s, &s->workloads[i], i + k);
	}
	judge(s, NULL, 0);
	state_snapshot_put(&s);
	return 0;
}
