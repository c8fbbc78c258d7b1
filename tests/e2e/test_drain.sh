#!/usr/bin/env bash
# Graceful drain (TERMINATION_GRACE_PERIOD_SECONDS=4 for node2's agent). A: SIGTERM while a
# long connection client -> server is open: readiness flips to 503 (or closes) at once while the
# agent still runs, new connections to node2's pods are refused (mesh and plaintext), the open
# connection keeps echoing until the client finishes it, and the agent exits 0 within the grace
# period. B: after a restart, SIGTERM with a connection that never ends: the agent closes it at
# the deadline and exits 0.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
GRACE=4
BASE=$TB_TESTDATA/policy-mesh.yaml
CFG=$TBDIR/cfg.yaml
L2=$TBDIR/agent-node2.log
PORT=7000
S=10.201.2.2

echoes() { grep -c '^echo ' "$1"; }
# unix_ms LINE: the "<seconds>.<ms>" third field of a longconn.py line, in milliseconds
unix_ms() { local f; f=$(awk '{print $3}' <<<"$1"); f=${f/./}; echo $((10#$f)); }
at_least_echoes() { [ "$(echoes "$1")" -ge "$2" ]; }
# echoes_after FILE MS: echoes received after the unix time MS (milliseconds)
echoes_after() { awk -v t="$2" '$1 == "echo" && $3 * 1000 > t' "$1" | wc -l; }
ready_code() {
	tb_exec_node node2 timeout 3 curl -s --max-time 2 -o /dev/null -w '%{http_code}' \
		http://127.0.0.1:15021/healthz/ready
}
not_ready() { [ "$(ready_code)" != 200 ]; }
is_ready() { [ "$(ready_code)" = 200 ]; }
# With an ASan build (ZT=build/ztunnel-asan) leaks found at exit would turn the exit status into
# 1; like lib.sh, treat them as a note (lib.sh still prints them and fails on memory errors).
start_node2() {
	LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}exitcode=0 \
		TERMINATION_GRACE_PERIOD_SECONDS=$GRACE tb_agent node2 "$CFG"
	tr '\0' '\n' <"/proc/$(tb_agent_pid node2)/environ" |
		grep -qx "TERMINATION_GRACE_PERIOD_SECONDS=$GRACE" ||
		tb_fail "node2's agent did not get TERMINATION_GRACE_PERIOD_SECONDS=$GRACE"
	[ "${1:-}" != restart ] || tb_wait_port server 15008
	tb_poll 5 is_ready || tb_fail "node2 not ready (HTTP $(ready_code))"
	tb_log "ok: node2's agent ready (grace period $GRACE s)"
}
# refused WHAT POD: a new connection from POD to server fails quickly (no hang)
refused() {
	local out rc start took
	start=$(tb__now_ms)
	out=$(tb_exec "$2" timeout 10 curl -sS --max-time 5 "http://$S:8080/during-drain" 2>&1)
	rc=$?
	took=$(($(tb__now_ms) - start))
	[ $rc -ne 0 ] || tb_fail "$1: a new connection from $2 to a node2 pod was served during the drain: $out"
	[ $rc -ne 28 ] && [ $rc -ne 124 ] && [ "$took" -lt 3000 ] ||
		tb_fail "$1: the new connection from $2 hung (rc $rc after ${took} ms)"
	tb_log "ok: $1: new connection from $2 refused in ${took} ms (curl rc $rc: $out)"
}

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 plain1 10.201.1.9
tb_pod node2 server 10.201.2.2
cp "$BASE" "$CFG"
tb_agent node1 "$CFG"
start_node2
tb_enroll node1 client default client
tb_enroll node2 server default server
tb_wait_port client 15001
tb_wait_port server 15008
tb_bg server "$PY" "$TB_PEERS/echo_server.py" $PORT >"$TBDIR/echo.log" 2>&1
tb_wait_port server $PORT
tb_whoami server 8080
out=$(tb_curl client http://$S:8080/before) && [[ "$out" == *server=server* ]] ||
	tb_fail "mesh request before the drain: $out"
out=$(tb_curl plain1 http://$S:8080/before) && [[ "$out" == *server=server* ]] ||
	tb_fail "plaintext request before the drain: $out"

# A: the connection ends on its own within the grace period
tb_bg client "$PY" "$TB_PEERS/longconn.py" $S $PORT 15 >"$TBDIR/a.out" 2>&1
A=$TB_BG_PID
tb_poll 5 at_least_echoes "$TBDIR/a.out" 3 || tb_fail "long connection A: $(cat "$TBDIR/a.out")"
pid=$(tb_agent_pid node2)
t0=$(tb__now_ms)
kill -TERM "$pid"
tb_poll 2 not_ready || tb_fail "A: node2 still ready 2 s after SIGTERM"
took=$(($(tb__now_ms) - t0))
kill -0 "$pid" 2>/dev/null || tb_fail "A: the agent exited at once instead of draining"
tb_log "ok: A: not ready ${took} ms after SIGTERM (HTTP $(ready_code)), the agent still runs"
refused "A" client
refused "A" plain1
tb_wait_pid "$A" 10 || tb_fail "A: long connection still running"
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "A: the open connection broke during the drain: $(tail -3 "$TBDIR/a.out")"
n=$(echoes_after "$TBDIR/a.out" "$t0")
[ "$(echoes "$TBDIR/a.out")" -eq 15 ] && [ "$n" -ge 8 ] ||
	tb_fail "A: $(echoes "$TBDIR/a.out") echoes, $n after SIGTERM: $(tail -2 "$TBDIR/a.out")"
tb_log "ok: A: the open connection worked through the drain ($n echoes after SIGTERM) and ended cleanly"
tb_wait_pid "$pid" $((GRACE + 2)) || tb_fail "A: the agent still runs $((GRACE + 2)) s after SIGTERM"
took=$(($(tb__now_ms) - t0))
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "A: the agent exited $TB_WAIT_RC, want 0"
[ "$took" -le $((GRACE * 1000 + 1000)) ] || tb_fail "A: the agent took ${took} ms to exit (grace ${GRACE} s)"
tb_log "ok: A: the agent exited 0, ${took} ms after SIGTERM"

# B: a connection still open at the deadline is closed, then the agent exits
start_node2 restart
ok_again() { out=$(tb_curl client http://$S:8080/after-restart 2>&1) && [[ "$out" == *server=server* ]]; }
tb_poll 5 ok_again || tb_fail "B: mesh request after the restart: $out"
tb_bg client "$PY" "$TB_PEERS/longconn.py" $S $PORT 0 >"$TBDIR/b.out" 2>&1
B=$TB_BG_PID
tb_poll 5 at_least_echoes "$TBDIR/b.out" 3 || tb_fail "long connection B: $(cat "$TBDIR/b.out")"
pid=$(tb_agent_pid node2)
t0=$(tb__now_ms)
kill -TERM "$pid"
tb_poll 2 not_ready || tb_fail "B: node2 still ready 2 s after SIGTERM"
tb_poll $((GRACE + 3)) grep -q '^closed ' "$TBDIR/b.out" ||
	tb_fail "B: the open connection was not closed by $((GRACE + 3)) s after SIGTERM: $(tail -1 "$TBDIR/b.out")"
line=$(grep '^closed ' "$TBDIR/b.out")
closed=$(($(unix_ms "$line") - t0))
tb_log "B: client saw '$line' ${closed} ms after SIGTERM"
[ "$closed" -ge $((GRACE * 1000 - 1000)) ] && [ "$closed" -le $((GRACE * 1000 + 1500)) ] ||
	tb_fail "B: closed ${closed} ms after SIGTERM, want about ${GRACE} s (the grace period)"
n=$(echoes_after "$TBDIR/b.out" "$t0")
[ "$n" -ge $((GRACE * 5 - 8)) ] || tb_fail "B: only $n echoes between SIGTERM and the deadline"
tb_log "ok: B: the connection worked until the deadline ($n echoes) and was then closed"
tb_wait_pid "$pid" 3 || tb_fail "B: the agent still runs after closing the connections"
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "B: the agent exited $TB_WAIT_RC, want 0"
tb_log "ok: B: the agent exited 0, $(($(tb__now_ms) - t0)) ms after SIGTERM"
tb_wait_pid "$B" 5 || tb_fail "B: the client did not exit"
tb_pass "graceful drain"
