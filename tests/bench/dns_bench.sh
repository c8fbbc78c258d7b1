#!/usr/bin/env bash
# DNS benchmark: queries per second and latency (dnsperf) in one run, one testbed:
#   direct     a pod outside the mesh asks dnsmasq (in a pod of node2) itself;
#   forwarded  an enrolled pod asks the same name: captured, relayed by the agent's DNS proxy;
#   mesh       an enrolled pod asks a service name: answered by the proxy itself.
# Never asserts on speed; exits non-zero only when a measurement could not be made.
# Env: BENCH_SECONDS (default 5) per measurement, BENCH_CLIENTS (default 4) dnsperf clients,
# BENCH_OUTSTANDING (default 64) queries in flight.
set -u
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/../e2e/lib.sh"
command -v dnsperf >/dev/null || tb_skip "dnsperf missing (make deps)"
command -v dnsmasq >/dev/null || tb_skip "dnsmasq missing (make deps)"
SECONDS_EACH=${BENCH_SECONDS:-5}
CLIENTS=${BENCH_CLIENTS:-4}
OUTSTANDING=${BENCH_OUTSTANDING:-64}
UPSTREAM=10.201.2.53
tb_init

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 plain 10.201.1.9
tb_pod node2 resolver "$UPSTREAM"
tb_config mesh.yaml <<'EOF'
workloads:
- {uid: "Kubernetes//Pod/default/client", name: client, namespace: default,
   serviceAccount: client, workloadIps: ["10.201.1.2"], protocol: HBONE, node: node1}
services:
- {name: web, namespace: default, hostname: web.default.svc.cluster.local,
   vips: ["/10.96.0.10"], ports: {80: 8080}}
EOF
tb_bg resolver dnsmasq --no-daemon --log-facility=- --no-resolv --no-hosts --bind-interfaces \
	--listen-address="$UPSTREAM" --port=53 --address=/outside.test/192.0.2.7 \
	>"$TBDIR/dnsmasq.log" 2>&1
tb_wait_log "$TBDIR/dnsmasq.log" 'started' 10 || tb_fail "dnsmasq did not start"
export DNS_UPSTREAMS=$UPSTREAM
ZTUNNEL_LOG=info tb_agent node1 mesh.yaml
tb_enroll node1 client default client
tb_poll 10 tb__listening client 15053 || tb_fail "no DNS listener in the client pod"

printf 'outside.test A\n' >"$TBDIR/forwarded.txt"
printf 'web.default.svc.cluster.local A\n' >"$TBDIR/mesh.txt"

# run NAME POD SERVER QUERYFILE: one dnsperf run; prints "qps avg_ms lost%"
run() {
	local out
	out=$(tb_exec "$2" timeout $((SECONDS_EACH + 30)) dnsperf -s "$3" -d "$4" \
		-l "$SECONDS_EACH" -c "$CLIENTS" -q "$OUTSTANDING" -t 2 2>&1)
	echo "$out" >"$TBDIR/dnsperf-$1.log"
	local qps avg lost
	qps=$(sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' <<<"$out")
	avg=$(sed -n 's/^ *Average Latency (s): *\([0-9.]*\).*/\1/p' <<<"$out")
	lost=$(sed -n 's/^ *Queries lost: *[0-9]* (\([0-9.]*%\)).*/\1/p' <<<"$out")
	[ -n "$qps" ] && [ -n "$avg" ] || { echo "$out" >&2; tb_fail "dnsperf $1 gave no figures"; }
	printf '%s %s %s\n' "$qps" "$(awk -v a="$avg" 'BEGIN {printf "%.3f", a * 1000}')" "$lost"
}

printf '%-10s %12s %12s %8s\n' path qps avg_ms lost
for what in direct forwarded mesh; do
	case $what in
	direct) r=$(run direct plain "$UPSTREAM" "$TBDIR/forwarded.txt") ;;
	forwarded) r=$(run forwarded client "$UPSTREAM" "$TBDIR/forwarded.txt") ;;
	mesh) r=$(run mesh client 10.96.0.53 "$TBDIR/mesh.txt") ;;
	esac
	read -r qps avg lost <<<"$r"
	printf '%-10s %12s %12s %8s\n' "$what" "$qps" "$avg" "$lost"
done
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$(tb_agent_pid node1)/status" 2>/dev/null)
tb_log "agent RSS after the runs: ${rss:-?} kB"
kill -0 "$(tb_agent_pid node1)" || tb_fail "the agent died"
