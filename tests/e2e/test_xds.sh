#!/usr/bin/env bash
# test_xds: the delta xDS client against a real gRPC control plane (tests/e2e/cp/xds_server.py)
# in its own netns, driven by tests/e2e/cp/xds_driver.c (the client alone, watching the store):
# subscribe + ACK with node identity and headers, policy pushed and removed, a malformed
# resource NACKed naming it with the last good state kept, control plane killed (state kept)
# and restarted (reconnect with initial_resource_versions, updates apply again), and a burst of
# 10,000 workloads applied.
set -u
source "$(dirname "$0")/lib.sh"
TB_NEED_AGENT=0
tb_init
command -v cc >/dev/null || tb_skip "no C compiler"
"$PY" -c 'import grpc, grpc_tools' 2>/dev/null || tb_skip "python3 grpcio / grpc_tools missing"
ls "$TB_ROOT"/build/obj/agent/xds/*.o >/dev/null 2>&1 || tb_skip "agent objects not built (make all)"

mkdir -p "$TBDIR/py"
"$PY" -m grpc_tools.protoc -I "$TB_ROOT/proto" --python_out="$TBDIR/py" \
	--grpc_python_out="$TBDIR/py" "$TB_ROOT"/proto/{discovery,workload,authorization}.proto \
	"$TB_ROOT"/proto/{envoy_base,google_any,google_status,google_struct,google_empty,google_wrappers}.proto ||
	tb_fail "generating python stubs"
objs=$(ls "$TB_ROOT"/build/obj/agent/*/*.o "$TB_ROOT"/build/obj/gen/*.o)
# shellcheck disable=SC2086
cc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -I"$TB_ROOT/include" \
	-I"$TB_ROOT/build/gen" -D_GNU_SOURCE -g -o "$TBDIR/xds_driver" \
	"$TB_ROOT/tests/e2e/cp/xds_driver.c" $objs -luring -lssl -lcrypto -lnghttp2 -lnftnl -lmnl \
	-lyaml -lprotobuf-c -lbpf -lldns -lpthread || tb_fail "building xds_driver"

REC=$TBDIR/record.jsonl
SNAP=$TBDIR/snapshot.json
STATE=$TBDIR/state.json
tb_node cp 9

base_workloads='
 {"uid": "Kubernetes//Pod/default/client", "name": "client", "service_account": "client",
  "addresses": ["10.201.1.2"], "node": "node1"},
 {"uid": "Kubernetes//Pod/default/server", "name": "server", "service_account": "server",
  "addresses": ["10.201.2.2"], "node": "node2",
  "services": {"default/web.default.svc.cluster.local": {"80": 8080}}}'
base_services='{"name": "web", "hostname": "web.default.svc.cluster.local",
  "vips": ["10.96.0.10"], "ports": {"80": 8080}}'
deny_policy='{"name": "deny-9090", "action": "DENY", "rules": [[[{"destination_ports": [9090]}]]]}'

# state WORKLOADS_JSON POLICIES_JSON [EXTRA]: writes the control plane's desired state.
state() {
	printf '{"workloads": [%s], "services": [%s], "policies": [%s]%s}\n' "$1" \
		"$base_services" "$2" "${3:-}" >"$STATE.tmp" && mv "$STATE.tmp" "$STATE"
}

cp_start() {
	tb_bg cp env XDS_PY_DIR="$TBDIR/py" "$PY" "$TB_ROOT/tests/e2e/cp/xds_server.py" \
		--listen 127.0.0.1:15010 --state "$STATE" --record "$REC" >>"$TBDIR/cp.log" 2>&1
	CP_PID=$TB_BG_PID
	tb_wait_port cp 15010 15
}

# snap_has PYTHON_EXPR: the driver's last snapshot (s) satisfies the expression.
snap_has() {
	"$PY" - "$SNAP" "$1" <<'PYEOF' 2>/dev/null
import json, sys
s = json.load(open(sys.argv[1]))
w = {x["uid"]: x for x in s["workloads"]}
p = {x["name"]: x for x in s["policies"]}
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
PYEOF
}

# rec_has PYTHON_EXPR: some recorded request r satisfies the expression.
rec_has() {
	"$PY" - "$REC" "$1" <<'PYEOF' 2>/dev/null
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "type_url" in r and eval("(" + sys.argv[2] + ")"):
        sys.exit(0)
sys.exit(1)
PYEOF
}

ADDR='"type.googleapis.com/istio.workload.Address"'
AUTHZ='"type.googleapis.com/istio.security.Authorization"'

state "$base_workloads" ""
: >"$REC"
cp_start
echo "secret-token" >"$TBDIR/token"
tb_bg cp env XDS_ADDRESS=http://127.0.0.1:15010 XDS_TOKEN_PATH="$TBDIR/token" CLUSTER_ID=c1 \
	NODE_NAME=node1 POD_NAME=ztunnel-x POD_NAMESPACE=istio-system INSTANCE_IP=10.201.1.1 \
	ZTUNNEL_LOG=debug "$TBDIR/xds_driver" "$SNAP" >"$TBDIR/driver.log" 2>&1

tb_check "synced: both workloads and the service" tb_poll 10 snap_has \
	's["synced"] and len(w) == 2 and len(s["services"]) == 1 and not p'
tb_check "node id, metadata and headers" rec_has \
	'r.get("node", {}).get("id") == "ztunnel~10.201.1.1~ztunnel-x.istio-system~istio-system.svc.cluster.local"
	 and r["node"]["metadata"].get("NODE_NAME") == "node1" and r["node"]["metadata"].get("CLUSTER_ID") == "c1"
	 and r.get("headers", {}).get("authorization") == "Bearer secret-token"
	 and r["headers"].get("clusterid") == "c1" and r["type_url"] == '"$ADDR"
tb_check "Address subscribed before Authorization" "$PY" -c '
import json, sys
t = [json.loads(l)["type_url"] for l in open(sys.argv[1]) if "type_url" in json.loads(l)]
sys.exit(0 if t[:1] == ["type.googleapis.com/istio.workload.Address"] else 1)' "$REC"
tb_check "both types ACKed" rec_has 'r["nonce"] and "error" not in r and r["type_url"] == '"$AUTHZ"

state "$base_workloads" "$deny_policy"
tb_check "policy pushed" tb_poll 10 snap_has '"deny-9090" in p and p["deny-9090"]["action"] == "Deny"'
state "$base_workloads" ""
tb_check "policy removed" tb_poll 10 snap_has 'not p'

# A malformed workload in the same push as a good change: the whole response is NACKed.
bad='{"uid": "bad-workload", "name": "bad", "addresses_hex": ["0102030405"]}'
renamed=${base_workloads/\"name\": \"client\"/\"name\": \"client-v2\"}
state "$renamed, $bad" ""
tb_check "NACK names the resource and the problem" tb_poll 10 rec_has \
	'r.get("error", {}).get("code") == 3 and "bad-workload" in r["error"]["message"]
	 and "5 bytes" in r["error"]["message"]'
tb_check "last good state kept" snap_has \
	'"bad-workload" not in w and w["Kubernetes//Pod/default/client"]["name"] == "client" and len(w) == 2'

# Control plane gone: the client keeps its state.
tb_stop "$CP_PID" 5
last_gen() { grep -o '^gen=[0-9]*' "$TBDIR/driver.log" | tail -1; }
gen_before=$(last_gen)
sleep 0.5
tb_check "state kept while the control plane is down" snap_has \
	'len(w) == 2 and w["Kubernetes//Pod/default/client"]["name"] == "client"'
tb_check "nothing published while down ($gen_before)" test "$(last_gen)" = "$gen_before"
# Back, without the bad workload: reconnect with initial_resource_versions; the rename applies.
state "$renamed" "$deny_policy"
: >"$REC"
cp_start
tb_check "reconnect sends initial_resource_versions" tb_poll 15 rec_has \
	'r["type_url"] == '"$ADDR"' and "Kubernetes//Pod/default/client" in r["initial_resource_versions"]
	 and "default/web.default.svc.cluster.local" in r["initial_resource_versions"]'
tb_check "updates apply after the reconnect" tb_poll 10 snap_has \
	'w["Kubernetes//Pod/default/client"]["name"] == "client-v2" and "deny-9090" in p'

# A burst of 10,000 workloads (pushed in responses of 1,000), then a new version of all.
start=$(tb__now_ms)
state "$renamed" "$deny_policy" ', "bulk": {"count": 10000, "version": "a"}'
tb_check "10,000 workloads applied" tb_poll 30 snap_has \
	'len(w) == 10002 and w["bulk-9999"]["name"] == "bulk-9999-a"'
state "$renamed" "$deny_policy" ', "bulk": {"count": 10000, "version": "b"}'
tb_check "10,000 workload updates applied" tb_poll 30 snap_has \
	'len(w) == 10002 and w["bulk-0"]["name"] == "bulk-0-b" and w["bulk-9999"]["name"] == "bulk-9999-b"'
tb_log "two bursts of 10,000 applied in $(($(tb__now_ms) - start)) ms"
state "$renamed" "$deny_policy"
tb_check "bulk removed" tb_poll 30 snap_has 'len(w) == 2'
tb_check "no NACK for good pushes" "$PY" -c '
import json, sys
sys.exit(1 if any("error" in json.loads(l) for l in open(sys.argv[1])) else 0)' "$REC"
tb_pass "delta xDS: sync, ACK/NACK, outage and reconnect, bursts"
