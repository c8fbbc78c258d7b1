#!/usr/bin/env bash
# Waypoints from xDS (tests/e2e/cp/xds_server.py in netns cp): GatewayAddress by address on a
# Service and by NamespacedHostname on a Workload reach the test waypoint (peers/waypoint.py,
# x-waypoint header, :authority VIP:port / podIP:port); a Service without one goes direct.
set -u
source "$(dirname "$0")/lib.sh"
tb_init
source "$(dirname "$0")/xds_lib.sh"
xds_stubs
SA=spiffe://cluster.local/ns/default/sa
WLOG=$TBDIR/waypoint.log
cat >"$STATE" <<'EOF2'
{"workloads": [
 {"uid": "Kubernetes//Pod/default/client", "name": "client", "service_account": "client",
  "addresses": ["10.201.1.2"], "node": "node1"},
 {"uid": "Kubernetes//Pod/default/server", "name": "server", "service_account": "server",
  "addresses": ["10.201.2.2"], "node": "node2",
  "services": {"default/web.default.svc.cluster.local": {"80": 8080},
               "default/web-wp.default.svc.cluster.local": {"80": 8080}}},
 {"uid": "Kubernetes//Pod/default/wlserver", "name": "wlserver", "service_account": "server",
  "addresses": ["10.201.2.3"], "node": "node2",
  "waypoint": {"hostname": "default/waypoint.default.svc.cluster.local", "port": 15008}},
 {"uid": "Kubernetes//Pod/default/wp", "name": "waypoint", "service_account": "waypoint",
  "addresses": ["10.201.2.7"], "node": "node2",
  "services": {"default/waypoint.default.svc.cluster.local": {"15008": 15008}}}],
 "services": [
 {"name": "web", "hostname": "web.default.svc.cluster.local", "vips": ["10.96.0.10"],
  "ports": {"80": 8080}},
 {"name": "web-wp", "hostname": "web-wp.default.svc.cluster.local", "vips": ["10.96.0.11"],
  "ports": {"80": 8080}, "waypoint": {"address": "10.201.2.7"}},
 {"name": "waypoint", "hostname": "waypoint.default.svc.cluster.local", "vips": ["10.96.0.20"],
  "ports": {"15008": 15008}}],
 "policies": []}
EOF2
: >"$REC"
tb_node node1 1
tb_node node2 2
tb_node cp 9
tb_link node1 node2
tb_link cp node1
tb_link cp node2
tb_pod node1 client 10.201.1.2
tb_pod node2 server 10.201.2.2
tb_pod node2 wlserver 10.201.2.3
tb_pod node2 wp 10.201.2.7
cp "$TB_TESTDATA/mesh.yaml" "$TBDIR/mesh.yaml"	# ignored with XDS_ADDRESS, but tb_agent wants it
cp_start
XDS_ADDRESS=http://10.200.1.1:15010 tb_agent node1 mesh.yaml
XDS_ADDRESS=http://10.200.2.1:15010 tb_agent node2 mesh.yaml
tb_poll 20 is_ready node1 || tb_fail "node1 not ready: $(ready_code node1)"
tb_poll 20 is_ready node2 || tb_fail "node2 not ready: $(ready_code node2)"
tb_enroll node1 client default client
tb_enroll node2 server default server
tb_enroll node2 wlserver default wlserver
tb_wait_port client 15001
tb_wait_port server 15008
tb_wait_port wlserver 15008
tb_whoami server 8080
tb_whoami wlserver 8080
tb_cert waypoint "$SA/waypoint"
tb_bg wp "$PY" "$TB_PEERS/waypoint.py" --cert "$TBDIR/waypoint.pem" --key "$TBDIR/waypoint.key" \
	--ca "$TBDIR/ca.pem" --name wp-xds --route 10.96.0.11:80=10.201.2.2:8080 >>"$WLOG" 2>&1
tb_wait_port wp 15008

get() {	# WHAT URL: the client's response in $OUT
	OUT=$(tb_curl client "$2" -i 2>&1) || tb_fail "$1: curl $2 failed: $OUT"
	[[ "$OUT" == *"200"*"path="* ]] || tb_fail "$1: unexpected reply: $OUT"
}
get "service without a waypoint" http://10.96.0.10/direct
grep -qi '^x-waypoint' <<<"$OUT" && tb_fail "a waypoint answered for a service without one"
tb_log "ok: xDS service without a waypoint: direct"
get "service waypoint by address" http://10.96.0.11/svc
grep -qi '^x-waypoint: wp-xds' <<<"$OUT" || tb_fail "service waypoint: no x-waypoint: $OUT"
grep -q "identity=$SA/client authority=10.96.0.11:80 " "$WLOG" || tb_fail "the waypoint did not see VIP:port"
tb_log "ok: xDS Service.waypoint (address): through the waypoint, :authority 10.96.0.11:80"
get "workload waypoint by hostname" http://10.201.2.3:8080/wl
grep -qi '^x-waypoint: wp-xds' <<<"$OUT" || tb_fail "workload waypoint: no x-waypoint: $OUT"
grep -q "identity=$SA/client authority=10.201.2.3:8080 " "$WLOG" || tb_fail "the waypoint did not see podIP:port"
tb_log "ok: xDS Workload.waypoint (hostname): through the waypoint, :authority 10.201.2.3:8080"
tb_pass "waypoints from xDS"
