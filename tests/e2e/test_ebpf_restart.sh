#!/usr/bin/env bash
# ZTUNNEL_REDIRECT=ebpf across agent restarts: SIGKILLed, the agent's pinned programs stay
# attached and capture fails closed (a connection opened while it is down waits, it never goes
# around the agent); started again, it re-adopts the same links (updated in place: no second
# copy), and the waiting connection and new ones are captured. Then `ztunnel redirect-clean`
# removes every pin, link and rule, and the pod talks directly again.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
export ZTUNNEL_REDIRECT=ebpf
tb_mesh
tb_whoami server-remote 8080
L1=$TBDIR/agent-node1.log
CC='msg="connection complete".*direction=outbound'

request() {	# WHAT PATH
	local out
	out=$(tb_curl client "http://10.201.2.2:8080/$2") || tb_fail "$1: request failed"
	[[ "$out" == *"server=server-remote"* && "$out" == *"peer=10.201.1.2:"* ]] ||
		tb_fail "$1: reply '$out'"
}
# link_ids: the link ids node1's /config_dump shows for the client pod
link_ids() {
	tb_exec node1 curl -sS --max-time 5 http://127.0.0.1:15000/config_dump |
		grep -o '"link":[0-9]*' | sort | tr '\n' ' '
}
one_copy() {	# WHEN
	local s t
	s=$(tb_bpf_links client sk_lookup) t=$(tb_bpf_links client tcx)
	[ "$s$t" = 11 ] || tb_fail "$1: $s sk_lookup and $t tcx programs of ours in the client pod, not one each"
}

request "before the restart" before
one_copy "before the restart"
before=$(link_ids)
[ -n "$before" ] || tb_fail "no links in node1's config_dump"
tb_log "ok: captured; links $before"

for sig in KILL TERM; do
	n=$(tb_count "$L1" "$CC")
	tb_agent_stop node1 "$sig"
	one_copy "while the agent is down (SIG$sig)"
	[ -e "$(tb_pin_dir node1)/uid-default-client/link_sk_lookup" ] ||
		tb_fail "the pins went with the agent (SIG$sig)"
	# opened while nothing listens: the SYN is dropped, not sent around the agent; its
	# retransmission reaches the next agent
	tb_bg client timeout 30 curl -sS --max-time 25 -o "$TBDIR/waiting-$sig.out" \
		http://10.201.2.2:8080/while-down
	waiting=$TB_BG_PID
	sleep 1
	[ -s "$TBDIR/waiting-$sig.out" ] && tb_fail "a connection made while the agent was down got an answer: $(cat "$TBDIR/waiting-$sig.out")"
	tb_agent node1 mesh.yaml
	tb_wait_port client 15001 10
	one_copy "after the restart (SIG$sig)"
	after=$(link_ids)
	[ "$after" = "$before" ] || tb_fail "links changed over the restart: $before -> $after"
	tb_exec node1 curl -sS --max-time 5 http://127.0.0.1:15000/config_dump | grep -q '"installs":[2-9]' ||
		tb_fail "the restarted agent does not report the pod as re-adopted"
	tb_wait_pid "$waiting" 30 || tb_fail "the connection opened while the agent was down never ended"
	grep -q 'server=server-remote' "$TBDIR/waiting-$sig.out" ||
		tb_fail "the connection opened while the agent was down: '$(cat "$TBDIR/waiting-$sig.out")'"
	request "after the restart (SIG$sig)" "after-$sig"
	tb_poll 5 tb_more_lines "$L1" "$CC" $((n + 1)) ||
		tb_fail "the restarted agent did not carry both connections (SIG$sig)"
	tb_log "ok: SIG$sig: links kept and re-adopted ($after), the waiting connection and a new one captured"
done

# redirect-clean with the agent stopped: nothing of ours stays, the pod is plain again
tb_agent_stop node1 TERM
out=$(ZTUNNEL_BPF_PIN_DIR=$(tb_pin_dir node1) ZTUNNEL_STATE_DIR=$(tb__state node1) \
	timeout 20 "$ZT" redirect-clean 2>&1) || tb_fail "redirect-clean failed: $out"
grep -q 'pod uid-default-client: .* its rules and accept_local restored' <<<"$out" ||
	tb_fail "redirect-clean did not clean the client pod: $out"
[ -e "$(tb_pin_dir node1)" ] && tb_fail "redirect-clean left $(tb_pin_dir node1): $(ls -R "$(tb_pin_dir node1)")"
s=$(tb_bpf_links client sk_lookup) t=$(tb_bpf_links client tcx)
[ "$s$t" = 00 ] || tb_fail "after redirect-clean: $s sk_lookup and $t tcx programs in the client pod"
tb_exec client ip rule | grep -q 'lookup 101' && tb_fail "after redirect-clean: $(tb_exec client ip rule)"
tb_check "accept_local is back to 0" test "$(tb_exec client cat /proc/sys/net/ipv4/conf/all/accept_local)" = 0
n=$(tb_count "$L1" "$CC")
request "after redirect-clean, the agent stopped" after-clean
[ "$(tb_count "$L1" "$CC")" = "$n" ] || tb_fail "a stopped agent logged a connection"
tb_log "ok: redirect-clean: $(tail -1 <<<"$out"); the client reaches its server directly"
tb_pass "ebpf restart"
