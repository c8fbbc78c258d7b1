#!/usr/bin/env bash
# Benchmark: plain TCP vs a stunnel mTLS tunnel vs the ceiling (HAProxy, TCP mode, splice, no
# crypto) vs ztunnel-c HBONE between the same two pods.
# One run, one testbed: client pod on node1, server pod on node2. Measures throughput (iperf3),
# request/response latency and rate, connection rate (ztbench) and agent memory; prints a table.
# Never asserts on speed; exits non-zero only when a measurement could not be made.
# Env: BENCH_SECONDS (default 5) per measurement, BENCH_HOLD (default 10000) held connections
# (BENCH_RELAY_HOLD, default 4000, through stunnel and HAProxy),
# BENCH_PARTS (default "plain stunnel haproxy bare ztunnel ebpf sockmap big") to run only some of
# the paths; ebpf = the ztunnel-c path again with ZTUNNEL_REDIRECT=ebpf (same agents, policies and
# metrics), sockmap = that with ZTUNNEL_BPF_SOCKMAP=true; big = the ztunnel-c path with 10,000
# more workloads, 1,000 services and 100 policies in the state (rr and connection rate);
# ipv6 (not in the default set) = plain TCP and the ztunnel-c path again over IPv6 on a dual-stack
# testbed (TB_DUALSTACK=1, the pods' fd00:201:I::N twins), beside the IPv4 figures;
# haproxy = the ceiling of the mesh's
# shape: the same three TCP legs (client app -> haproxy in the client pod -> haproxy in the
# server pod -> server app), zero-copy (option splice-auto), no crypto.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
# shellcheck source=tests/e2e/lib.sh
source tests/e2e/lib.sh

SECS=${BENCH_SECONDS:-5}
HOLD=${BENCH_HOLD:-10000}
# stunnel and HAProxy hold fewer: each needs two fds per connection per process, and stunnel
# refuses clients past about half its fd limit (a hard 20,000 on the machines this runs on)
RELAY_HOLD=${BENCH_RELAY_HOLD:-$((HOLD < 4000 ? HOLD : 4000))}
PARTS=" ${BENCH_PARTS:-plain stunnel haproxy bare ztunnel ebpf sockmap big} "
ZTB=$ROOT/build/ztbench
PYJ=/usr/bin/python3
CLIENT_IP=10.201.1.2
SERVER_IP=10.201.2.2
SERVER_IP6=fd00:201:2::2
ECHO_PORT=7000
IPERF_PORT=5201
LOGS=$ROOT/build/bench-logs
declare -A R=()		# R[metric,path] = value or "ERR"
ERRORS=0
STUNNEL_PIDS=()
HAPROXY_PIDS=()

say() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# poll TIMEOUT cmd...: run cmd every 100 ms until it succeeds; 1 at the deadline.
poll() {
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

record() {	# METRIC PATH VALUE (empty value = failed measurement)
	if [ -n "$3" ]; then
		R[$1,$2]=$3
	else
		R[$1,$2]=ERR
		ERRORS=$((ERRORS + 1))
	fi
}

kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2" | tail -1; }	# KEY TEXT

# iperf HOST PORT STREAMS -> Gbit/s received, or empty on failure (error in the log)
iperf() {
	local log=$LOGS/iperf-$CUR-P$3.json
	tb_exec client timeout $((SECS + 20)) iperf3 -c "$1" -p "$2" -t "$SECS" -P "$3" -J \
		--connect-timeout 5000 >"$log" 2>&1
	$PYJ - "$log" <<-'EOF' 2>>"$LOGS/errors.log"
		import json, sys
		try:
		    d = json.load(open(sys.argv[1]))
		except Exception as e:
		    sys.exit("iperf3 output unreadable: %s" % e)
		if d.get("error"):
		    sys.exit("iperf3: " + d["error"])
		r = d["end"]["sum_received"]
		open(sys.argv[1] + ".bytes", "w").write("%d\n" % r["bytes"])
		print("%.2f" % (r["bits_per_second"] / 1e9))
	EOF
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }	# PID: user+system

# cpu_per_gib PATH NODE PID TICKS_BEFORE: the process's CPU-seconds per GiB the iperf3 runs of
# PATH moved (their bytes files), or empty.
cpu_per_gib() {
	local after bytes
	[ -n "$3" ] && [ -n "$4" ] || return 0
	after=$(cpu_ticks "$3") || return 0
	bytes=$(cat "$LOGS"/iperf-"$1"-P*.json.bytes 2>/dev/null | awk '{s += $1} END {print s + 0}')
	awk -v t=$((after - $4)) -v hz="$(getconf CLK_TCK)" -v b="$bytes" \
		'BEGIN { if (b > 0) printf "%.2f", (t / hz) / (b / 1073741824) }'
}

ztb() {	# ztbench args... ; stdout is the result line, stderr goes to the log
	tb_exec client timeout $((SECS + 30)) "$ZTB" "$@" 2>>"$LOGS/ztbench-$CUR.log"
}

# measure PATH HOST ECHO_PORT IPERF_PORT [PID1 PID2]: the traffic measurements of one path;
# with the proxies' pids (node1 side, node2 side), also their CPU-seconds per GiB of iperf3.
measure() {
	local p=$1 host=$2 eport=$3 iport=$4 out c1 c2
	CUR=$p
	c1=$(cpu_ticks "${5:-0}") c2=$(cpu_ticks "${6:-0}")
	say "[$p] iperf3, 1 stream, ${SECS}s"
	record tput_1stream_Gbps "$p" "$(iperf "$host" "$iport" 1)"
	say "[$p] iperf3, 4 streams, ${SECS}s"
	record tput_4stream_Gbps "$p" "$(iperf "$host" "$iport" 4)"
	if [ -n "${5:-}" ]; then
		record cpu_s_per_GiB_node1 "$p" "$(cpu_per_gib "$p" node1 "$5" "$c1")"
		record cpu_s_per_GiB_node2 "$p" "$(cpu_per_gib "$p" node2 "$6" "$c2")"
	fi
	say "[$p] request/response at 1000/s, ${SECS}s"
	out=$(ztb rr "$host" "$eport" --rate 1000 --duration "$SECS")
	record rr1000_p50_us "$p" "$(kv p50_us "$out")"
	record rr1000_p99_us "$p" "$(kv p99_us "$out")"
	say "[$p] request/response at max rate, ${SECS}s"
	out=$(ztb rr "$host" "$eport" --rate 0 --duration "$SECS")
	record rrmax_rps "$p" "$(kv rps "$out")"
	record rrmax_p50_us "$p" "$(kv p50_us "$out")"
	record rrmax_p99_us "$p" "$(kv p99_us "$out")"
	say "[$p] new connection per request, 4 threads, ${SECS}s"
	out=$(ztb conn "$host" "$eport" --duration "$SECS" --concurrency 4)
	record conn_per_s "$p" "$(kv conns_per_sec "$out")"
	record conn_failures "$p" "$(kv failures "$out")"
	record conn_early_eagain "$p" "$(kv early_eagain "$out")"
	say "[$p] done: $(for m in tput_1stream_Gbps tput_4stream_Gbps rr1000_p50_us rrmax_rps \
		conn_per_s; do printf '%s=%s ' "$m" "${R[$m,$p]}"; done)"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# per_conn_kb HELD_KB BEFORE_KB N: kB per held connection (1 decimal), or empty
per_conn_kb() {
	awk -v h="$1" -v b="$2" -v n="$3" 'BEGIN {
		if (h ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && n + 0 > 0) printf "%.1f", (h - b) / n }'
}

# real_agent_pid NODE: the ztunnel process (the recorded pid, or a descendant if a wrapper forked)
real_agent_pid() {
	local v="TB_AGENT_PID_$1" pid kids
	pid=${!v:-}
	for _ in 1 2 3; do
		[ -n "$pid" ] || return 1
		if [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */ztunnel ]]; then
			echo "$pid"
			return 0
		fi
		kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null)
		pid=${kids%% *}
	done
	return 1
}

hold_ready_or_gone() { grep -q '^ready' "$1" || tb__dead_pid "$2"; }

# hold_and_sample PATH HOST PORT COUNT [PID1 PID2]: hold COUNT connections, sample RSS meanwhile;
# with the proxies' pids also kB per held connection, then RSS and open fds 10 s after close.
hold_and_sample() {
	local p=$1 out=$LOGS/hold-$1.out hpid b1 b2 held n=$4
	say "[$p] holding $n connections"
	if [ -n "$5" ]; then
		b1=$(rss_kb "$5") b2=$(rss_kb "$6")
		record fds_node1_idle "$p" "$(fd_count "$5")"
		record fds_node2_idle "$p" "$(fd_count "$6")"
	fi
	tb_bg client timeout 120 "$ZTB" hold "$2" "$3" --count "$n" --seconds 3 \
		>"$out" 2>"$LOGS/hold-$p.err"
	hpid=$TB_BG_PID
	if poll 60 hold_ready_or_gone "$out" "$hpid" && grep -q '^ready' "$out"; then
		if [ -n "$5" ]; then
			record rss_node1_held_kB "$p" "$(rss_kb "$5")"
			record rss_node2_held_kB "$p" "$(rss_kb "$6")"
		fi
	else
		say "[$p] hold failed: $(tail -1 "$LOGS/hold-$p.err")"
		ERRORS=$((ERRORS + 1))
	fi
	poll 30 tb__dead_pid "$hpid"
	wait "$hpid" 2>/dev/null
	held=$(kv held "$(tail -1 "$out")")
	record held_conns "$p" "$held"
	[ -n "$5" ] || return 0
	record conn_kB_node1 "$p" "$(per_conn_kb "${R[rss_node1_held_kB,$p]:-}" "$b1" "$held")"
	record conn_kB_node2 "$p" "$(per_conn_kb "${R[rss_node2_held_kB,$p]:-}" "$b2" "$held")"
	sleep 10	# the figure is defined as "10 s after they close"
	record rss_node1_after_kB "$p" "$(rss_kb "$5")"
	record rss_node2_after_kB "$p" "$(rss_kb "$6")"
	record fds_node1_after "$p" "$(fd_count "$5")"
	record fds_node2_after "$p" "$(fd_count "$6")"
}
# measure_proxy PATH HOST ECHO_PORT IPERF_PORT HOLD_COUNT PID1 PID2: a proxied path's figures:
# the proxies' idle RSS, the traffic measurements, then the held connections.
measure_proxy() {
	record rss_node1_idle_kB "$1" "$(rss_kb "$6")"
	record rss_node2_idle_kB "$1" "$(rss_kb "$7")"
	measure "$1" "$2" "$3" "$4" "$6" "$7"
	hold_and_sample "$1" "$2" "$3" "$5" "$6" "$7"
}
tb__dead_pid() { ! kill -0 "$1" 2>/dev/null; }

stunnel_conf() {	# NAME: common part of a stunnel config
	cat <<-EOF
		foreground = yes
		pid =
		output = $LOGS/stunnel-$1.log
		debug = 4
		socket = l:TCP_NODELAY=1
		socket = r:TCP_NODELAY=1
		cert = $TBDIR/st-$1.pem
		key = $TBDIR/st-$1.key
		CAfile = $TBDIR/ca.pem
		verifyChain = yes
		sslVersionMin = TLSv1.3
		sslVersionMax = TLSv1.3
	EOF
}

start_stunnel() {	# POD NAME CONF
	tb_bg "$1" stunnel "$3" >>"$LOGS/stunnel-$2.log" 2>&1
	STUNNEL_PIDS+=("$TB_BG_PID")
	# stunnel 5.68 may crash in its shutdown path after many threads (pthread_join
	# failed): not ours to report, so the shell must not announce it
	disown "$TB_BG_PID"
}

stop_stunnels() {
	local pid
	for pid in "${STUNNEL_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		poll 5 tb__dead_pid "$pid" || kill -KILL "$pid" 2>/dev/null
	done
	STUNNEL_PIDS=()
HAPROXY_PIDS=()
}

bench_cleanup() { stop_stunnels; stop_haproxies; tb_cleanup; }

setup_testbed() {
	local pod
	tb_node node1 1
	tb_node node2 2
	tb_link node1 node2
	tb_pod node1 client "$CLIENT_IP"
	tb_pod node2 server "$SERVER_IP"
	# connection-rate runs leave many TIME_WAIT sockets: let connect() reuse them, and
	# widen the ephemeral range, above the agent's 150xx ports (a TIME_WAIT socket on
	# 15001 would make its listener's bind fail); the relays' listening ports are kept out of it
	for pod in client server; do
		tb_exec "$pod" sysctl -qw net.ipv4.tcp_tw_reuse=1 \
			net.ipv4.ip_local_port_range="16000 65000" \
			net.ipv4.ip_local_reserved_ports="17000,25201,27000" || tb_fail "sysctl in $pod"
	done
	tb_bg server "$ZTB" echo-server "$ECHO_PORT" --duration 600 >"$LOGS/echo-server.log" 2>&1
	tb_bg server iperf3 -s -p "$IPERF_PORT" >"$LOGS/iperf3-server.log" 2>&1
	tb_wait_port server "$ECHO_PORT"
	tb_wait_port server "$IPERF_PORT"
}

run_stunnel() {
	local p name
	for name in client server; do
		"$ZT" cert-issue "$TBDIR/ca.pem" "$TBDIR/ca.key" \
			"spiffe://cluster.local/ns/default/sa/$name" "$TBDIR/st-$name.pem" \
			"$TBDIR/st-$name.key" >>"$LOGS/errors.log" 2>&1 ||
			tb_fail "cert-issue for stunnel failed (see $LOGS/errors.log)"
	done
	{ stunnel_conf server; printf '[echo]\naccept = 7443\nconnect = 127.0.0.1:%s\n' \
		"$ECHO_PORT"; printf '[iperf]\naccept = 5443\nconnect = 127.0.0.1:%s\n' \
		"$IPERF_PORT"; } >"$TBDIR/stunnel-server.conf"
	{ stunnel_conf client; echo "client = yes"; printf '[echo]\naccept = 127.0.0.1:17000\n'`
		`'connect = %s:7443\n[iperf]\naccept = 127.0.0.1:15201\nconnect = %s:5443\n' \
		"$SERVER_IP" "$SERVER_IP"; } >"$TBDIR/stunnel-client.conf"
	start_stunnel server server "$TBDIR/stunnel-server.conf"
	start_stunnel client client "$TBDIR/stunnel-client.conf"
	for p in 7443 5443; do tb_wait_port server $p; done
	for p in 17000 15201; do tb_wait_port client $p; done
	measure_proxy stunnel 127.0.0.1 17000 15201 "$RELAY_HOLD" "${STUNNEL_PIDS[1]}" \
		"${STUNNEL_PIDS[0]}"
	stop_stunnels
}

# The ceiling: HAProxy in TCP mode with splice on the mesh's three legs, as stunnel's layout.
haproxy_conf() {	# LISTEN_ECHO LISTEN_IPERF TARGET_HOST TARGET_ECHO TARGET_IPERF
	cat <<-EOF
		global
		    maxconn $RELAY_HOLD
		    nbthread 2
		defaults
		    mode tcp
		    option splice-auto
		    timeout connect 5s
		    timeout client 120s
		    timeout server 120s
		listen echo
		    bind $1
		    server s1 $3:$4
		listen iperf
		    bind $2
		    server s1 $3:$5
	EOF
}

start_haproxy() {	# POD NAME CONF
	tb_bg "$1" haproxy -db -f "$3" >>"$LOGS/haproxy-$2.log" 2>&1
	HAPROXY_PIDS+=("$TB_BG_PID")
}

stop_haproxies() {
	local pid
	for pid in "${HAPROXY_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		poll 5 tb__dead_pid "$pid" || kill -KILL "$pid" 2>/dev/null
	done
	HAPROXY_PIDS=()
}

run_haproxy() {
	local p
	haproxy_conf "$SERVER_IP:7444" "$SERVER_IP:5444" 127.0.0.1 "$ECHO_PORT" "$IPERF_PORT" \
		>"$TBDIR/haproxy-server.cfg"
	haproxy_conf 127.0.0.1:27000 127.0.0.1:25201 "$SERVER_IP" 7444 5444 \
		>"$TBDIR/haproxy-client.cfg"
	start_haproxy server server "$TBDIR/haproxy-server.cfg"
	start_haproxy client client "$TBDIR/haproxy-client.cfg"
	for p in 7444 5444; do tb_wait_port server $p; done
	for p in 27000 25201; do tb_wait_port client $p; done
	measure_proxy haproxy 127.0.0.1 27000 25201 "$RELAY_HOLD" "${HAPROXY_PIDS[1]}" \
		"${HAPROXY_PIDS[0]}"
	stop_haproxies
}

# write_mesh [policies]: the two pods; with "policies", the L4 policies a real mesh would carry
# (namespace ALLOW by principal, a DENY on other ports and sources, STRICT mTLS), all evaluated
# for every connection the bench makes.
write_mesh() {
	local V6_CLIENT="" V6_SERVER=""
	[ "$TB_DUALSTACK" = 1 ] && V6_CLIENT=", \"$(tb_ip6 "$CLIENT_IP")\"" &&
		V6_SERVER=", \"$SERVER_IP6\""
	tb_config mesh.yaml <<-EOF
		workloads:
		- uid: "Kubernetes//Pod/default/client"
		  name: client
		  namespace: default
		  serviceAccount: client
		  workloadIps: ["$CLIENT_IP"$V6_CLIENT]
		  protocol: HBONE
		  node: node1
		- uid: "Kubernetes//Pod/default/server"
		  name: server
		  namespace: default
		  serviceAccount: server
		  workloadIps: ["$SERVER_IP"$V6_SERVER]
		  protocol: HBONE
		  node: node2
		  authorizationPolicies: ["default/allow-client"]
	EOF
	[ "${1:-}" = policies ] || return 0
	cat >>"$TBDIR/mesh.yaml" <<-EOF
		policies:
		- {name: deny-other-ports, namespace: default, scope: Namespace, action: Deny,
		   rules: [[[{notDestinationPorts: [$ECHO_PORT, $IPERF_PORT]}]]]}
		- {name: deny-foreign-sources, namespace: default, scope: Global, action: Deny,
		   rules: [[[{notSourceIps: ["10.201.0.0/16", "fd00:201::/32"]}]]]}
		- {name: allow-client, namespace: default, scope: WorkloadSelector, action: Allow,
		   rules: [[[{principals: ["cluster.local/ns/default/sa/client"]},
		             {namespaces: ["default"]}]]]}
		peerAuthentications:
		- {name: default, namespace: istio-system, mode: STRICT}
	EOF
}

# big_state FILE: appends 10,000 workloads (on no node of the testbed, one IP each) in 1,000
# services with a VIP each, and 100 namespace policies, to the mesh config: the state of a
# cluster, which the look-ups per connection must not notice.
big_state() {
	python3 - "$1" <<-'PYEOF'
		import sys
		path = sys.argv[1]
		text = open(path).read()
		w, s, p = [], [], []
		for i in range(10000):
		    k = i % 1000
		    w.append('- {uid: "Kubernetes//Pod/bulk-%d/w-%d", name: w-%d, namespace: bulk-%d, '
		             'serviceAccount: sa-%d, workloadIps: ["10.%d.%d.%d"], protocol: HBONE, '
		             'node: node9, services: {"bulk-%d/svc-%d.bulk-%d.svc.cluster.local": {80: 8080}}}'
		             % (k % 100, i, i, k % 100, k, 220 + i // 65536, i // 256 % 256, i % 256,
		                k % 100, k, k % 100))
		for k in range(1000):
		    s.append('- {name: svc-%d, namespace: bulk-%d, hostname: svc-%d.bulk-%d.svc.cluster.local, '
		             'vips: ["/10.230.%d.%d"], ports: {80: 8080}}' % (k, k % 100, k, k % 100,
		                                                              k // 256, k % 256))
		for n in range(100):
		    p.append('- {name: deny-%d, namespace: bulk-%d, scope: Namespace, action: Deny, '
		             'rules: [[[{destinationPorts: [9]}]]]}' % (n, n))
		def add(section, items, text):
		    head = section + ":\n"
		    if head in text:
		        return text.replace(head, head + "\n".join(items) + "\n", 1)
		    return text + head + "\n".join(items) + "\n"
		text = add("workloads", w, text)
		text = add("services", s, text)
		text = add("policies", p, text)
		open(path, "w").write(text)
	PYEOF
}

# The ztunnel-c path again with that big state: connection rate and request/response latency.
run_ztunnel_big() {
	local a1 a2 out
	stop_mesh
	write_mesh policies
	big_state "$TBDIR/mesh.yaml" || tb_fail "writing the big state"
	tb_agent node1 mesh.yaml
	tb_agent node2 mesh.yaml
	tb_enroll node1 client default client
	tb_enroll node2 server default server
	a1=$(real_agent_pid node1) || tb_fail "cannot find node1's agent process"
	a2=$(real_agent_pid node2) || tb_fail "cannot find node2's agent process"
	record rss_node1_idle_kB big "$(rss_kb "$a1")"
	record rss_node2_idle_kB big "$(rss_kb "$a2")"
	CUR=big
	say "[big] request/response at 1000/s, ${SECS}s (10,000 workloads, 1,000 services)"
	out=$(ztb rr "$SERVER_IP" "$ECHO_PORT" --rate 1000 --duration "$SECS")
	record rr1000_p50_us big "$(kv p50_us "$out")"
	record rr1000_p99_us big "$(kv p99_us "$out")"
	say "[big] new connection per request, 4 threads, ${SECS}s"
	out=$(ztb conn "$SERVER_IP" "$ECHO_PORT" --duration "$SECS" --concurrency 4)
	record conn_per_s big "$(kv conns_per_sec "$out")"
	record conn_failures big "$(kv failures "$out")"
	record conn_early_eagain big "$(kv early_eagain "$out")"
	stop_mesh
}

# The agents without policies and with ZTUNNEL_METRICS=off: what the checks and counters cost.
run_ztunnel_bare() {
	write_mesh
	ZTUNNEL_METRICS=off tb_agent node1 mesh.yaml
	ZTUNNEL_METRICS=off tb_agent node2 mesh.yaml
	tb_enroll node1 client default client
	tb_enroll node2 server default server
	measure bare "$SERVER_IP" "$ECHO_PORT" "$IPERF_PORT"
	tb_agent_stop node1
	tb_agent_stop node2
}

run_ztunnel() {	# [PATH [HOST]]: ztunnel (nftables capture), ebpf or ztunnel6 (over IPv6)
	local path=${1:-ztunnel} host=${2:-$SERVER_IP} a1 a2 n
	write_mesh policies
	tb_agent node1 mesh.yaml
	tb_agent node2 mesh.yaml
	tb_enroll node1 client default client
	tb_enroll node2 server default server
	a1=$(real_agent_pid node1) || tb_fail "cannot find node1's agent process"
	a2=$(real_agent_pid node2) || tb_fail "cannot find node2's agent process"
	measure_proxy "$path" "$host" "$ECHO_PORT" "$IPERF_PORT" "$HOLD" "$a1" "$a2"
	mkdir -p "$LOGS/$path"
	cp "$TBDIR"/agent-node*.log "$LOGS/$path/" 2>/dev/null
	for n in node1:"$a1" node2:"$a2"; do
		kill -0 "${n#*:}" 2>/dev/null && continue
		say "${n%%:*}'s agent died during the run (see $LOGS/$path/agent-${n%%:*}.log)"
		ERRORS=$((ERRORS + 1))
	done
}

# The pods leave the running agents (their rules go) and the agents stop, if any run.
stop_mesh() {
	local pid
	pid=$(tb_agent_pid node1)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	tb_unenroll node1 client default client
	tb_unenroll node2 server default server
	tb_agent_stop node1
	tb_agent_stop node2
}

# The ztunnel-c path over IPv6 (the dual-stack testbed; plain6 was measured before any agent).
run_ipv6() {
	stop_mesh
	run_ztunnel ztunnel6 "$SERVER_IP6"
	stop_mesh
}

# The same path with the eBPF capture.
run_ztunnel_ebpf() {
	stop_mesh
	export ZTUNNEL_REDIRECT=ebpf
	run_ztunnel ebpf
	unset ZTUNNEL_REDIRECT
}

# The eBPF capture with the socket fast path on the in-pod legs; keeps the agents' sockmap
# counters (how many bytes skipped TCP, how often a socket fell back to it).
run_ztunnel_sockmap() {
	local n
	stop_mesh
	export ZTUNNEL_REDIRECT=ebpf ZTUNNEL_BPF_SOCKMAP=true
	run_ztunnel sockmap
	for n in node1 node2; do
		tb_exec "$n" curl -sS --max-time 5 http://127.0.0.1:15000/config_dump 2>/dev/null |
			$PYJ -c 'import json,sys
s = json.load(sys.stdin)["redirect"]["sockmap"]
print(" ".join("%s=%s" % kv for kv in s.items()))' >"$LOGS/sockmap/counters-$n.txt" 2>&1
	done
	unset ZTUNNEL_REDIRECT ZTUNNEL_BPF_SOCKMAP
}

ratio() {	# A B -> A/B with 2 decimals, or "-"
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.2f", a / b
		else printf "-" }'
}

print_table() {
	local m p z s h n
	local metrics=(tput_1stream_Gbps tput_4stream_Gbps rr1000_p50_us rr1000_p99_us rrmax_rps
		rrmax_p50_us rrmax_p99_us conn_per_s conn_failures conn_early_eagain rss_node1_idle_kB
		rss_node2_idle_kB held_conns rss_node1_held_kB rss_node2_held_kB conn_kB_node1
		conn_kB_node2 rss_node1_after_kB rss_node2_after_kB fds_node1_idle fds_node1_after
		fds_node2_idle fds_node2_after cpu_s_per_GiB_node1 cpu_s_per_GiB_node2)
	local f='%-20s %9s %9s %9s %9s %9s %9s %9s %9s | %8s %8s %8s %8s %8s %8s %8s %8s\n'
	echo
	echo "ztunnel-c benchmark: client pod (node1) -> server pod (node2)," \
		"${SECS}s per measurement"
	echo "rss_*: node1 = client side (stunnel/haproxy client / node1 agent)," \
		"node2 = server side; plain has no proxy"
	echo "ztunnel-c = agents with policies, STRICT mTLS and metrics (nftables capture); bare = no" \
		"policies, ZTUNNEL_METRICS=off; ebpf = ztunnel-c with ZTUNNEL_REDIRECT=ebpf;" \
		"sockmap = ebpf with ZTUNNEL_BPF_SOCKMAP=true; big = ztunnel-c with 10,000 more" \
		"workloads, 1,000 services and 100 policies in its state (same run)"
	echo "haproxy = the ceiling: the same three TCP legs through HAProxy (TCP mode," \
		"splice-auto, no crypto). Ratios: z = ztunnel-c, e = ebpf, s = sockmap, h = haproxy"
	printf "$f" metric plain stunnel haproxy bare ztunnel-c ebpf sockmap big z/plain z/stunl \
		e/z s/plain s/haprx s/z h/plain big/z
	for m in "${metrics[@]}"; do
		z=${R[$m,ztunnel]:--} s=${R[$m,sockmap]:--} h=${R[$m,haproxy]:--}
		p=${R[$m,plain]:--}
		printf "$f" "$m" "$p" "${R[$m,stunnel]:--}" "$h" "${R[$m,bare]:--}" "$z" \
			"${R[$m,ebpf]:--}" "$s" "${R[$m,big]:--}" "$(ratio "$z" "$p")" \
			"$(ratio "$z" "${R[$m,stunnel]:--}")" "$(ratio "${R[$m,ebpf]:--}" "$z")" \
			"$(ratio "$s" "$p")" "$(ratio "$s" "$h")" "$(ratio "$s" "$z")" \
			"$(ratio "$h" "$p")" "$(ratio "${R[$m,big]:--}" "$z")"
	done
	if [[ $PARTS == *" ipv6 "* ]]; then
		echo
		echo "IPv6 (dual-stack testbed, nftables capture): plain6 = plain TCP over IPv6," \
			"ztunnel6 = ztunnel-c over IPv6; ztunnel-c and plain are the IPv4 figures above"
		f='%-20s %9s %9s %9s %9s | %8s %8s %8s\n'
		printf "$f" metric plain6 ztunnel6 plain ztunnel-c z6/p6 z6/z p6/p
		for m in "${metrics[@]}"; do
			printf "$f" "$m" "${R[$m,plain6]:--}" "${R[$m,ztunnel6]:--}" \
				"${R[$m,plain]:--}" "${R[$m,ztunnel]:--}" \
				"$(ratio "${R[$m,ztunnel6]:--}" "${R[$m,plain6]:--}")" \
				"$(ratio "${R[$m,ztunnel6]:--}" "${R[$m,ztunnel]:--}")" \
				"$(ratio "${R[$m,plain6]:--}" "${R[$m,plain]:--}")"
		done
	fi
	for n in node1 node2; do
		[ -s "$LOGS/sockmap/counters-$n.txt" ] &&
			echo "sockmap counters $n: $(cat "$LOGS/sockmap/counters-$n.txt")"
	done
	echo "logs: $LOGS"
}

main() {
	local start=$SECONDS
	command -v iperf3 >/dev/null || tb_skip "iperf3 missing (make deps)"
	command -v stunnel >/dev/null || tb_skip "stunnel missing (make deps)"
	command -v haproxy >/dev/null || tb_skip "haproxy missing (make deps)"
	rm -rf "$LOGS"
	mkdir -p "$LOGS" build
	if ! cc -O2 -o "$ZTB" tests/bench/ztbench.c -lpthread; then
		echo "building ztbench failed"
		exit 1
	fi
	ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
	[[ $PARTS == *" ipv6 "* ]] && TB_DUALSTACK=1
	tb_init
	trap 'bench_cleanup; print_table' EXIT
	setup_testbed
	if [[ $PARTS == *" plain "* ]]; then
		measure plain "$SERVER_IP" "$ECHO_PORT" "$IPERF_PORT"
		hold_and_sample plain "$SERVER_IP" "$ECHO_PORT" "$HOLD" "" ""
	fi
	[[ $PARTS == *" ipv6 "* ]] && measure plain6 "$SERVER_IP6" "$ECHO_PORT" "$IPERF_PORT"
	[[ $PARTS == *" stunnel "* ]] && run_stunnel
	[[ $PARTS == *" haproxy "* ]] && run_haproxy
	[[ $PARTS == *" bare "* ]] && run_ztunnel_bare
	[[ $PARTS == *" ztunnel "* ]] && run_ztunnel
	[[ $PARTS == *" ebpf "* ]] && run_ztunnel_ebpf
	[[ $PARTS == *" sockmap "* ]] && run_ztunnel_sockmap
	[[ $PARTS == *" big "* ]] && run_ztunnel_big
	[[ $PARTS == *" ipv6 "* ]] && run_ipv6
	trap - EXIT
	bench_cleanup
	print_table
	echo "total time: $((SECONDS - start))s"
	if [ "$ERRORS" -gt 0 ]; then
		echo "$ERRORS measurement(s) failed (ERR in the table); see $LOGS"
		exit 1
	fi
}

main "$@"
