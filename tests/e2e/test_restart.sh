#!/usr/bin/env bash
# Restart and removal: an agent stopped with SIGTERM and started again with the same state dir
# serves its enrolled pods again without a new CNI ADD (both nodes); after CNI DEL the pod's
# capture (nftables tables, or with ZTUNNEL_REDIRECT=ebpf its programs) and listeners are gone
# and its traffic is no longer captured.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
tb_mesh
tb_whoami server-remote 8080
tb_whoami plain 8080
L1=$TBDIR/agent-node1.log
CC='msg="connection complete"'

request() {	# WHAT URL WANT_SERVER
	local out
	out=$(tb_curl client "$2") || tb_fail "$1: request to $2 failed"
	[[ "$out" == *"server=$3"* ]] || tb_fail "$1: reply '$out' not from $3"
	tb_log "ok: $1: $2 answered by $3"
}
# new_lines FILE PATTERN BEFORE: true when FILE has more lines matching PATTERN than BEFORE
new_lines() { [ "$(tb_count "$1" "$2")" -gt "$3" ]; }
# capture POD: what of the backend's capture is in POD ("" when nothing)
capture() {
	if [ "${ZTUNNEL_REDIRECT:-nftables}" = ebpf ]; then
		tb_exec "$1" "$TB_ROOT/build/tools/bpf_links" | grep ' zt_' | tr '\n' ' '
	else
		tb_exec "$1" nft list tables | tr '\n' ' '
	fi
}

request "before restart" http://10.201.2.2:8080/before server-remote
n=$(tb_count "$L1" "$CC.*direction=outbound")
request "before DEL, to the non-mesh pod" http://10.201.2.9:8080/before plain
tb_poll 5 new_lines "$L1" "$CC.*dst.addr=10\\.201\\.2\\.9:8080 .*direction=outbound" 0 ||
	tb_fail "node1 did not log the enrolled client's connection to the non-mesh pod"
tb_log "ok: while enrolled, the client's traffic to a non-mesh pod passes node1's agent"

for node in node1 node2; do
	tb_agent_stop "$node" TERM
	tb_log "ok: agent on $node stopped by SIGTERM (exit $TB_WAIT_RC)"
	pod=client; [ "$node" = node2 ] && pod=server-remote
	tables=$(capture "$pod")
	[ -n "$tables" ] || tb_fail "$pod's capture was removed when the agent stopped"
	tb_log "ok: $pod keeps its capture while the agent is down: $tables"
	log=$TBDIR/agent-$node.log
	n=$(tb_count "$log" "$CC")
	tb_agent "$node" mesh.yaml
	tb_wait_port "$pod" 15008 10
	[ "$node" = node1 ] && tb_wait_port client 15001 10
	request "after restarting $node's agent" http://10.201.2.2:8080/after-restart-$node server-remote
	tb_poll 5 new_lines "$log" "$CC.*src.addr=10\\.201\\.1\\.2:" "$n" ||
		tb_fail "the restarted agent on $node did not carry the request"
	tb_log "ok: the restarted agent on $node carried it: $(grep "$CC" "$log" | tail -1 | grep -o 'direction=[a-z]*')"
done

tb_unenroll node1 client default client
tables=$(capture client)
[ -z "$tables" ] || tb_fail "after CNI DEL the client still has capture: $tables"
tb_log "ok: after CNI DEL the client pod has no capture left"
! tb__listening client 15001 || tb_fail "after CNI DEL something still listens on 15001 in client"
! tb__listening client 15008 || tb_fail "after CNI DEL something still listens on 15008 in client"
tb_log "ok: after CNI DEL no 15001/15008 listener in the client pod"
n=$(tb_count "$L1" "$CC")
request "after DEL, to the non-mesh pod" http://10.201.2.9:8080/after-del plain
out=$(tb_curl client http://10.201.2.2:8080/after-del) || tb_fail "after DEL: request to server-remote"
[[ "$out" == *"peer=10.201.1.2:"* ]] || tb_fail "after DEL: server-remote reply '$out'"
tb_log "ok: after DEL the client still reaches server-remote directly (plaintext)"
# absence of a log line: give the agent a bounded moment to (wrongly) write one
if tb_poll 1 new_lines "$L1" "$CC" "$n"; then
	tb_fail "node1 still handles the unenrolled client's traffic: $(grep "$CC" "$L1" | tail -1)"
fi
tb_log "ok: node1's agent no longer sees the client's connections"
tb_pass "restart and CNI DEL"
