#!/usr/bin/env bash
# IPv6 dual stack: pods with IPv4 and IPv6 (ULA) addresses, captured by the nftables backend or
# (ZTUNNEL_REDIRECT=ebpf) by the eBPF one. Over IPv6, across nodes and on the
# same node, socat and curl -6 reach the app through the mesh (HBONE to [v6]:15008, :authority
# [v6]:port) and the app sees the client's real IPv6 address; IPv4 still works in the same pods
# (the agent logs it as a.b.c.d, never ::ffff:a.b.c.d); a dual-stack pod reaches a v4-only one;
# a v6 CIDR policy denies one v6 client and not another (nor the denied pod's IPv4); 256 MiB
# arrive intact over IPv6; with IPV6_ENABLED=false the agent listens on IPv4 only, IPv4 works
# and IPv6 to its pods fails closed (nothing reaches the app around the agent); an agent whose
# socket(AF_INET6) fails with EAFNOSUPPORT (a kernel without IPv6) logs one warning and runs
# IPv4 only.
set -u
. "$(dirname "$0")/lib.sh"
TB_DUALSTACK=1
tb_init
CFG=$TBDIR/cfg.yaml
L1=$TBDIR/agent-node1.log
L2=$TBDIR/agent-node2.log
CC='msg="connection complete"'
C6=fd00:201:1::2
S6=fd00:201:2::2
re() { local s=${1//./\\.}; s=${s//[/\\[}; printf '%s' "${s//]/\\]}"; }

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 client2 10.201.1.4
tb_pod node1 server-local 10.201.1.3
tb_pod node2 server-remote 10.201.2.2
TB_DUALSTACK=0 tb_pod node2 v4only 10.201.2.4
tb_pod node2 plain 10.201.2.9	# outside the mesh (not enrolled)
cp "$TB_TESTDATA/dualstack-mesh.yaml" "$CFG"
# an upstream resolver on an IPv6 address only (in the pod outside the mesh): names the mesh does
# not know are forwarded to it over IPv6
R6=fd00:201:2::9
if command -v dnsmasq >/dev/null; then
	tb_bg plain dnsmasq --no-daemon --log-facility=- --no-resolv --no-hosts --bind-interfaces \
		--listen-address="$R6" --port=53 --log-queries --address=/outside6.test/192.0.2.66 \
		>"$TBDIR/dnsmasq.log" 2>&1
	tb_wait_log "$TBDIR/dnsmasq.log" 'started' 10 || tb_fail "dnsmasq did not start"
	export DNS_UPSTREAMS="[$R6]:53"
fi
tb_agent node1 cfg.yaml
tb_agent node2 cfg.yaml
for p in client:node1 client2:node1 server-local:node1 server-remote:node2 v4only:node2; do
	tb_enroll "${p#*:}" "${p%%:*}" default "${p%%:*}"
done
tb_wait_port client 15001
tb_wait_port server-remote 15008
tb_wait_port v4only 15008
for p in server-remote server-local; do
	tb_bg "$p" "$PY" "$TB_PEERS/whoami_server.py" --bind :: --port 9000 --name "$p" \
		>>"$TBDIR/whoami-$p.log" 2>&1
	tb_wait_port "$p" 9000
done
tb_whoami v4only 9000

# the pod listeners are one dual-stack socket each, on [::]
for port in 15001 15006 15008; do
	l=$(tb_exec client ss -Hltn "sport = :$port" | awk '{print $4}' | sort -u)
	[[ "$l" == "*:$port" || "$l" == "[::]:$port" ]] ||
		tb_fail "client's :$port listener is '$l', want [::]:$port (dual stack)"
done
tb_log "ok: the client pod's listeners 15001/15006/15008 are on [::]"
tb_exec node1 curl -sS --max-time 5 http://127.0.0.1:15000/config_dump | grep -q '"ipv6":true' ||
	tb_fail "node1's /config_dump does not say ipv6 true"

# the capture of IPv6: the ip6 nat rules (nftables), or the ip -6 rules to table 101 with its
# IPv6 local route (ebpf: sk_lookup and tc ingress steer both families)
if [ "${ZTUNNEL_REDIRECT:-nftables}" = ebpf ]; then
	r6=$(tb_exec client ip -6 rule show)
	[[ "$r6" == *"ipproto tcp lookup 101"* && "$r6" == *"dport 53 lookup 101"* ]] ||
		tb_fail "ebpf: no IPv6 capture rules in the client pod: $r6"
	rt=$(tb_exec client ip -6 route show table 101)
	[[ "$rt" == *"local default dev lo"*"src $C6"* ]] || tb_fail "ebpf: table 101 (IPv6): '$rt'"
	[ "$(tb_bpf_links client sk_lookup)" = 1 ] && [ "$(tb_bpf_links client tcx)" = 1 ] ||
		tb_fail "ebpf: the capture programs are not attached in the client pod"
	! tb_exec client nft list tables 2>/dev/null | grep -q istio || tb_fail "ebpf: nftables tables present"
	tb_log "ok: ebpf capture: ip -6 rules to table 101 ($rt), sk_lookup and tcx attached"
else
	rs=$(tb_exec client nft list table inet istio-ambient-nat)
	[[ "$rs" == *"tcp ip6 daddr != ::1 meta mark & 0x00000fff != 0x00000539 redirect to :15001"* &&
	   "$rs" == *"ip6 daddr != ::1 tcp dport != 15008 "*"redirect to :15006"* &&
	   "$rs" == *"meta nfproto ipv6 udp dport 53"*"redirect to :15053"* ]] ||
		tb_fail "nftables: no IPv6 redirect rules in the client pod: $rs"
	rt=$(tb_exec client ip -6 route show table 100)
	[[ "$rt" == *"local default dev lo"* ]] || tb_fail "nftables: table 100 (IPv6): '$rt'"
	tb_log "ok: nftables capture: ip6 redirects to 15001 and 15053, ip -6 table 100 ($rt)"
fi

# peer_of POD DST PORT [socat address family]: the peer address whoami at DST saw.
peer_of() {
	local out
	out=$(tb_exec "$1" timeout 10 socat -t5 -T5 - "$4:$2:$3" </dev/null) ||
		tb_fail "socat $1 -> $2:$3 failed: '$out'"
	printf '%s\n' "$out" | sed -n 's/^peer=//p'
}

# (1) IPv6, cross-node and same-node: the app sees the client's IPv6 address, the agents logged
# the connection with [v6]:port addresses and HBONE to [v6]:15008
for d in "$S6:node2" "fd00:201:1::3:node1"; do
	dst=${d%:*}; node=${d##*:}
	peer=$(peer_of client "[$dst]" 9000 TCP6)
	[[ "$peer" == "$C6:"* ]] || tb_fail "IPv6: app at $dst saw peer '$peer', want $C6:<port>"
	tb_wait_log "$TBDIR/agent-$node.log" \
		"$CC.*src\\.addr=$(re "[$C6]"):[0-9]+ .*dst\\.addr=$(re "[$dst]"):9000 .*direction=inbound" 10 ||
		tb_fail "IPv6: $node did not log the inbound connection from [$C6] to [$dst]:9000"
	tb_wait_log "$L1" \
		"$CC.*dst\\.addr=$(re "[$dst]"):9000 dst\\.hbone_addr=$(re "[$dst]"):15008 .*direction=outbound" 10 ||
		tb_fail "IPv6: node1 did not log the outbound HBONE connection to [$dst]:9000 via [$dst]:15008"
	tb_log "ok: IPv6 client -> [$dst]:9000 through the mesh ($node inbound), the app saw $peer"
done

# (2) curl -6 with an HTTP request through the same path
out=$(tb_curl client "http://[$S6]:9000/v6-marker" -6) || tb_fail "curl -6 to [$S6]:9000 failed: $out"
[[ "$out" == *"path=/v6-marker"* && "$out" == *"peer=$C6:"* ]] ||
	tb_fail "curl -6 to [$S6]:9000: unexpected answer '$out'"
tb_log "ok: curl -6 http://[$S6]:9000/ answered, peer $C6"

# (3) IPv4 in the same dual-stack pods: the [::] listeners take it and the agent logs a.b.c.d
peer=$(peer_of client 10.201.2.2 9000 TCP4)
[[ "$peer" == "::ffff:10.201.1.2:"* ]] || tb_fail "IPv4: app saw '$peer', want ::ffff:10.201.1.2:<port> (its [::] socket)"
tb_wait_log "$L2" "$CC.*src\\.addr=10\\.201\\.1\\.2:[0-9]+ .*dst\\.addr=10\\.201\\.2\\.2:9000 .*direction=inbound" 10 ||
	tb_fail "IPv4: node2 did not log the inbound connection from 10.201.1.2 (as IPv4)"
! grep -q 'ffff:' "$L1" "$L2" || tb_fail "an agent logged a v4-mapped address: $(grep -m1 -h 'ffff:' "$L1" "$L2")"
tb_log "ok: IPv4 through the dual-stack listeners, logged as IPv4 (no ::ffff: in the agents' logs)"

# (3b) plaintext from outside the mesh over IPv6: captured by 15006 (original destination from
# IP6T_SO_ORIGINAL_DST, or the local address under ebpf), the app sees the real IPv6 client
for d in fd00:201:1::3:node1 "$S6:node2"; do
	dst=${d%:*}; node=${d##*:}
	peer=$(peer_of plain "[$dst]" 9000 TCP6)
	[[ "$peer" == "fd00:201:2::9:"* ]] ||
		tb_fail "plaintext IPv6 to $dst: app saw '$peer', want fd00:201:2::9:<port>"
	tb_wait_log "$TBDIR/agent-$node.log" "$CC.*src\.addr=$(re "[fd00:201:2::9]"):[0-9]+ .*dst\.addr=$(re "[$dst]"):9000 .*direction=inbound" 10 ||
		tb_fail "plaintext IPv6: $node did not log the inbound (15006) connection to $dst"
	tb_log "ok: plaintext IPv6 from outside the mesh through $node's 15006, the app at $dst saw $peer"
done

# (4) a dual-stack pod reaches a v4-only one
peer=$(peer_of client 10.201.2.4 9000 TCP4)
[[ "$peer" == "10.201.1.2:"* ]] || tb_fail "v4-only pod saw peer '$peer', want 10.201.1.2:<port>"
tb_wait_log "$L2" "$CC.*src\\.addr=10\\.201\\.1\\.2:[0-9]+ .*dst\\.addr=10\\.201\\.2\\.4:9000 .*direction=inbound" 10 ||
	tb_fail "node2 did not log the inbound connection to the v4-only pod"
tb_log "ok: dual-stack client -> v4-only pod 10.201.2.4 through the mesh"

# (4b) DNS: AAAA and A of a dual-stack service from the agent's proxy, the query sent over IPv6
# (captured by the ip6 rule to [::1]:15053) and over IPv4; then the v6 VIP through the mesh
for r in fd00:53::1 10.0.53.1; do
	for t in AAAA:fd00:96::10 A:10.96.0.10; do
		out=$(tb_exec client timeout 10 dig +short +time=2 +tries=1 "@$r" web.default.svc.cluster.local "${t%%:*}") ||
			tb_fail "dig @$r ${t%%:*}: $out"
		[ "$out" = "${t#*:}" ] || tb_fail "dig @$r web ${t%%:*}: got '$out', want ${t#*:}"
	done
done
tb_log "ok: DNS: web's AAAA fd00:96::10 and A 10.96.0.10, asked over IPv6 and IPv4"
if [ -n "${DNS_UPSTREAMS:-}" ]; then
	for r in fd00:53::1 10.0.53.1; do
		out=$(tb_exec client timeout 10 dig +short +time=3 +tries=1 "@$r" outside6.test A) ||
			tb_fail "dig @$r outside6.test: $out"
		[ "$out" = 192.0.2.66 ] || tb_fail "outside6.test via @$r: got '$out', want 192.0.2.66"
	done
	grep -q "query\[A\] outside6.test from $C6" "$TBDIR/dnsmasq.log" ||
		tb_fail "the IPv6 resolver did not see the forwarded query from $C6"
	tb_log "ok: DNS: a name the mesh does not know forwarded over IPv6 to the resolver [$R6]:53"
else
	tb_log "skip: dnsmasq missing, IPv6 forwarding not checked"
fi
out=$(tb_curl client "http://[fd00:96::10]:80/vip6" -6) || tb_fail "curl -6 to the v6 VIP failed: $out"
[[ "$out" == *"path=/vip6"* && "$out" == *"peer=$C6:"* && "$out" == *"server=server-remote"* ]] ||
	tb_fail "curl -6 to [fd00:96::10]:80: unexpected answer '$out'"
tb_wait_log "$L1" "$CC.*dst\.addr=$(re "[fd00:201:2::2]"):9000 .*dst\.service=web\.default\.svc\.cluster\.local .*direction=outbound" 10 ||
	tb_fail "node1 did not log the v6 VIP connection as service web to [fd00:201:2::2]:9000"
tb_log "ok: the v6 service VIP [fd00:96::10]:80 reaches server-remote [fd00:201:2::2]:9000"

# (5) a v6 CIDR policy: client2's IPv6 address is denied, client's is not, client2's IPv4 neither
tb_reload_config "deny fd00:201:1::4/128" "$CFG" < <(cat "$TB_TESTDATA/dualstack-mesh.yaml"; printf '%s\n' \
	'policies:' \
	'- {name: deny-v6, namespace: default, scope: Namespace, action: Deny, rules: [[[{sourceIps: ["fd00:201:1::4/128"]}]]]}')
n=$(grep -c "served $C6" "$TBDIR/whoami-server-remote.log")
out=$(tb_exec client2 timeout 10 socat -t5 -T5 - "TCP6:[$S6]:9000" </dev/null 2>&1)
[[ "$out" != *"peer="* ]] || tb_fail "policy: client2 over IPv6 was allowed: $out"
tb_wait_log "$L2" "$CC.*src\\.addr=$(re "[fd00:201:1::4]"):[0-9]+ .*error=\"[^\"]*denied[^\"]*default/deny-v6" 10 ||
	tb_fail "policy: node2 did not log client2's IPv6 connection as denied by default/deny-v6"
tb_log "ok: policy: [fd00:201:1::4] denied by the v6 CIDR"
peer=$(peer_of client "[$S6]" 9000 TCP6)
[[ "$peer" == "$C6:"* ]] || tb_fail "policy: client over IPv6 got '$peer'"
peer=$(peer_of client2 10.201.2.2 9000 TCP4)
[[ "$peer" == "::ffff:10.201.1.4:"* ]] || tb_fail "policy: client2 over IPv4 got '$peer'"
tb_log "ok: policy: [$C6] and client2's IPv4 10.201.1.4 allowed"
[ "$(grep -c "served $C6" "$TBDIR/whoami-server-remote.log")" -gt "$n" ] || tb_fail "policy: no new served line for $C6"

# (6) bulk over IPv6: 256 MiB arrive intact (the receiver's sha256)
tb_bg server-remote "$PY" "$TB_PEERS/halfclose_server.py" --bind :: --port 9100 >"$TBDIR/halfclose.log" 2>&1
tb_wait_port server-remote 9100
head -c 256M /dev/urandom >"$TBDIR/big"
want=$(sha256sum "$TBDIR/big" | cut -d' ' -f1)
start=$(tb__now_ms)
out=$(tb_exec client timeout 60 "$PY" "$TB_PEERS/tcp_client.py" "[$S6]:9100" \
	--send-file "$TBDIR/big" --timeout 30 2>&1) || tb_fail "256 MiB over IPv6: $out"
took=$(($(tb__now_ms) - start))
[[ "$out" == *"sha256=$want"* ]] || tb_fail "256 MiB over IPv6: receiver says '$out', want sha256=$want"
rm -f "$TBDIR/big"
tb_wait_log "$L1" "$CC.*dst\\.addr=$(re "[$S6]"):9100 .*bytes_(sent|recv)=268435456 " 10 ||
	tb_fail "node1 did not log the 256 MiB IPv6 connection"
tb_log "ok: 256 MiB over IPv6 in $took ms, intact ($(echo "$out" | head -1))"

# (7) IPV6_ENABLED=false on node2: IPv4-only listeners; IPv4 works; IPv6 fails closed
tb_agent_stop node2
IPV6_ENABLED=false tb_agent node2 cfg.yaml
tb_poll 10 tb__listening server-remote 15008 || tb_fail "node2 did not reopen server-remote's listeners"
l=$(tb_exec server-remote ss -Hltn "sport = :15008" | awk '{print $4}' | sort -u)
# plaintext IPv6 straight to the pod is captured all the same (15006 has no IPv6 socket now):
# refused (nftables) or dropped (ebpf), never delivered to the app around the agent
n=$(grep -c "served fd00:201:2::9" "$TBDIR/whoami-server-remote.log")
out=$(tb_exec plain timeout 4 socat -T2 - "TCP6:[$S6]:9000,connect-timeout=2" </dev/null 2>&1)
[[ "$out" != *"peer="* ]] || tb_fail "IPV6_ENABLED=false: plaintext IPv6 reached the app: $out"
[ "$(grep -c "served fd00:201:2::9" "$TBDIR/whoami-server-remote.log")" -eq "$n" ] ||
	tb_fail "IPV6_ENABLED=false: the app served plaintext IPv6"
tb_log "ok: IPV6_ENABLED=false: plaintext IPv6 to the pod did not reach the app (${out:-no answer})"
tb_exec node2 curl -sS --max-time 5 http://127.0.0.1:15000/config_dump | grep -q '"ipv6":false' ||
	tb_fail "IPV6_ENABLED=false: node2's /config_dump does not say ipv6 false"
[ "$l" = "0.0.0.0:15008" ] || tb_fail "IPV6_ENABLED=false: server-remote's :15008 listener is '$l', want 0.0.0.0:15008"
peer=$(peer_of client 10.201.2.2 9000 TCP4)
[[ "$peer" == "::ffff:10.201.1.2:"* ]] || tb_fail "IPV6_ENABLED=false: IPv4 got '$peer'"
n=$(grep -c "served $C6" "$TBDIR/whoami-server-remote.log")
out=$(tb_exec client timeout 10 socat -t5 -T5 - "TCP6:[$S6]:9000" </dev/null 2>&1)
[[ "$out" != *"peer="* ]] || tb_fail "IPV6_ENABLED=false: IPv6 to server-remote reached the app: $out"
[ "$(grep -c "served $C6" "$TBDIR/whoami-server-remote.log")" -eq "$n" ] ||
	tb_fail "IPV6_ENABLED=false: the app served an IPv6 connection"
out=$(tb_exec server-remote timeout 10 dig +time=2 +tries=1 @10.0.53.1 web.default.svc.cluster.local AAAA) ||
	tb_fail "IPV6_ENABLED=false: dig AAAA: $out"
[[ "$out" == *"status: NOERROR"* && "$out" == *"ANSWER: 0,"* ]] ||
	tb_fail "IPV6_ENABLED=false: AAAA of web should be NOERROR without records: $out"
tb_log "ok: IPV6_ENABLED=false: listeners 0.0.0.0, IPv4 through the mesh, IPv6 refused ($out)"
# (8) a kernel without IPv6, as the agent sees one: socket(AF_INET6) fails with EAFNOSUPPORT
# (an LD_PRELOAD shim, IPV6_ENABLED left at its default): one warning, IPv4 only, no crash
cat >"$TBDIR/noipv6.c" <<'SHIM'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/socket.h>
int socket(int family, int type, int proto)
{
	static int (*real)(int, int, int);

	if (family == AF_INET6) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (!real)
		real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	return real(family, type, proto);
}
SHIM
cc -shared -fPIC -o "$TBDIR/noipv6.so" "$TBDIR/noipv6.c" -ldl || tb_fail "building the no-IPv6 shim"
tb_agent_stop node2
LD_PRELOAD=$TBDIR/noipv6.so tb_agent node2 cfg.yaml
tb_wait_log "$L2" 'msg="IPv6 is not available in this kernel' 5 ||
	tb_fail "no-IPv6 kernel: node2 did not log the one warning"
[ "$(tb_count "$L2" 'IPv6 is not available in this kernel')" = 1 ] ||
	tb_fail "no-IPv6 kernel: the warning is logged more than once"
! grep -q 'os error 97\|Address family not supported' "$L2" ||
	tb_fail "no-IPv6 kernel: an address-family error in the log: $(grep -m1 'Address family' "$L2")"
tb_poll 10 tb__listening server-remote 15008 || tb_fail "no-IPv6 kernel: no listeners"
l=$(tb_exec server-remote ss -Hltn "sport = :15008" | awk '{print $4}' | sort -u)
[ "$l" = "0.0.0.0:15008" ] || tb_fail "no-IPv6 kernel: :15008 listener is '$l', want 0.0.0.0:15008"
peer=$(peer_of client 10.201.2.2 9000 TCP4)
[[ "$peer" == "::ffff:10.201.1.2:"* ]] || tb_fail "no-IPv6 kernel: IPv4 got '$peer'"
tb_log "ok: no-IPv6 kernel: one warning ($(grep -o 'msg="IPv6 is not available[^"]*"' "$L2")), IPv4 listeners, IPv4 through the mesh"
tb_pass "dual stack"
