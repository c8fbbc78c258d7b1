#!/usr/bin/env bash
# test_cni_plugin: ztunnel-cni ADD/CHECK/DEL/VERSION against a fake ZDS agent — the pod's netns fd
# reaches the agent, NACKs and a missing agent give CNI errors, DEL stays idempotent.
set -u
cd "$(dirname "$0")/../.."

CNI=${ZTUNNEL_CNI:-build/ztunnel-cni}	# override to test another build (e.g. ASan)
AGENT_PY=tests/e2e/zds_fake_agent.py
[ -x "$CNI" ] || { echo "missing $CNI: run make build/ztunnel-cni"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root for ip netns"; exit 77; }

NS="ztcni-$$-$RANDOM"
TMP=$(mktemp -d /tmp/ztcni.XXXXXX)
SOCK="$TMP/cni.sock"
LOG="$TMP/agent.log"
AGENT_PID=""
failures=0

cleanup() {
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null
		wait "$AGENT_PID" 2>/dev/null
	fi
	ip netns del "$NS" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

ip netns add "$NS" || { echo "cannot create netns $NS"; exit 1; }

start_agent() {	# extra agent arguments...
	: >"$LOG"
	/usr/bin/python3 "$AGENT_PY" --socket "$SOCK" --log "$LOG" --netns "/run/netns/$NS" "$@" \
		2>"$TMP/agent.err" &
	AGENT_PID=$!
	local deadline=$((SECONDS + 10))
	until [ -S "$SOCK" ]; do
		kill -0 "$AGENT_PID" 2>/dev/null || { cat "$TMP/agent.err"; echo "agent died"; exit 1; }
		[ $SECONDS -lt $deadline ] || { echo "agent did not start"; exit 1; }
		sleep 0.05
	done
}

stop_agent() {
	kill "$AGENT_PID"
	wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=""
	[ ! -e "$SOCK" ] || { echo "agent left its socket behind"; exit 1; }
}

PREV='{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"ips":[{"address":"10.1.0.5/24","interface":0}]}'
config() {	# [prevResult JSON or "none"] [cniVersion]
	local prev=${1:-$PREV} ver=${2:-1.0.0} p=""
	[ "$prev" = none ] || p=",\"prevResult\":$prev"
	printf '{"cniVersion":"%s","name":"k8s-pod-network","type":"ztunnel-cni","ztunnel_socket":"%s"%s}' \
		"$ver" "$SOCK" "$p"
}

# cni COMMAND STDIN [VAR=value...]: runs the plugin with a clean environment; sets RC and OUT.
cni() {
	local cmd=$1 input=$2
	shift 2
	OUT=$(printf '%s' "$input" | env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID=ctr-1 \
		CNI_NETNS="/run/netns/$NS" CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin \
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=foo;K8S_POD_UID=uid-123" \
		"$@" timeout 20 "$CNI" 2>"$TMP/cni.err")
	RC=$?
}

json_get() {	# JSON KEY: prints the value of a top-level key
	/usr/bin/python3 -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print(v if v is not None else "")' "$1" "$2" 2>/dev/null
}

expect_error() {	# what code [msg substring]
	local what=$1 code=$2 sub=${3:-}
	if [ $RC -eq 0 ]; then fail "$what: exit 0, wanted error $code"; return; fi
	local got msg
	got=$(json_get "$OUT" code)
	msg=$(json_get "$OUT" msg)
	[ "$got" = "$code" ] || { fail "$what: code '$got', wanted $code (out: $OUT)"; return; }
	if [ -n "$sub" ] && [[ "$msg" != *"$sub"* ]]; then
		fail "$what: msg '$msg' lacks '$sub'"; return
	fi
	pass "$what -> code $code: $msg"
}

last_log() {	# KEY: value of KEY in the agent's last logged request
	tail -1 "$LOG" | /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get(sys.argv[1]))' "$1"
}

# --- VERSION
cni VERSION ""
want='{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}'
[ $RC -eq 0 ] && [ "$OUT" = "$want" ] && pass "VERSION" || fail "VERSION: rc=$RC out=$OUT"

# --- config and environment errors (no agent needed)
cni ADD 'this is not json'
expect_error "ADD with invalid JSON" 4
cni ADD "$(config none)"
expect_error "ADD without prevResult" 4 "prevResult"
cni CHECK "$(config none)"
expect_error "CHECK without prevResult" 4 "prevResult"
cni ADD "$(config "$PREV" 9.9.9)"
expect_error "ADD with unsupported cniVersion" 1 "9.9.9"
cni ADD "$(config)" CNI_NETNS=
expect_error "ADD without CNI_NETNS" 7 "CNI_NETNS"
cni ADD "$(config)" CNI_COMMAND=FROB
expect_error "unknown CNI_COMMAND" 7 "FROB"

# --- no agent: DEL succeeds silently, ADD and CHECK say try again later
cni DEL "$(config)"
[ $RC -eq 0 ] && [ -z "$OUT" ] && pass "DEL with no agent socket" || fail "DEL no agent: rc=$RC out=$OUT"
cni ADD "$(config)"
expect_error "ADD with no agent socket" 11 "$SOCK"
cni CHECK "$(config)"
expect_error "CHECK with no agent socket" 11
# a stale socket file nobody listens on: connection refused
/usr/bin/python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET).bind(sys.argv[1])' "$SOCK"
cni DEL "$(config)"
[ $RC -eq 0 ] && [ -z "$OUT" ] && pass "DEL with refused socket" || fail "DEL refused: rc=$RC out=$OUT"
cni ADD "$(config)"
expect_error "ADD with refused socket" 11
rm -f "$SOCK"

# --- a working agent
start_agent
cni ADD "$(config)"
if [ $RC -ne 0 ]; then
	fail "ADD: rc=$RC out=$OUT err=$(cat "$TMP/cni.err")"
else
	/usr/bin/python3 - "$OUT" "$PREV" <<'EOF' && pass "ADD prints prevResult" || fail "ADD output: $OUT"
import json, sys
out, prev = json.loads(sys.argv[1]), json.loads(sys.argv[2])
prev["cniVersion"] = "1.0.0"
sys.exit(0 if out == prev else 1)
EOF
fi
[ "$(last_log kind)" = add ] && [ "$(last_log uid)" = uid-123 ] && [ "$(last_log name)" = foo ] &&
	[ "$(last_log namespace)" = default ] && [ "$(last_log service_account)" = "" ] &&
	pass "agent got add{uid-123, foo, default}" || fail "agent log: $(tail -1 "$LOG")"
[ "$(last_log nfds)" = 1 ] && [ "$(last_log netns_match)" = True ] &&
	pass "agent got exactly one fd, the pod's netns" || fail "netns fd: $(tail -1 "$LOG")"

# prevResult version is rewritten to the config's
cni ADD "$(config '{"cniVersion":"0.4.0","ips":[]}' 0.4.0)"
[ $RC -eq 0 ] && [ "$(json_get "$OUT" cniVersion)" = 0.4.0 ] && pass "ADD at cniVersion 0.4.0" ||
	fail "ADD 0.4.0: rc=$RC out=$OUT"

# without K8S_POD_UID the container ID is the uid
cni ADD "$(config)" CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=foo"
[ $RC -eq 0 ] && [ "$(last_log uid)" = ctr-1 ] && pass "uid falls back to CNI_CONTAINERID" ||
	fail "uid fallback: rc=$RC log=$(tail -1 "$LOG")"

# negative control: the agent notices a netns that is not the pod's
cni ADD "$(config)" CNI_NETNS=/proc/self/ns/net
expect_error "ADD with the host netns is refused by the agent's netns check" 999 "netns mismatch"

cni CHECK "$(config)"
[ $RC -eq 0 ] && [ -z "$OUT" ] && pass "CHECK" || fail "CHECK: rc=$RC out=$OUT"

cni DEL "$(config none)"
[ $RC -eq 0 ] && [ -z "$OUT" ] && [ "$(last_log kind)" = del ] && [ "$(last_log uid)" = uid-123 ] &&
	[ "$(last_log nfds)" = 0 ] && pass "DEL sends del{uid-123} without fds" ||
	fail "DEL: rc=$RC out=$OUT log=$(tail -1 "$LOG")"
stop_agent

# --- an agent that refuses
start_agent --nack "pod is not in the mesh"
cni ADD "$(config)"
expect_error "ADD NACKed" 999 "refused pod default/foo: pod is not in the mesh"
stop_agent

# --- an agent speaking another protocol version
start_agent --hello-version 2
cni ADD "$(config)"
expect_error "ADD with ZDS version 2 agent" 999 "version 2"
stop_agent

# --- a hung agent: the plugin gives up after its 10 s socket timeout instead of hanging
start_agent --silent
start=$SECONDS
cni ADD "$(config)"
expect_error "ADD with a silent agent" 11 "sent no hello"
elapsed=$((SECONDS - start))
[ $elapsed -ge 9 ] && [ $elapsed -le 15 ] && pass "silent agent timed out after ${elapsed}s" ||
	fail "silent agent: took ${elapsed}s, wanted about 10"
stop_agent

if [ $failures -ne 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all CNI plugin checks passed"
