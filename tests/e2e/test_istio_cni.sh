#!/usr/bin/env bash
# istio-cni mode: node2's agent is a ZDS client of a fake istio-cni (INPOD_UDS). Pods enrolled by
# its snapshot serve mesh traffic from node1; the agent stays ready only while synced, keeps
# serving across an istio-cni restart, drops a pod the next snapshot leaves out, NACKs an Add
# without a netns fd and goes on, NACKs a malformed message and an Add without workload_info and
# starts a new session, and a Del removes the pod's listeners.
set -u
. "$(dirname "$0")/lib.sh"
tb_init

CNI_SOCK=$TBDIR/istio-cni.sock
CNI_CMDS=$TBDIR/istio-cni.cmds
CNI_LOG=$TBDIR/istio-cni.log
LOG2=$TBDIR/agent-node2.log

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node2 server-remote 10.201.2.2
tb_pod node2 ext 10.201.2.5
cp "$TB_TESTDATA/mesh.yaml" "$TBDIR/mesh.yaml"
NS_SRV=/run/netns/$(tb__ns server-remote)
NS_EXT=/run/netns/$(tb__ns ext)

: >"$CNI_CMDS"
tb_bg_node node2 "$PY" "$TB_ROOT/tests/e2e/cp/fake_istio_cni.py" --socket "$CNI_SOCK" \
	--commands "$CNI_CMDS" --log "$CNI_LOG" >"$TBDIR/istio-cni.err" 2>&1
tb_poll 10 test -S "$CNI_SOCK" || tb_fail "fake istio-cni did not start"

# cni COMMAND...: one command for the fake istio-cni.
cni() { echo "$*" >>"$CNI_CMDS"; }
# expect_ack KIND UID ok|"nack: TEXT": waits for the next such Ack in the fake's log.
ACKS=0
acks_at_least() { [ "$(grep -c '^ack ' "$CNI_LOG")" -ge "$1" ]; }
expect_ack() {
	local n
	ACKS=$((ACKS + 1))
	tb_poll 10 acks_at_least "$ACKS" ||
		tb_fail "no answer to request $ACKS ($1 $2); fake log: $(tail -3 "$CNI_LOG")"
	n=$(grep '^ack ' "$CNI_LOG" | sed -n "${ACKS}p")
	[[ "$n" == "ack $1 $2 $3"* ]] || tb_fail "request $ACKS: got '$n', want 'ack $1 $2 $3'"
	tb_log "ok: $n"
}
ready_code() {
	tb_exec node2 curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
		http://127.0.0.1:15021/healthz/ready
}
is_ready() { [ "$(ready_code)" = 200 ]; }
not_ready() { [ "$(ready_code)" != 200 ]; }
not_listening() { ! tb__listening "$1" "$2"; }

tb_agent node1 mesh.yaml
INPOD_UDS=$CNI_SOCK ZTUNNEL_REDIRECT=nftables tb_agent node2 mesh.yaml
tb_enroll node1 client default client

# First connection: hello, then a snapshot of server-remote and ext.
tb_wait_log "$CNI_LOG" '^hello version=1$' 10 || tb_fail "agent did not connect with ZdsHello v1"
tb_log "ok: the agent connected and said ZdsHello{version=1}"
tb_check "node2 not ready before the snapshot" not_ready
cni add uid-srv default server-remote "$NS_SRV"
expect_ack add uid-srv ok
cni add uid-ext default ext "$NS_EXT"
expect_ack add uid-ext ok
cni snapshot
expect_ack snapshot - ok
tb_wait_port server-remote 15008
tb_wait_port ext 15008
tb_poll 10 is_ready || tb_fail "node2 not ready after the snapshot (code $(ready_code))"
tb_log "ok: node2 ready after SnapshotSent"

tb_whoami server-remote 8080
out=$(tb_curl client http://10.201.2.2:8080/via-istio-cni) || tb_fail "curl client -> server-remote"
[[ "$out" == *"server=server-remote"* ]] || tb_fail "reply '$out' not from server-remote"
tb_log "ok: client (node1) -> server-remote (enrolled by istio-cni on node2)"
tb_wait_log "$LOG2" 'msg="connection complete".*src.addr=10\.201\.1\.2:[0-9]+ .*direction=inbound' \
	10 || tb_fail "node2 did not proxy the connection inbound"

# istio-cni goes away: the pods keep being served, the agent is not ready and retries.
cni stop
tb_wait_log "$LOG2" 'msg="istio-cni connection lost"' 10 || tb_fail "disconnect not logged"
tb_poll 10 not_ready || tb_fail "node2 still ready while disconnected from istio-cni"
out=$(tb_curl client http://10.201.2.2:8080/while-disconnected) ||
	tb_fail "curl while istio-cni is away"
[[ "$out" == *"server=server-remote"* ]] || tb_fail "reply while disconnected: '$out'"
tb_log "ok: pods keep being served while istio-cni is away"

# istio-cni is back: its snapshot names only server-remote (replayed Add): ext goes.
enrolled_before=$(tb_count "$LOG2" 'msg="pod enrolled" uid=uid-srv ')
cni start
cni add uid-srv default server-remote "$NS_SRV"
expect_ack add uid-srv ok
cni snapshot
expect_ack snapshot - ok
[ "$(grep -c '^hello version=1$' "$CNI_LOG")" -eq 2 ] || tb_fail "no second hello"
tb_wait_log "$LOG2" 'msg="pod removed" uid=uid-ext ' 10 || tb_fail "ext not removed"
tb_poll 10 not_listening ext 15008 || tb_fail "ext still has a 15008 listener"
[ "$(tb_count "$LOG2" 'msg="pod enrolled" uid=uid-srv ')" -eq "$enrolled_before" ] ||
	tb_fail "the replayed Add re-enrolled server-remote"
tb_check "server-remote still listens on 15008" tb__listening server-remote 15008
tb_poll 10 is_ready || tb_fail "node2 not ready after the second snapshot"
tb_log "ok: reconnected; the snapshot without ext removed it, server-remote untouched"

# A third connection whose snapshot only Keeps server-remote.
cni stop
cni start
cni keep uid-srv
expect_ack keep uid-srv ok
cni snapshot
expect_ack snapshot - ok
tb_check "server-remote kept (still listening)" tb__listening server-remote 15008
out=$(tb_curl client http://10.201.2.2:8080/after-keep) || tb_fail "curl after the Keep snapshot"
[[ "$out" == *"server=server-remote"* ]] || tb_fail "reply after Keep: '$out'"
tb_log "ok: a Keep-only snapshot keeps the pod"

# A pod that cannot be enrolled gets a NACK and the session goes on; a protocol error (a
# malformed message, an Add without workload_info) gets a NACK and the agent starts a new
# session, where istio-cni replays its pods (as upstream).
cni add-nofd uid-bad default ext
expect_ack add uid-bad "nack: AddWorkload needs exactly one network namespace fd"
hellos() { grep -c '^hello version=1$' "$CNI_LOG"; }
more_hellos() { [ "$(hellos)" -gt "$1" ]; }
# protocol_error "COMMAND" KIND UID NACK_TEXT
protocol_error() {
	local h
	h=$(hellos)
	cni "$1"
	expect_ack "$2" "$3" "$4"
	cni reconnect
	tb_poll 10 more_hellos "$h" ||
		tb_fail "no new session after '$1'; fake: $(tail -5 "$CNI_LOG" | tr '\n' '|')"
	cni keep uid-srv
	expect_ack keep uid-srv ok
	cni snapshot
	expect_ack snapshot - ok
	tb_poll 10 is_ready || tb_fail "node2 not ready after the replayed snapshot"
	tb_check "server-remote still served after '$1'" tb__listening server-remote 15008
}
protocol_error "raw 0a7f01" raw - "nack: malformed WorkloadRequest"
protocol_error "add-noinfo uid-noinfo $NS_EXT" add uid-noinfo "nack: workload_info is required"
tb_check "agent still alive" kill -0 "$(tb_agent_pid node2)"

# Del: the pod's listeners go.
cni del uid-srv
expect_ack del uid-srv ok
tb_wait_log "$LOG2" 'msg="pod removed" uid=uid-srv ' 10 || tb_fail "no 'pod removed' for server-remote"
tb_poll 10 not_listening server-remote 15008 || tb_fail "server-remote still listens on 15008"
tb_log "ok: Del removed server-remote's listeners"
tb_pass "istio-cni enrollment: snapshot, reconnect, reconcile, NACKs, Del"
