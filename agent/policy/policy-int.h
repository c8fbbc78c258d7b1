/* policy/policy-int.h: private types shared by the policy evaluator's files (not exported). */
#ifndef ZTUNNEL_POLICY_INT_H
#define ZTUNNEL_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <ztunnel/state.h>

/* Equal and both present: a missing name never matches anything. */
static inline bool policy_str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* One connection as the matcher sees it: strings are views into the caller's request. */
struct policy_conn {
	const char *principal;	/* "td/ns/x/sa/y", or NULL for plaintext */
	size_t principal_len;
	const char *ns;		/* the ns/<x> part of the principal, or NULL */
	size_t ns_len;
	struct state_ip src, dst;	/* v4-mapped v6 addresses already turned into v4 */
	uint16_t port;
};

/*
 * True when the policy's rules match conn: rules OR, clauses AND, matches OR, fields AND.
 * A policy without rules never matches. has_l7 fails closed for the policy's action.
 */
bool policy_rules_match(const struct state_policy *p, const struct policy_conn *conn);

#endif
