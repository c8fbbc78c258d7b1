/* policy: L4 AuthorizationPolicy and PeerAuthentication evaluation, pure functions over a snapshot. */
#ifndef ZTUNNEL_POLICY_H
#define ZTUNNEL_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <ztunnel/state.h>

enum policy_verdict { POLICY_ALLOW = 0, POLICY_DENY = 1 };

/* One inbound connection to judge. */
struct policy_request {
	const struct state_workload *dst;	/* the destination workload (the enrolled pod) */
	const char *principal;	/* verified peer identity WITHOUT "spiffe://" (e.g.
				 * "cluster.local/ns/a/sa/b"); NULL for plaintext */
	struct state_ip src_ip;
	struct state_ip dst_ip;
	uint16_t dst_port;
};

struct policy_result {
	enum policy_verdict verdict;
	/* why, for logs: "denied by policy default/deny-all", "allow policies exist and none
	 * matched", "STRICT peer authentication requires mTLS", "allowed by policy ns/x", ... */
	char reason[256];
	const struct state_policy *policy;	/* the deciding policy, if any */
	bool dry_run_would_deny;		/* a dry-run policy would have denied */
};

/*
 * Istio's L4 semantics: applicable policies are GLOBAL ones, NAMESPACE ones of the destination's
 * namespace and those the workload lists (authorization_policies, "namespace/name"). Dry-run
 * policies only set dry_run_would_deny. Any matching DENY denies; else no ALLOW policy allows;
 * else at least one ALLOW must match. Before those, a STRICT effective PeerAuthentication denies
 * plaintext. Never fails: an unknown or broken policy fails closed (DENY matches, ALLOW does not).
 */
enum policy_verdict policy_check(const struct state_snapshot *snap, const struct policy_request *req,
				 struct policy_result *res);

/* The effective PeerAuthentication mode for a workload: workload > namespace > mesh-wide. */
enum state_peer_auth_mode policy_peer_auth_mode(const struct state_snapshot *snap,
						const struct state_workload *w);

#endif
