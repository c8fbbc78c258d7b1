#!/usr/bin/env bash
# ZTUNNEL_REDIRECT=ebpf: a captured pod has no nftables table at all and still captures both
# ways (sk_lookup on its netns for outbound, tcx ingress for inbound), the app sees the real
# client IP, kubelet-probe and loopback traffic are left alone, /config_dump shows what is
# attached, and removing the pod leaves no program, link, pin or rule behind.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
command -v bpftool >/dev/null || tb_skip "bpftool missing (make deps)"
export ZTUNNEL_REDIRECT=ebpf
tb_mesh
tb_whoami server-remote 8080
tb_whoami client 8080
for pod in client server-remote; do
	out=$(tb_exec "$pod" nft list ruleset 2>&1)
	[ -z "$out" ] || tb_fail "$pod has nftables rules in ebpf mode:
$out"
done
tb_log "ok: no nftables table in the captured pods"
for pod in client server-remote; do
	n=$(tb_bpf_links "$pod" sk_lookup)
	[ "$n" = 1 ] || tb_fail "$pod's netns has $n sk_lookup links of ours, not one"
	n=$(tb_bpf_links "$pod" tcx)
	[ "$n" = 1 ] || tb_fail "$pod's eth0 has $n tcx ingress links of ours, not one"
done
node=node1
for pod in uid-default-client uid-default-server-remote; do
	[ "$pod" = uid-default-server-remote ] && node=node2
	for f in link_sk_lookup link_tcx_eth0 listeners counts info; do
		[ -e "$(tb_pin_dir $node)/$pod/$f" ] || tb_fail "$(tb_pin_dir $node)/$pod/$f is not pinned"
	done
done
tb_log "ok: one sk_lookup link per pod netns, one tcx ingress link on each pod's eth0, all pinned"
dump=$(tb_exec node1 curl -sS http://127.0.0.1:15000/config_dump)
for want in '"backend":"ebpf"' '"hook":"sk_lookup","link":[1-9]' \
	    '"hook":"tcx_ingress","interface":"eth0","link":[1-9]'; do
	grep -qE "$want" <<<"$dump" || tb_fail "config_dump lacks $want: $dump"
done
tb_log "ok: /config_dump names the backend and each pod's links"

out=$(tb_curl client http://10.201.2.2:8080/ebpf)
[[ "$out" == *"server=server-remote"* && "$out" == *"peer=10.201.1.2:"* ]] ||
	tb_fail "client -> server-remote: $out"
tb_wait_log "$TBDIR/agent-node1.log" 'direction=outbound .*|dst.hbone_addr=10.201.2.2:15008.*direction=outbound' 5 ||
	tb_fail "node1 did not tunnel it"
tb_log "ok: outbound captured and tunnelled; the app saw the client's own IP: $(grep -o 'peer=[^ ]*' <<<"$out")"
out=$(tb_curl plain http://10.201.2.2:8080/from-outside)
[[ "$out" == *"server=server-remote"* ]] || tb_fail "plain -> server-remote: $out"
tb_wait_log "$TBDIR/agent-node2.log" 'src.addr=10.201.2.9:.*direction=inbound' 5 ||
	tb_fail "the plaintext inbound connection did not go through node2's agent (15006)"
tb_log "ok: inbound plaintext from outside the mesh captured on 15006"
out=$(tb_exec client timeout 5 curl -sS --max-time 3 http://127.0.0.1:8080/loopback)
[[ "$out" == *"server=client"* ]] || tb_fail "loopback in the pod: $out"
out=$(tb_exec client timeout 5 curl -sS --max-time 3 http://10.201.1.2:8080/self)
[[ "$out" == *"server=client"* ]] || tb_fail "the pod to its own IP: $out"
tb_log "ok: loopback and the pod's own address are not captured"

tb_unenroll node2 server-remote default server-remote
gone() { [ "$(tb_bpf_links server-remote sk_lookup)$(tb_bpf_links server-remote tcx)" = 00 ]; }
tb_poll 5 gone || tb_fail "programs stayed after the pod left: $(tb_exec server-remote "$TB_ROOT/build/tools/bpf_links")"
[ -e "$(tb_pin_dir node2)/uid-default-server-remote" ] &&
	tb_fail "the pod's pins stayed: $(ls "$(tb_pin_dir node2)/uid-default-server-remote")"
tb_exec server-remote ip rule | grep -q 'lookup 101' && tb_fail "the ip rules stayed: $(tb_exec server-remote ip rule)"
tb_check "accept_local is back to 0 (all, lo, eth0)" test "$(tb_exec server-remote cat /proc/sys/net/ipv4/conf/{all,lo,eth0}/accept_local | tr -d "\n")" = 000
tb_log "ok: a removed pod keeps no program, link, pin, rule or setting of ours"

# without the privileges the programs need: one clear error at start-up, exit non-zero
if command -v setpriv >/dev/null; then
	mkdir -p "$TBDIR/noprivs"
	out=$(tb_exec node1 setpriv --inh-caps=-all --bounding-set=-bpf,-sys_admin,-net_admin,-perfmon \
		-- env ZTUNNEL_STATE_DIR="$TBDIR/noprivs" ZTUNNEL_CNI_SOCKET="$TBDIR/noprivs/cni.sock" \
		ZTUNNEL_ADMIN_PORT=25000 ZTUNNEL_METRICS_PORT=25020 ZTUNNEL_READINESS_PORT=25021 \
		timeout 10 "$ZT" 2>&1)
	rc=$?
	[ $rc -eq 1 ] && [[ "$out" == *"ZTUNNEL_REDIRECT=ebpf: this kernel or these privileges cannot load"* ]] ||
		tb_fail "without CAP_BPF: rc=$rc $out"
	tb_log "ok: without the privileges the agent stops at start-up: $(tail -1 <<<"$out")"
fi
tb_pass "ebpf capture"
