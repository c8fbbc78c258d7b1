#!/usr/bin/env bash
# ZTUNNEL_REDIRECT=ebpf ZTUNNEL_BPF_SOCKMAP=true: the in-pod legs (client app -> the agent's
# 15001 socket, the agent -> the server app) really skip the loopback TCP stack: the agents'
# sock_ops program is attached to the cgroup v2 root, their sockhash holds both ends of a
# connection while it is open, and their sk_msg counters (in /config_dump) count the bytes it
# handed over; meanwhile mesh traffic, a 256 MiB transfer with half-close, a slow reader
# (backpressure) and the real client IP at the server work, and a socket pair in a netns that
# is not enrolled is never touched. When the agents stop (even by SIGKILL), nothing of theirs
# stays attached.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
command -v bpftool >/dev/null || tb_skip "bpftool missing (make deps)"
export ZTUNNEL_REDIRECT=ebpf ZTUNNEL_BPF_SOCKMAP=true
CG=/sys/fs/cgroup/unified
[ "$(stat -f -c %T "$CG" 2>/dev/null)" = cgroup2fs ] || CG=/sys/fs/cgroup
tb_mesh
tb_whoami server-remote 8080
tb_bg server-remote "$PY" "$TB_PEERS/halfclose_server.py" --port 9100 \
	>"$TBDIR/halfclose.log" 2>&1
tb_wait_port server-remote 9100

# sockmap NODE KEY: a counter of the node's agent (/config_dump "sockmap")
sockmap() {
	tb_exec "$1" curl -sS --max-time 5 http://127.0.0.1:15000/config_dump |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["redirect"]["sockmap"].get(sys.argv[1], "none"))' "$2"
}
[ "$(sockmap node1 enabled)" = True ] || tb_fail "node1's config_dump does not show the sockmap enabled"

# the sock_ops programs attached to the cgroup root belong to our agents
# fd_ids PID KIND: ids of the BPF programs (prog_id) or maps (map_id) the process holds
fd_ids() { cat /proc/"$1"/fdinfo/* 2>/dev/null | sed -n "s/^$2:[[:space:]]*//p" | sort -u; }
prog_ids() { fd_ids "$1" prog_id; }
attached=$(bpftool -j cgroup show "$CG" effective 2>/dev/null)
for node in node1 node2; do
	ids=$(prog_ids "$(tb_agent_pid "$node")")
	found=0
	for id in $ids; do
		grep -q "\"id\":$id,\"attach_type\":\"cgroup_sock_ops\"" <<<"$attached" && found=1
	done
	[ $found = 1 ] || tb_fail "no sock_ops program of $node's agent on $CG: $attached"
done
tb_log "ok: both agents' sock_ops programs are attached to $CG"

# mesh traffic, and the real client IP at the server
out=$(tb_curl client http://10.201.2.2:8080/sockmap)
[[ "$out" == *"server=server-remote"* && "$out" == *"peer=10.201.1.2:"* ]] ||
	tb_fail "client -> server-remote: $out"
tb_log "ok: client -> server-remote through the mesh, the app saw $(grep -o 'peer=[^ ]*' <<<"$out")"
for node in node1 node2; do
	n=$(sockmap $node pairs)
	[ "$n" -ge 1 ] 2>/dev/null || tb_fail "$node paired no sockets (pairs=$n)"
	n=$(sockmap $node bytesRedirected)
	[ "$n" -ge 100 ] 2>/dev/null || tb_fail "$node redirected $n bytes"
done
tb_log "ok: node1 paired $(sockmap node1 pairs) and handed over $(sockmap node1 bytesRedirected) bytes; node2 $(sockmap node2 pairs) and $(sockmap node2 bytesRedirected)"

# a dual-stack server (an AF_INET6 listener: the accepted socket has v4-mapped addresses, as
# iperf3's) is paired too
tb_bg server-remote socat TCP6-LISTEN:9300,ipv6only=0,reuseaddr,fork EXEC:cat >/dev/null 2>&1
tb_wait_port server-remote 9300
before=$(sockmap node2 pairs)
out=$(echo dual-stack | tb_exec client timeout 10 socat -t5 - TCP4:10.201.2.2:9300)
[ "$out" = dual-stack ] || tb_fail "echo through the dual-stack server: '$out'"
[ "$(sockmap node2 pairs)" -gt "$before" ] ||
	tb_fail "node2 did not pair the agent's socket with the dual-stack server's ($before pairs before and after)"
tb_log "ok: a dual-stack (v4-mapped) server socket is paired as well"

# the sockhash holds both ends while a connection is open (a held connection: socat waits)
tb_bg client socat -T20 TCP:10.201.2.2:8080 SYSTEM:'sleep 15' >/dev/null 2>&1
held=$TB_BG_PID
socks_of() {	# PID: entries in the agent's sockhash
	local id
	for id in $(fd_ids "$1" map_id) none; do
		bpftool -j map show id "$id" 2>/dev/null | grep -q '"name":"zt_socks"' && break
	done
	[ "$id" != none ] || return 1
	bpftool -j map dump id "$id" 2>/dev/null | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))'
}
two_socks() { [ "$(socks_of "$(tb_agent_pid "$1")")" -ge 2 ] 2>/dev/null; }
tb_poll 10 two_socks node1 || tb_fail "node1's sockhash does not hold the pair: $(socks_of "$(tb_agent_pid node1)")"
tb_poll 10 two_socks node2 || tb_fail "node2's sockhash does not hold the pair: $(socks_of "$(tb_agent_pid node2)")"
tb_log "ok: both sockhashes hold the open connection's pair (node1: $(socks_of "$(tb_agent_pid node1)"), node2: $(socks_of "$(tb_agent_pid node2)"))"
tb_stop "$held" 5

# half-close, bulk with checksum
before=$(sockmap node1 bytesRedirected)
out=$(tb_exec client timeout 20 "$PY" "$TB_PEERS/tcp_client.py" 10.201.2.2:9100 \
	--send-bytes 100000 --timeout 10) || tb_fail "half-close: $out"
tb_log "ok: half-close, 100000 bytes then SHUT_WR, reply: $(echo "$out" | tail -1)"
head -c 256M /dev/urandom >"$TBDIR/big"
out=$(tb_exec client timeout 90 "$PY" "$TB_PEERS/tcp_client.py" 10.201.2.2:9100 \
	--send-file "$TBDIR/big" --timeout 30 2>&1) || tb_fail "256 MiB transfer: $out"
want=$(sha256sum "$TBDIR/big" | cut -d' ' -f1)
[[ "$out" == *"$want"* ]] || tb_fail "256 MiB transfer: receiver says $out, want sha256=$want"
rm -f "$TBDIR/big"
after=$(sockmap node1 bytesRedirected)
[ $((after - before)) -ge 100000 ] || tb_fail "node1 handed over only $((after - before)) bytes of the transfers"
tb_log "ok: 256 MiB intact ($want) after a half-close; node1 handed over $((after - before)) bytes, took the TCP path $(sockmap node1 toTcp) times (queue full or peer not paired yet)"

# a server that does not read for 3 s: the agent's socket to it stops being fast-pathed once
# 4 MiB wait unread (redirected bytes are not held back by TCP's window), the rest goes by TCP,
# whose window stops the writer, and all arrives in order
tb_bg server-remote socat TCP-LISTEN:9400,reuseaddr SYSTEM:'sleep 3; sha256sum' >/dev/null 2>&1
tb_wait_port server-remote 9400
head -c 64M /dev/urandom >"$TBDIR/mid"
want=$(sha256sum <"$TBDIR/mid")
full=$(sockmap node2 tcpQueueFull)
out=$(tb_exec client timeout 60 socat -t30 -T30 - TCP:10.201.2.2:9400,shut-down <"$TBDIR/mid")
[ "$out" = "$want" ] || tb_fail "slow reader: got '$out', want '$want'"
[ "$(sockmap node2 tcpQueueFull)" -gt "$full" ] ||
	tb_fail "node2 never found the slow reader's queue full (tcpQueueFull stayed $full)"
tb_log "ok: 64 MiB to a reader that sleeps first arrive intact; node2 went by TCP $(( $(sockmap node2 tcpQueueFull) - full )) times for a full queue"

# a pair in a netns we did not enroll (the plain pod): not in any sockhash of ours
tb_bg plain socat TCP-LISTEN:9200,reuseaddr SYSTEM:'sleep 10' >/dev/null 2>&1
tb_wait_port plain 9200
b1=$(sockmap node1 sockets) b2=$(sockmap node2 sockets)
tb_bg plain socat -T20 TCP:127.0.0.1:9200 SYSTEM:'sleep 8' >/dev/null 2>&1
sleep_pid=$TB_BG_PID
established() { tb_exec plain ss -Htn state established '( dport = :9200 )' | grep -q .; }
tb_poll 10 established || tb_fail "the connection in the plain pod did not open"
[ "$(sockmap node1 sockets)" = "$b1" ] && [ "$(sockmap node2 sockets)" = "$b2" ] ||
	tb_fail "a socket of a netns not enrolled went into a sockhash"
tb_stop "$sleep_pid" 5
tb_log "ok: sockets in a netns that is not enrolled are left alone"

# settings the fast path cannot work with: one clear error at start-up, exit non-zero
mkdir -p "$TBDIR/bad"
bad_start() {	# env...: the agent's exit code and last line with these settings
	tb_exec node1 env ZTUNNEL_STATE_DIR="$TBDIR/bad" ZTUNNEL_CNI_SOCKET="$TBDIR/bad/cni.sock" \
		ZTUNNEL_ADMIN_PORT=25000 ZTUNNEL_METRICS_PORT=25020 ZTUNNEL_READINESS_PORT=25021 \
		LOCAL_XDS_PATH="$TBDIR/mesh.yaml" "$@" timeout 10 "$ZT" 2>&1 | tail -1
	return "${PIPESTATUS[0]}"
}
out=$(bad_start ZTUNNEL_REDIRECT=nftables)
rc=$?
[ $rc -ne 0 ] && [[ "$out" == *"ZTUNNEL_BPF_SOCKMAP=true needs ZTUNNEL_REDIRECT=ebpf"* ]] ||
	tb_fail "sockmap with nftables: rc=$rc $out"
out=$(bad_start ZTUNNEL_BPF_CGROUP="$TBDIR/no-such-cgroup")
rc=$?
[ $rc -ne 0 ] && [[ "$out" == *"ZTUNNEL_BPF_SOCKMAP=true: opening the cgroup v2 root $TBDIR/no-such-cgroup"* ]] ||
	tb_fail "sockmap with a missing cgroup: rc=$rc $out"
tb_log "ok: unusable settings stop the agent at start-up: $out"

# stopping the agents detaches everything, a SIGKILL too (nothing is pinned)
p1=$(prog_ids "$(tb_agent_pid node1)") p2=$(prog_ids "$(tb_agent_pid node2)")
tb_agent_stop node1
tb_agent_stop node2 KILL
attached=$(bpftool -j cgroup show "$CG" effective 2>/dev/null)
for id in $p1 $p2; do
	grep -q "\"id\":$id," <<<"$attached" && tb_fail "program $id is still attached to $CG after the agents stopped"
done
tb_log "ok: no program of the stopped agents (one SIGTERMed, one SIGKILLed) stays attached to $CG"
tb_pass "sockmap fast path"
