#!/usr/bin/env bash
# Testbed self-test (no agent): two nodes, three pods; ping and TCP between every pair of pods;
# after cleanup no namespace with the testbed's prefix is left.
set -u
TB_NEED_AGENT=0
. "$(dirname "$0")/lib.sh"

if [ "${1:-}" != inner ]; then
	# Run the testbed in a child so we can check what its cleanup leaves behind.
	out=$(bash "$0" inner 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ $rc -eq 0 ] || { echo "FAIL: inner testbed run rc=$rc"; exit 1; }
	tb=$(printf '%s\n' "$out" | sed -n 's/.*testbed \(zt[0-9a-z]*\) in \(.*\)$/\1 \2/p' | head -1)
	[ -n "$tb" ] || { echo "FAIL: no testbed name in output"; exit 1; }
	set -- $tb
	left=$(ip netns list | awk '{print $1}' | grep -c "^$1-")
	[ "$left" -eq 0 ] || { echo "FAIL: $left netns with prefix $1- left"; exit 1; }
	[ ! -e "$2" ] || { echo "FAIL: $2 left"; exit 1; }
	echo "ok: cleanup left no netns with prefix $1- and removed $2"
	echo "PASS: testbed"
	exit 0
fi

tb_init
tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 a 10.201.1.2
tb_pod node1 b 10.201.1.3
tb_pod node2 c 10.201.2.2
tb_log "link devices: $TB_LINK_A $TB_LINK_B"

pods=(a b c)
for p in "${pods[@]}"; do
	tb_bg "$p" socat TCP-LISTEN:7000,reuseaddr,fork SYSTEM:"echo pong-$p"
	tb_bg "$p" "$PY" "$TB_PEERS/whoami_server.py" --port 8080 --name "$p"
done
for p in "${pods[@]}"; do
	tb_wait_port "$p" 7000
	tb_wait_port "$p" 8080
done

for s in "${pods[@]}"; do
	for d in "${pods[@]}"; do
		[ "$s" = "$d" ] && continue
		dip=${TB_POD_IP[$d]}
		if command -v ping >/dev/null; then
			tb_check "ping $s -> $d ($dip)" tb_exec "$s" ping -c1 -W2 -q "$dip" >/dev/null
		else
			tb_log "no ping installed (iputils-ping): ICMP check skipped"
		fi
		out=$(tb_exec "$s" timeout 5 socat -T3 - "TCP:$dip:7000" </dev/null)
		[ "$out" = "pong-$d" ] || tb_fail "TCP $s -> $d: got '$out'"
		tb_log "ok: TCP (socat) $s -> $d: $out"
		out=$(tb_exec "$s" timeout 5 curl -sS --max-time 4 "http://$dip:8080/x")
		[[ "$out" == *"peer=${TB_POD_IP[$s]}:"* && "$out" == *"server=$d"* ]] ||
			tb_fail "TCP (curl to whoami) $s -> $d: got '$out'"
		tb_log "ok: curl $s -> $d sees peer ${TB_POD_IP[$s]}"
	done
done
# the link device names fit IFNAMSIZ and exist in the node netns
tb_check "link device $TB_LINK_A exists in node1" tb_exec_node node1 ip link show "$TB_LINK_A" >/dev/null
tb_pass "testbed: all pods reach each other"
