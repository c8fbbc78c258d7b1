#!/usr/bin/env bash
# Pooled HBONE connections: streams to different app ports of one destination share one TLS
# connection per worker thread (each worker has its own pool; the agents run 2) and each reaches
# its own port; beyond 100 concurrent streams on a worker another connection opens
# (POOL_MAX_STREAMS_PER_CONNECTION); all replies come from the right app.
set -u
source "$(dirname "$0")/lib.sh"
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
opened=$(tb_count "$TBDIR/agent-node2.log" 'msg="connection complete".*dst.addr=10.201.2.2:700[01].*direction=inbound')
[ "$opened" -ge 256 ] || tb_fail "node2 logged $opened inbound streams, expected >= 256"
conns=$(hbone_conns)
# 250 streams at most 100 per connection need at least 3 connections, whatever the split
# between the two workers; more than 6 would mean streams are not shared
[ "$conns" -ge 3 ] && [ "$conns" -le 6 ] ||
	tb_fail "expected 3..6 pooled connections for 250 concurrent streams, found $conns"
tb_log "ok: $conns HBONE connections from client to server-remote (limit 100 streams each)"
tb_pass "pool sharing and per-stream authority"
