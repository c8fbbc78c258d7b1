# Helpers of the xDS e2e tests (source after lib.sh and tb_init): python stubs, the control plane
# (tests/e2e/cp/xds_server.py) in netns "cp", readiness and /config_dump checks.
# shellcheck shell=bash

REC=$TBDIR/record.jsonl
STATE=$TBDIR/state.json

# xds_stubs: python gRPC stubs from proto/ into $TBDIR/py (skips without grpcio/grpc_tools).
xds_stubs() {
	"$PY" -c 'import grpc, grpc_tools' 2>/dev/null || tb_skip "python3 grpcio / grpc_tools missing"
	mkdir -p "$TBDIR/py"
	"$PY" -m grpc_tools.protoc -I "$TB_ROOT/proto" --python_out="$TBDIR/py" \
		--grpc_python_out="$TBDIR/py" "$TB_ROOT"/proto/{discovery,workload,authorization}.proto \
		"$TB_ROOT"/proto/{envoy_base,google_any,google_status,google_struct,google_empty,google_wrappers}.proto ||
		tb_fail "generating python stubs"
}

# cp_start [ARGS...]: the control plane on 0.0.0.0:15010 in netns cp, serving $STATE, recording
# requests in $REC; sets CP_PID.
cp_start() {
	tb_bg cp env XDS_PY_DIR="$TBDIR/py" "$PY" "$TB_ROOT/tests/e2e/cp/xds_server.py" \
		--listen 0.0.0.0:15010 --state "$STATE" --record "$REC" "$@" >>"$TBDIR/cp.log" 2>&1
	CP_PID=$TB_BG_PID
	tb_wait_port cp 15010 15
}

ready_code() { tb_exec_node "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
	http://127.0.0.1:15021/healthz/ready; }
is_ready() { [ "$(ready_code "$1")" = 200 ]; }

# dump_has NODE PYTHON_EXPR: NODE's /config_dump (kept in $TBDIR/dump-NODE.json) satisfies the
# expression (w: workloads by uid, p: policy names).
dump_has() {
	tb_exec_node "$1" curl -s --max-time 5 -o "$TBDIR/dump-$1.json" \
		http://127.0.0.1:15000/config_dump || return 1
	"$PY" - "$TBDIR/dump-$1.json" "$2" <<'PYEOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
vals = lambda v: list(v.values()) if isinstance(v, dict) else v
w = {x["uid"]: x for x in vals(d["workloads"])}
p = {x["name"] for x in vals(d.get("policies", []))}
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
PYEOF
}
