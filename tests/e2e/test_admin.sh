#!/usr/bin/env bash
# Admin ports in the node netns: 15000 (127.0.0.1 only) serves /config_dump as JSON listing
# exactly what the YAML declared plus the node's certificates and enrolled pods, and /logging
# changes the log level at run time (400 for a bad level); 15021 /healthz/ready is 200; 15020 and
# 15021 answer on the node's addresses but 15000 does not; unknown paths are 404; with
# LOG_FORMAT=json every log line is a JSON object; the agent started with a soft
# RLIMIT_NOFILE of 1024 below its hard limit raises it to the hard limit, logs it, and reports it
# in /config_dump ("limits") and as process_max_fds (with process_open_fds) on 15020; POST
# /quitquitquit drains the agent, which exits 0.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
BASE=$TB_TESTDATA/policy-mesh.yaml
CFG=$TBDIR/cfg.yaml
L1=$TBDIR/agent-node1.log
CC='msg="connection complete"'

# http NODE METHOD URL OUT: HTTP status code (000 when the connection fails), body in $TBDIR/OUT
http() {
	tb_exec_node "$1" timeout 5 curl -sS --max-time 3 -X "$2" -o "$TBDIR/$4" \
		-w '%{http_code}' "$3" 2>"$TBDIR/$4.err"
}
expect_code() {	# WHAT WANT NODE METHOD URL
	local code
	code=$(http "$3" "$4" "$5" resp)
	[ "$code" = "$2" ] ||
		tb_fail "$1: $4 $5 on $3: HTTP $code, want $2 ($(cat "$TBDIR/resp.err" "$TBDIR/resp" 2>/dev/null | head -c 300))"
	tb_log "ok: $1: $4 $5 on $3 -> $code"
}

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 plain1 10.201.1.9
tb_pod node2 server 10.201.2.2
{ cat "$BASE"; cat <<'EOF'
policies:
- {name: allow-ns, namespace: default, scope: Namespace, action: Allow, rules: [[[{namespaces: ["default"]}]]]}
- {name: deny-port, namespace: default, scope: Global, action: Deny, rules: [[[{destinationPorts: [9999]}]]]}
peerAuthentications:
- {name: default, namespace: istio-system, mode: PERMISSIVE}
EOF
} >"$CFG"
# node1 starts with soft RLIMIT_NOFILE 1024 under a higher hard limit (raised first if need be)
NOFILE_HARD=$(ulimit -H -n)
if [ "$NOFILE_HARD" != unlimited ] && [ "$NOFILE_HARD" -le 1024 ]; then
	ulimit -H -n 4096 2>/dev/null && NOFILE_HARD=4096
fi
NOFILE_SOFT0=$(ulimit -S -n)
ulimit -S -n 1024 || tb_fail "ulimit -S -n 1024"
tb_agent node1 "$CFG"
ulimit -S -n "$NOFILE_SOFT0"
LOG_FORMAT=json tb_agent node2 "$CFG"
tb_enroll node1 client default client
tb_enroll node2 server default server
tb_wait_port client 15008
tb_wait_port server 15008
tb_whoami client 8080
tb_whoami server 8080

# readiness and the bind addresses
for n in node1 node2; do expect_code "ready" 200 $n GET http://127.0.0.1:15021/healthz/ready; done
expect_code "15021 on the link address" 200 node1 GET http://10.200.0.1:15021/healthz/ready
expect_code "15020 on the link address" 200 node1 GET http://10.200.0.1:15020/metrics
expect_code "15000 on localhost" 200 node1 GET http://127.0.0.1:15000/config_dump
for spec in node1:10.200.0.1 node1:10.201.1.1 node2:10.200.0.1; do
	code=$(http "${spec%%:*}" GET "http://${spec#*:}:15000/config_dump" resp)
	[ "$code" = 000 ] ||
		tb_fail "15000 answered HTTP $code on ${spec#*:} (from ${spec%%:*}): it must listen on 127.0.0.1 only"
	grep -q 'Connection refused\|Couldn.t connect' "$TBDIR/resp.err" ||
		tb_fail "connecting to ${spec#*:}:15000 from ${spec%%:*}: $(cat "$TBDIR/resp.err")"
	tb_log "ok: ${spec#*:}:15000 from ${spec%%:*} is refused ($(cat "$TBDIR/resp.err"))"
done
expect_code "unknown path" 404 node1 GET http://127.0.0.1:15000/no-such-page
expect_code "unknown path" 404 node1 GET http://127.0.0.1:15020/no-such-page
expect_code "unknown path" 404 node1 GET http://127.0.0.1:15021/no-such-page

# config_dump: exactly the YAML's objects, this node's pods and their certificates
cat >"$TBDIR/dump_check.py" <<'EOF'
import datetime, json, sys, time, yaml
cfg, dump, pods = yaml.safe_load(open(sys.argv[1])), sys.argv[2], sys.argv[3:]
try:
    d = json.load(open(dump))
except ValueError as e:
    sys.exit("config_dump is not JSON: %s" % e)
bad = []
def items(key):
    v = d.get(key)
    if isinstance(v, dict):
        return list(v.values())
    if not isinstance(v, list):
        bad.append("%s: missing or not a list (%r)" % (key, type(v).__name__))
        return []
    return v
def names(key, fields=("namespace", "name")):
    out = set()
    for x in items(key):
        if not isinstance(x, dict) or any(f not in x for f in fields):
            bad.append("%s: element without %s: %.200r" % (key, "/".join(fields), x))
            continue
        out.add(tuple(x[f] for f in fields))
    return out
def same(key, got, want):
    if got != want:
        bad.append("%s: dump has %s, the YAML declares %s" % (key, sorted(got), sorted(want)))
same("workloads", names("workloads", ("uid",)), {(w["uid"],) for w in cfg["workloads"]})
for key in ("services", "policies", "peerAuthentications"):
    same(key, names(key), {(x["namespace"], x["name"]) for x in cfg.get(key) or []})
want_pods = set()
for p in pods:
    uid, ns, name, sa = p.split(",")
    want_pods.add((uid, name, ns, "spiffe://cluster.local/ns/%s/sa/%s" % (ns, sa)))
same("pods", names("pods", ("uid", "name", "namespace", "identity")), want_pods)
def when(v):
    if isinstance(v, (int, float)):
        return float(v)
    for fmt in ("%b %d %H:%M:%S %Y GMT", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(v, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()
        except (TypeError, ValueError):
            pass
    try:
        return datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        bad.append("certificates: cannot read notAfter %r" % (v,))
        return 0.0
certs = {}
for c in items("certificates"):
    if isinstance(c, dict) and "identity" in c and "notAfter" in c:
        certs[c["identity"]] = when(c["notAfter"])
    else:
        bad.append("certificates: element without identity/notAfter: %.200r" % (c,))
now = time.time()
for _, _, _, ident in want_pods:
    if ident not in certs:
        bad.append("certificates: no certificate for %s (have %s)" % (ident, sorted(certs)))
    elif not now < certs[ident] < now + 2 * 86400:
        bad.append("certificates: %s notAfter %s is not in the next 2 days" % (ident, certs[ident]))
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("workloads=%d services=%d policies=%d peerAuthentications=%d pods=%d certificates=%d" % (
    len(cfg["workloads"]), len(cfg["services"]), len(cfg["policies"]),
    len(cfg["peerAuthentications"]), len(pods), len(certs)))
EOF
for spec in node1:uid-default-client,default,client,client node2:uid-default-server,default,server,server; do
	n=${spec%%:*}
	expect_code "config_dump" 200 "$n" GET http://127.0.0.1:15000/config_dump
	out=$("$PY" "$TBDIR/dump_check.py" "$CFG" "$TBDIR/resp" "${spec#*:}") ||
		tb_fail "$n config_dump: $out"
	tb_log "ok: $n config_dump matches: $out"
done

# RLIMIT_NOFILE: node1's soft limit raised from 1024 to the hard limit, in its log, config_dump
# and metrics; node2 (started at soft = hard) reports the same in its dump
[ "$NOFILE_HARD" != unlimited ] && [ "$NOFILE_HARD" -gt 1024 ] ||
	tb_fail "cannot give node1 a hard RLIMIT_NOFILE above 1024 (hard: $NOFILE_HARD)"
pid1=$(tb_agent_pid node1)
[ "$(readlink "/proc/$pid1/exe")" = "$(readlink -f "$ZT")" ] ||
	tb_fail "pid $pid1 is $(readlink "/proc/$pid1/exe"), not the agent $ZT"
read -r soft hard < <(awk '/^Max open files/ { print $4, $5 }' "/proc/$pid1/limits")
[ "$soft" = "$NOFILE_HARD" ] && [ "$hard" = "$NOFILE_HARD" ] ||
	tb_fail "node1's agent runs with RLIMIT_NOFILE soft=$soft hard=$hard, want both $NOFILE_HARD"
grep -q "msg=\"file descriptor limit\" soft=$NOFILE_HARD hard=$NOFILE_HARD was=1024" "$L1" ||
	tb_fail "node1 did not log the raise: $(grep 'file descriptor limit' "$L1")"
tb_log "ok: node1 raised RLIMIT_NOFILE from 1024 to $NOFILE_HARD: $(grep -o 'msg="file descriptor limit".*' "$L1")"
cat >"$TBDIR/limits_check.py" <<'EOF'
import json, sys
n = json.load(open(sys.argv[1]))["limits"]["nofile"]
want = sys.argv[2]
if n["soft"] != n["hard"] or (want != "any" and n["soft"] != int(want)):
    sys.exit("limits.nofile = %r, want soft = hard = %s" % (n, want))
EOF
limits_in_dump() {	# NODE WANT
	expect_code "config_dump" 200 "$1" GET http://127.0.0.1:15000/config_dump
	out=$("$PY" "$TBDIR/limits_check.py" "$TBDIR/resp" "$2" 2>&1) ||
		tb_fail "$1 config_dump: $out"
	tb_log "ok: $1 config_dump: $(grep -o '"limits":{[^}]*}}' "$TBDIR/resp")"
}
limits_in_dump node1 "$NOFILE_HARD"
limits_in_dump node2 any
expect_code "metrics" 200 node1 GET http://127.0.0.1:15020/metrics
max=$(awk '$1 == "process_max_fds" { print $2 }' "$TBDIR/resp")
open=$(awk '$1 == "process_open_fds" { print $2 }' "$TBDIR/resp")
now=$(find "/proc/$pid1/fd" -mindepth 1 -maxdepth 1 | wc -l)
[ "$max" = "$NOFILE_HARD" ] || tb_fail "node1 process_max_fds = $max, want $NOFILE_HARD"
# the descriptors move a little between the scrape and the count (the scrape's own socket)
[ -n "$open" ] && [ "$open" -gt 10 ] && [ $((open - now)) -le 5 ] && [ $((now - open)) -le 5 ] ||
	tb_fail "node1 process_open_fds = $open, /proc/$pid1/fd has $now entries"
tb_log "ok: node1 process_max_fds = $max, process_open_fds = $open (/proc: $now)"

# logging level at run time. Traffic that makes debug lines: an HBONE connection from outside
# the mesh to client's 15008 (TLS set-up and close) and a mesh request client -> server.
tb_cert tester spiffe://cluster.local/ns/default/sa/tester
traffic() {	# TAG: run it, wait for node1's access log of it
	local n
	n=$(tb_count "$L1" "$CC")
	tb_exec plain1 timeout 15 "$PY" "$TB_PEERS/hbone_client.py" --connect 10.201.1.2:15008 \
		--authority 10.201.1.2:8080 --cert "$TBDIR/tester.pem" --key "$TBDIR/tester.key" \
		--ca "$TBDIR/ca.pem" --timeout 10 --data $'GET /'"$1"$' HTTP/1.0\r\n\r\n' \
		>"$TBDIR/t.out" 2>"$TBDIR/t.err" || tb_fail "HBONE request ($1): $(cat "$TBDIR/t.err")"
	grep -q server=client "$TBDIR/t.out" || tb_fail "HBONE request ($1): $(cat "$TBDIR/t.out")"
	tb_curl client "http://10.201.2.2:8080/$1" >/dev/null || tb_fail "mesh request ($1)"
	tb_poll 5 tb_more_lines "$L1" "$CC" $((n + 1)) || tb_fail "node1 did not log the traffic ($1)"
}
expect_code "set level info" 200 node1 POST 'http://127.0.0.1:15000/logging?level=info'
expect_code "read level" 200 node1 GET 'http://127.0.0.1:15000/logging'
grep -qw info "$TBDIR/resp" || tb_fail "GET /logging after level=info: $(cat "$TBDIR/resp")"
nd=$(tb_count "$L1" 'level=debug')
traffic at-info
# absence of debug lines: give the agent a bounded second to (wrongly) write one
if tb_poll 1 tb_more_lines "$L1" 'level=debug' "$nd"; then
	tb_fail "level=info, yet node1 logged: $(grep 'level=debug' "$L1" | tail -1)"
fi
tb_log "ok: at level info the traffic logs no debug lines"
expect_code "set level debug" 200 node1 POST 'http://127.0.0.1:15000/logging?level=debug'
expect_code "read level" 200 node1 GET 'http://127.0.0.1:15000/logging'
grep -qw debug "$TBDIR/resp" || tb_fail "GET /logging after level=debug: $(cat "$TBDIR/resp")"
traffic at-debug
tb_poll 5 tb_more_lines "$L1" 'level=debug' "$nd" || tb_fail "level=debug, but the traffic logged no debug line"
tb_log "ok: at level debug the same traffic logs: $(grep 'level=debug' "$L1" | tail -1)"
expect_code "bad level" 400 node1 POST 'http://127.0.0.1:15000/logging?level=verbose'
expect_code "read level" 200 node1 GET 'http://127.0.0.1:15000/logging'
grep -qw debug "$TBDIR/resp" || tb_fail "a rejected level changed the level: $(cat "$TBDIR/resp")"
tb_log "ok: a bad level is rejected and the level stays debug"

# LOG_FORMAT=json (node2): every line one JSON object with ts/level/msg; the access log of the
# mesh requests client -> server carries upstream's keys
cat >"$TBDIR/json_check.py" <<'EOF'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
start = max(i for i, l in enumerate(lines) if l.startswith("=== agent start"))
keys = ("src.addr src.workload src.namespace src.identity dst.addr dst.hbone_addr dst.service "
        "dst.workload dst.namespace dst.identity direction bytes_sent bytes_recv duration").split()
found = None
for n, l in enumerate(lines[start + 1:], start + 2):
    try:
        o = json.loads(l)
    except ValueError:
        sys.exit("line %d is not JSON: %.200s" % (n, l))
    if not isinstance(o, dict) or any(k not in o for k in ("ts", "level", "msg")):
        sys.exit("line %d lacks ts/level/msg: %.200s" % (n, l))
    if (o["msg"] == "connection complete" and o.get("direction") == "inbound"
            and str(o.get("src.addr", "")).startswith("10.201.1.2:")):
        found = (n, o)
if not found:
    print("no inbound connection complete from 10.201.1.2 yet")
    sys.exit(2)
n, o = found
missing = [k for k in keys if k not in o]
want = {"src.identity": "spiffe://cluster.local/ns/default/sa/client", "dst.workload": "server",
        "dst.namespace": "default", "src.workload": "client"}
wrong = ["%s=%r" % (k, o.get(k)) for k, v in want.items() if o.get(k) != v]
if missing or wrong:
    sys.exit("line %d: missing %s, wrong %s: %s" % (n, missing, wrong, json.dumps(o)))
print("%d JSON lines; access log: %s" % (len(lines) - start - 1, json.dumps(o)))
EOF
json_ok() { "$PY" "$TBDIR/json_check.py" "$TBDIR/agent-node2.log" >"$TBDIR/json.out" 2>&1; }
tb_poll 5 json_ok || tb_fail "node2 LOG_FORMAT=json: $(cat "$TBDIR/json.out")"
tb_log "ok: node2 logs JSON: $(cat "$TBDIR/json.out")"

# POST /quitquitquit: readiness 503 (or closed), then a clean exit
pid=$(tb_agent_pid node1)
expect_code "quitquitquit" 200 node1 POST http://127.0.0.1:15000/quitquitquit
not_ready() { [ "$(http node1 GET http://127.0.0.1:15021/healthz/ready r)" != 200 ]; }
tb_poll 2 not_ready || tb_fail "node1 still ready 2 s after /quitquitquit"
tb_log "ok: node1 not ready after /quitquitquit (HTTP $(http node1 GET http://127.0.0.1:15021/healthz/ready r))"
tb_wait_pid "$pid" 8 || tb_fail "node1's agent still running 8 s after /quitquitquit"
[ "$TB_WAIT_RC" -eq 0 ] || tb_fail "node1's agent exited $TB_WAIT_RC after /quitquitquit, want 0"
tb_log "ok: node1's agent exited 0 after /quitquitquit"
expect_code "node2 unaffected" 200 node2 GET http://127.0.0.1:15021/healthz/ready
tb_pass "admin ports"
