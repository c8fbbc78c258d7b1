#!/usr/bin/env bash
# Interop with independent HBONE peers (python h2 + ssl):
# (a) hbone_client.py with a mesh-CA cert for sa/tester -> server-remote's 15008 (enrolled on
#     node2) reaches the app there, and the agent presents server-remote's identity;
# (b) an independent hbone_server.py in pod ext (HBONE in the YAML, not enrolled) serves the
#     enrolled client's request made through node1's agent.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
tb_mesh
SA=spiffe://cluster.local/ns/default/sa
tb_cert tester "$SA/tester"
tb_cert ext "$SA/ext"
tb_whoami server-remote 8080

# (a) from the non-mesh pod `plain` (an enrolled pod's own traffic would be captured)
out=$(tb_exec plain timeout 30 "$PY" "$TB_PEERS/hbone_client.py" --connect 10.201.2.2:15008 \
	--authority 10.201.2.2:8080 --cert "$TBDIR/tester.pem" --key "$TBDIR/tester.key" \
	--ca "$TBDIR/ca.pem" --expect-identity "$SA/server" --timeout 20 \
	--data $'GET /interop-a HTTP/1.0\r\n\r\n' 2>"$TBDIR/a.err")
rc=$?
cat "$TBDIR/a.err" >&2
[ $rc -eq 0 ] || tb_fail "(a) hbone_client.py -> server-remote:15008 exit $rc"
[[ "$out" == *"HTTP/1.0 200"*"server=server-remote"*"path=/interop-a"* ]] ||
	tb_fail "(a) unexpected reply: $out"
tb_log "ok: (a) independent HBONE client reached the app behind node2's agent: $(echo "$out" | grep peer=)"
[[ "$out" == *"peer=10.201.2.9:"* ]] || tb_fail "(a) app saw $(echo "$out" | grep peer=), want the client 10.201.2.9"
tb_log "ok: (a) the app saw the HBONE client's address 10.201.2.9"
tb_wait_log "$TBDIR/agent-node2.log" \
	"msg=\"connection complete\".*src.addr=10\\.201\\.2\\.9:.*src.identity=$SA/tester .*direction=inbound" 10 ||
	tb_fail "(a) node2 did not log the inbound connection with src.identity=$SA/tester"
tb_log "ok: (a) node2 logged the inbound connection from $SA/tester"

# (b) independent HBONE server in the non-enrolled pod ext
tb_whoami ext 8080
tb_bg ext "$PY" "$TB_PEERS/hbone_server.py" --cert "$TBDIR/ext.pem" --key "$TBDIR/ext.key" \
	--ca "$TBDIR/ca.pem" >"$TBDIR/ext-hbone.log" 2>&1
tb_wait_port ext 15008
out=$(tb_curl client http://10.201.2.5:8080/interop-b) || tb_fail "(b) curl client -> ext failed"
[[ "$out" == *"server=ext"*"path=/interop-b"* ]] || tb_fail "(b) unexpected reply: $out"
cat "$TBDIR/ext-hbone.log" >&2
grep -q "identity=$SA/client authority=10.201.2.5:8080 status=200" "$TBDIR/ext-hbone.log" ||
	tb_fail "(b) hbone_server.py did not see a CONNECT from $SA/client"
tb_log "ok: (b) node1's agent tunnelled client -> ext through the independent HBONE server"
tb_pass "interop with independent HBONE peers"
