#!/usr/bin/env bash
# `make demo`: a guided tour of ztunnel-c on a two-node sandbox made of network namespaces.
# Pods talk HTTP before and after joining the mesh; the demo shows who reached whom, under which
# SPIFFE identities, what crossed the wire between the nodes and what the server saw.
set -u -o pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
# shellcheck source=tests/e2e/lib.sh
source tests/e2e/lib.sh

PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
CLIENT_IP=10.201.1.2
NEIGHBOR_IP=10.201.1.3
SERVER_IP=10.201.2.2
PORT=8080
LOGS=$ROOT/build/demo-logs
MARKER="demo-secret-$RANDOM$RANDOM"
SA=spiffe://cluster.local/ns/default/sa
PROBLEMS=()
CAPTURE_PIDS=()

section() { printf '\n== %s\n' "$*"; }
say() { printf '   %s\n' "$*"; }
problem() { PROBLEMS+=("$*"); printf '   !! %s\n' "$*"; }

poll() {	# TIMEOUT cmd...: every 100 ms until cmd succeeds; 1 at the deadline
	local end=$((SECONDS + $1)); shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}
has_line() { grep -Eq -- "$2" "$1" 2>/dev/null; }

build_sandbox() {
	section "1. The sandbox: two nodes, three pods (network namespaces named $TB-*)"
	tb_node node1 1
	tb_node node2 2
	tb_link node1 node2
	tb_pod node1 client "$CLIENT_IP"
	tb_pod node1 neighbor "$NEIGHBOR_IP"
	tb_pod node2 server "$SERVER_IP"
	say "node1: pod 'client'   $CLIENT_IP   (service account client)"
	say "node1: pod 'neighbor' $NEIGHBOR_IP   (service account neighbor)"
	say "node2: pod 'server'   $SERVER_IP   (service account server)"
	say "node1 <-> node2 are joined by one virtual cable ($TB_LINK_A <-> $TB_LINK_B)"
}

start_web() {	# POD NAME
	mkdir -p "$TBDIR/www-$1"
	echo "hello from the $1 pod; secret marker: $MARKER" >"$TBDIR/www-$1/hello.txt"
	tb_bg "$1" "$PYTHON" -u -m http.server "$PORT" --bind 0.0.0.0 \
		--directory "$TBDIR/www-$1" >"$TBDIR/web-$1.log" 2>&1
	tb_wait_port "$1" "$PORT"
}

# capture_start NAME NETNS_NAME DEVICE: tcpdump into $TBDIR/NAME.pcap, waits until it listens
capture_start() {
	tb_bg "$2" tcpdump --immediate-mode -i "$3" -U -n -s 0 -w "$TBDIR/$1.pcap" tcp \
		>"$TBDIR/$1.tcpdump.log" 2>&1
	CAPTURE_PIDS+=("$TB_BG_PID")
	poll 10 has_line "$TBDIR/$1.tcpdump.log" "listening on" ||
		problem "tcpdump on $3 did not start"
}

capture_stop() {
	local pid
	for pid in "${CAPTURE_PIDS[@]}"; do
		kill -INT "$pid" 2>/dev/null
		poll 5 tb_dead "$pid" || kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	CAPTURE_PIDS=()
}
tb_dead() { ! kill -0 "$1" 2>/dev/null; }

pcap_count() { tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l; }	# FILE FILTER
pcap_has_marker() { grep -aq -- "$MARKER" "$1"; }

# fetch FROM_POD TO_IP LABEL: curl hello.txt, report, return 0 if the body came back
fetch() {
	local out=$TBDIR/curl-$3.out
	if tb_exec "$1" curl -sS --max-time 10 -o "$out" -w '%{http_code}' \
		-H "X-Demo-Marker: $MARKER" "http://$2:$PORT/hello.txt" >"$out.code" 2>"$out.err" &&
		grep -q "$MARKER" "$out"; then
		say "$1 -> $2:$PORT  HTTP $(cat "$out.code"): \"$(cut -c1-40 "$out")...\""
		return 0
	fi
	problem "$1 -> $2:$PORT failed: $(cat "$out.err" "$out.code" 2>/dev/null | tr '\n' ' ')"
	return 1
}

before_mesh() {
	section "2. Before the mesh: plain HTTP between pods"
	start_web server
	start_web neighbor
	say "python3 -m http.server listens on port $PORT in 'server' and 'neighbor'"
	capture_start plain node1 "$TB_LINK_A"
	fetch client "$SERVER_IP" plain
	capture_stop
	if pcap_has_marker "$TBDIR/plain.pcap"; then
		say "on the node link: $(pcap_count "$TBDIR/plain.pcap" "tcp port $PORT") packets" \
			"to/from port $PORT, and the secret marker is readable in the capture."
		say "(anyone on the wire between the nodes can read this traffic)"
	else
		problem "the marker should be visible in the plaintext capture, but is not"
	fi
}

write_mesh() {
	local pod ip node
	{
		echo "workloads:"
		for pod in client:$CLIENT_IP:node1 neighbor:$NEIGHBOR_IP:node1 server:$SERVER_IP:node2
		do
			IFS=: read -r pod ip node <<<"$pod"
			printf -- '- {uid: "Kubernetes//Pod/default/%s", name: %s, namespace: default, ' \
				"$pod" "$pod"
			printf 'serviceAccount: %s, workloadIps: ["%s"], protocol: HBONE, node: %s}\n' \
				"$pod" "$ip" "$node"
		done
	} | tb_config mesh.yaml
}

join_mesh() {
	section "3. Joining the mesh"
	write_mesh
	say "a fresh CA was created for this run: $TBDIR/ca.pem"
	tb_agent node1 mesh.yaml
	tb_agent node2 mesh.yaml
	# shellcheck disable=SC2154 # set by tb_agent
	say "started one ztunnel-c agent per node (pids $TB_AGENT_PID_node1, $TB_AGENT_PID_node2)"
	tb_enroll node1 client default client
	tb_enroll node1 neighbor default neighbor
	tb_enroll node2 server default server
	say "the CNI plugin enrolled client, neighbor and server: each pod's TCP traffic is now"
	say "redirected to its node's agent (listeners 15001/15006/15008 inside the pod)"
}

in_mesh() {
	section "4. In the mesh: the same requests again"
	capture_start link node1 "$TB_LINK_A"
	capture_start neighbor neighbor eth0
	fetch client "$SERVER_IP" server
	fetch client "$NEIGHBOR_IP" neighbor
	capture_stop
}

# access_log NODE_LOG: "connection complete" lines for port $PORT, as
# "direction src dst src_identity dst_identity bytes_sent bytes_recv"
access_log() {
	"$PYTHON" - "$1" "$PORT" <<-'EOF'
		import re, sys
		kv = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)')
		for line in open(sys.argv[1], errors="replace"):
		    if 'msg="connection complete"' not in line:
		        continue
		    f = {k: v.strip('"') or "-" for k, v in kv.findall(line)}
		    if not f.get("dst.addr", "").endswith(":" + sys.argv[2]):
		        continue
		    print(" ".join(f.get(k, "?") for k in ("direction", "src.addr", "dst.addr",
		          "src.identity", "dst.identity", "bytes_sent", "bytes_recv")))
	EOF
}

show_access_log() {
	access_log "$1" | awk '{
		printf "      %-8s %s -> %s  (%s bytes from the client, %s back)\n", $1, $2, $3, $7, $6
		printf "               client identity %s\n               server identity %s\n", $4, $5
	}'
}

has_complete() {	# LOG COUNT: at least COUNT connection-complete lines for our port
	[ "$(access_log "$1" | wc -l)" -ge "$2" ]
}

logged() {	# LOG DIRECTION SRC_ID DST_ID: such a connection-complete line exists
	access_log "$1" | awk -v d="$2" -v s="$3" -v t="$4" '
		$1 == d && $4 == s && $5 == t {found = 1} END {exit !found}'
}

explain_identities() {
	local log1=$TBDIR/agent-node1.log log2=$TBDIR/agent-node2.log id
	section "5. Who talked to whom (from the agents' access logs)"
	# connection-complete lines are written when connections end: give them a moment
	poll 10 has_complete "$log1" 3
	poll 10 has_complete "$log2" 1
	say "node1's agent (client's side, and neighbor's side):"
	show_access_log "$log1"
	say "node2's agent (server's side):"
	show_access_log "$log2"
	for id in server neighbor; do
		logged "$log1" outbound "$SA/client" "$SA/$id" ||
			problem "node1's agent logged no outbound client -> $id with both identities"
	done
	logged "$log1" inbound "$SA/client" "$SA/neighbor" ||
		problem "node1's agent logged no inbound client -> neighbor with both identities"
	logged "$log2" inbound "$SA/client" "$SA/server" ||
		problem "node2's agent logged no inbound client -> server with both identities"
	say "each side proved its identity with a certificate from the mesh CA (mutual TLS);"
	say "spiffe://cluster.local/ns/default/sa/<name>: trust domain, namespace, service account"
}

explain_wire() {
	local total hbone app
	section "6. What crossed the wire"
	total=$(pcap_count "$TBDIR/link.pcap" "tcp")
	hbone=$(pcap_count "$TBDIR/link.pcap" "tcp port 15008")
	app=$(pcap_count "$TBDIR/link.pcap" "tcp port $PORT")
	say "node link: $total TCP packets, $hbone of them to/from port 15008 (HBONE: TLS 1.3 +"
	say "HTTP/2 CONNECT), $app to/from port $PORT"
	[ "$hbone" -gt 0 ] || problem "no HBONE packets on the node link"
	[ "$app" -eq 0 ] || problem "plain port-$PORT packets crossed the node link"
	if pcap_has_marker "$TBDIR/link.pcap"; then
		problem "the secret marker is readable on the node link"
	else
		say "the secret marker appears nowhere in the capture: the bytes were encrypted"
	fi
	hbone=$(pcap_count "$TBDIR/neighbor.pcap" "tcp port 15008")
	app=$(pcap_count "$TBDIR/neighbor.pcap" "tcp port $PORT")
	say "same node (client -> neighbor, neighbor's eth0): $hbone packets on port 15008," \
		"$app on port $PORT"
	if pcap_has_marker "$TBDIR/neighbor.pcap"; then
		problem "the marker is readable on neighbor's eth0"
	fi
	[ "$hbone" -gt 0 ] || problem "client -> neighbor did not use HBONE"
}

explain_server_view() {
	local pod seen
	section "7. What the servers saw"
	for pod in server neighbor; do
		seen=$(awk '/GET \/hello.txt/ {a = $1} END {print a}' "$TBDIR/web-$pod.log")
		say "$pod's HTTP server logged the last request as coming from ${seen:-nobody}"
		[ "$seen" = "$CLIENT_IP" ] ||
			problem "$pod saw ${seen:-no request}, expected the client pod's $CLIENT_IP"
	done
	say "the agent next to the server connected to the app with the client pod's own IP,"
	say "so applications and their logs see the real caller, as without a mesh"
}

save_logs() {
	cp "$TBDIR"/agent-*.log "$TBDIR"/web-*.log "$TBDIR"/*.pcap "$TBDIR/mesh.yaml" "$LOGS/" \
		2>/dev/null
}

# On any exit: keep the logs, tear down, and on failure show where the testbed stopped.
demo_exit() {
	local rc=$?
	[ -n "$TBDIR" ] && [ -d "$TBDIR" ] && save_logs
	capture_stop
	tb_cleanup
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		echo >&3
		echo "The demo stopped early (exit $rc). Last lines of $LOGS/testbed.log:" >&3
		tail -8 "$LOGS/testbed.log" | sed 's/^/   | /' >&3
	fi
	exit "$rc"
}

main() {
	rm -rf "$LOGS"
	mkdir -p "$LOGS"
	# the testbed's own progress lines go to a file; this script's story goes to stdout
	exec 3>&2 2>"$LOGS/testbed.log"
	tb_init
	trap demo_exit EXIT
	echo "ztunnel-c demo (testbed $TB)"
	build_sandbox
	before_mesh
	join_mesh
	in_mesh
	explain_identities
	explain_wire
	explain_server_view
	save_logs
	section "8. Tearing down"
	capture_stop
	tb_cleanup
	trap - EXIT
	say "agents stopped, namespaces deleted; logs and captures kept in $LOGS"
	if [ ${#PROBLEMS[@]} -gt 0 ]; then
		echo
		echo "DEMO FAILED: ${#PROBLEMS[@]} problem(s):"
		printf '  - %s\n' "${PROBLEMS[@]}"
		exit 1
	fi
	echo
	echo "Demo complete: pods reached each other only through mutually authenticated, encrypted"
	echo "HBONE tunnels, and the applications did not have to change."
}

main "$@"
