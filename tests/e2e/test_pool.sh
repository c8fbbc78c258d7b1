#!/usr/bin/env bash
# Pooled HBONE connections: streams to different app ports of one destination share one TLS
# connection per worker thread (each worker has its own pool; the agents run 2) and each reaches
# its own port; beyond 100 concurrent streams on a worker another connection opens
# (POOL_MAX_STREAMS_PER_CONNECTION); all replies come from the right app. The
# ztunnel_pooled_connections gauge on 15020 equals the connections the client pools hold: idle
# ones, none once POOL_UNUSED_RELEASE_TIMEOUT (10 s here) released them, then at least 2 with 101
# long-lived streams open; node2, which only serves, pools none.
set -u
source "$(dirname "$0")/lib.sh"
IDLE_RELEASE_S=10
export POOL_UNUSED_RELEASE_TIMEOUT=${IDLE_RELEASE_S}s
# the connection counts below are taken after the streams end: no early close of spares
export ZTUNNEL_POOL_SPARE_RELEASE_TIMEOUT=${IDLE_RELEASE_S}s
tb_init
tb_mesh
tb_whoami server-remote 7000
tb_bg server-remote "$PY" "$TB_PEERS/whoami_server.py" --port 7001 --name port7001 \
	>>"$TBDIR/whoami-7001.log" 2>&1
tb_wait_port server-remote 7001

hbone_conns() {	# established client->server-remote:15008 connections from the client pod
	tb_exec client ss -Htn state established "dst 10.201.2.2:15008" | wc -l
}

# 1. alternate ports over the pool, sequentially and in parallel
for i in 1 2 3 4 5 6; do
	port=$((7000 + i % 2))
	out=$(tb_curl client "http://10.201.2.2:$port/") || tb_fail "request $i to :$port failed"
	want=server-remote; [ $port = 7001 ] && want=port7001
	grep -q "server=$want" <<<"$out" || tb_fail "request $i to :$port answered by: $out"
done
tb_log "ok: 6 sequential requests alternating ports 7000/7001 each reached its own app"
n=$(hbone_conns)
[ "$n" -ge 1 ] && [ "$n" -le 2 ] ||
	tb_fail "expected 1 pooled HBONE connection per worker (2 workers), found $n"
tb_log "ok: $n pooled HBONE connection(s) carried them (one pool per worker)"

# 2. 250 concurrent long-lived streams: the pool must open a second connection
cat >"$TBDIR/hold.py" <<'PY'
import socket, sys, time
socks = []
for i in range(250):
    s = socket.create_connection(("10.201.2.2", 7000 + i % 2), timeout=10)
    socks.append((s, 7000 + i % 2))
print("open", flush=True)
# the whoami app answers after its short wait and closes: check each answer names its port
bad = 0
for s, port in socks:
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    want = b"server=port7001" if port == 7001 else b"server=server-remote"
    if want not in data:
        bad += 1
print("bad=%d" % bad, flush=True)
sys.exit(1 if bad else 0)
PY
tb_bg client "$PY" "$TBDIR/hold.py" >"$TBDIR/hold.log" 2>&1
hold=$TB_BG_PID
tb_wait_log "$TBDIR/hold.log" '^open' 20 || tb_fail "250 connections did not open: $(cat "$TBDIR/hold.log")"
tb_wait_pid "$hold" 30 || tb_fail "the 250 connections did not finish"
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "wrong or missing answers: $(cat "$TBDIR/hold.log")"
tb_log "ok: 250 concurrent streams alternating ports all answered by the right app"
INBOUND='msg="connection complete".*dst.addr=10.201.2.2:700[01].*direction=inbound'
# node2 logs each stream as it ends: a slow (sanitizer) agent may still be at it
tb_poll 10 tb_more_lines "$TBDIR/agent-node2.log" "$INBOUND" 255 ||
	tb_fail "node2 logged $(tb_count "$TBDIR/agent-node2.log" "$INBOUND") inbound streams, expected >= 256"
conns=$(hbone_conns)
# 250 streams at most 100 per connection need at least 3 connections, whatever the split
# between the two workers; more than 6 would mean streams are not shared
[ "$conns" -ge 3 ] && [ "$conns" -le 6 ] ||
	tb_fail "expected 3..6 pooled connections for 250 concurrent streams, found $conns"
tb_log "ok: $conns HBONE connections from client to server-remote (limit 100 streams each)"

# 3. the ztunnel_pooled_connections gauge: what the client pool holds, summed over the workers
pooled_gauge() {	# NODE: the gauge's value on NODE's 15020
	tb_exec_node "$1" timeout 5 curl -sS --max-time 3 http://127.0.0.1:15020/metrics |
		awk '$1 == "ztunnel_pooled_connections" { print $2; found = 1 } END { if (!found) print "none" }'
}
gauge_matches() {	# the gauge equals the client's established connections to server-remote
	G=$(pooled_gauge node1); C=$(hbone_conns)
	[ "$G" = "$C" ]
}
released() { gauge_matches && [ "$G" = 0 ]; }
tb_poll 5 gauge_matches ||
	tb_fail "idle pool: ztunnel_pooled_connections = $G, the client holds $C HBONE connections"
tb_log "ok: ztunnel_pooled_connections = $G = the client's idle HBONE connections"
tb_poll $((IDLE_RELEASE_S + 10)) released ||
	tb_fail "after the idle release: ztunnel_pooled_connections = $G, HBONE connections $C, want 0"
tb_log "ok: idle connections released (${IDLE_RELEASE_S} s): ztunnel_pooled_connections = 0"

# 101 long-lived echo streams from the empty pool: more than one connection's 100 streams
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 7100 >"$TBDIR/echo.log" 2>&1
tb_wait_port server-remote 7100
cat >"$TBDIR/hold_echo.py" <<'PY'
import os, socket, sys, time
release = sys.argv[1]
socks = []
for i in range(101):
    s = socket.create_connection(("10.201.2.2", 7100), timeout=10)
    msg = b"stream %d\n" % i
    s.sendall(msg)
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("stream %d closed before its echo" % i)
        got += chunk
    if got != msg:
        sys.exit("stream %d: echo %r" % (i, got))
    socks.append(s)
print("open %d" % len(socks), flush=True)
deadline = time.time() + 120
while not os.path.exists(release) and time.time() < deadline:
    time.sleep(0.05)
for s in socks:
    s.close()
print("closed", flush=True)
PY
tb_bg client "$PY" "$TBDIR/hold_echo.py" "$TBDIR/release" >"$TBDIR/hold_echo.log" 2>&1
held=$TB_BG_PID
tb_wait_log "$TBDIR/hold_echo.log" '^open 101' 30 ||
	tb_fail "101 echo streams did not open: $(cat "$TBDIR/hold_echo.log")"
tb_poll 5 gauge_matches ||
	tb_fail "with 101 streams open: ztunnel_pooled_connections = $G, the client holds $C HBONE connections"
[ "$G" -ge 2 ] || tb_fail "with 101 streams open: ztunnel_pooled_connections = $G, want >= 2"
tb_log "ok: with 101 streams open ztunnel_pooled_connections = $G = the client's HBONE connections"
G2=$(pooled_gauge node2)
[ "$G2" = 0 ] || tb_fail "node2 pools no client connection, yet ztunnel_pooled_connections = $G2"
tb_log "ok: node2 (server side only) ztunnel_pooled_connections = 0"
touch "$TBDIR/release"
tb_wait_pid "$held" 10 || tb_fail "the echo client did not finish"
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "echo client: $(cat "$TBDIR/hold_echo.log")"
tb_poll 5 gauge_matches ||
	tb_fail "streams closed: ztunnel_pooled_connections = $G, the client holds $C HBONE connections"
tb_log "ok: streams closed, connections idle in the pool: ztunnel_pooled_connections = $G"
tb_pass "pool sharing, per-stream authority and the pooled connections gauge"
