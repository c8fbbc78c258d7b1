/* policy/peerauth.c: the effective PeerAuthentication mode of a workload (narrowest level wins). */
#include <string.h>
#include <ztunnel/policy.h>
#include "policy-int.h"

static bool nonempty(const char *s)
{
	return s && *s;
}

/* The labels a selector can test: app, version and name, as the header documents. */
static const char *workload_label(const struct state_workload *w, const char *key)
{
	if (policy_str_eq(key, "app"))
		return nonempty(w->canonical_name) ? w->canonical_name : w->name;
	if (policy_str_eq(key, "version"))
		return w->canonical_revision;
	if (policy_str_eq(key, "name"))
		return w->name;
	return NULL;
}

static bool selects(const struct state_peer_auth *pa, const struct state_workload *w)
{
	if (!pa->selector_keys || !pa->selector_values)
		return false;
	for (size_t i = 0; i < pa->n_selector; i++) {
		const char *have = workload_label(w, pa->selector_keys[i]);

		if (!nonempty(have) || !policy_str_eq(have, pa->selector_values[i]))
			return false;
	}
	return true;
}

/* Two at one level: STRICT wins, so a conflict fails closed. */
static void combine(enum state_peer_auth_mode *level, enum state_peer_auth_mode mode)
{
	if (*level == STATE_PA_UNSET || mode == STATE_PA_STRICT)
		*level = mode;
}

enum state_peer_auth_mode policy_peer_auth_mode(const struct state_snapshot *snap,
						const struct state_workload *w)
{
	enum state_peer_auth_mode workload = STATE_PA_UNSET, ns = STATE_PA_UNSET;
	enum state_peer_auth_mode mesh = STATE_PA_UNSET, mode;

	for (size_t i = 0; snap && w && snap->peer_auths && i < snap->n_peer_auths; i++) {
		const struct state_peer_auth *pa = &snap->peer_auths[i];
		bool same_ns = policy_str_eq(pa->namespace_, w->namespace_);

		if (pa->mode == STATE_PA_UNSET)
			continue;
		/* DISABLE is PERMISSIVE at L4; a value we do not know fails closed. */
		mode = pa->mode == STATE_PA_PERMISSIVE || pa->mode == STATE_PA_DISABLE ?
			STATE_PA_PERMISSIVE : STATE_PA_STRICT;
		if (pa->n_selector) {
			if (same_ns && selects(pa, w))
				combine(&workload, mode);
			continue;
		}
		if (same_ns)
			combine(&ns, mode);
		if (policy_str_eq(pa->namespace_, STATE_ROOT_NAMESPACE))
			combine(&mesh, mode);
	}
	if (workload != STATE_PA_UNSET)
		return workload;
	if (ns != STATE_PA_UNSET)
		return ns;
	if (mesh != STATE_PA_UNSET)
		return mesh;
	return STATE_PA_PERMISSIVE;
}
