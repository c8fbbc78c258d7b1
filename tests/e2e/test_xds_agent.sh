#!/usr/bin/env bash
# test_xds_agent: the agents fed by a real delta xDS control plane (tests/e2e/cp/xds_server.py in
# its own netns "cp", linked to both nodes), with real traffic from client (node1) to
# server-remote (node2): not ready until the control plane sent both types; HTTP through the mesh
# once workloads are pushed; a pushed DENY refuses fast and its removal lets traffic in again;
# the control plane killed (traffic keeps flowing) and restarted (reconnect with
# initial_resource_versions, a new policy applies); a malformed workload NACKed by name with the
# last good state kept; two bursts of 10,000 workloads (responses of 100) while a long-lived
# connection keeps echoing.
set -u
source "$(dirname "$0")/lib.sh"
tb_init
source "$(dirname "$0")/xds_lib.sh"
xds_stubs

L1=$TBDIR/agent-node1.log
L2=$TBDIR/agent-node2.log
S=10.201.2.2
CLIENT_UID=Kubernetes//Pod/default/client
SERVER_UID=Kubernetes//Pod/default/server-remote

workloads='
 {"uid": "'$CLIENT_UID'", "name": "client", "service_account": "client",
  "addresses": ["10.201.1.2"], "node": "node1"},
 {"uid": "'$SERVER_UID'", "name": "server-remote", "service_account": "server",
  "addresses": ["10.201.2.2"], "node": "node2",
  "services": {"default/web.default.svc.cluster.local": {"80": 8080}}}'
services='{"name": "web", "hostname": "web.default.svc.cluster.local",
  "vips": ["10.96.0.10"], "ports": {"80": 8080}}'
deny_client='{"name": "deny-client", "namespace": "default", "scope": "NAMESPACE",
  "action": "DENY", "rules": [[[{"principals": ["cluster.local/ns/default/sa/client"]}]]]}'
deny_all='{"name": "deny-all", "namespace": "default", "scope": "NAMESPACE", "action": "ALLOW"}'
bad='{"uid": "bad-workload", "name": "bad", "addresses_hex": ["0102030405"]}'

# state EXTRA_WORKLOADS POLICIES [EXTRA_KEYS]: the control plane's desired state (atomic).
state() {
	printf '{"workloads": [%s%s], "services": [%s], "policies": [%s]%s}\n' "$workloads" \
		"${1:+, $1}" "$services" "$2" "${3:-}" >"$STATE.tmp" && mv "$STATE.tmp" "$STATE"
}

both_dump() { dump_has node1 "$1" && dump_has node2 "$1"; }

# rec_count PYTHON_EXPR: how many recorded requests r satisfy the expression.
rec_count() {
	"$PY" - "$REC" "$1" <<'PYEOF' 2>/dev/null || echo 0
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "type_url" in r and eval("(" + sys.argv[2] + ")"):
        n += 1
print(n)
PYEOF
}
rec_at_least() { [ "$(rec_count "$1")" -ge "$2" ]; }
more_lines() { [ "$(tb_count "$1" "$2")" -gt "$3" ]; }

# expect_ok WHAT: HTTP from client to server-remote through the mesh; the app sees client's IP.
expect_ok() {
	local out
	out=$(tb_curl client "http://$S:8080/$2" 2>&1) ||
		tb_fail "$1: curl client -> $S:8080 failed: $out"
	grep -q "^peer=10.201.1.2:" <<<"$out" && grep -q "^server=server-remote" <<<"$out" &&
		grep -q "^path=/$2" <<<"$out" || tb_fail "$1: unexpected answer: $out"
	tb_log "ok: $1: client -> $S:8080 answered ($(head -1 <<<"$out"))"
}

# expect_denied WHAT: curl fails fast with a reset/empty reply, node2 logs `connection denied`.
expect_denied() {
	local out rc t0 took n pat='msg="connection complete".*src\.addr=10\.201\.1\.2:.*connection denied'
	n=$(tb_count "$L2" "$pat")
	t0=$(tb__now_ms)
	out=$(tb_exec client timeout 10 curl -sS --max-time 5 "http://$S:8080/denied" 2>&1)
	rc=$?
	took=$(($(tb__now_ms) - t0))
	case $rc in
	7|52|55|56) ;;
	*) tb_fail "$1: curl rc $rc ($out), want 7/52/55/56 (reset or empty reply)" ;;
	esac
	[ "$took" -lt 3000 ] || tb_fail "$1: the refusal took $took ms, want < 3000"
	tb_poll 5 more_lines "$L2" "$pat" "$n" || tb_fail "$1: node2 did not log connection denied"
	! grep -q 'path=/denied' "$TBDIR/whoami-server-remote.log" 2>/dev/null ||
		tb_fail "$1: the app saw the denied request"
	tb_log "ok: $1: denied in $took ms (curl rc $rc); node2:" \
		"$(grep -E "$pat" "$L2" | tail -1 | grep -Eo 'error="[^"]*"')"
}

# Topology: node1 -- node2 (link 0), cp -- node1 (link 1), cp -- node2 (link 2).
tb_node node1 1
tb_node node2 2
tb_node cp 9
tb_link node1 node2
tb_link cp node1
tb_link cp node2
tb_pod node1 client 10.201.1.2
tb_pod node2 server-remote 10.201.2.2
cp "$TB_TESTDATA/mesh.yaml" "$TBDIR/mesh.yaml"	# ignored with XDS_ADDRESS, but tb_agent wants it
: >"$REC"
state "" ""

# (1) Agents first: not ready while the control plane is absent.
XDS_ADDRESS=http://10.200.1.1:15010 tb_agent node1 mesh.yaml
XDS_ADDRESS=http://10.200.2.1:15010 tb_agent node2 mesh.yaml
tb_poll 10 grep -q 'msg="xds connect failed"' "$L1" || tb_fail "node1 never tried the control plane"
tb_poll 10 grep -q 'msg="xds connect failed"' "$L2" || tb_fail "node2 never tried the control plane"
answers() { [ "$(ready_code "$1")" != 000 ]; }
for n in node1 node2; do
	tb_poll 5 answers $n || tb_fail "$n: nothing answers on 15021"
	c=$(ready_code $n)
	[ "$c" = 503 ] || tb_fail "$n readiness before any xDS push: HTTP $c, want 503"
done
tb_log "ok: both agents answer 503 on /healthz/ready while the control plane is down"
cp_start --batch 100
tb_poll 20 is_ready node1 || tb_fail "node1 not ready 20 s after the control plane started: $(ready_code node1)"
tb_poll 10 is_ready node2 || tb_fail "node2 not ready after the control plane started: $(ready_code node2)"
tb_log "ok: both agents ready (200) once the control plane sent both types"
ADDR='"type.googleapis.com/istio.workload.Address"'
AUTHZ='"type.googleapis.com/istio.security.Authorization"'
for n in node1 node2; do
	tb_check "$n subscribed to Address with its node name" rec_at_least \
		'r["type_url"] == '"$ADDR"' and r.get("node", {}).get("metadata", {}).get("NODE_NAME") == "'$n'"' 1
done
tb_check "both agents ACKed Authorization" rec_at_least 'r["type_url"] == '"$AUTHZ"' and r["nonce"] and "error" not in r' 2
tb_check "workloads in both config_dumps" both_dump \
	'set(w) == {"'$CLIENT_UID'", "'$SERVER_UID'"} and w["'$SERVER_UID'"]["serviceAccount"] == "server" and not p'

# (2) Traffic once the workloads are known.
tb_enroll node1 client default client
tb_enroll node2 server-remote default server-remote
tb_wait_port client 15001
tb_wait_port server-remote 15008
tb_whoami server-remote 8080
expect_ok "pushed workloads" first
n_in=$(tb_count "$L2" 'msg="connection complete".*src\.addr=10\.201\.1\.2:.*direction=inbound')
[ "$n_in" -ge 1 ] || tb_fail "node2 logged no inbound (HBONE) connection from the client"
tb_log "ok: node2 relayed it as an inbound HBONE connection"

# (3) A DENY for the client's principal, then an ALLOW without rules (deny-all), then nothing.
state "" "$deny_client"
tb_poll 10 dump_has node2 '"deny-client" in p' || tb_fail "node2 never received deny-client"
expect_denied "DENY principal client pushed"
state "" "$deny_all"
tb_poll 10 dump_has node2 '"deny-all" in p and "deny-client" not in p' ||
	tb_fail "node2 never received deny-all"
expect_denied "ALLOW without rules (deny-all) pushed"
state "" ""
tb_poll 10 dump_has node2 'not p' || tb_fail "node2 still has policies after their removal"
expect_ok "policies removed" removed

# (4) Control plane killed: traffic keeps flowing on the last state.
ENDED='msg="xds stream ended"'
e1=$(tb_count "$L1" "$ENDED"); e2=$(tb_count "$L2" "$ENDED")
tb_stop "$CP_PID" 5
tb_poll 10 more_lines "$L1" "$ENDED" "$e1" || tb_fail "node1 did not notice the cp's end"
tb_poll 10 more_lines "$L2" "$ENDED" "$e2" || tb_fail "node2 did not notice the cp's end"
sleep 1	# some reconnect attempts fail meanwhile
expect_ok "control plane down" down1
expect_ok "control plane down, again" down2
tb_check "state kept while the control plane is down" both_dump \
	'set(w) == {"'$CLIENT_UID'", "'$SERVER_UID'"}'
state "" "$deny_client"
: >"$REC"
cp_start --batch 100
held='"'$CLIENT_UID'" in r["initial_resource_versions"] and "'$SERVER_UID'" in r["initial_resource_versions"]
	and "default/web.default.svc.cluster.local" in r["initial_resource_versions"]'
tb_poll 20 rec_at_least 'r["type_url"] == '"$ADDR"' and '"$held" 2 ||
	tb_fail "no reconnect from both agents with initial_resource_versions: $(head -c 2000 "$REC")"
tb_log "ok: both agents reconnected with initial_resource_versions for what they held"
# The versions were the right ones: the cp had no Address resource to resend to either agent.
addr_pushes() {
	"$PY" - "$REC" <<'PYEOF'
import json, sys
p = [r for r in map(json.loads, open(sys.argv[1])) if r.get("push") == "type.googleapis.com/istio.workload.Address"]
print("%d %d" % (len(p), sum(r["resources"] + r["removed"] for r in p)))
PYEOF
}
tb_poll 5 test "$(addr_pushes | cut -d' ' -f1)" -ge 2 || tb_fail "no Address push after the reconnect"
tb_check "no Address resource resent after the reconnect ($(addr_pushes) = pushes, resources)" \
	test "$(addr_pushes | cut -d' ' -f2)" -eq 0
tb_poll 10 dump_has node2 '"deny-client" in p' || tb_fail "node2: no policy after the reconnect"
expect_denied "policy pushed after the reconnect"
state "" ""
tb_poll 10 dump_has node2 'not p' || tb_fail "node2 kept the policy after its removal"
expect_ok "policy removed after the reconnect" back

# (5) A malformed workload (5-byte address): NACKed by name, the last good state stays.
n1=$(tb_count "$L1" 'msg="xds update rejected \(NACK\)".*bad-workload')
n2=$(tb_count "$L2" 'msg="xds update rejected \(NACK\)".*bad-workload')
state "$bad" ""
nack='r.get("error", {}).get("code") == 3 and "bad-workload" in r["error"]["message"]'
tb_poll 10 rec_at_least "$nack" 2 || tb_fail "no NACK naming bad-workload from both agents"
tb_log "ok: NACK: $(grep -m1 -o '"error": {[^}]*}' "$REC")"
tb_poll 5 more_lines "$L1" 'msg="xds update rejected \(NACK\)".*bad-workload' "$n1" ||
	tb_fail "node1 did not log the NACK"
tb_poll 5 more_lines "$L2" 'msg="xds update rejected \(NACK\)".*bad-workload' "$n2" ||
	tb_fail "node2 did not log the NACK"
tb_check "last good state kept" both_dump \
	'set(w) == {"'$CLIENT_UID'", "'$SERVER_UID'"}'
expect_ok "after the NACK" nacked
state "" ""

# (6) Bursts of 10,000 workloads while a long-lived connection echoes a line every 200 ms.
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 7000 >"$TBDIR/echo.log" 2>&1
tb_wait_port server-remote 7000
tb_bg client "$PY" "$TB_PEERS/longconn.py" $S 7000 0 >"$TBDIR/long.out" 2>&1
LONG=$TB_BG_PID
echoes() { grep -c '^echo ' "$TBDIR/long.out"; }
at_least_echoes() { [ "$(echoes)" -ge "$1" ]; }
tb_poll 10 at_least_echoes 3 || tb_fail "long connection: $(cat "$TBDIR/long.out")"
n_nack=$(rec_count '"error" in r')
APPLIED='msg="xds update applied" type=type.googleapis.com/istio.workload.Address'
a1=$(tb_count "$L1" "$APPLIED"); a2=$(tb_count "$L2" "$APPLIED")
t0=$(tb__now_ms)
state "" "" ', "bulk": {"count": 10000, "version": "a"}'
tb_poll 30 both_dump 'len(w) == 10002 and w["bulk-9999"]["name"] == "bulk-9999-a"' ||
	tb_fail "10,000 workloads not applied by both agents"
t1=$(tb__now_ms)
state "" "" ', "bulk": {"count": 10000, "version": "b"}'
tb_poll 30 both_dump 'len(w) == 10002 and w["bulk-0"]["name"] == "bulk-0-b"
	and w["bulk-9999"]["name"] == "bulk-9999-b" and "bad-workload" not in w' ||
	tb_fail "10,000 workload updates not applied by both agents"
t2=$(tb__now_ms)
tb_log "ok: 10,000 workloads added in $((t1 - t0)) ms, updated in $((t2 - t1)) ms (10,002 in both dumps)"
for n in 1 2; do
	l=$TBDIR/agent-node$n.log; a=$((n == 1 ? a1 : a2))
	got=$(($(tb_count "$l" "$APPLIED") - a))
	[ "$got" -ge 200 ] || tb_fail "node$n applied $got Address responses for 2 x 100 batches"
	grep -E "$APPLIED" "$l" | tail -1 | grep -q 'total=10003$' ||
		tb_fail "node$n's last Address update: $(grep -E "$APPLIED" "$l" | tail -1)"
	tb_log "ok: node$n applied $got Address responses, the last with total=10003 (10,002 workloads + web)"
done
tb_check "no NACK for the bursts" test "$(rec_count '"error" in r')" -eq "$n_nack"
e=$(echoes)
tb_poll 5 at_least_echoes $((e + 3)) || tb_fail "long connection stopped: $(tail -2 "$TBDIR/long.out")"
kill -0 "$LONG" 2>/dev/null || tb_fail "long connection ended: $(tail -2 "$TBDIR/long.out")"
gap=$(awk '/^echo /{ if (p) { g = $3 - p; if (g > m) m = g } p = $3 } END { printf "%d", m * 1000 }' \
	"$TBDIR/long.out")
[ "$gap" -lt 2000 ] || tb_fail "the long connection stalled: longest gap between echoes $gap ms"
tb_log "ok: the long connection echoed throughout ($(echoes) echoes, longest gap $gap ms)"
expect_ok "after the bursts" bursts
# (7) A pod enrolled before the control plane knows it waits, and is captured when it arrives.
tb_pod node1 late 10.201.1.3
late='{"uid": "Kubernetes//Pod/default/late", "name": "late", "service_account": "late",
  "addresses": ["10.201.1.3"], "node": "node1"}'
state "" ""
tb_poll 30 both_dump 'len(w) == 2' || tb_fail "the bulk workloads were not removed"
tb_enroll node1 late default late
tb_wait_log "$L1" 'msg="pod waiting for its workload" uid=uid-default-late ' 5 ||
	tb_fail "node1 did not keep the unknown pod waiting"
dump_has node1 'True' || tb_fail "no config_dump from node1"
grep -q '"pendingPods":\[{"uid":"uid-default-late"' "$TBDIR/dump-node1.json" ||
	tb_fail "pendingPods in node1's dump: $(grep -o '"pendingPods":[^]]*]' "$TBDIR/dump-node1.json")"
! tb__listening late 15001 || tb_fail "the unknown pod is captured already"
tb_log "ok: the pod enrolled before its workload waits (pendingPods in node1's config_dump)"
t0=$(tb__now_ms)
state "$late" ""
tb_wait_port late 15001
took=$(($(tb__now_ms) - t0))
out=$(tb_curl late "http://$S:8080/late" 2>&1) || tb_fail "curl late -> $S:8080: $out"
grep -q "^peer=10.201.1.3:" <<<"$out" || tb_fail "late: unexpected answer: $out"
tb_wait_log "$L2" 'msg="connection complete".*src\.addr=10\.201\.1\.3:.*src\.identity=spiffe://cluster\.local/ns/default/sa/late.*direction=inbound' 5 ||
	tb_fail "node2 logged no HBONE connection from late's identity"
tb_log "ok: the waiting pod was captured $took ms after its workload was pushed, and its traffic goes through HBONE as sa/late"

# (8) node2 restarts while the control plane is down: its pod waits in the state dir, and is
# captured again once the control plane is back.
ENROLLED='msg="pod enrolled" uid=uid-default-server-remote '
n_enr=$(tb_count "$L2" "$ENROLLED")
tb_agent_stop node2 TERM
tb_stop "$CP_PID" 5
XDS_ADDRESS=http://10.200.2.1:15010 tb_agent node2 mesh.yaml
tb_wait_log "$L2" 'msg="pod waiting for its workload" uid=uid-default-server-remote ' 10 ||
	tb_fail "node2 did not keep its restored pod waiting without a control plane"
tb_log "ok: node2 restarted without a control plane: server-remote waits"
t0=$(tb__now_ms)
cp_start --batch 100
tb_poll 20 is_ready node2 || tb_fail "node2 not ready after the control plane came back"
tb_poll 10 tb_more_lines "$L2" "$ENROLLED" "$n_enr" ||
	tb_fail "node2 did not enroll its restored pod once the workload arrived"
took=$(($(tb__now_ms) - t0))
expect_ok "restored pod enrolled once the control plane came back" restored
tb_log "ok: server-remote captured again $took ms after the control plane restarted"
tb_pass "agents on delta xDS: readiness, traffic, policy push, cp outage and reconnect, NACK, bursts, late workloads"
