#!/usr/bin/env bash
# Mesh traffic: an enrolled client reaches pods on the other node and on its own node by IP and a
# service by VIP; between the nodes only HBONE (port 15008, TLS) is seen, never the payload; the
# agents log the connections (outbound on node1, inbound on node2).
set -u
. "$(dirname "$0")/lib.sh"
tb_init
tb_mesh
tb_whoami server-remote 8080
tb_whoami server-local 8080
tb_whoami plain 8080

check_reply() {	# WHAT REPLY WANT_SERVER
	[[ "$2" == *"server=$3"* ]] || tb_fail "$1: reply '$2' does not come from $3"
	tb_log "ok: $1 -> $(echo "$2" | tr '\n' ' ')"
}

out=$(tb_curl client http://10.201.2.2:8080/cross-node) || tb_fail "curl client -> server-remote"
check_reply "client -> server-remote (other node) by pod IP" "$out" server-remote
out=$(tb_curl client http://10.201.1.3:8080/same-node) || tb_fail "curl client -> server-local"
check_reply "client -> server-local (same node) by pod IP" "$out" server-local
out=$(tb_curl client http://10.96.0.10:80/vip) || tb_fail "curl client -> service VIP"
check_reply "client -> service web VIP 10.96.0.10:80" "$out" server-remote

# The wire between the nodes: a request with a unique marker in the URL (and echoed back in the
# response) must show as HBONE (port 15008) and never as plaintext. Control: the same kind of
# request to the non-mesh pod `plain` shows its marker, so the capture can see plaintext.
secret="zt-secret-$RANDOM$RANDOM$RANDOM"
control="zt-control-$RANDOM$RANDOM$RANDOM"
tb_capture_start node1 "$TB_LINK_A" wire
out=$(tb_curl client "http://10.201.2.2:8080/$secret" -H "X-Marker: $secret") ||
	tb_fail "curl with marker"
[[ "$out" == *"path=/$secret"* ]] || tb_fail "marker request reply: $out"
out=$(tb_curl client "http://10.201.2.9:8080/$control") || tb_fail "curl to plain pod"
[[ "$out" == *"server=plain"* ]] || tb_fail "plain pod reply: $out"
tb_capture_stop
n15008=$(tcpdump -nn -r "$TBDIR/wire.pcap" 'tcp dst port 15008 and dst host 10.201.2.2' 2>/dev/null |
	wc -l)
n8080=$(tcpdump -nn -r "$TBDIR/wire.pcap" 'tcp port 8080 and host 10.201.2.2' 2>/dev/null |
	wc -l)
tb_log "capture: $n15008 packets to 10.201.2.2:15008, $n8080 packets to/from 10.201.2.2:8080"
[ "$n15008" -gt 0 ] || tb_fail "no packets to 10.201.2.2:15008 on the inter-node link"
[ "$n8080" -eq 0 ] || tb_fail "$n8080 plaintext packets to/from 10.201.2.2:8080 on the link"
grep -aq -- "$control" "$TBDIR/wire.pcap" ||
	tb_fail "control marker to the non-mesh pod not seen: the capture does not work"
tb_log "ok: control marker (non-mesh destination) is visible in the capture"
if grep -aq -- "$secret" "$TBDIR/wire.pcap"; then
	tb_fail "the marker crossed the inter-node link in plaintext"
fi
tb_log "ok: inter-node traffic to server-remote is HBONE on 15008 and never shows the marker"

# Access logs on both sides of the cross-node connection.
tb_wait_log "$TBDIR/agent-node1.log" \
	'msg="connection complete".*src.addr=10\.201\.1\.2:[0-9]+ .*dst.addr=10\.201\.2\.2:8080 .*direction=outbound' 10 ||
	tb_fail "node1: no outbound 'connection complete' 10.201.1.2 -> 10.201.2.2:8080"
tb_log "ok: node1 logged: $(grep -E 'connection complete.*dst.addr=10\.201\.2\.2:8080 .*direction=outbound' \
	"$TBDIR/agent-node1.log" | tail -1)"
tb_wait_log "$TBDIR/agent-node2.log" \
	'msg="connection complete".*src.addr=10\.201\.1\.2:[0-9]+ .*direction=inbound' 10 ||
	tb_fail "node2: no inbound 'connection complete' from 10.201.1.2"
tb_log "ok: node2 logged: $(grep -E 'connection complete.*src.addr=10\.201\.1\.2:.*direction=inbound' \
	"$TBDIR/agent-node2.log" | tail -1)"
if [ "${ZTUNNEL_KTLS:-false}" = true ]; then	# the setting says what became of it, once
	for n in node1 node2; do
		line=$(grep -aE 'kTLS unavailable|kTLS: the kernel seals' "$TBDIR/agent-$n.log") ||
			tb_fail "$n: ZTUNNEL_KTLS=true but no kTLS log line"
		[ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] || tb_fail "$n: kTLS logged more than once"
		tb_log "ok: $n: $line"
	done
fi
tb_pass "mesh traffic"
