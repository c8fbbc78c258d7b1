#!/usr/bin/env bash
# HTTP/2 keepalive on pooled HBONE connections (shortened for the test with
# ZTUNNEL_HTTP2_KEEPALIVE_INTERVAL=1s, _TIMEOUT=2s; upstream's 10 s / 20 s by default): the
# independent HBONE server in pod ext answers PINGs, so its pooled connection stays across
# several rounds; frozen with SIGSTOP it stops answering and node1 closes that connection
# (`keepalive: no answer to PING`), the pool gauge drops to 0; after SIGCONT a new request opens
# a fresh connection and goes through.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
export ZTUNNEL_HTTP2_KEEPALIVE_INTERVAL=1s ZTUNNEL_HTTP2_KEEPALIVE_TIMEOUT=2s
tb_mesh
L1=$TBDIR/agent-node1.log
SA=spiffe://cluster.local/ns/default/sa
tb_cert ext "$SA/ext"
tb_whoami ext 8080
tb_bg ext "$PY" "$TB_PEERS/hbone_server.py" --cert "$TBDIR/ext.pem" --key "$TBDIR/ext.key" \
	--ca "$TBDIR/ca.pem" >"$TBDIR/ext-hbone.log" 2>&1
EXT_PID=$TB_BG_PID
tb_wait_port ext 15008

pooled() {	# the node1 gauge
	tb_exec node1 timeout 5 curl -sS --max-time 3 http://127.0.0.1:15020/metrics |
		awk '/^ztunnel_pooled_connections /{print $2}'
}
pooled_is() { [ "$(pooled)" = "$1" ]; }
conns() { tb_count "$TBDIR/ext-hbone.log" 'connection from 10\.201\.1\.2:'; }
answered() { tb_count "$L1" 'msg="keepalive answered" peer=10\.201\.2\.5:15008'; }

out=$(tb_curl client http://10.201.2.5:8080/first) || tb_fail "curl client -> ext failed"
[[ "$out" == *"server=ext"* ]] || tb_fail "unexpected reply: $out"
[ "$(conns)" -eq 1 ] || tb_fail "want one HBONE connection to ext, got $(conns)"
tb_poll 5 pooled_is 1 || tb_fail "node1 pools $(pooled) connections, want 1"

# an answering peer keeps its connection: three PING rounds, still the same one
a=$(answered)
tb_poll 20 tb_more_lines "$L1" 'msg="keepalive answered" peer=10\.201\.2\.5:15008' $((a + 2)) ||
	tb_fail "node1 logged no keepalive answers from ext"
grep -q 'keepalive: no answer' "$L1" && tb_fail "a healthy connection was closed by keepalive"
pooled_is 1 || tb_fail "the healthy pooled connection is gone ($(pooled))"
tb_log "ok: PINGs answered ($(($(answered) - a)) rounds), the pooled connection stays"

# a frozen peer: no FIN, no RST, just no answers
kill -STOP "$EXT_PID" || tb_fail "SIGSTOP the HBONE server"
tb_wait_log "$L1" 'msg="outbound connection failed" dst\.hbone_addr=10\.201\.2\.5:15008 .*error="keepalive: no answer to PING within 2000 ms"' 30 ||
	tb_fail "node1 did not close the connection to the frozen peer within 30 s"
tb_poll 5 pooled_is 0 || tb_fail "the dead connection is still pooled ($(pooled))"
tb_log "ok: the frozen peer's connection was closed: $(grep -Eo 'error="keepalive[^"]*"' "$L1" | tail -1)"

kill -CONT "$EXT_PID"
n=$(conns)
out=$(tb_curl client http://10.201.2.5:8080/after) || tb_fail "curl after SIGCONT failed"
[[ "$out" == *"server=ext"*"path=/after"* ]] || tb_fail "unexpected reply after SIGCONT: $out"
[ "$(conns)" -gt "$n" ] || tb_fail "the request after SIGCONT did not open a new connection"
tb_log "ok: a new stream opened a fresh connection"
tb_pass "HTTP/2 keepalive detects a frozen peer and the pool replaces its connection"
