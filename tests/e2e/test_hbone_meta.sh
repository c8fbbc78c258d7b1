#!/usr/bin/env bash
# HBONE request metadata, as upstream: (a) an independent HBONE server (peers/hbone_server.py
# in pod ext) logs the baggage (the client's cluster, namespace, workload, service, version),
# forwarded (for="<client ip:port>") and traceparent node1 sent; (b) to a service, forwarded
# carries ;host=<service hostname> and the traceparent is a fresh one; (c) an HBONE client the
# state does not know (pod outsider, peers/hbone_client.py) sends baggage: node2 answers 200 with
# the destination's baggage, and its access log and metrics name the source by that baggage;
# (d) hostile baggage is harmless (labels stay unknown, the agent serves on); (e) a source the
# state knows is named by the state, whatever its baggage claims.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
SA=spiffe://cluster.local/ns/default/sa
L2=$TBDIR/agent-node2.log
CC='msg="connection complete"'
tb_config meta.yaml <<'EOF'
workloads:
- {uid: "Kubernetes//Pod/default/client", name: client, namespace: default,
   serviceAccount: client, workloadIps: ["10.201.1.2"], protocol: HBONE, node: node1,
   workloadName: client-v1, canonicalName: client, canonicalRevision: v1, clusterId: Kubernetes}
- {uid: "Kubernetes//Pod/default/server", name: server, namespace: default,
   serviceAccount: server, workloadIps: ["10.201.2.2"], protocol: HBONE, node: node2,
   workloadName: server-deploy, canonicalName: server-app, canonicalRevision: v2,
   clusterId: Kubernetes}
- {uid: "Kubernetes//Pod/default/ext", name: ext, namespace: default, serviceAccount: ext,
   workloadIps: ["10.201.2.5"], protocol: HBONE, node: node2,
   services: {"default/ext-svc.default.svc.cluster.local": {80: 8080}}}
- {uid: "Kubernetes//Pod/default/plain", name: plain, namespace: default, serviceAccount: plain,
   workloadIps: ["10.201.2.9"], protocol: TCP, node: node2}
services:
- {name: ext-svc, namespace: default, hostname: ext-svc.default.svc.cluster.local,
   vips: ["/10.96.0.30"], ports: {80: 8080}}
EOF
tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node2 server 10.201.2.2
tb_pod node2 ext 10.201.2.5
tb_pod node2 plain 10.201.2.9
tb_pod node2 outsider 10.201.2.8
tb_agent node1 meta.yaml
tb_agent node2 meta.yaml
tb_enroll node1 client default client
tb_enroll node2 server default server
tb_wait_port client 15001
tb_wait_port server 15008
tb_whoami server 8080
tb_whoami ext 8080
tb_cert ext "$SA/ext"
tb_cert outsider "$SA/outsider"
tb_cert plain "$SA/plain"
HLOG=$TBDIR/ext-hbone.log
tb_bg ext "$PY" "$TB_PEERS/hbone_server.py" --cert "$TBDIR/ext.pem" --key "$TBDIR/ext.key" \
	--ca "$TBDIR/ca.pem" >"$HLOG" 2>&1
tb_wait_port ext 15008

BAG='k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=client-v1,service.name=client,service.version=v1'
TP='00-[0-9a-f]{32}-[0-9a-f]{16}-00'
headers_of() {	# AUTHORITY: the last header line hbone_server.py logged for a stream to it
	local sid
	sid=$(grep -E "authority=$1 status=200" "$HLOG" | tail -1 | awk '{print $3}')
	[ -n "$sid" ] || tb_fail "hbone_server.py logged no stream for $1"
	grep -E "stream $sid headers " "$HLOG" | tail -1
}

# (a) to the pod
out=$(tb_curl client http://10.201.2.5:8080/a) || tb_fail "(a) curl failed"
[[ "$out" == *"server=ext"* ]] || tb_fail "(a) unexpected reply: $out"
h=$(headers_of 10.201.2.5:8080)
[[ "$h" == *"baggage=$BAG "* ]] || tb_fail "(a) baggage: $h"
grep -Eq 'forwarded=for="10\.201\.1\.2:[0-9]+" ' <<<"$h" || tb_fail "(a) forwarded: $h"
grep -Eq "traceparent=$TP\$" <<<"$h" || tb_fail "(a) traceparent: $h"
TP_A=$(grep -Eo "traceparent=$TP" <<<"$h")
tb_log "ok: (a) $h"

# (b) to the service: host= and a new traceparent
out=$(tb_curl client http://10.96.0.30/b) || tb_fail "(b) curl failed"
h=$(headers_of 10.201.2.5:8080)
grep -Eq 'forwarded=for="10\.201\.1\.2:[0-9]+";host=ext-svc\.default\.svc\.cluster\.local ' <<<"$h" ||
	tb_fail "(b) forwarded: $h"
grep -Eq "traceparent=$TP\$" <<<"$h" || tb_fail "(b) traceparent: $h"
[ "$(grep -Eo "traceparent=$TP" <<<"$h")" != "$TP_A" ] || tb_fail "(b) the traceparent was reused"
tb_log "ok: (b) $h"

hbone() {	# POD CERT BAGGAGE PATH: CONNECT to server 10.201.2.2:8080 with that baggage
	tb_exec "$1" timeout 20 "$PY" "$TB_PEERS/hbone_client.py" --connect 10.201.2.2:15008 \
		--authority 10.201.2.2:8080 --cert "$TBDIR/$2.pem" --key "$TBDIR/$2.key" \
		--ca "$TBDIR/ca.pem" --timeout 10 --header "baggage: $3" \
		--data $'GET /'"$4"$' HTTP/1.0\r\n\r\n' >"$TBDIR/$4.out" 2>"$TBDIR/$4.err" ||
		tb_fail "$4: hbone_client.py exit $?: $(cat "$TBDIR/$4.err")"
}
metrics2() { tb_exec node2 timeout 5 curl -sS --max-time 3 http://127.0.0.1:15020/metrics; }

# (c) a source the state does not know
hbone outsider outsider 'k8s.cluster.name=remote,k8s.namespace.name=far,k8s.deployment.name=visitor,service.name=visitor-app,service.version=v9' c
grep -q "status=200 baggage=k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=server-deploy,service.name=server-app,service.version=v2" "$TBDIR/c.err" ||
	tb_fail "(c) the 200 did not carry the destination's baggage: $(cat "$TBDIR/c.err")"
tb_wait_log "$L2" "$CC.*src\\.addr=10\\.201\\.2\\.8:[0-9]+ src\\.workload=visitor src\\.namespace=far src\\.identity=$SA/outsider " 5 ||
	tb_fail "(c) node2's access log does not name the source by its baggage"
M=$(metrics2) || tb_fail "scraping node2"
grep -E '^istio_tcp_connections_opened_total\{' <<<"$M" | grep "source_principal=\"$SA/outsider\"" |
	grep 'source_workload="visitor"' | grep 'source_workload_namespace="far"' |
	grep 'source_canonical_service="visitor-app"' | grep 'source_canonical_revision="v9"' |
	grep -q 'source_cluster="remote"' ||
	tb_fail "(c) node2's metrics lack the baggage labels: $(grep opened_total <<<"$M")"
tb_log "ok: (c) response baggage from the destination; an unknown source is named by its baggage"

# (d) hostile baggage: quotes, an over-long value, junk; the labels stay unknown
long=$(printf 'x%.0s' $(seq 1 300))
hbone outsider outsider "service.name=a\"b\\c,k8s.deployment.name=$long,,=;=,k8s.namespace.name=ok ns" d
M=$(metrics2) || tb_fail "(d) node2 stopped serving metrics"
grep -E '^istio_tcp_connections_opened_total\{' <<<"$M" | grep "source_principal=\"$SA/outsider\"" |
	grep 'source_workload="unknown"' | grep 'source_workload_namespace="unknown"' |
	grep -q 'source_canonical_service="unknown"' ||
	tb_fail "(d) hostile baggage reached the labels: $(grep opened_total <<<"$M" | grep outsider)"
tb_log "ok: (d) hostile baggage served, labels stay unknown"

# (e) the state wins over a known source's baggage
hbone plain plain 'k8s.deployment.name=impostor,k8s.namespace.name=kube-system' e
tb_wait_log "$L2" "$CC.*src\\.addr=10\\.201\\.2\\.9:[0-9]+ src\\.workload=plain src\\.namespace=default " 5 ||
	tb_fail "(e) node2 did not name the known source from the state"
grep -q impostor <<<"$(metrics2)" && tb_fail "(e) a known source's baggage reached the metrics"
tb_log "ok: (e) a source in the state is named by the state, not by its baggage"
tb_pass "HBONE metadata: baggage, forwarded, traceparent, response baggage, baggage labels"
