#!/usr/bin/env bash
# Competing streams spread over connections: with one worker per agent, a stream opened while
# the pooled HBONE connection to a peer is busy moving bytes (a bulk iperf3 upload on it) gets
# another connection to the same peer, up to ZTUNNEL_POOL_MAX_CONNS_PER_PEER (2 here); at the
# bound streams share again (the least-loaded one); both bulks and a request/response client
# complete; the extra connections close after POOL_UNUSED_RELEASE_TIMEOUT with the rest.
set -u
source "$(dirname "$0")/lib.sh"
export ZTUNNEL_WORKER_THREADS=1 ZTUNNEL_POOL_MAX_CONNS_PER_PEER=2
export POOL_UNUSED_RELEASE_TIMEOUT=3s
tb_init
tb_mesh
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 7100 >"$TBDIR/echo.log" 2>&1
tb_bg server-remote iperf3 -s -p 5201 >"$TBDIR/iperf-server1.log" 2>&1
tb_bg server-remote iperf3 -s -p 5202 >"$TBDIR/iperf-server2.log" 2>&1
for p in 7100 5201 5202; do tb_wait_port server-remote $p; done

hbone_conns() {	# established client->server-remote:15008 connections from the client pod
	tb_exec client ss -Htn state established "dst 10.201.2.2:15008" | wc -l
}
at_least() { [ "$(hbone_conns)" -ge "$1" ]; }
at_most() { [ "$(hbone_conns)" -le "$1" ]; }

out=$(tb_exec client timeout 30 "$PY" "$TB_PEERS/rr_client.py" 10.201.2.2:7100 \
	--exchanges 20 --fresh 5) || tb_fail "rr alone: $out"
n=$(hbone_conns)
[ "$n" = 1 ] || tb_fail "request/response streams alone: expected 1 HBONE connection, found $n"
tb_log "ok: streams that are not moving bytes share one connection ($out)"

tb_bg client iperf3 -c 10.201.2.2 -p 5201 -t 15 -i 1 --forceflush \
	>"$TBDIR/iperf1.log" 2>&1
bulk1=$TB_BG_PID
tb_poll 20 grep -q 'sec.*Bytes' "$TBDIR/iperf1.log" || tb_fail "iperf3 #1 moved nothing in 20 s"
tb_bg client iperf3 -c 10.201.2.2 -p 5202 -t 8 -i 1 --forceflush \
	>"$TBDIR/iperf2.log" 2>&1
bulk2=$TB_BG_PID
tb_poll 20 grep -q 'sec.*Bytes' "$TBDIR/iperf2.log" || tb_fail "iperf3 #2 moved nothing in 20 s"
tb_poll 10 at_least 2 ||
	tb_fail "a second bulk beside a busy connection: $(hbone_conns) HBONE connection(s), want 2"
tb_log "ok: the second bulk opened a second connection to the peer: $(hbone_conns)"
out=$(tb_exec client timeout 60 "$PY" "$TB_PEERS/rr_client.py" 10.201.2.2:7100 \
	--exchanges 50 --fresh 10 --timeout 30) || tb_fail "rr beside two bulks: $out"
n=$(hbone_conns)
[ "$n" = 2 ] || tb_fail "at ZTUNNEL_POOL_MAX_CONNS_PER_PEER=2 found $n HBONE connections"
tb_log "ok: at the bound streams share the 2 connections ($out)"
for b in "$bulk1" "$bulk2"; do
	tb_wait_pid "$b" 40 || tb_fail "iperf3 did not end"
	[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "iperf3 failed"
done
tb_log "ok: both bulks completed"
tb_poll 15 at_most 0 ||
	tb_fail "idle: $(hbone_conns) HBONE connections left after the release timeout"
tb_log "ok: idle connections released after POOL_UNUSED_RELEASE_TIMEOUT"
tb_pass "competing streams spread over connections to one peer, bounded"
