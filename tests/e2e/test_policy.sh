#!/usr/bin/env bash
# L4 authorization with real traffic: deny-all for a namespace, allow by principal, allow by
# namespace, deny by source CIDR, deny by port, HTTP-only fields fail closed (ALLOW never matches,
# DENY always does), and an independent HBONE client gets 401 for a denied CONNECT. One topology;
# each case rewrites LOCAL_XDS_PATH and waits for both agents to log the reload. Denials are fast
# resets (never a hang), the app is not reached, and node2 logs the denial with the policy.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
BASE=$TB_TESTDATA/policy-mesh.yaml
CFG=$TBDIR/cfg.yaml
L1=$TBDIR/agent-node1.log
L2=$TBDIR/agent-node2.log
CC='msg="connection complete"'
SA=cluster.local/ns/default/sa

# gen_cfg AUTHZ POLICIES: the base mesh, AUTHZ as the server's authorizationPolicies (if not
# empty), then POLICIES (YAML text).
gen_cfg() {
	cat "$BASE"
	[ -z "$1" ] || printf '  authorizationPolicies: [%s]\n' "$1"
	printf '%s\n' "$2"
}
# apply_config WHAT AUTHZ POLICIES: the new config, once both agents reloaded it.
apply_config() { tb_reload_config "$1" "$CFG" < <(gen_cfg "$2" "$3"); }
served() { grep -c "served ${TB_POD_IP[$1]}:" "$TBDIR/whoami-server.log"; }
re() { printf '%s' "${1//./\\.}"; }

# expect_allowed CASE POD IP:PORT: the request goes through and the app sees the pod's IP.
expect_allowed() {
	local out
	out=$(tb_exec "$2" timeout 10 curl -sS --max-time 5 "http://$3/allowed" 2>&1) ||
		tb_fail "$1: request $2 -> $3 was refused: $out"
	[[ "$out" == *"server=server"* && "$out" == *"peer=${TB_POD_IP[$2]}:"* ]] ||
		tb_fail "$1: request $2 -> $3: unexpected reply '$out'"
	tb_log "ok: $1: $2 -> $3 allowed"
}

# expect_denied CASE POD IP:PORT [ERE]: curl fails fast with a reset or an empty reply (never a
# timeout; a reset that beats curl's connect check shows as rc 7), the app never sees the
# connection, and node2 logs `connection complete` from the pod with error="...denied..."
# followed by ERE (e.g. the policy's name): that log line proves the agent refused it.
expect_denied() {
	local what=$1 pod=$2 dst=$3 ere=${4:-} n s out rc start took pat
	pat="$CC.*src\\.addr=$(re "${TB_POD_IP[$pod]}"):[0-9]+ .*error=\"[^\"]*denied[^\"]*$ere"
	n=$(tb_count "$L2" "$pat"); s=$(served "$pod")
	start=$(tb__now_ms)
	out=$(tb_exec "$pod" timeout 10 curl -sS --max-time 5 "http://$dst/denied" 2>&1)
	rc=$?
	took=$(($(tb__now_ms) - start))
	case $rc in
	7|52|55|56) ;;	# 7: reset before curl saw the connect complete; 55: during its send
	0) tb_fail "$what: $pod -> $dst was allowed: $out" ;;
	28|124) tb_fail "$what: $pod -> $dst hung until the timeout (rc $rc after ${took} ms)" ;;
	*) tb_fail "$what: $pod -> $dst: curl rc $rc ($out), want 7/55/56 (reset) or 52 (empty reply)" ;;
	esac
	[ "$took" -lt 3000 ] || tb_fail "$what: the refusal took ${took} ms"
	tb_poll 5 tb_more_lines "$L2" "$pat" "$n" ||
		tb_fail "$what: node2 did not log a denial matching: $pat"
	[ "$(served "$pod")" -eq "$s" ] || tb_fail "$what: the app served the denied connection"
	tb_log "ok: $what: $pod -> $dst denied in ${took} ms (curl rc $rc); node2:" \
		"$(grep -Eo 'error="[^"]*"' <<<"$(grep -E "$pat" "$L2" | tail -1)")"
}

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 other 10.201.1.4
tb_pod node1 foreign 10.201.1.5
tb_pod node2 client2 10.201.2.3
tb_pod node2 server 10.201.2.2
tb_pod node2 plain 10.201.2.9
gen_cfg "" "" >"$CFG"
tb_agent node1 "$CFG"
tb_agent node2 "$CFG"
tb_enroll node1 client default client
tb_enroll node1 other default other
tb_enroll node1 foreign other foreign
tb_enroll node2 client2 default client2
tb_enroll node2 server default server
for p in client other foreign client2; do tb_wait_port "$p" 15001; done
tb_wait_port server 15008
tb_whoami server 8080
tb_whoami server 9999
S=10.201.2.2

expect_allowed "no policies" client $S:8080
expect_allowed "no policies" other $S:8080

# (1) deny-all: an ALLOW policy without rules for the namespace
apply_config "deny-all" "" \
'policies:
- {name: deny-all, namespace: default, scope: Namespace, action: Allow, rules: []}'
expect_denied "(1) deny-all" client $S:8080 'deny-all'
expect_denied "(1) deny-all" client2 $S:8080 'deny-all'
apply_config "deny-all removed" "" ""
expect_allowed "(1) deny-all removed" client $S:8080

# (2) allow by principal: only sa client, through the server's own policy list
apply_config "allow-client-sa" '"default/allow-client-sa"' \
"policies:
- name: allow-client-sa
  namespace: default
  scope: WorkloadSelector
  action: Allow
  rules: [[[{principals: [\"$SA/client\"]}]]]"
expect_allowed "(2) allow sa client" client $S:8080
expect_allowed "(2) allow sa client" client2 $S:8080
expect_denied "(2) allow sa client" other $S:8080

# (7) the independent HBONE client: 401 for a denied identity, 200 for an allowed one
tb_cert sa-other "spiffe://$SA/other"
tb_cert sa-client "spiffe://$SA/client"
hbone() {	# CERT: CONNECT from the non-mesh pod with CERT's identity
	tb_exec plain timeout 20 "$PY" "$TB_PEERS/hbone_client.py" --connect $S:15008 \
		--authority $S:8080 --cert "$TBDIR/$1.pem" --key "$TBDIR/$1.key" \
		--ca "$TBDIR/ca.pem" --timeout 10 --data $'GET /hbone HTTP/1.0\r\n\r\n' \
		>"$TBDIR/hbone-$1.out" 2>"$TBDIR/hbone-$1.err"
}
hbone sa-other
rc=$?
grep -q 'status=401' "$TBDIR/hbone-sa-other.err" && [ $rc -eq 3 ] ||
	tb_fail "(7) denied CONNECT: exit $rc, stderr: $(tr '\n' ' ' <"$TBDIR/hbone-sa-other.err")"
[ ! -s "$TBDIR/hbone-sa-other.out" ] || tb_fail "(7) denied CONNECT got data"
tb_log "ok: (7) hbone_client.py with sa other: exit 3, $(grep -o 'status=[0-9]*' "$TBDIR/hbone-sa-other.err")"
hbone sa-client || tb_fail "(7) allowed CONNECT failed: $(tr '\n' ' ' <"$TBDIR/hbone-sa-client.err")"
grep -q 'server=server' "$TBDIR/hbone-sa-client.out" &&
	grep -q 'peer=10.201.2.9:' "$TBDIR/hbone-sa-client.out" ||
	tb_fail "(7) allowed CONNECT: reply $(cat "$TBDIR/hbone-sa-client.out")"
tb_log "ok: (7) hbone_client.py with sa client: status 200 and the app's reply"

# (3) allow by namespace: pods of namespace default, not namespace other
apply_config "allow-ns" "" \
'policies:
- {name: allow-ns, namespace: default, scope: Namespace, action: Allow, rules: [[[{namespaces: ["default"]}]]]}'
expect_allowed "(3) allow namespace default" client $S:8080
expect_allowed "(3) allow namespace default" other $S:8080
expect_denied "(3) allow namespace default" foreign $S:8080

# (4) deny by source CIDR: node1's pod range is denied, node2's is not
apply_config "deny-cidr" "" \
'policies:
- {name: deny-cidr, namespace: default, scope: Namespace, action: Deny, rules: [[[{sourceIps: ["10.201.1.0/24"]}]]]}'
expect_denied "(4) deny 10.201.1.0/24" client $S:8080 'default/deny-cidr'
expect_denied "(4) deny 10.201.1.0/24" other $S:8080 'default/deny-cidr'
expect_allowed "(4) deny 10.201.1.0/24" client2 $S:8080

# (5) deny by destination port
apply_config "deny-port" "" \
'policies:
- {name: deny-port, namespace: default, scope: Global, action: Deny, rules: [[[{destinationPorts: [9999]}]]]}'
expect_denied "(5) deny port 9999" client $S:9999 'default/deny-port'
expect_allowed "(5) deny port 9999" client $S:8080

# (6) HTTP-only fields cannot be checked at L4: an ALLOW match with methods never matches
apply_config "allow-get" "" \
'policies:
- {name: allow-get, namespace: default, scope: Namespace, action: Allow, rules: [[[{methods: ["GET"]}]]]}'
expect_denied "(6) ALLOW methods [GET] fails closed" client $S:8080
# ...and a DENY match with methods always matches, even for a GET
apply_config "deny-post" "" \
'policies:
- {name: deny-post, namespace: default, scope: Namespace, action: Deny, rules: [[[{methods: ["POST"]}]]]}'
expect_denied "(6) DENY methods [POST] fails closed" client $S:8080 'default/deny-post'

apply_config "no policies" "" ""
expect_allowed "policies removed" client $S:8080
expect_allowed "policies removed" foreign $S:8080
tb_pass "L4 authorization policies"
