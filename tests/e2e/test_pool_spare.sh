#!/usr/bin/env bash
# After a storm the extra pooled connections go back: with one worker, 250 held streams need 3
# HBONE connections (100 streams each); once they close, the spares (idle while another
# connection of their key is ready) close after ZTUNNEL_POOL_SPARE_RELEASE_TIMEOUT (1 s here) on
# both nodes, and the last one stays for POOL_UNUSED_RELEASE_TIMEOUT (60 s) and carries the next
# stream without a new handshake.
set -u
source "$(dirname "$0")/lib.sh"
export ZTUNNEL_WORKER_THREADS=1 POOL_UNUSED_RELEASE_TIMEOUT=60s
export ZTUNNEL_POOL_SPARE_RELEASE_TIMEOUT=1s
tb_init
tb_mesh
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 7100 >"$TBDIR/echo.log" 2>&1
tb_wait_port server-remote 7100

client_conns() {	# established client -> server-remote:15008 (node1's pool)
	tb_exec client ss -Htn state established "dst 10.201.2.2:15008" | wc -l
}
server_conns() {	# the same connections as node2's inbound listener in server-remote has them
	tb_exec server-remote ss -Htn state established "sport = :15008" | wc -l
}
one_each() { [ "$(client_conns)" = 1 ] && [ "$(server_conns)" = 1 ]; }

cat >"$TBDIR/hold.py" <<'PY'
import os, socket, sys, time
release, socks = sys.argv[1], []
for i in range(250):
    s = socket.create_connection(("10.201.2.2", 7100), timeout=10)
    s.sendall(b"stream %d\n" % i)
    if not s.recv(64).startswith(b"stream %d" % i):
        sys.exit("stream %d: wrong echo" % i)
    socks.append(s)
print("open %d" % len(socks), flush=True)
deadline = time.time() + 60
while not os.path.exists(release) and time.time() < deadline:
    time.sleep(0.05)
for s in socks:
    s.close()
print("closed", flush=True)
PY
tb_bg client "$PY" "$TBDIR/hold.py" "$TBDIR/release" >"$TBDIR/hold.log" 2>&1
held=$TB_BG_PID
tb_wait_log "$TBDIR/hold.log" '^open 250' 40 || tb_fail "250 streams did not open: $(cat "$TBDIR/hold.log")"
n=$(client_conns)
[ "$n" -ge 3 ] || tb_fail "250 held streams on one worker: $n HBONE connections, want >= 3"
tb_log "ok: 250 held streams use $n HBONE connections"
touch "$TBDIR/release"
tb_wait_pid "$held" 20 || tb_fail "the holding client did not finish"
tb_poll 10 one_each ||
	tb_fail "after the storm: client $(client_conns), server $(server_conns) connections, want 1 each"
tb_log "ok: the spares closed within seconds on both nodes; one connection stays"
# the last one is kept (60 s), not closed as a spare: still there after the spare timeout
sleep 3
one_each || tb_fail "the last connection of the key closed too: client $(client_conns)"
port_before=$(tb_exec client ss -Htn state established "dst 10.201.2.2:15008" | awk '{print $3}')
out=$(tb_exec client timeout 20 "$PY" "$TB_PEERS/rr_client.py" 10.201.2.2:7100 \
	--exchanges 5 --fresh 2) || tb_fail "a stream after the storm: $out"
port_after=$(tb_exec client ss -Htn state established "dst 10.201.2.2:15008" | awk '{print $3}')
[ "$port_before" = "$port_after" ] ||
	tb_fail "the next streams opened a new connection ($port_before -> $port_after)"
tb_log "ok: the kept connection ($port_after) carried the next streams"
tb_pass "spare pooled connections go back after a storm, the last one stays"
