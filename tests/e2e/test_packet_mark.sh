#!/usr/bin/env bash
# PACKET_MARK has one owner: with 0x777 instead of 0x539 the agent's sockets carry 0x777 and the
# pods' capture rules (of the backend in ZTUNNEL_REDIRECT) leave exactly that mark alone, so mesh traffic still flows (with a rule
# still on 0x539 the agent's own HBONE connection would be captured again and loop).
set -u
. "$(dirname "$0")/lib.sh"
tb_init
export PACKET_MARK=0x777
tb_mesh
tb_whoami server-remote 8080
out=$(tb_curl client http://10.201.2.2:8080/marked)
[[ "$out" == *"server=server-remote"* ]] || tb_fail "mesh request with PACKET_MARK=0x777: $out"
tb_log "ok: client -> server-remote through both agents with mark 0x777"
BACKEND=${ZTUNNEL_REDIRECT:-nftables}
if [ "$BACKEND" = ebpf ]; then
	rules=$(tb_exec client ip rule)
	tb_check "the client pod's rules let mark 0x777 leave as usual" \
		grep -q 'fwmark 0x777/0xfff lookup main' <<<"$rules"
	grep -q '0x539' <<<"$rules" && tb_fail "a rule still names 0x539:
$rules"
else
	rules=$(tb_exec client nft list ruleset)
	tb_check "the client pod's rules leave mark 0x777 alone" \
		grep -q 'meta mark & 0x00000fff != 0x00000777 redirect to :15001' <<<"$rules"
	grep -q '0x00000539' <<<"$rules" && tb_fail "a rule still names 0x539:
$rules"
fi
dump=$(tb_exec node1 curl -s localhost:15000/config_dump)
tb_check "config_dump names the backend and the mark" \
	grep -q "\"redirect\":{\"backend\":\"$BACKEND\",\"mark\":\"0x777\"" <<<"$dump"
grep -q 'msg="connection complete".*dst.hbone_addr=10.201.2.2:15008' "$TBDIR/agent-node1.log" ||
	tb_fail "the request did not go by HBONE"
out=$(PACKET_MARK=0x111 "$ZT" 2>&1)
rc=$?
[ $rc -eq 2 ] && [[ "$out" == *"PACKET_MARK: 0x111"* ]] || tb_fail "PACKET_MARK=0x111: rc=$rc $out"
tb_log "ok: a mark the rules cannot tell apart is refused at start-up: $out"
tb_pass "PACKET_MARK reaches the sockets and the rules"
