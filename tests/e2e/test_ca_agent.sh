#!/usr/bin/env bash
# Pod certificates from Istio's CA on the testbed: both agents with CA_ADDRESS (TLS) pointing at
# tests/e2e/cp/ca_server.py in an "istiod" netns linked to both nodes, whose CA is not tb_init's.
# (1) pods enroll, HTTP through the mesh works, the server pod's 15008 presents a leaf issued by
#     the test CA (seen with openssl s_client), the CA saw bearer token, clusterid, identity;
# (2) SECRET_TTL=8s: rotation at half-life, a new serial on the wire, a long-lived connection
#     keeps echoing across it, new connections work;
# (3) the CA refuses rotations (PERMISSION_DENIED): the agent keeps its cert, logs the status,
#     retries with a growing backoff, traffic flows; the CA accepts again -> rotated;
# (5) CA down: a CNI ADD fails naming the CA, the agent keeps serving the other pods;
# (4) restarted with the local CA files (no CA_ADDRESS, SECRET_TTL=6s): rotated, traffic works.
set -u
shopt -s extglob
. "$(dirname "$0")/lib.sh"
tb_init
"$PY" -c 'import grpc, grpc_tools, cryptography' 2>/dev/null || tb_skip "python grpc missing"
command -v openssl >/dev/null || tb_skip "openssl missing"

mkdir -p "$TBDIR/py"
(cd "$TB_ROOT" && "$PY" -m grpc_tools.protoc -I proto --python_out="$TBDIR/py" \
	--grpc_python_out="$TBDIR/py" proto/ca.proto proto/google_struct.proto) ||
	tb_fail "generating python stubs"

SRV_ID=spiffe://cluster.local/ns/default/sa/server
CLI_ID=spiffe://cluster.local/ns/default/sa/client
L1=$TBDIR/agent-node1.log
L2=$TBDIR/agent-node2.log
CALOG=$TBDIR/ca-server.log
MODE=$TBDIR/ca-mode
CA_ADDR=https://10.201.9.1:15012

# Topology: mesh.yaml's pods, plus netns "istiod" (10.201.9.1) linked to both nodes.
tb_node node1 1
tb_node node2 2
tb_node istiod 9
tb_link node1 node2
tb_link istiod node1
tb_link istiod node2
tb_pod node1 client 10.201.1.2
tb_pod node1 server-local 10.201.1.3
tb_pod node2 server-remote 10.201.2.2
tb_pod node2 ext 10.201.2.5
cp "$TB_TESTDATA/mesh.yaml" "$TBDIR/mesh.yaml"

tb_openssl_ca testca	# subject O=testca: not the tb_init CA (ca.pem)
echo "  tok-agent-7  " >"$TBDIR/token"
CA_PID=
ca_start() {
	tb_bg istiod "$PY" "$TB_E2E/cp/ca_server.py" --stubs "$TBDIR/py" \
		--ca-cert "$TBDIR/testca.pem" --ca-key "$TBDIR/testca.key" --listen 10.201.9.1:15012 \
		--tls --token tok-agent-7 --cluster-id testbed-cluster --mode-file "$MODE" \
		>>"$CALOG" 2>&1
	CA_PID=$TB_BG_PID
	tb_wait_port istiod 15012
}
ca_start
for node in node1 node2; do
	CA_ADDRESS=$CA_ADDR CA_ROOT_CA=$TBDIR/testca.pem AUTH_TOKEN=$TBDIR/token \
		CLUSTER_ID=testbed-cluster SECRET_TTL=8s tb_agent "$node" mesh.yaml
done
tb_enroll node1 client default client
tb_enroll node2 server-remote default server-remote
tb_wait_port client 15001
tb_wait_port server-remote 15008
tb_whoami server-remote 8080
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 9000 >"$TBDIR/echo.log" 2>&1
tb_wait_port server-remote 9000

request() {	# WHAT
	local out
	out=$(tb_curl client "http://10.201.2.2:8080/$1") || tb_fail "$1: client -> server-remote"
	[[ "$out" == *"server=server-remote"* && "$out" == *"path=/$1"* ]] ||
		tb_fail "$1: reply '$out'"
	tb_log "ok: $1: HTTP client -> server-remote through the mesh"
}
after() { tail -n "+$(($2 + 1))" "$1"; }	# FILE LINES: the lines after the first LINES
count_after() { after "$1" "$2" | grep -Ec -- "$3"; }	# FILE LINES PATTERN
lines() { wc -l <"$1"; }
more_than() { [ "$(count_after "$1" "$2" "$3")" -gt "$4" ]; }	# FILE LINES PATTERN N
hexnorm() { local h=${1^^}; h=${h##+(0)}; echo "${h:-0}"; }

# probe NAME CLIENT_CERT ROOT: s_client from pod ext to server-remote's 15008 with a client cert;
# the server's leaf must verify against ROOT. Sets SERIAL, ISSUER, NOTAFTER.
probe() {
	local out="$TBDIR/probe-$1"
	tb_exec ext timeout 10 openssl s_client -connect 10.201.2.2:15008 -tls1_3 -alpn h2 \
		-cert "$TBDIR/$2.pem" -key "$TBDIR/$2.key" -CAfile "$TBDIR/$3.pem" \
		-verify_return_error </dev/null >"$out.txt" 2>"$out.err"
	grep -q 'Verify return code: 0 (ok)' "$out.txt" ||
		tb_fail "probe $1: handshake with 15008 failed: $(tail -3 "$out.err")"
	openssl x509 -in "$out.txt" -out "$out.pem" 2>/dev/null || tb_fail "probe $1: no server cert"
	SERIAL=$(hexnorm "$(openssl x509 -in "$out.pem" -noout -serial | cut -d= -f2)")
	ISSUER=$(openssl x509 -in "$out.pem" -noout -issuer | sed 's/^issuer=//')
	NOTAFTER=$(openssl x509 -in "$out.pem" -noout -enddate | cut -d= -f2)
	openssl x509 -in "$out.pem" -noout -ext subjectAltName | grep -q "URI:$SRV_ID$" ||
		tb_fail "probe $1: the server cert is not for $SRV_ID"
	tb_log "ok: probe $1: 10.201.2.2:15008 presents issuer='$ISSUER' serial=$SERIAL" \
		"notAfter='$NOTAFTER' (verified against $3.pem)"
}
ca_issued() {	# SERIAL: the CA log has issued this serial for the server identity
	local s
	for s in $(grep -o "issued identity=$SRV_ID serial=[0-9A-F]*" "$CALOG" | sed 's/.*=//'); do
		[ "$(hexnorm "$s")" = "$1" ] && return 0
	done
	return 1
}

# ---- (1) enrollment with the test CA, traffic, the certificate on the wire, the CA's log
for id in "$CLI_ID:$L1" "$SRV_ID:$L2"; do
	grep -q "msg=\"certificate issued\" identity=${id%:*} ttl=8s" "${id##*:}" ||
		tb_fail "no 'certificate issued' for ${id%:*} in ${id##*:}"
done
request enrolled
tb_openssl_cert probe spiffe://cluster.local/ns/default/sa/ext testca
probe first probe testca
S1=$SERIAL
[ "$ISSUER" = "O = testca" ] || tb_fail "issuer '$ISSUER' is not the test CA"
openssl verify -CAfile "$TBDIR/ca.pem" "$TBDIR/probe-first.pem" >/dev/null 2>&1 &&
	tb_fail "the server cert also verifies against the tb_init CA"
ca_issued "$S1" || tb_fail "serial $S1 on the wire was not issued by ca_server.py"
tb_log "ok: serial $S1 on the wire is in the CA's log"
for id in "$SRV_ID" "$CLI_ID"; do
	grep -q "request identity=\['$id'\] impersonated=$id ttl=8 clusterid=testbed-cluster cn=0 authorization='Bearer tok-agent-7'" \
		"$CALOG" || tb_fail "CA log has no request for $id: $(cat "$CALOG")"
done
tb_log "ok: CA log: $(grep -m1 "request identity=\['$SRV_ID" "$CALOG")"

# ---- (2) rotation at half-life with a long-lived connection open
tb_bg client "$PY" "$TB_PEERS/longconn.py" 10.201.2.2 9000 0 >"$TBDIR/longconn.log" 2>&1
LC_PID=$TB_BG_PID
tb_wait_log "$TBDIR/longconn.log" '^echo 1 ' 10 || tb_fail "longconn: $(cat "$TBDIR/longconn.log")"
R1=$(count_after "$L1" 0 "certificate rotated.*$CLI_ID")
R2=$(count_after "$L2" 0 "certificate rotated.*$SRV_ID")
N2=$(lines "$L2")
# enrollment happened less than 8 s ago: the next rotation comes within the 4 s half-life
tb_poll 7 more_than "$L2" 0 "certificate rotated.*$SRV_ID" "$R2" ||
	tb_fail "node2: no 'certificate rotated' for $SRV_ID within 7 s"
tb_poll 7 more_than "$L1" 0 "certificate rotated.*$CLI_ID" "$R1" ||
	tb_fail "node1: no 'certificate rotated' for $CLI_ID within 7 s"
tb_log "ok: rotated: $(after "$L2" "$N2" | grep -m1 'certificate rotated')"
# one rotation per half-life, not a storm (a CA that backdates not_before made the agent rotate
# on every control-loop tick): the CA has seen exactly 2 requests for the server identity
n=$(grep -c "request identity=\['$SRV_ID'\]" "$CALOG")
[ "$n" = 2 ] && [ "$(grep -c "issued identity=$SRV_ID " "$CALOG")" = 2 ] ||
	tb_fail "the CA saw $n requests for $SRV_ID at its first rotation, want 2"
tb_log "ok: the CA issued exactly 2 certificates for $SRV_ID (enrollment + one rotation)"
probe rotated probe testca
[ "$SERIAL" != "$S1" ] || tb_fail "serial $SERIAL unchanged on the wire after the rotation"
ca_issued "$SERIAL" || tb_fail "rotated serial $SERIAL was not issued by ca_server.py"
S2=$SERIAL
tb_log "ok: new serial on the wire after rotation: $S1 -> $S2"
dump=$(tb_exec node2 curl -sS --max-time 5 http://127.0.0.1:15000/config_dump) ||
	tb_fail "config_dump on node2"
na=$(grep -o "\"identity\":\"$SRV_ID\",\"notAfter\":\"[^\"]*\"" <<<"$dump" | sed 's/.*"notAfter":"//;s/"$//')
[ -n "$na" ] && [ "$(date -ud "$na" +%s)" = "$(date -ud "$NOTAFTER" +%s)" ] ||
	tb_fail "config_dump notAfter '$na' is not the wire's '$NOTAFTER'"
tb_log "ok: /config_dump shows the rotated certificate: notAfter=$na"
request after-rotation
E=$(grep -c '^echo ' "$TBDIR/longconn.log")
tb_poll 5 more_than "$TBDIR/longconn.log" 0 '^echo ' $((E + 5)) ||
	tb_fail "longconn stalled after the rotation: $(tail -3 "$TBDIR/longconn.log")"
grep -Eq '^(closed|timeout|mismatch)' "$TBDIR/longconn.log" &&
	tb_fail "longconn broke: $(tail -3 "$TBDIR/longconn.log")"
kill -0 "$LC_PID" 2>/dev/null || tb_fail "longconn exited: $(tail -3 "$TBDIR/longconn.log")"
tb_log "ok: the long-lived connection echoed across the rotation ($(tail -1 "$TBDIR/longconn.log"))"

# ---- (3) the CA refuses rotations: keep the cert, retry with backoff, recover
echo deny-renew >"$MODE"
N2=$(lines "$L2")
FAILED='certificate rotation failed, keeping the current one'
tb_poll 8 more_than "$L2" "$N2" "$FAILED.*$SRV_ID" 1 ||
	tb_fail "node2: no two '$FAILED' for $SRV_ID within 8 s"
F=$(after "$L2" "$N2" | grep -- "$FAILED.*$SRV_ID")
grep -q 'PERMISSION_DENIED' <<<"$F" || tb_fail "the failure does not name the status: $F"
mapfile -t RETRY < <(grep -o 'retry_in=[0-9]*' <<<"$F" | cut -d= -f2)
[ "${RETRY[0]}" = 500 ] && [ "${RETRY[1]}" = 1000 ] ||
	tb_fail "backoff ${RETRY[*]} is not 500 ms doubling"
tb_log "ok: refused rotation: $(head -1 <<<"$F")"
tb_log "ok: retries with backoff: ${RETRY[*]} ms"
grep -q "denied identity=$SRV_ID mode=deny-renew" "$CALOG" || tb_fail "the CA did not deny"
request while-denied
probe denied probe testca
LAST=$(grep -o "issued identity=$SRV_ID serial=[0-9A-F]*" "$CALOG" | tail -1 | sed 's/.*=//')
[ "$SERIAL" = "$(hexnorm "$LAST")" ] ||
	tb_fail "while the CA refused, the wire shows $SERIAL, not the last one issued ($LAST)"
tb_log "ok: while refused, 15008 keeps presenting the last issued certificate ($SERIAL)"
S2=$SERIAL
echo ok >"$MODE"
tb_poll 8 more_than "$L2" "$N2" "certificate rotated.*$SRV_ID" 0 ||
	tb_fail "node2: no rotation after the CA accepted again"
tb_log "ok: rotated once the CA accepted: $(after "$L2" "$N2" | grep -m1 'certificate rotated')"
probe recovered probe testca
[ "$SERIAL" != "$S2" ] && ca_issued "$SERIAL" || tb_fail "no new serial after recovery"
request after-recovery
grep -Eq '^(closed|timeout|mismatch)' "$TBDIR/longconn.log" &&
	tb_fail "longconn broke: $(tail -3 "$TBDIR/longconn.log")"
tb_log "ok: longconn still echoing ($(tail -1 "$TBDIR/longconn.log"))"

# ---- (5) the CA is down: enrolling a pod of a new identity fails clearly; the agent serves on
tb_stop "$CA_PID" 5
tb_exec istiod ss -Hltn 'sport = :15012' | grep -q . && tb_fail "the CA still listens"
conf=$(printf '{"cniVersion":"1.0.0","name":"ambient","type":"ztunnel-cni",'`
	`'"ztunnel_socket":"%s","prevResult":{"cniVersion":"1.0.0","interfaces":'`
	`'[{"name":"eth0","sandbox":"/run/netns/%s"}],"ips":[{"address":"10.201.1.3/24",'`
	`'"interface":0}]}}' "$TBDIR/state-node1/cni.sock" "$TB-server-local")
out=$(printf '%s' "$conf" | timeout 30 env CNI_COMMAND=ADD CNI_CONTAINERID="$TB-server-local" \
	CNI_NETNS="/run/netns/$TB-server-local" CNI_IFNAME=eth0 CNI_PATH=/nonexistent \
	CNI_ARGS="K8S_POD_NAME=server-local;K8S_POD_NAMESPACE=default;K8S_POD_UID=uid-sl" \
	"$ZT_CNI" 2>&1)
rc=$?
[ $rc -ne 0 ] || tb_fail "CNI ADD succeeded with the CA down"
grep -q '10.201.9.1:15012' <<<"$out" && grep -Eqi 'refused|certificate' <<<"$out" ||
	tb_fail "the CNI error does not name the CA problem: $out"
tb_log "ok: CNI ADD with the CA down: rc=$rc: $out"
tb__listening server-local 15008 && tb_fail "server-local got listeners without a certificate"
request ca-down
kill -0 "$(tb_agent_pid node1)" || tb_fail "node1's agent died"
ca_start
tb_enroll node1 server-local default server-local uid-sl
tb_wait_port server-local 15008
tb_log "ok: with the CA back, the same pod enrolls"

# ---- (4) the local CA files (no CA_ADDRESS), SECRET_TTL=6s
tb_stop "$LC_PID" 5
for node in node1 node2; do
	tb_agent_stop "$node"
	SECRET_TTL=6s tb_agent "$node" mesh.yaml
done
M1=$(grep -n '=== agent start' "$L1" | tail -1 | cut -d: -f1)
M2=$(grep -n '=== agent start' "$L2" | tail -1 | cut -d: -f1)
tb_wait_port server-remote 15008
tb_poll 10 more_than "$L2" "$M2" "certificate issued.*$SRV_ID ttl=6s" 0 ||
	tb_fail "the restarted node2 did not issue $SRV_ID locally"
tb_poll 10 more_than "$L1" "$M1" "certificate issued.*$CLI_ID ttl=6s" 0 ||
	tb_fail "the restarted node1 did not issue $CLI_ID locally"
request local-ca
tb_cert probe2 spiffe://cluster.local/ns/default/sa/ext ca
probe local probe2 ca
S3=$SERIAL
openssl verify -CAfile "$TBDIR/testca.pem" "$TBDIR/probe-local.pem" >/dev/null 2>&1 &&
	tb_fail "the local-CA cert verifies against the test CA"
C=$(grep -c '^request ' "$CALOG")
tb_bg client "$PY" "$TB_PEERS/longconn.py" 10.201.2.2 9000 0 >"$TBDIR/longconn2.log" 2>&1
LC_PID=$TB_BG_PID
tb_wait_log "$TBDIR/longconn2.log" '^echo 1 ' 10 || tb_fail "longconn2: $(cat "$TBDIR/longconn2.log")"
tb_poll 6 more_than "$L2" "$M2" "certificate rotated.*$SRV_ID" 0 ||
	tb_fail "node2 (local CA): no rotation within 6 s"
tb_poll 6 more_than "$L1" "$M1" "certificate rotated.*$CLI_ID" 0 ||
	tb_fail "node1 (local CA): no rotation within 6 s"
tb_log "ok: local CA rotation: $(after "$L2" "$M2" | grep -m1 'certificate rotated')"
probe local-rotated probe2 ca
[ "$SERIAL" != "$S3" ] || tb_fail "serial unchanged after the local rotation"
request local-rotated
E=$(grep -c '^echo ' "$TBDIR/longconn2.log")
tb_poll 5 more_than "$TBDIR/longconn2.log" 0 '^echo ' $((E + 5)) ||
	tb_fail "longconn2 stalled: $(tail -3 "$TBDIR/longconn2.log")"
grep -Eq '^(closed|timeout|mismatch)' "$TBDIR/longconn2.log" &&
	tb_fail "longconn2 broke: $(tail -3 "$TBDIR/longconn2.log")"
[ "$(grep -c '^request ' "$CALOG")" = "$C" ] || tb_fail "the local-CA agents called the CA"
tb_log "ok: local-CA serial $S3 -> $SERIAL, long-lived connection kept echoing"

tb_pass "CA agent: enrollment, on-the-wire issuer, rotation, refusals with backoff, CA down, local CA"
