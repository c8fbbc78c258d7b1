#!/usr/bin/env bash
# Fair scheduling on one HBONE connection: with every stream to the peer forced onto one pooled
# connection (one worker, ZTUNNEL_POOL_MAX_CONNS_PER_PEER=1), a bulk iperf3 upload and a
# request/response client share it; every rr exchange (200 on one stream, 20 on fresh streams)
# completes with the right echo while the bulk still runs, and the bulk ends with its bytes.
# Asserts completion and sanity, not timing.
set -u
source "$(dirname "$0")/lib.sh"
export ZTUNNEL_WORKER_THREADS=1 ZTUNNEL_POOL_MAX_CONNS_PER_PEER=1
tb_init
tb_mesh
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 7100 >"$TBDIR/echo.log" 2>&1
tb_bg server-remote iperf3 -s -p 5201 >"$TBDIR/iperf-server.log" 2>&1
tb_wait_port server-remote 7100
tb_wait_port server-remote 5201

hbone_conns() {	# established client->server-remote:15008 connections from the client pod
	tb_exec client ss -Htn state established "dst 10.201.2.2:15008" | wc -l
}

tb_bg client iperf3 -c 10.201.2.2 -p 5201 -t 20 -i 1 --forceflush \
	>"$TBDIR/iperf.log" 2>&1
bulk=$TB_BG_PID
# the bulk is moving bytes once iperf3 reports its first interval
tb_poll 20 grep -q 'sec.*Bytes' "$TBDIR/iperf.log" || tb_fail "iperf3 moved nothing in 20 s"
tb_log "ok: bulk upload running"
out=$(tb_exec client timeout 60 "$PY" "$TB_PEERS/rr_client.py" 10.201.2.2:7100 \
	--exchanges 200 --fresh 20 --timeout 30) || tb_fail "rr beside the bulk: $out"
kill -0 "$bulk" 2>/dev/null || tb_fail "the bulk ended before the rr exchanges did: no overlap"
n=$(hbone_conns)
[ "$n" = 1 ] || tb_fail "expected the bulk and rr streams on 1 HBONE connection, found $n"
tb_log "ok: rr beside the bulk on one HBONE connection: $out"
tb_wait_pid "$bulk" 40 || tb_fail "iperf3 did not end"
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "iperf3 failed: $(tail -5 "$TBDIR/iperf.log")"
recv=$(grep 'receiver$' "$TBDIR/iperf.log") ||
	tb_fail "no iperf3 result: $(tail -5 "$TBDIR/iperf.log")"
grep -Eq ' [0-9.]+ [MG]Bytes ' <<<"$recv" || tb_fail "the bulk moved too little: $recv"
tb_log "ok: the bulk completed: $recv"
tb_pass "a bulk stream does not starve request/response streams on the same connection"
