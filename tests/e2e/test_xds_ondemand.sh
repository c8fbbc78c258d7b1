#!/usr/bin/env bash
# test_xds_ondemand: the agents with XDS_ON_DEMAND=true against the delta xDS control plane
# (tests/e2e/cp/xds_server.py in its own netns "cp"), as istiod serves them: Address opens with
# "*" subscribed and unsubscribed (nothing held before enrollment, ready once Authorization
# arrived); enrollment subscribes the pod's own uid; the first connection to an unknown address
# asks for "/<ip>" once and is sent through HBONE when the answer is a workload or a service VIP;
# an address the control plane does not know is answered by removal and passed through at once;
# a silent control plane makes the lookup time out (5 s) and the connection still passes through.
set -u
source "$(dirname "$0")/lib.sh"
tb_init
source "$(dirname "$0")/xds_lib.sh"
xds_stubs

L1=$TBDIR/agent-node1.log
S=10.201.2.2
VIP=10.96.0.10
OUT=10.201.2.3
OUT2=10.201.2.4
CLIENT_UID=Kubernetes//Pod/default/client
SERVER_UID=Kubernetes//Pod/default/server-remote
SVC=web.default.svc.cluster.local

workloads='
 {"uid": "'$CLIENT_UID'", "name": "client", "service_account": "client",
  "addresses": ["10.201.1.2"], "node": "node1"},
 {"uid": "'$SERVER_UID'", "name": "server-remote", "service_account": "server",
  "addresses": ["'$S'"], "node": "node2",
  "services": {"default/'$SVC'": {"80": 8080}}}'
services='{"name": "web", "hostname": "'$SVC'", "vips": ["'$VIP'"], "ports": {"80": 8080}}'

# state [EXTRA_KEYS]: the control plane's desired state (atomic).
state() {
	printf '{"workloads": [%s], "services": [%s], "policies": []%s}\n' "$workloads" \
		"$services" "${1:-}" >"$STATE.tmp" && mv "$STATE.tmp" "$STATE"
}

# rec_from NODE PYTHON_EXPR: how many recorded requests r on NODE's streams (the node metadata
# of the stream's first request) satisfy the expression; A and Z are the two type URLs.
rec_from() {
	"$PY" - "$REC" "$1" "$2" <<'PYEOF' 2>/dev/null || echo 0
import json, sys
A = "type.googleapis.com/istio.workload.Address"
Z = "type.googleapis.com/istio.security.Authorization"
recs = []
for line in open(sys.argv[1]):
    try:
        recs.append(json.loads(line))
    except ValueError:  # a line being written
        pass
mine = {r["stream"] for r in recs
        if r.get("node", {}).get("metadata", {}).get("NODE_NAME") == sys.argv[2]}
print(sum(1 for r in recs if r.get("stream") in mine and "type_url" in r
          and eval("(" + sys.argv[3] + ")")))
PYEOF
}
rec_from_at_least() { [ "$(rec_from "$1" "$2")" -ge "$3" ]; }
# demands NODE NAME: how many Address requests from NODE subscribed NAME.
demands() { rec_from "$1" 'r["type_url"] == A and "'"$2"'" in r["subscribe"]'; }
demanded() { [ "$(demands "$1" "$2")" -ge 1 ]; }

# pushed_removal NAME: the control plane answered NAME with removed_resources.
pushed_removal() { grep -q '"removed_names": \[[^]]*"'"$1"'"' "$REC"; }

# curl_whoami WHAT URL SERVER: curl from client; the app SERVER answers and sees the client's IP.
# Sets TOOK (ms).
curl_whoami() {
	local out t0
	t0=$(tb__now_ms)
	out=$(tb_curl client "$2" 2>&1) || tb_fail "$1: curl client -> $2 failed: $out"
	TOOK=$(($(tb__now_ms) - t0))
	grep -q "^peer=10.201.1.2:" <<<"$out" && grep -q "^server=$3" <<<"$out" ||
		tb_fail "$1: unexpected answer from $2: $out"
}

# access_line ERE: node1's last outbound "connection complete" line matching ERE (polled 5 s).
access_line() {
	local pat='msg="connection complete".*src\.addr=10\.201\.1\.2:.*'$1'.*direction=outbound'
	tb_poll 5 grep -Eq -- "$pat" "$L1" || return 1
	grep -E -- "$pat" "$L1" | tail -1
}

# Topology: node1 -- node2 (link 0), cp -- node1 (link 1), cp -- node2 (link 2); outside and
# outside2 on node2 are never enrolled.
tb_node node1 1
tb_node node2 2
tb_node cp 9
tb_link node1 node2
tb_link cp node1
tb_link cp node2
tb_pod node1 client 10.201.1.2
tb_pod node2 server-remote $S
tb_pod node2 outside $OUT
tb_pod node2 outside2 $OUT2
cp "$TB_TESTDATA/mesh.yaml" "$TBDIR/mesh.yaml"	# ignored with XDS_ADDRESS, but tb_agent wants it
: >"$REC"
state
cp_start

# (a) Ready once Authorization arrived; Address opened as "subscribe nothing"; nothing held.
XDS_ON_DEMAND=true XDS_ADDRESS=http://10.200.1.1:15010 tb_agent node1 mesh.yaml
XDS_ON_DEMAND=true XDS_ADDRESS=http://10.200.2.1:15010 tb_agent node2 mesh.yaml
t0=$(tb__now_ms)
tb_poll 20 is_ready node1 || tb_fail "node1 not ready within 20 s: HTTP $(ready_code node1)"
tb_poll 10 is_ready node2 || tb_fail "node2 not ready: HTTP $(ready_code node2)"
tb_log "ok: both agents ready (200) in $(($(tb__now_ms) - t0)) ms with the control plane up"
for n in node1 node2; do
	tb_check "$n opened Address with \"*\" subscribed and unsubscribed" rec_from_at_least $n \
		'r["type_url"] == A and "*" in r["subscribe"] and "*" in r["unsubscribe"]' 1
	tb_check "$n kept Authorization wildcard (no names)" rec_from_at_least $n \
		'r["type_url"] == Z and not set(r["subscribe"]) - {"*"} and "*" not in r["unsubscribe"]' 1
	tb_check "$n ACKed Authorization" rec_from_at_least $n \
		'r["type_url"] == Z and r["nonce"] and "error" not in r' 1
	tb_check "$n holds no workload before enrollment" dump_has $n 'not w'
done

# (b) Enrollment subscribes the pod's own uid, and the pod gets its listeners.
tb_enroll node1 client default client
tb_enroll node2 server-remote default server-remote
tb_poll 10 demanded node1 "$CLIENT_UID" || tb_fail "node1 never subscribed $CLIENT_UID"
tb_poll 10 demanded node2 "$SERVER_UID" || tb_fail "node2 never subscribed $SERVER_UID"
tb_log "ok: enrollment subscribed $CLIENT_UID (node1) and $SERVER_UID (node2)"
tb_wait_port client 15001
tb_wait_port client 15008
tb_wait_port server-remote 15001
tb_wait_port server-remote 15008
tb_log "ok: enrolled pods listen on 15001 and 15008"
tb_check "node1 holds its client and not yet server-remote" dump_has node1 \
	'"'$CLIENT_UID'" in w and "'$SERVER_UID'" not in w'
tb_check "node2 holds server-remote" dump_has node2 '"'$SERVER_UID'" in w'

# (c) First connection to a mesh workload: one lookup of "/10.201.2.2", then HBONE.
tb_whoami server-remote 8080
[ "$(demands node1 /$S)" -eq 0 ] || tb_fail "node1 asked for /$S before any traffic"
curl_whoami "first connection to $S" "http://$S:8080/c1" server-remote
took_c=$TOOK
[ "$took_c" -lt 3000 ] || tb_fail "first connection to $S took $took_c ms, want < 3000 (answered)"
n=$(demands node1 /$S)
[ "$n" -eq 1 ] || tb_fail "node1 subscribed /$S $n times, want 1"
line=$(access_line "dst\.addr=$S:8080 dst\.hbone_addr=$S:15008 .*dst\.workload=server-remote") ||
	tb_fail "node1 logged no HBONE access line to server-remote: $(grep 'connection complete' "$L1" | tail -2)"
tb_log "ok: client -> $S:8080 through HBONE in $took_c ms after one lookup of /$S;" \
	"node1: $(grep -Eo 'dst\.hbone_addr=[^ ]+ dst\.service=[^ ]+ dst\.workload=[^ ]+' <<<"$line")"
grep -q 'msg="xds on-demand request".*name=/'"$S" "$L1" ||
	tb_fail "node1 did not log the on-demand request for /$S"
curl_whoami "second connection to $S" "http://$S:8080/c2" server-remote
sleep 0.3	# a late duplicate request would be recorded by now
n=$(demands node1 /$S)
[ "$n" -eq 1 ] || tb_fail "the second connection asked again: /$S subscribed $n times"
tb_log "ok: second connection to $S in $TOOK ms without another lookup (still 1 subscribe)"

# (d) A service VIP: looked up as "/10.96.0.10", sent through HBONE to its endpoint.
curl_whoami "service VIP $VIP:80" "http://$VIP:80/d" server-remote
took_d=$TOOK
[ "$took_d" -lt 3000 ] || tb_fail "first connection to $VIP took $took_d ms, want < 3000 (answered)"
tb_check "node1 subscribed /$VIP once" test "$(demands node1 /$VIP)" -eq 1
line=$(access_line "dst\.hbone_addr=$S:15008 dst\.service=$SVC ") ||
	tb_fail "node1 logged no HBONE access line for the service: $(grep 'connection complete' "$L1" | tail -2)"
tb_log "ok: client -> $VIP:80 reached server-remote through HBONE in $took_d ms;" \
	"node1: $(grep -Eo 'dst\.addr=[^ ]+ dst\.hbone_addr=[^ ]+ dst\.service=[^ ]+' <<<"$line")"

# (e) An address outside the mesh: answered by removal, passed through at once.
tb_whoami outside 8080
curl_whoami "outside $OUT:8080" "http://$OUT:8080/e" outside
took_e=$TOOK
tb_check "node1 subscribed /$OUT once" test "$(demands node1 /$OUT)" -eq 1
tb_check "the control plane answered /$OUT by removal" pushed_removal "/$OUT"
[ "$took_e" -lt 3000 ] || tb_fail "passthrough to $OUT took $took_e ms after a removal, want < 3000"
line=$(access_line "dst\.addr=$OUT:8080") || tb_fail "node1 logged no access line for $OUT"
tb_log "ok: client -> $OUT:8080 (not in the mesh) passed through in $took_e ms after a removal;" \
	"node1: $(grep -Eo 'dst\.hbone_addr=[^ ]+ dst\.service=[^ ]+ dst\.workload=[^ ]+' <<<"$line")"
! grep -q 'on-demand lookup timed out' "$L1" || tb_fail "a lookup timed out although answered"

# (f) A silent control plane: the lookup times out (5 s) and the connection passes through.
state ', "ignore_subscribe": true'
tb_whoami outside2 8080
curl_whoami "outside2 $OUT2:8080, silent control plane" "http://$OUT2:8080/f" outside2
took_f=$TOOK
tb_check "node1 asked for /$OUT2 and it was ignored" rec_from_at_least node1 \
	'r["type_url"] == A and "/'$OUT2'" in r["subscribe"] and r.get("ignored")' 1
tb_poll 5 grep -q 'on-demand lookup timed out' "$L1" ||
	tb_fail "node1 did not log 'on-demand lookup timed out'"
[ "$took_f" -ge 4000 ] && [ "$took_f" -lt 9000 ] ||
	tb_fail "passthrough after an unanswered lookup took $took_f ms, want 4000..9000 (5 s timeout)"
tb_log "ok: client -> $OUT2:8080 passed through after $took_f ms (unanswered lookup);" \
	"node1: $(grep -m1 -o 'msg="on-demand lookup timed out".*' "$L1")"
state
curl_whoami "known workload after the timeout" "http://$S:8080/after" server-remote
tb_check "still one lookup of /$S" test "$(demands node1 /$S)" -eq 1
tb_log "ok: $S still answered from what node1 holds ($TOOK ms)"
tb_pass "on-demand xDS: subscribe nothing, own pods at enrollment, lookups by IP and VIP," \
	"removal -> passthrough ($took_e ms), timeout -> passthrough ($took_f ms)"
