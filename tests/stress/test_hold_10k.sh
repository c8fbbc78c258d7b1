#!/usr/bin/env bash
# Stress (make stress; not part of make test, not timed): both agents built with ASan/UBSan/LSan
# (build/ztunnel-asan) carry N (10,000) tunnelled connections client -> server-remote, held open
# together, then all closed. Afterwards each agent's open file descriptors come back to their
# baseline, and at SIGTERM neither agent has a sanitizer report (memory errors or leaks).
set -u
. "$(dirname "$0")/../e2e/lib.sh"
export ZT=${ZT:-$TB_ROOT/build/ztunnel-asan}
[ -x "$ZT" ] || tb_skip "$ZT missing (make asan)"
tb_init
ulimit -n "$(ulimit -Hn)"
N=${N:-10000}
# pooled HBONE connections go 3 s after their last stream, so the fds can come all the way back
export ZTUNNEL_MAX_PENDING_HANDSHAKES=0 ZTUNNEL_MAX_PENDING_HANDSHAKES_PER_SOURCE=0 \
	POOL_UNUSED_RELEASE_TIMEOUT=3s
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
tb_mesh
P1=$(tb_agent_pid node1) P2=$(tb_agent_pid node2)
nfd() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
back_to() { [ "$(nfd "$1")" -le "$2" ]; }
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 9000 >/dev/null 2>&1
tb_wait_port server-remote 9000
fd1=$(nfd "$P1") fd2=$(nfd "$P2")
tb_log "baseline fds: node1 $fd1, node2 $fd2"
tb_bg client "$PY" "$TB_PEERS/hostile.py" hold --connect 10.201.2.2:9000 --count "$N" \
	--hold "$TBDIR/release" >"$TBDIR/hold.log" 2>&1
holder=$TB_BG_PID
tb_wait_log "$TBDIR/hold.log" 'established=' 600 || tb_fail "the $N connections did not open in 600 s"
line=$(head -1 "$TBDIR/hold.log")
[[ "$line" == "established=$N failed=0" ]] || tb_fail "held: $line"
tb_log "held $N echoed connections: node1 $(nfd "$P1") fds, node2 $(nfd "$P2") fds"
touch "$TBDIR/release"
tb_wait_pid "$holder" 120 || tb_fail "the holder did not exit"
tb_poll 120 back_to "$P1" "$fd1" || tb_fail "node1 kept $(nfd "$P1") fds, baseline $fd1"
tb_poll 120 back_to "$P2" "$fd2" || tb_fail "node2 kept $(nfd "$P2") fds, baseline $fd2"
tb_log "ok: after close node1 has $(nfd "$P1") fds (baseline $fd1), node2 $(nfd "$P2") ($fd2)"
for node in node1 node2; do
	tb_agent_stop "$node" TERM
	log=$TBDIR/agent-$node.log
	if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
		grep -E -A40 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log" | head -80 >&2
		tb_fail "sanitizer report from $node's agent"
	fi
done
tb_log "ok: no sanitizer report from either agent at exit"
tb_pass "hold $N"
