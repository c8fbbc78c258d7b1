#!/usr/bin/env bash
# Waypoints: a test waypoint (peers/waypoint.py: terminates HBONE with its own identity, handles
# the HTTP request, adds `x-waypoint: wp1`, originates HBONE to the destination) in pod wp.
# (1) client -> service without a waypoint: direct, no header; (2) service with a waypoint by
# address and (3) by hostname, (4) workload with a waypoint: through it (header; the app sees the
# waypoint's address; the waypoint saw the client's identity and :authority VIP:port or
# podIP:port; node1's access log names the waypoint; node2's log and metrics name it as the
# source); (5) a waypoint not in the state: refused, naming it; (6) an ALLOW policy for the
# waypoint's identity only: waypoint traffic admitted, direct traffic refused; (7) the waypoint
# stopped: refused fast with a log line naming it, the app never reached (no bypass).
set -u
. "$(dirname "$0")/lib.sh"
tb_init
SA=cluster.local/ns/default/sa
CFG=$TBDIR/cfg.yaml
L1=$TBDIR/agent-node1.log
L2=$TBDIR/agent-node2.log
CC='msg="connection complete"'
WLOG=$TBDIR/waypoint.log

gen_cfg() {	# AUTHZ POLICIES: the mesh; AUTHZ as the server's authorizationPolicies, POLICIES
	cat <<'EOF'
services:
- {name: web, namespace: default, hostname: web.default.svc.cluster.local,
   vips: ["/10.96.0.10"], ports: {80: 8080}}
- {name: web-wp, namespace: default, hostname: web-wp.default.svc.cluster.local,
   vips: ["/10.96.0.11"], ports: {80: 8080}, waypoint: {destination: "/10.201.2.7"}}
- {name: web-host, namespace: default, hostname: web-host.default.svc.cluster.local,
   vips: ["/10.96.0.12"], ports: {80: 8080},
   waypoint: {destination: "default/waypoint.default.svc.cluster.local", hboneMtlsPort: 15008}}
- {name: web-gone, namespace: default, hostname: web-gone.default.svc.cluster.local,
   vips: ["/10.96.0.13"], ports: {80: 8080}, waypoint: {destination: "/10.201.9.9"}}
- {name: waypoint, namespace: default, hostname: waypoint.default.svc.cluster.local,
   vips: ["/10.96.0.20"], ports: {15008: 15008}}
workloads:
- {uid: "Kubernetes//Pod/default/client", name: client, namespace: default,
   serviceAccount: client, workloadIps: ["10.201.1.2"], protocol: HBONE, node: node1}
- {uid: "Kubernetes//Pod/default/wp", name: waypoint, namespace: default,
   serviceAccount: waypoint, workloadIps: ["10.201.2.7"], protocol: HBONE, node: node2,
   services: {"default/waypoint.default.svc.cluster.local": {15008: 15008}}}
- {uid: "Kubernetes//Pod/default/wlserver", name: wlserver, namespace: default,
   serviceAccount: server, workloadIps: ["10.201.2.3"], protocol: HBONE, node: node2,
   waypoint: {destination: "/10.201.2.7", hboneMtlsPort: 15008}}
- uid: "Kubernetes//Pod/default/server"
  name: server
  namespace: default
  serviceAccount: server
  workloadIps: ["10.201.2.2"]
  protocol: HBONE
  node: node2
  services: {"default/web.default.svc.cluster.local": {80: 8080},
             "default/web-wp.default.svc.cluster.local": {80: 8080},
             "default/web-host.default.svc.cluster.local": {80: 8080},
             "default/web-gone.default.svc.cluster.local": {80: 8080}}
EOF
	[ -z "$1" ] || printf '  authorizationPolicies: [%s]\n' "$1"
	printf '%s\n' "$2"
}

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node2 server 10.201.2.2
tb_pod node2 wlserver 10.201.2.3
tb_pod node2 wp 10.201.2.7
gen_cfg "" "" >"$CFG"
tb_agent node1 "$CFG"
tb_agent node2 "$CFG"
tb_enroll node1 client default client
tb_enroll node2 server default server
tb_enroll node2 wlserver default wlserver
tb_wait_port client 15001
tb_wait_port server 15008
tb_wait_port wlserver 15008
tb_whoami server 8080
tb_whoami wlserver 8080

tb_cert waypoint "spiffe://$SA/waypoint"
start_waypoint() {
	tb_bg wp "$PY" "$TB_PEERS/waypoint.py" --cert "$TBDIR/waypoint.pem" \
		--key "$TBDIR/waypoint.key" --ca "$TBDIR/ca.pem" --name wp1 \
		--route 10.96.0.11:80=10.201.2.2:8080 --route 10.96.0.12:80=10.201.2.2:8080 \
		>>"$WLOG" 2>&1
	WP_PID=$TB_BG_PID
	tb_wait_port wp 15008
}
start_waypoint

# get WHAT URL: the response (head and body) the client gets, in $OUT
get() {
	OUT=$(tb_curl client "$2" -i 2>&1) || tb_fail "$1: curl $2 failed: $OUT"
	[[ "$OUT" == *"200"*"path="* ]] || tb_fail "$1: unexpected reply: $OUT"
}
via_waypoint() {	# WHAT URL SERVER AUTHORITY
	local n; n=$(tb_count "$WLOG" "identity=spiffe://$SA/client authority=$4 ")
	get "$1" "$2"
	grep -qi '^x-waypoint: wp1' <<<"$OUT" || tb_fail "$1: no x-waypoint header: $OUT"
	[[ "$OUT" == *"peer=10.201.2.7:"*"server=$3"* ]] ||
		tb_fail "$1: the app did not see the waypoint's address: $OUT"
	tb_poll 5 tb_more_lines "$WLOG" "identity=spiffe://$SA/client authority=$4 " "$n" ||
		tb_fail "$1: the waypoint did not log a CONNECT from sa/client for $4"
	grep -q "authority=$4 upstream=.* upstream.identity=spiffe://$SA/server status=200" \
		"$WLOG" || tb_fail "$1: the waypoint did not reach $3 with HBONE"
	tb_log "ok: $1: through the waypoint (x-waypoint: wp1, app saw 10.201.2.7, :authority $4)"
}

# /config_dump shows the references as the YAML gave them
tb_exec node1 timeout 5 curl -sS --max-time 3 http://127.0.0.1:15000/config_dump \
	>"$TBDIR/dump.json" || tb_fail "config_dump"
"$PY" - "$TBDIR/dump.json" <<'EOF' || tb_fail "config_dump does not show the waypoints"
import json, sys
d = json.load(open(sys.argv[1]))
svc = {s["name"]: s for s in d["services"]}
wl = {w["name"]: w for w in d["workloads"]}
assert svc["web-wp"]["waypoint"] == {"destination": "/10.201.2.7", "hboneMtlsPort": 15008}
assert svc["web-host"]["waypoint"]["destination"] == "default/waypoint.default.svc.cluster.local"
assert "waypoint" not in svc["web"]
assert wl["wlserver"]["waypoint"]["destination"] == "/10.201.2.7"
EOF
tb_log "ok: /config_dump shows the waypoint references"

# (1) no waypoint: straight to the endpoint
get "(1) service without a waypoint" http://10.96.0.10/direct
grep -qi '^x-waypoint' <<<"$OUT" && tb_fail "(1) a waypoint answered for a service without one"
[[ "$OUT" == *"peer=10.201.1.2:"* ]] || tb_fail "(1) the app did not see the client: $OUT"
tb_log "ok: (1) service without a waypoint: direct, the app saw the client"

# (2), (3), (4)
via_waypoint "(2) service waypoint by address" http://10.96.0.11/svc-addr server 10.96.0.11:80
tb_wait_log "$L1" "$CC.*dst\\.addr=10\\.96\\.0\\.11:80 dst\\.hbone_addr=10\\.201\\.2\\.7:15008 dst\\.service=web-wp\\.default\\.svc\\.cluster\\.local dst\\.workload=waypoint dst\\.namespace=default dst\\.identity=spiffe://$SA/waypoint .*direction=outbound" 5 ||
	tb_fail "(2) node1's access log does not name the waypoint hop"
tb_log "ok: (2) node1's access log: dst.hbone_addr=10.201.2.7:15008 dst.workload=waypoint dst.identity=sa/waypoint"
tb_wait_log "$L2" "$CC.*src\\.addr=10\\.201\\.2\\.7:[0-9]+ src\\.workload=waypoint src\\.namespace=default src\\.identity=spiffe://$SA/waypoint .*direction=inbound" 5 ||
	tb_fail "(2) node2's access log does not name the waypoint as the source"
tb_log "ok: (2) node2's access log names the waypoint as the source"
via_waypoint "(3) service waypoint by hostname" http://10.96.0.12/svc-host server 10.96.0.12:80
via_waypoint "(4) workload waypoint" http://10.201.2.3:8080/wl wlserver 10.201.2.3:8080

M=$(tb_exec node2 timeout 5 curl -sS --max-time 3 http://127.0.0.1:15020/metrics) ||
	tb_fail "scraping node2's metrics"
grep -E '^istio_tcp_connections_opened_total\{[^}]*reporter="destination"' <<<"$M" |
	grep 'source_workload="waypoint"' | grep -q "source_principal=\"spiffe://$SA/waypoint\"" ||
	tb_fail "(4) node2's metrics have no series from the waypoint: $(grep opened_total <<<"$M")"
tb_log "ok: (4) node2's metrics count connections from source_workload=waypoint"

# (5) a waypoint that is not in the state: refused, never around it
n=$(grep -c 'served' "$TBDIR/whoami-server.log")
out=$(tb_curl client http://10.96.0.13/gone 2>&1) && tb_fail "(5) allowed around a missing waypoint: $out"
tb_wait_log "$L1" "$CC.*dst\\.addr=10\\.96\\.0\\.13:80 .*error=\"waypoint 10\\.201\\.9\\.9 not found\"" 5 ||
	tb_fail "(5) node1 did not log the missing waypoint"
[ "$(grep -c 'served' "$TBDIR/whoami-server.log")" -eq "$n" ] || tb_fail "(5) the app was reached"
tb_log "ok: (5) a waypoint not in the state: refused (\"waypoint 10.201.9.9 not found\")"

# (6) only the waypoint's identity may reach the server
tb_reload_config "allow the waypoint only" "$CFG" < <(gen_cfg '"default/waypoint-only"' \
"policies:
- {name: waypoint-only, namespace: default, scope: WorkloadSelector, action: Allow,
   rules: [[[{principals: [\"$SA/waypoint\"]}]]]}")
via_waypoint "(6) policy admits the waypoint" http://10.96.0.11/policy-wp server 10.96.0.11:80
n=$(tb_count "$L2" "$CC.*src\\.identity=spiffe://$SA/client .*error=\"[^\"]*denied")
out=$(tb_curl client http://10.96.0.10/policy-direct 2>&1) && tb_fail "(6) direct traffic was allowed: $out"
tb_poll 5 tb_more_lines "$L2" "$CC.*src\\.identity=spiffe://$SA/client .*error=\"[^\"]*denied" "$n" ||
	tb_fail "(6) node2 did not log the denial of the direct connection"
tb_log "ok: (6) ALLOW for sa/waypoint: through the waypoint admitted, direct refused at node2"

# (7) the waypoint stops: refused quickly, naming it; the app is never reached
tb_stop "$WP_PID" 5
n=$(grep -c 'served' "$TBDIR/whoami-server.log")
start=$(tb__now_ms)
out=$(tb_curl client http://10.96.0.11/stopped 2>&1) && tb_fail "(7) reached with the waypoint stopped: $out"
took=$(($(tb__now_ms) - start))
[ "$took" -lt 5000 ] || tb_fail "(7) the refusal took $took ms"
tb_wait_log "$L1" "$CC.*dst\\.addr=10\\.96\\.0\\.11:80 .*error=\"waypoint 10\\.201\\.2\\.7 \\(default/waypoint\\): connect to port 15008 failed" 5 ||
	tb_fail "(7) node1 did not log the unreachable waypoint by name"
[ "$(grep -c 'served' "$TBDIR/whoami-server.log")" -eq "$n" ] || tb_fail "(7) the app was reached: bypass"
tb_log "ok: (7) waypoint stopped: refused in ${took} ms, $(grep -Eo 'error="waypoint[^"]*"' "$L1" | tail -1)"
# (8) something else answers on the waypoint's address with another identity: refused, named
tb_cert impostor "spiffe://$SA/impostor"
tb_bg wp "$PY" "$TB_PEERS/waypoint.py" --cert "$TBDIR/impostor.pem" --key "$TBDIR/impostor.key" \
	--ca "$TBDIR/ca.pem" --name impostor --route 10.96.0.11:80=10.201.2.2:8080 >>"$WLOG" 2>&1
tb_wait_port wp 15008
n=$(grep -c 'served' "$TBDIR/whoami-server.log")
out=$(tb_curl client http://10.96.0.11/impostor -i 2>&1) && tb_fail "(8) went through an impostor: $out"
tb_wait_log "$L1" "$CC.*dst\\.addr=10\\.96\\.0\\.11:80 .*error=\"waypoint 10\\.201\\.2\\.7 \\(default/waypoint\\): server identity spiffe://$SA/impostor is not the expected spiffe://$SA/waypoint" 5 ||
	tb_fail "(8) node1 did not refuse the impostor by name"
[ "$(grep -c 'served' "$TBDIR/whoami-server.log")" -eq "$n" ] || tb_fail "(8) the app was reached"
tb_log "ok: (8) a waypoint address with another identity: refused"
tb_pass "waypoints: service and workload waypoints, policy on the waypoint's identity, no bypass"
