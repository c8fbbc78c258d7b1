/* proxy authz: policy decisions for inbound connections, their metrics labels, re-checks. */
#include <stdio.h>
#include <string.h>

#include <ztunnel/log.h>
#include <ztunnel/policy.h>

#include "proxy-int.h"

static bool judge(const struct state_snapshot *snap, const struct access_record *rec, char *why,
		  size_t len)
{
	struct policy_request req = { 0 };
	struct policy_result res;
	const char *sid;
	uint16_t sport;

	proxy_addr_ip(&rec->src, &req.src_ip, &sport);
	proxy_addr_ip(&rec->dst, &req.dst_ip, &req.dst_port);
	req.dst = state_lookup_ip(snap, &req.dst_ip);
	if (!req.dst) {
		snprintf(why, len, "destination workload is no longer known");
		return false;
	}
	sid = access_get(rec, ACCESS_SRC_IDENTITY);
	if (strncmp(sid, "spiffe://", 9) == 0)
		req.principal = sid + 9;
	policy_check(snap, &req, &res);
	snprintf(why, len, "%s", res.reason);
	if (res.dry_run_would_deny)
		log_info("dry-run policy would deny", "src.addr=%s src.identity=%s dst.workload=%s",
			 "-", sid[0] ? sid : "-", access_get(rec, ACCESS_DST_WORKLOAD));
	return res.verdict == POLICY_ALLOW;
}

bool proxy_authorized(struct proxy_worker *pw, const struct access_record *rec, char *why,
		      size_t len)
{
	return judge(proxy_snapshot(pw), rec, why, len);
}

static const char *or_unknown(const char *s)
{
	return s && *s ? s : "unknown";
}

void proxy_count_open(struct proxy_worker *pw, struct access_record *rec, const char *flags,
		      bool mtls)
{
	proxy_count_open_peer(pw, rec, flags, mtls, NULL);
}

void proxy_count_open_peer(struct proxy_worker *pw, struct access_record *rec, const char *flags,
			   bool mtls, const struct proxy_baggage *peer)
{
	struct state_snapshot *snap;
	const struct state_workload *sw, *dw;
	const struct state_service *svc = NULL;
	struct state_ip ip;
	uint16_t port;
	char sid[TLS_SPIFFE_MAX];

	if (!pw->px->count_connections) {
		access_count_open(rec, NULL, pw->px->metrics);	/* the gauge drain waits on */
		return;
	}
	snap = proxy_snapshot(pw);
	proxy_addr_ip(&rec->src, &ip, &port);
	sw = state_lookup_ip(snap, &ip);
	proxy_addr_ip(&rec->dst, &ip, &port);
	dw = state_lookup_ip(snap, &ip);
	if (rec->names[ACCESS_DST_SERVICE])
		svc = state_lookup_hostname(snap, rec->names[ACCESS_DST_SERVICE]);
	snprintf(sid, sizeof(sid), "%s", access_get(rec, ACCESS_SRC_IDENTITY));
	if (!sid[0] && sw && sw->protocol == STATE_PROTO_HBONE && rec->direction == ACCESS_OUTBOUND)
		state_workload_identity(sw, sid, sizeof(sid));
	struct metrics_labels l = {
		.reporter = rec->direction == ACCESS_OUTBOUND ? "source" : "destination",
		.source_workload = sw ? or_unknown(sw->workload_name && *sw->workload_name ?
						   sw->workload_name : sw->name) : NULL,
		.source_canonical_service = sw ? sw->canonical_name : NULL,
		.source_canonical_revision = sw ? sw->canonical_revision : NULL,
		.source_workload_namespace = sw ? sw->namespace_ : NULL,
		.source_principal = mtls ? sid : NULL,
		.source_app = sw ? sw->canonical_name : NULL,
		.source_version = sw ? sw->canonical_revision : NULL,
		.source_cluster = sw ? sw->cluster_id : NULL,
		.destination_service = rec->names[ACCESS_DST_SERVICE],
		.destination_service_namespace = svc ? svc->namespace_ : NULL,
		.destination_service_name = svc ? svc->name : NULL,
		.destination_workload = dw ? or_unknown(dw->workload_name && *dw->workload_name ?
							dw->workload_name : dw->name) : NULL,
		.destination_canonical_service = dw ? dw->canonical_name : NULL,
		.destination_canonical_revision = dw ? dw->canonical_revision : NULL,
		.destination_workload_namespace = dw ? dw->namespace_ : NULL,
		.destination_principal = mtls ? access_get(rec, ACCESS_DST_IDENTITY) : NULL,
		.destination_app = dw ? dw->canonical_name : NULL,
		.destination_version = dw ? dw->canonical_revision : NULL,
		.destination_cluster = dw ? dw->cluster_id : NULL,
		.request_protocol = "tcp",
		.response_flags = flags,
		.connection_security_policy = mtls ? "mutual_tls" : "unknown",
	};
	if (!sw && peer) {	/* a source the state does not know: what its baggage says */
		l.source_workload = peer->workload;
		l.source_canonical_service = l.source_app = peer->service;
		l.source_canonical_revision = l.source_version = peer->revision;
		l.source_workload_namespace = peer->namespace_;
		l.source_cluster = peer->cluster;
	}
	access_count_open(rec, metrics_series_get(pw->shard, &l), pw->px->metrics);
	if (strcmp(flags, PROXY_FLAGS_OK) != 0)
		metrics_conn_failed(rec->series);
}

void proxy_recheck(struct io_worker *w)
{
	struct proxy_worker *pw = w->user;
	struct state_snapshot *snap = proxy_snapshot(pw);
	struct access_record *rec, *next;
	char why[256], msg[300];
	unsigned closed = 0;

	if (pw->gen == pw->authz_gen)
		return;
	pw->authz_gen = pw->gen;
	for (rec = pw->inbound.head; rec; rec = next) {
		next = rec->tnext;
		if (judge(snap, rec, why, sizeof(why)))
			continue;
		snprintf(msg, sizeof(msg), "denied after a policy change: %s", why);
		rec->abort(rec, msg);
		closed++;
	}
	if (closed)
		log_info("connections closed by a policy change", "worker=%d closed=%u", w->id, closed);
}
