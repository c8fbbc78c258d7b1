#!/usr/bin/env bash
# PROXY protocol application tunnel: a workload with `applicationTunnel: {protocol: PROXY,
# port: 15088}` gets its inbound HBONE connections on 127.0.0.1:15088 (LOCALHOST_APP_TUNNEL),
# each starting with a PROXY v2 header (peers/ppv2_server.py parses it): source = the client
# pod's address, destination = the podIP:port it asked for, TLV 0xD0 = the client's SPIFFE id;
# then the client's own bytes. A workload without the tunnel still gets plain connections.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
SA=spiffe://cluster.local/ns/default/sa
tb_config cfg.yaml <<'EOF2'
workloads:
- {uid: "Kubernetes//Pod/default/client", name: client, namespace: default,
   serviceAccount: client, workloadIps: ["10.201.1.2"], protocol: HBONE, node: node1}
- {uid: "Kubernetes//Pod/default/tunneled", name: tunneled, namespace: default,
   serviceAccount: server, workloadIps: ["10.201.2.2"], protocol: HBONE, node: node2,
   applicationTunnel: {protocol: PROXY, port: 15088}}
- {uid: "Kubernetes//Pod/default/plainapp", name: plainapp, namespace: default,
   serviceAccount: server, workloadIps: ["10.201.2.3"], protocol: HBONE, node: node2}
EOF2
tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node2 tunneled 10.201.2.2
tb_pod node2 plainapp 10.201.2.3
tb_agent node1 cfg.yaml
tb_agent node2 cfg.yaml
tb_enroll node1 client default client
tb_enroll node2 tunneled default tunneled
tb_enroll node2 plainapp default plainapp
tb_wait_port client 15001
tb_wait_port tunneled 15008
tb_bg tunneled "$PY" "$TB_PEERS/ppv2_server.py" --bind 127.0.0.1 --port 15088 \
	>"$TBDIR/ppv2.log" 2>&1
tb_wait_port tunneled 15088
tb_whoami plainapp 8080

out=$(tb_exec client timeout 15 bash -c 'exec 3<>/dev/tcp/10.201.2.2/8080 && printf "hello tunnel\r\n" >&3 && timeout 10 cat <&3') ||
	tb_fail "client -> tunneled:8080 failed: $out"
grep -Eq "^proxy src=10\\.201\\.1\\.2:[0-9]+ dst=10\\.201\\.2\\.2:8080 identity=$SA/client peer=127\\.0\\.0\\.1:[0-9]+\$" <<<"$out" ||
	tb_fail "the app did not get the PROXY header it should: $out"
grep -q '^first=hello tunnel$' <<<"$out" || tb_fail "the client's bytes did not follow the header: $out"
tb_log "ok: PROXY v2 on 127.0.0.1:15088: $(head -1 <<<"$out")"

out=$(tb_curl client http://10.201.2.3:8080/plain 2>&1) ||
	tb_fail "client -> plainapp failed: $out"
[[ "$out" == *"peer=10.201.1.2:"*"path=/plain"* ]] || tb_fail "plain workload: $out"
tb_log "ok: a workload without a tunnel gets the plain connection"
tb_pass "PROXY application tunnel: header with the client's address, destination and identity"
