#!/usr/bin/env bash
# PeerAuthentication: a plaintext client outside the mesh (plain1, node1, never enrolled) reaches
# enrolled servers on node2 through their 15006 listener unless the effective mode is STRICT.
# Narrowest wins: workload selector > namespace > mesh-wide (istio-system) > default PERMISSIVE;
# the selector's `app` is the workload's canonicalName, else its name. Mesh clients (HBONE) are
# allowed under every mode. Config changes are live reloads of LOCAL_XDS_PATH.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
BASE=$TB_TESTDATA/policy-mesh.yaml
CFG=$TBDIR/cfg.yaml
L2=$TBDIR/agent-node2.log
CC='msg="connection complete"'

gen_cfg() { cat "$BASE"; printf '%s\n' "$1"; }	# PEER_AUTHENTICATIONS_YAML
# apply_config WHAT YAML: the new config, once both agents reloaded it.
apply_config() { tb_reload_config "$1" "$CFG" < <(gen_cfg "$2"); }
re() { printf '%s' "${1//./\\.}"; }

# allowed CASE POD SERVER: the request reaches SERVER's app, which sees POD's own address, and
# node2's agent carried it (an inbound `connection complete` from POD without error).
allowed() {
	local what=$1 pod=$2 srv=$3 out pat n
	pat="$CC.*src\\.addr=$(re "${TB_POD_IP[$pod]}"):[0-9]+ .*dst\\.addr=$(re "${TB_POD_IP[$srv]}"):8080 .*direction=inbound"
	n=$(tb_count "$L2" "$pat")
	out=$(tb_exec "$pod" timeout 10 curl -sS --max-time 5 "http://${TB_POD_IP[$srv]}:8080/" 2>&1) ||
		tb_fail "$what: $pod -> $srv refused: $out"
	[[ "$out" == *"server=$srv"$'\n'* && "$out" == *"peer=${TB_POD_IP[$pod]}:"* ]] ||
		tb_fail "$what: $pod -> $srv: unexpected reply '$out'"
	tb_poll 5 tb_more_lines "$L2" "$pat" "$n" ||
		tb_fail "$what: $pod -> $srv answered, but node2 did not log the inbound connection"
	! grep -E "$pat" "$L2" | tail -1 | grep -Eq 'error=("[^"-]|[^" -])' ||
		tb_fail "$what: node2 logged an error for an allowed connection: $(grep -E "$pat" "$L2" | tail -1)"
	tb_log "ok: $what: $pod -> $srv allowed"
}

# refused CASE POD SERVER: reset or closed at once (curl 7/52/56 in < 3 s), the app never sees it,
# node2 logs the inbound connection from POD with an error.
refused() {
	local what=$1 pod=$2 srv=$3 out rc start took pat n s
	pat="$CC.*src\\.addr=$(re "${TB_POD_IP[$pod]}"):[0-9]+ .*error=\"[^\"]+\""
	n=$(tb_count "$L2" "$pat")
	s=$(grep -c "served ${TB_POD_IP[$pod]}:" "$TBDIR/whoami-$srv.log")
	start=$(tb__now_ms)
	out=$(tb_exec "$pod" timeout 10 curl -sS --max-time 5 "http://${TB_POD_IP[$srv]}:8080/" 2>&1)
	rc=$?
	took=$(($(tb__now_ms) - start))
	case $rc in
	7|52|55|56) ;;	# 7: reset before curl saw the connect complete; 55: during its send
	0) tb_fail "$what: $pod -> $srv was allowed: $out" ;;
	28|124) tb_fail "$what: $pod -> $srv hung until the timeout (rc $rc, ${took} ms)" ;;
	*) tb_fail "$what: $pod -> $srv: curl rc $rc ($out), want 7/55/56 (reset) or 52 (empty reply)" ;;
	esac
	[ "$took" -lt 3000 ] || tb_fail "$what: the refusal took ${took} ms"
	tb_poll 5 tb_more_lines "$L2" "$pat" "$n" ||
		tb_fail "$what: node2 did not log the refused connection from $pod with an error"
	[ "$(grep -c "served ${TB_POD_IP[$pod]}:" "$TBDIR/whoami-$srv.log")" -eq "$s" ] ||
		tb_fail "$what: the app on $srv served the refused plaintext connection"
	tb_log "ok: $what: $pod -> $srv refused in ${took} ms (curl rc $rc); node2:" \
		"$(grep -Eo 'error="[^"]*"' <<<"$(grep -E "$pat" "$L2" | tail -1)")"
}

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 plain1 10.201.1.9
tb_pod node2 server 10.201.2.2
tb_pod node2 server2 10.201.2.4
gen_cfg "" >"$CFG"
tb_agent node1 "$CFG"
tb_agent node2 "$CFG"
tb_enroll node1 client default client
tb_enroll node2 server default server
tb_enroll node2 server2 default server2
tb_wait_port client 15001
tb_wait_port server 15006
tb_wait_port server2 15006
tb_whoami server 8080
tb_whoami server2 8080

allowed "no PeerAuthentication" plain1 server
allowed "no PeerAuthentication" client server

apply_config "mesh PERMISSIVE" \
'peerAuthentications:
- {name: default, namespace: istio-system, mode: PERMISSIVE}'
allowed "mesh PERMISSIVE" plain1 server
allowed "mesh PERMISSIVE" client server

apply_config "mesh STRICT" \
'peerAuthentications:
- {name: default, namespace: istio-system, mode: STRICT}'
refused "mesh STRICT" plain1 server
refused "mesh STRICT" plain1 server2
allowed "mesh STRICT, HBONE client" client server
allowed "mesh STRICT, HBONE client" client server2

apply_config "mesh STRICT, namespace PERMISSIVE" \
'peerAuthentications:
- {name: default, namespace: istio-system, mode: STRICT}
- {name: ns-permissive, namespace: default, mode: PERMISSIVE}'
allowed "namespace PERMISSIVE over mesh STRICT" plain1 server
allowed "namespace PERMISSIVE over mesh STRICT" client server

apply_config "mesh STRICT, namespace DISABLE" \
'peerAuthentications:
- {name: default, namespace: istio-system, mode: STRICT}
- {name: ns-disable, namespace: default, mode: DISABLE}'
allowed "namespace DISABLE over mesh STRICT" plain1 server

# workload level: server's canonicalName is web-server (its name is server)
apply_config "mesh STRICT, namespace PERMISSIVE, workload STRICT app=web-server" \
'peerAuthentications:
- {name: default, namespace: istio-system, mode: STRICT}
- {name: ns-permissive, namespace: default, mode: PERMISSIVE}
- {name: one, namespace: default, mode: STRICT, selector: {matchLabels: {app: web-server}}}'
refused "workload STRICT (app=canonicalName)" plain1 server
allowed "workload STRICT selects only server" plain1 server2
allowed "workload STRICT, HBONE client" client server

# without a canonicalName, app is the workload's name
apply_config "namespace PERMISSIVE, workload STRICT app=server2" \
'peerAuthentications:
- {name: ns-permissive, namespace: default, mode: PERMISSIVE}
- {name: two, namespace: default, mode: STRICT, selector: {matchLabels: {app: server2}}}'
refused "workload STRICT (app=name)" plain1 server2
allowed "workload STRICT selects only server2" plain1 server
allowed "workload STRICT, HBONE client" client server2

apply_config "no PeerAuthentication" ""
allowed "STRICT removed" plain1 server2
tb_pass "peer authentication"
