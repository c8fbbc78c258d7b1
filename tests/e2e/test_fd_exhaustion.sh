#!/usr/bin/env bash
# node2's agent runs out of file descriptors (ulimit -n 128) under 300 idle connections to a
# pod's 15008: the accept path pauses and logs once per interval (not per attempt), a long-lived
# mesh connection keeps echoing meanwhile, and new mesh connections work once the attackers go.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node2 server-remote 10.201.2.2
tb_pod node2 plain 10.201.2.9
cp "$TB_TESTDATA/mesh.yaml" "$TBDIR/mesh.yaml"
tb_agent node1 mesh.yaml
ZTUNNEL_MAX_PENDING_HANDSHAKES_PER_SOURCE=0 tb_agent node2 mesh.yaml	# fds run out first
P2=$(tb_agent_pid node2)
prlimit --pid "$P2" --nofile=128:128	# soft and hard: the agent cannot raise it
tb_enroll node1 client default client
tb_enroll node2 server-remote default server-remote
tb_wait_port client 15001
tb_wait_port server-remote 15008
LOG2=$TBDIR/agent-node2.log
tb_check "node2's agent runs with 128 fds" grep -q '^Max open files *128 ' "/proc/$P2/limits"

tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 9000 >/dev/null 2>&1
tb_wait_port server-remote 9000
tb_whoami server-remote 8080
tb_bg client "$PY" "$TB_PEERS/longconn.py" 10.201.2.2 9000 0 >"$TBDIR/long.log" 2>&1
tb_wait_log "$TBDIR/long.log" '^echo 3 ' 10 || tb_fail "long-lived connection did not start"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }	# ticks

tb_bg plain "$PY" "$TB_PEERS/hostile.py" idle --connect 10.201.2.2:15008 --count 300 \
	--hold "$TBDIR/release" --max 30 >"$TBDIR/idle.log" 2>&1
tb_wait_log "$TBDIR/idle.log" 'opened=' 20 || tb_fail "attackers did not connect"
tb_wait_log "$LOG2" 'accept paused: out of file descriptors' 10 || tb_fail "the agent never ran out of fds"
e0=$(grep -c '^echo' "$TBDIR/long.log") c0=$(cpu "$P2") t0=$(date +%s%N)
more_echoes() { [ "$(grep -c '^echo' "$TBDIR/long.log")" -ge $((e0 + 8)) ]; }
tb_poll 10 more_echoes || tb_fail "the long-lived connection stalled while fds were exhausted"
c1=$(cpu "$P2") t1=$(date +%s%N)
hz=$(getconf CLK_TCK)
tb_log "while exhausted: $(($(grep -c '^echo' "$TBDIR/long.log") - e0)) echoes; agent CPU $(( (c1 - c0) * 100 * 1000000000 / hz / (t1 - t0) ))%"
lines=$(tb_count "$LOG2" 'accept (failed|paused)')
tb_log "accept log lines: $lines"
[ "$lines" -lt 100 ] || tb_fail "$lines accept-failure lines (want < 100)"

touch "$TBDIR/release"
tb_wait_log "$TBDIR/idle.log" 'alive=' 20 || tb_fail "attackers did not leave"
ok_request() { [[ "$(tb_curl client http://10.201.2.2:8080/after 2>/dev/null)" == *server=server-remote* ]]; }
tb_poll 10 ok_request || tb_fail "no new mesh connection after the attackers left"
tb_log "ok: new mesh connections work again once fds are free"
grep -Eq '^(closed|timeout|mismatch)' "$TBDIR/long.log" && tb_fail "long-lived connection broke: $(tail -2 "$TBDIR/long.log")"
tb_pass "fd exhaustion: paused accept, quiet log, open connections kept"
