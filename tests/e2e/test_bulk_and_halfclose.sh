#!/usr/bin/env bash
# Bulk and half-close through the mesh (client on node1 -> server-remote on node2):
# 1 GiB of random bytes arrives intact (sha256 computed by the receiver); a client that shuts
# down its write side still gets the server's reply; 200 parallel connections all complete.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
tb_mesh
tb_bg server-remote "$PY" "$TB_PEERS/halfclose_server.py" --port 9100 \
	>"$TBDIR/halfclose.log" 2>&1
tb_wait_port server-remote 9100

# half-close with a small payload: the reply only comes after the server read EOF
out=$(tb_exec client timeout 20 "$PY" "$TB_PEERS/tcp_client.py" 10.201.2.2:9100 \
	--send-bytes 100000 --timeout 10) || tb_fail "half-close: $out"
tb_log "ok: half-close, 100000 bytes then SHUT_WR, reply: $(echo "$out" | tail -1)"

# the same with socat's shut-down (a different client implementation)
head -c 12345 /dev/urandom >"$TBDIR/small"
want="got 12345 bytes sha256=$(sha256sum "$TBDIR/small" | cut -d' ' -f1)"
out=$(tb_exec client timeout 20 socat -t10 -T10 - TCP:10.201.2.2:9100,shut-down <"$TBDIR/small")
[ "$out" = "$want" ] || tb_fail "socat half-close: got '$out', want '$want'"
tb_log "ok: socat shut-down half-close: $out"

# 1 GiB
head -c 1G /dev/urandom >"$TBDIR/big"
start=$SECONDS
out=$(tb_exec client timeout 90 "$PY" "$TB_PEERS/tcp_client.py" 10.201.2.2:9100 \
	--send-file "$TBDIR/big" --timeout 30 2>&1) || tb_fail "1 GiB transfer: $out"
tb_log "ok: 1 GiB in $((SECONDS - start)) s, receiver says: $(echo "$out" | head -1)"
rm -f "$TBDIR/big"
# (which counter holds the client's bytes is the access log's convention; one of them must)
tb_wait_log "$TBDIR/agent-node1.log" \
	'msg="connection complete".*dst.addr=10\.201\.2\.2:9100 .*direction=outbound .*bytes_(sent|recv)=1073741824 ' 10 ||
	tb_fail "node1 did not log an outbound connection to :9100 with 1073741824 bytes"
tb_log "ok: node1 logged the 1 GiB connection: $(grep -o 'bytes_sent=[0-9]* bytes_recv=1073741824\|bytes_sent=1073741824 bytes_recv=[0-9]*' "$TBDIR/agent-node1.log")"

# 200 parallel connections, each with its own 4000 random bytes and half-close
out=$(tb_exec client timeout 60 "$PY" "$TB_PEERS/tcp_client.py" 10.201.2.2:9100 \
	--send-bytes 4000 --parallel 200 --timeout 40 2>&1) || tb_fail "parallel: $out"
tb_log "$out"
n=$(tb_count "$TBDIR/agent-node2.log" 'msg="connection complete".*dst.addr=10\.201\.2\.2:9100 .*direction=inbound')
[ "$n" -ge 203 ] || tb_fail "node2 logged $n inbound connections to :9100, want >= 203"
tb_log "ok: node2 logged $n inbound connections to :9100"
tb_pass "bulk and half-close"
