#!/usr/bin/env bash
# The sandwich rule with a waypoint that is itself in the mesh: pod wp is enrolled (identity
# sa/waypoint) and runs peers/waypoint.py on its hboneMtlsPort 15009, forwarding with plain TCP
# that node2's agent captures in wp. client -> wlserver (workload waypoint wp) reaches the
# waypoint once (x-waypoint header); the waypoint's own connection to wlserver is recognised as
# coming from the waypoint (its identity and address) and goes straight to wlserver's 15008
# instead of back to the waypoint; the app sees the waypoint's address.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
SA=cluster.local/ns/default/sa
L2=$TBDIR/agent-node2.log
WLOG=$TBDIR/waypoint.log
tb_config cfg.yaml <<'EOF2'
workloads:
- {uid: "Kubernetes//Pod/default/client", name: client, namespace: default,
   serviceAccount: client, workloadIps: ["10.201.1.2"], protocol: HBONE, node: node1}
- {uid: "Kubernetes//Pod/default/wp", name: waypoint, namespace: default,
   serviceAccount: waypoint, workloadIps: ["10.201.2.7"], protocol: HBONE, node: node2}
- {uid: "Kubernetes//Pod/default/wlserver", name: wlserver, namespace: default,
   serviceAccount: server, workloadIps: ["10.201.2.3"], protocol: HBONE, node: node2,
   waypoint: {destination: "/10.201.2.7", hboneMtlsPort: 15009}}
EOF2
tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node2 wp 10.201.2.7
tb_pod node2 wlserver 10.201.2.3
tb_agent node1 cfg.yaml
tb_agent node2 cfg.yaml
tb_enroll node1 client default client
tb_enroll node2 wp default waypoint
tb_enroll node2 wlserver default wlserver
tb_wait_port client 15001
tb_wait_port wp 15001
tb_wait_port wlserver 15008
tb_whoami wlserver 8080
tb_cert waypoint "spiffe://$SA/waypoint"
tb_bg wp "$PY" "$TB_PEERS/waypoint.py" --cert "$TBDIR/waypoint.pem" --key "$TBDIR/waypoint.key" \
	--ca "$TBDIR/ca.pem" --name wp-in-mesh --listen 0.0.0.0:15009 --plain-upstream >>"$WLOG" 2>&1
tb_wait_port wp 15009

out=$(tb_curl client http://10.201.2.3:8080/sandwich -i 2>&1) || tb_fail "curl failed: $out"
grep -qi '^x-waypoint: wp-in-mesh' <<<"$out" || tb_fail "not through the waypoint: $out"
[[ "$out" == *"peer=10.201.2.7:"*"server=wlserver"* ]] || tb_fail "the app did not see the waypoint: $out"
n=$(tb_count "$WLOG" "stream [0-9]+ identity=[^ ]+ authority=10\\.201\\.2\\.3:8080 baggage=")
[ "$n" -eq 1 ] || tb_fail "the waypoint saw $n CONNECTs for 10.201.2.3:8080, want 1 (a loop?)"
tb_wait_log "$L2" 'msg="connection complete" src\.addr=10\.201\.2\.7:[0-9]+ src\.workload=waypoint .*dst\.addr=10\.201\.2\.3:8080 dst\.hbone_addr=10\.201\.2\.3:15008 .*dst\.workload=wlserver .*direction=outbound' 5 ||
	tb_fail "node2 did not send the waypoint's own connection straight to wlserver"
tb_log "ok: client -> waypoint (once) -> wlserver:15008 direct: the sandwich rule holds"
tb_pass "a waypoint's own traffic is not sent back to it"
