#!/usr/bin/env bash
# Refusals: untrusted client certs, a server with the wrong identity, garbage and stalled TLS
# handshakes on 15008, malformed configuration, a non-canonical :authority (400). Each is refused
# quickly and logged, and the mesh keeps serving normal requests.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
tb_mesh
SA=spiffe://cluster.local/ns/default/sa
tb_ca other
tb_cert stranger "$SA/tester" other
tb_cert wrong "$SA/wrong"
tb_whoami server-remote 8080
tb_whoami ext 8080
tb_whoami server-local 8080
L1=$TBDIR/agent-node1.log
L2=$TBDIR/agent-node2.log
HF='msg="inbound handshake failed"'

normal_request() {	# WHAT
	local out
	out=$(tb_curl client http://10.201.2.2:8080/"$1") || tb_fail "normal request ($1) failed"
	[[ "$out" == *"server=server-remote"* ]] || tb_fail "normal request ($1): '$out'"
	tb_log "ok: normal request through the mesh ($1) served"
}
normal_request before

# (a) client certificate from another CA
n=$(tb_count "$L2" "$HF")
tb_exec plain timeout 30 "$PY" "$TB_PEERS/hbone_client.py" --connect 10.201.2.2:15008 \
	--authority 10.201.2.2:8080 --cert "$TBDIR/stranger.pem" --key "$TBDIR/stranger.key" \
	--ca "$TBDIR/ca.pem" --timeout 15 --data x >"$TBDIR/a.out" 2>"$TBDIR/a.err"
rc=$?
cat "$TBDIR/a.err" >&2
case $rc in 3|4|5) ;; *) tb_fail "(a) foreign-CA client: exit $rc, want a refusal (3/4/5)";; esac
[ ! -s "$TBDIR/a.out" ] || tb_fail "(a) foreign-CA client got data: $(head -c 200 "$TBDIR/a.out")"
tb_poll 10 eval '[ "$(tb_count "$L2" "$HF")" -gt "$n" ]' ||
	tb_fail "(a) node2 did not log $HF"
tb_log "ok: (a) foreign-CA client refused (exit $rc); node2: $(grep "$HF" "$L2" | tail -1)"

# (b) a server presenting the wrong identity (sa/wrong) where the YAML says sa/ext
tb_bg ext "$PY" "$TB_PEERS/hbone_server.py" --cert "$TBDIR/wrong.pem" --key "$TBDIR/wrong.key" \
	--ca "$TBDIR/ca.pem" >"$TBDIR/wrong-hbone.log" 2>&1
tb_wait_port ext 15008
start=$(tb__now_ms)
if out=$(tb_curl client http://10.201.2.5:8080/must-not-arrive 2>&1); then
	tb_fail "(b) request to a server with the wrong identity succeeded: $out"
fi
took=$(($(tb__now_ms) - start))
tb_log "(b) curl failed after ${took} ms: $out"
[ "$took" -lt 5000 ] || tb_fail "(b) the client waited ${took} ms: refusal is not fast"
tb_wait_log "$L1" 'msg="outbound connection failed".*server identity' 10 ||
	tb_fail "(b) node1 did not log 'outbound connection failed' with the server identity error"
tb_log "ok: (b) wrong server identity refused in ${took} ms; node1: $(grep 'outbound connection failed' "$L1" | tail -1)"
! grep -q 'status=200' "$TBDIR/wrong-hbone.log" || tb_fail "(b) a CONNECT reached the wrong server"
! grep -q 'served' "$TBDIR/whoami-ext.log" || tb_fail "(b) the app behind the wrong server was reached"
tb_log "ok: (b) no CONNECT was sent to the impostor"
tb_stop "$TB_BG_PID"

# (c) garbage bytes to 15008
n=$(tb_count "$L2" "$HF")
out=$(tb_exec plain timeout 20 "$PY" "$TB_PEERS/raw_probe.py" 10.201.2.2:15008 --random 512 \
	--timeout 12) || tb_fail "(c) garbage: connection not closed by the agent: $out"
tb_log "(c) $out"
tb_poll 10 eval '[ "$(tb_count "$L2" "$HF")" -gt "$n" ]' ||
	tb_fail "(c) node2 did not log $HF for garbage bytes"
tb_log "ok: (c) garbage closed and logged: $(grep "$HF" "$L2" | tail -1)"

# (d) a stalled handshake (10 bytes of a ClientHello) does not block others and times out
tb_bg plain "$PY" "$TB_PEERS/raw_probe.py" 10.201.2.2:15008 --client-hello-prefix \
	--timeout 25 >"$TBDIR/d.out" 2>&1
probe=$TB_BG_PID
tb_wait_log "$TBDIR/d.out" '^sent 10 bytes' 5 || tb_fail "(d) probe did not connect: $(cat "$TBDIR/d.out")"
normal_request during-stalled-handshake
# a new TLS handshake with node2's agent while the stalled one is pending
tb_cert tester "$SA/tester"
out=$(tb_exec plain timeout 15 "$PY" "$TB_PEERS/hbone_client.py" --connect 10.201.2.2:15008 \
	--authority 10.201.2.2:8080 --cert "$TBDIR/tester.pem" --key "$TBDIR/tester.key" \
	--ca "$TBDIR/ca.pem" --timeout 10 --data $'GET /during HTTP/1.0\r\n\r\n' 2>"$TBDIR/d.err") ||
	tb_fail "(d) new HBONE connection during the stall failed: $(cat "$TBDIR/d.err")"
[[ "$out" == *"server=server-remote"* ]] || tb_fail "(d) new HBONE connection: '$out'"
kill -0 "$probe" 2>/dev/null || tb_fail "(d) the stalled connection ended before the check: $(cat "$TBDIR/d.out")"
tb_log "ok: (d) requests served while a handshake is stalled"
tb_wait_pid "$probe" 30 || tb_fail "(d) probe still running"
cat "$TBDIR/d.out" >&2
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "(d) the stalled connection was not closed within 25 s"
secs=$(sed -n 's/^closed by peer after \([0-9]*\)\..*/\1/p' "$TBDIR/d.out")
[ -n "$secs" ] && [ "$secs" -ge 5 ] && [ "$secs" -le 16 ] ||
	tb_fail "(d) closed after '$secs' s, want about 10 s (the handshake timeout)"
tb_wait_log "$L2" "$HF"'.*handshake timeout' 5 || tb_fail "(d) no 'handshake timeout' in node2's log"
tb_log "ok: (d) stalled handshake closed after ${secs} s: $(grep 'handshake timeout' "$L2" | tail -1)"

# (e) malformed configuration: exit non-zero within 5 s, naming file and line
printf '%s\n' 'workloads:' '- uid: "Kubernetes//Pod/default/x"' '  name: x' \
	'   namespace: default' '  protocol: HBONE' >"$TBDIR/bad-indent.yaml"
printf '%s\n' 'workloads:' '- uid: "Kubernetes//Pod/default/x"' '  name: x' \
	'  namespace: default' '  serviceAcount: x' '  protocol: HBONE' >"$TBDIR/bad-key.yaml"
for spec in bad-indent.yaml:4 bad-key.yaml:5; do
	f=$TBDIR/${spec%:*} line=${spec#*:}
	mkdir -p "$TBDIR/bad-state"
	start=$(tb__now_ms)
	timeout 5 nsenter --net="/run/netns/$TB-node1" env LOCAL_XDS_PATH="$f" NODE_NAME=node1 \
		ZTUNNEL_CA_CERT="$TBDIR/ca.pem" ZTUNNEL_CA_KEY="$TBDIR/ca.key" \
		ZTUNNEL_STATE_DIR="$TBDIR/bad-state" ZTUNNEL_CNI_SOCKET="$TBDIR/bad-state/cni.sock" \
		"$ZT" </dev/null >"$TBDIR/bad.out" 2>"$TBDIR/bad.err"
	rc=$?
	took=$(($(tb__now_ms) - start))
	tb_log "(e) ${spec%:*}: exit $rc after ${took} ms, stderr: $(tr '\n' ' ' <"$TBDIR/bad.err")"
	[ $rc -ne 0 ] && [ $rc -ne 124 ] || tb_fail "(e) ${spec%:*}: exit $rc, want non-zero within 5 s"
	grep -q "${spec%:*}:$line:" "$TBDIR/bad.err" ||
		tb_fail "(e) stderr does not name ${spec%:*}:$line:"
	tb_log "ok: (e) ${spec%:*} rejected, error names ${spec%:*}:$line"
done

# (f) a :authority with a second spelling of a port (leading zero) is a bad request, not 8080
n=$(tb_count "$L2" 'malformed :authority')
out=$(tb_exec plain timeout 15 "$PY" "$TB_PEERS/hbone_client.py" --connect 10.201.2.2:15008 \
	--authority 10.201.2.2:08080 --cert "$TBDIR/tester.pem" --key "$TBDIR/tester.key" \
	--ca "$TBDIR/ca.pem" --timeout 10 --data x 2>"$TBDIR/f.err")
rc=$?
[ $rc -eq 3 ] && grep -q 'status=400' "$TBDIR/f.err" ||
	tb_fail "(f) :authority 10.201.2.2:08080: exit $rc, want a 400: $(cat "$TBDIR/f.err")"
[ -z "$out" ] || tb_fail "(f) :authority 10.201.2.2:08080 reached the app: $out"
tb_poll 10 eval '[ "$(tb_count "$L2" "malformed :authority")" -gt "$n" ]' ||
	tb_fail "(f) node2 did not log the malformed :authority"
tb_log "ok: (f) :authority 10.201.2.2:08080 answered 400: $(grep 'malformed :authority' "$L2" | tail -1)"

normal_request after
out=$(tb_curl client http://10.201.1.3:8080/after) && [[ "$out" == *"server=server-local"* ]] ||
	tb_fail "same-node request after the refusals: '$out'"
tb_log "ok: same-node request still served"
tb_pass "refusals"
