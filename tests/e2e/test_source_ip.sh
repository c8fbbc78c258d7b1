#!/usr/bin/env bash
# Source IP: apps behind the mesh see the client pod's own IP (10.201.1.2) as the peer address,
# across nodes and on the same node, not the agent's or the server pod's address.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
tb_mesh
tb_whoami server-remote 9000
tb_whoami server-local 9000

for dst in 10.201.2.2 10.201.1.3; do
	# plain TCP (not HTTP): whoami answers "peer=<ip>:<port>" to a client that sends nothing
	out=$(tb_exec client timeout 10 socat -t5 -T5 - "TCP:$dst:9000" </dev/null) ||
		tb_fail "socat client -> $dst:9000 failed: '$out'"
	peer=$(printf '%s\n' "$out" | sed -n 's/^peer=//p')
	tb_log "whoami at $dst:9000 saw peer $peer"
	[[ "$peer" == 10.201.1.2:* ]] || tb_fail "server $dst saw peer '$peer', want 10.201.1.2:<port>"
	tb_log "ok: server at $dst sees the client pod IP 10.201.1.2"
done
# and the request really went through the mesh (else the check above proves nothing)
for nd in node2:10.201.2.2 node1:10.201.1.3; do
	tb_wait_log "$TBDIR/agent-${nd%%:*}.log" \
		"msg=\"connection complete\".*src.addr=10\\.201\\.1\\.2:.*dst.addr=${nd#*:}:9000 .*direction=inbound" 10 ||
		tb_fail "${nd%%:*} did not log the inbound connection to ${nd#*:}:9000"
	tb_log "ok: the connection to ${nd#*:} went through ${nd%%:*}'s agent (inbound)"
done
tb_pass "source IP preserved"
