#!/usr/bin/env bash
# Service load balancing with real connections (peers/lb_client.py from the enrolled client):
# (1) Standard: 1,000 connections to a service with 3 equal endpoints reach each within
#     333 +- 100 (binomial sd ~15: a real skew fails, chance does not);
# (2) capacity 1:1:3: the heavy endpoint gets 600 +- 100, the others 200 +- 80;
# (3) Failover [Region, Zone]: every connection stays on the endpoint in the client's zone while
#     it is healthy, (4) moves to the next best (same region) when it is Unhealthy, and an
#     unhealthy endpoint is never picked by an OnlyHealthy service.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
CFG=$TBDIR/cfg.yaml
gen_cfg() {	# CAPACITY_OF_EP3 STATUS_OF_EP1
	cat <<EOF2
services:
- {name: web, namespace: default, hostname: web.default.svc.cluster.local,
   vips: ["/10.96.0.40"], ports: {80: 8080}}
- {name: near, namespace: default, hostname: near.default.svc.cluster.local,
   vips: ["/10.96.0.41"], ports: {80: 8080},
   loadBalancer: {mode: Failover, routingPreferences: [Region, Zone], healthPolicy: OnlyHealthy}}
workloads:
- {uid: "Kubernetes//Pod/default/client", name: client, namespace: default,
   serviceAccount: client, workloadIps: ["10.201.1.2"], protocol: HBONE, node: node1,
   locality: {region: r1, zone: z1}}
- {uid: "Kubernetes//Pod/default/ep1", name: ep1, namespace: default, serviceAccount: server,
   workloadIps: ["10.201.2.11"], protocol: HBONE, node: node2, status: $2,
   locality: {region: r1, zone: z1}, services: &svcs {"default/web.default.svc.cluster.local":
   {80: 8080}, "default/near.default.svc.cluster.local": {80: 8080}}}
- {uid: "Kubernetes//Pod/default/ep2", name: ep2, namespace: default, serviceAccount: server,
   workloadIps: ["10.201.2.12"], protocol: HBONE, node: node2,
   locality: {region: r1, zone: z2}, services: *svcs}
- {uid: "Kubernetes//Pod/default/ep3", name: ep3, namespace: default, serviceAccount: server,
   workloadIps: ["10.201.2.13"], protocol: HBONE, node: node2, capacity: $1,
   locality: {region: r2, zone: z3}, services: *svcs}
EOF2
}
gen_cfg 1 Healthy >"$CFG"
tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
for i in 1 2 3; do tb_pod node2 ep$i 10.201.2.1$i; done
tb_agent node1 "$CFG"
tb_agent node2 "$CFG"
tb_enroll node1 client default client
for i in 1 2 3; do tb_enroll node2 ep$i default ep$i; done
tb_wait_port client 15001
for i in 1 2 3; do tb_wait_port ep$i 15008; tb_whoami ep$i 8080; done

run() {	# VIP COUNT: lb_client's counts in C_ep1.. C_failed
	local out
	out=$(tb_exec client timeout 120 "$PY" "$TB_PEERS/lb_client.py" --connect "$1:80" \
		--count "$2" --parallel 8) || tb_fail "lb_client.py to $1 failed"
	C_ep1=0 C_ep2=0 C_ep3=0 C_failed=0
	while read -r name n; do printf -v "C_$name" %s "$n"; done <<<"$out"
	SEEN="ep1=$C_ep1 ep2=$C_ep2 ep3=$C_ep3 failed=$C_failed"
	[ "$C_failed" -eq 0 ] || tb_fail "$2 connections to $1: $SEEN"
}
within() { [ "$1" -ge $(($2 - $3)) ] && [ "$1" -le $(($2 + $3)) ]; }

run 10.96.0.40 1000
for c in "$C_ep1" "$C_ep2" "$C_ep3"; do
	within "$c" 333 100 || tb_fail "(1) Standard, equal capacity: $SEEN (want 333 +- 100 each)"
done
tb_log "ok: (1) Standard, 1,000 connections over 3 equal endpoints: $SEEN"

tb_reload_config "ep3 capacity 3" "$CFG" < <(gen_cfg 3 Healthy)
run 10.96.0.40 1000
within "$C_ep3" 600 100 && within "$C_ep1" 200 80 && within "$C_ep2" 200 80 ||
	tb_fail "(2) capacity 1:1:3: $SEEN (want 200/200/600)"
tb_log "ok: (2) capacity 1:1:3: $SEEN"

run 10.96.0.41 200
[ "$C_ep1" -eq 200 ] || tb_fail "(3) Failover left the client's zone while ep1 is healthy: $SEEN"
tb_log "ok: (3) Failover [Region, Zone]: all 200 in the client's zone: $SEEN"

tb_reload_config "ep1 unhealthy" "$CFG" < <(gen_cfg 3 Unhealthy)
run 10.96.0.41 200
[ "$C_ep2" -eq 200 ] || tb_fail "(4) Failover did not move to the same-region ep2: $SEEN"
tb_log "ok: (4) ep1 unhealthy: Failover moved to ep2 (same region): $SEEN"
run 10.96.0.40 300
[ "$C_ep1" -eq 0 ] || tb_fail "(4) an unhealthy endpoint was picked: $SEEN"
tb_log "ok: (4) Standard skips the unhealthy ep1: $SEEN"
tb_pass "service load balancing: weighted random, capacity, failover, health"
