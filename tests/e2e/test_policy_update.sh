#!/usr/bin/env bash
# Policy changes apply to open connections: two long-lived connections through the mesh (client
# and other, node1 -> server, node2) send a line every 200 ms to an echo server. A new policy
# allows only sa other: the agent closes client's open connection within 5 s (EOF or reset), a
# new connection from client is refused, other's connection keeps echoing and other can open new
# ones. A malformed config file is rejected and the old policy stays in force; removing the
# policy lets client in again.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
BASE=$TB_TESTDATA/policy-mesh.yaml
CFG=$TBDIR/cfg.yaml
L1=$TBDIR/agent-node1.log
L2=$TBDIR/agent-node2.log
LOADED='msg="configuration loaded"'
CC='msg="connection complete"'
PORT=7000

gen_cfg() { cat "$BASE"; printf '%s\n' "$1"; }	# POLICIES_YAML
apply_config() { tb_reload_config "$1" "$CFG" < <(gen_cfg "$2"); }	# WHAT YAML

echoes() { grep -c '^echo ' "$1"; }
# unix_ms LINE: the "<seconds>.<ms>" third field of a longconn.py line, in milliseconds
unix_ms() { local f; f=$(awk '{print $3}' <<<"$1"); f=${f/./}; echo $((10#$f)); }
at_least_echoes() { [ "$(echoes "$1")" -ge "$2" ]; }

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 other 10.201.1.4
tb_pod node2 server 10.201.2.2
gen_cfg "" >"$CFG"
tb_agent node1 "$CFG"
tb_agent node2 "$CFG"
tb_enroll node1 client default client
tb_enroll node1 other default other
tb_enroll node2 server default server
tb_wait_port client 15001
tb_wait_port other 15001
tb_wait_port server 15008
tb_bg server "$PY" "$TB_PEERS/echo_server.py" $PORT >"$TBDIR/echo.log" 2>&1
tb_wait_port server $PORT
S=10.201.2.2

tb_bg client "$PY" "$TB_PEERS/longconn.py" $S $PORT 0 >"$TBDIR/a.out" 2>&1
A=$TB_BG_PID
tb_bg other "$PY" "$TB_PEERS/longconn.py" $S $PORT 0 >"$TBDIR/b.out" 2>&1
B=$TB_BG_PID
tb_poll 10 at_least_echoes "$TBDIR/a.out" 3 || tb_fail "client's connection: $(cat "$TBDIR/a.out")"
tb_poll 10 at_least_echoes "$TBDIR/b.out" 3 || tb_fail "other's connection: $(cat "$TBDIR/b.out")"
tb_log "ok: two long connections echo through the mesh (client and other -> $S:$PORT)"

t0=$(tb__now_ms)
n_err=$(tb_count "$L2" "$CC.*src\\.addr=10\\.201\\.1\\.2:[0-9]+ .*error=\"")
apply_config "allow only sa other" \
'policies:
- {name: allow-other, namespace: default, scope: Namespace, action: Allow, rules: [[[{principals: ["cluster.local/ns/default/sa/other"]}]]]}'
tb_poll 6 grep -q '^closed ' "$TBDIR/a.out" ||
	tb_fail "client's denied connection still open 6 s after the change: $(tail -2 "$TBDIR/a.out")"
line=$(grep '^closed ' "$TBDIR/a.out")
closed_ms=$(unix_ms "$line")
took=$((closed_ms - t0))
tb_log "client's connection: '$line', ${took} ms after the file change"
[ "$took" -ge 0 ] && [ "$took" -lt 5000 ] ||
	tb_fail "the denied connection was closed ${took} ms after the change, want 0..5000 ms"
tb_wait_pid "$A" 5 || tb_fail "client's long connection process still running"
[ "$TB_WAIT_RC" -eq 3 ] || tb_fail "client's long connection exit $TB_WAIT_RC, want 3 (closed)"
tb_log "ok: the now-denied open connection was closed by the agent ${took} ms after the change"
tb_poll 5 tb_more_lines "$L2" "$CC.*src\\.addr=10\\.201\\.1\\.2:[0-9]+ .*error=\"" "$n_err" ||
	tb_fail "node2 did not log the closed connection from client with an error"
tb_log "ok: node2: $(grep -E "$CC.*src\\.addr=10\\.201\\.1\\.2:" "$L2" | tail -1 | grep -Eo 'error="[^"]*"')"

b_then=$(echoes "$TBDIR/b.out")
tb_poll 5 at_least_echoes "$TBDIR/b.out" $((b_then + 5)) ||
	tb_fail "other's (still allowed) connection stopped echoing: $(tail -2 "$TBDIR/b.out")"
! grep -q '^closed\|^timeout' "$TBDIR/b.out" || tb_fail "other's connection ended: $(tail -1 "$TBDIR/b.out")"
tb_log "ok: other's allowed connection stays open ($(echoes "$TBDIR/b.out") echoes)"

new_conn() {	# POD COUNT -> exit status of a fresh connection
	tb_exec "$1" timeout 15 "$PY" "$TB_PEERS/longconn.py" $S $PORT "$2" >"$TBDIR/new-$1.out" 2>&1
}
# client_refused WHAT: a new connection from client is reset (exit 3, or 2 when the reset beats
# the connect) without any echo, and node2 logs it as denied
client_refused() {
	local pat n rc
	pat="$CC.*src\\.addr=10\\.201\\.1\\.2:[0-9]+ .*error=\"[^\"]*denied"
	n=$(tb_count "$L2" "$pat")
	new_conn client 2
	rc=$?
	[ $rc -eq 3 ] || [ $rc -eq 2 ] ||
		tb_fail "$1: new connection from client: exit $rc, want a reset: $(cat "$TBDIR/new-client.out")"
	! grep -q '^echo' "$TBDIR/new-client.out" || tb_fail "$1: new connection from client got an echo"
	tb_poll 5 tb_more_lines "$L2" "$pat" "$n" || tb_fail "$1: node2 did not log the new connection as denied"
	tb_log "ok: $1: a new connection from client is refused: $(tail -1 "$TBDIR/new-client.out")"
}
client_refused "after the change"
new_conn other 3 || tb_fail "new connection from other failed: $(cat "$TBDIR/new-other.out")"
tb_log "ok: a new connection from other works"

# A malformed file is rejected: no reload, the old policy still holds.
n2=$(tb_count "$L2" "$LOADED")
n_bad=$(tb_count "$L2" 'cfg\.yaml:[0-9]+:[0-9]+')
printf '%s\n' 'policies:' '- name: broken' '   namespace: default' '  action: Allow' \
	>"$CFG.tmp" && mv -f "$CFG.tmp" "$CFG"
tb_poll 5 tb_more_lines "$L2" 'cfg\.yaml:[0-9]+:[0-9]+' "$n_bad" ||
	tb_fail "node2 did not log the error in the malformed file (file:line:col)"
tb_log "ok: node2 rejected the malformed file: $(grep -E 'cfg\.yaml:[0-9]+:[0-9]+' "$L2" | tail -1)"
kill -0 "$(tb_agent_pid node2)" 2>/dev/null || tb_fail "node2's agent exited on a malformed reload"
[ "$(tb_count "$L2" "$LOADED")" -eq "$n2" ] || tb_fail "node2 logged $LOADED for a malformed file"
client_refused "after the malformed file"
b_then=$(echoes "$TBDIR/b.out")
tb_poll 5 at_least_echoes "$TBDIR/b.out" $((b_then + 3)) ||
	tb_fail "other's connection stopped after the malformed file: $(tail -2 "$TBDIR/b.out")"
tb_log "ok: after the malformed file the old policy still holds (client refused, other echoing)"

apply_config "no policies" ""
new_conn client 3 || tb_fail "after removing the policy, client: $(cat "$TBDIR/new-client.out")"
tb_log "ok: with the policy removed client connects again"
b_then=$(echoes "$TBDIR/b.out")
tb_poll 5 at_least_echoes "$TBDIR/b.out" $((b_then + 3)) || tb_fail "other's connection stopped"
kill -0 "$B" 2>/dev/null || tb_fail "other's long connection ended: $(tail -1 "$TBDIR/b.out")"
tb_log "ok: other's connection survived every change ($(echoes "$TBDIR/b.out") echoes)"
tb_pass "policy updates apply to open connections"
