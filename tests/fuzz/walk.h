/* walk.h: what the fuzz targets run on a snapshot they loaded: the datapath's look-ups, policy
 * verdicts and the admin config dump, each with the property that must hold (else abort). */
#ifndef FUZZ_WALK_H
#define FUZZ_WALK_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ztunnel/policy.h>
#include <ztunnel/state.h>

/* Every address of a workload finds a workload; every service's hostname finds a service. */
static inline void fuzz_walk_lookups(const struct state_snapshot *s)
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
		for (size_t j = 0; j < svc->n_vips; j++)
			if (!state_lookup_vip(s, &svc->vips[j]))
				abort();
		if (!strchr(svc->hostname, '/') && !state_lookup_hostname(s, svc->hostname))
			abort();
	}
}

/* Every verdict is one of two, explains itself and names a policy that is in the snapshot. */
static inline void fuzz_judge(const struct state_snapshot *s, const struct state_workload *w,
			      size_t k)
{
	static const char *const principals[] = {
		NULL, "", "cluster.local/ns/default/sa/client", "spiffe://td/ns/prod/sa/x",
		"cluster.local/ns//sa/", "a/b", "////",
	};
	static const char *const addrs[] = { "10.0.0.1", "fd00::1", "::ffff:10.201.1.7", "0.0.0.0" };
	size_t np = sizeof(principals) / sizeof(principals[0]);
	struct policy_request req = { .dst = w };
	struct policy_result res;
	enum policy_verdict v;

	req.principal = principals[k % np];
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

/* Verdicts for the first workloads (and none) with a few principals, sources and ports. */
static inline void fuzz_walk_policies(const struct state_snapshot *s)
{
	enum state_peer_auth_mode m;

	for (size_t i = 0; i < s->n_workloads && i < 8; i++) {
		m = policy_peer_auth_mode(s, &s->workloads[i]);
		if (m != STATE_PA_PERMISSIVE && m != STATE_PA_STRICT)
			abort();
		for (size_t k = 0; k < 8; k++)
			fuzz_judge(s, &s->workloads[i], i + k);
	}
	fuzz_judge(s, NULL, 0);
}

/* The admin config dump of the snapshot is one JSON object, whatever the strings held. */
static inline void fuzz_walk_dump(const struct state_snapshot *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	json_error_t jerr;
	json_t *doc;

	if (!out)
		return;
	fputc('{', out);	/* the dump is the members of the admin's object */
	state_dump_json(s, out);
	fputc('}', out);
	fclose(out);
	doc = json_loadb(buf, len, 0, &jerr);
	if (!json_is_object(doc)) {
		fprintf(stderr, "config dump is not a JSON object: %s: %.*s\n", jerr.text,
			(int)(len < 400 ? len : 400), buf);
		abort();
	}
	json_decref(doc);
	free(buf);
}

#endif
