#!/usr/bin/env bash
# Metrics on 15020: one connection through the mesh (client on node1 -> halfclose_server on
# server, node2) carrying 12345 bytes up and a reply of known length down is counted exactly once
# by each side (reporter="source" on node1, "destination" on node2) with upstream's labels and
# byte semantics; a connection through a service VIP carries the service labels; a connection
# denied by policy is counted with response_flags="DENY"; active_proxy_count follows enrollment.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
BASE=$TB_TESTDATA/policy-mesh.yaml
CFG=$TBDIR/cfg.yaml
NBYTES=12345
SPIFFE=spiffe://cluster.local/ns/default/sa

# prom.py FILE METRIC [label=value ...]: sum of METRIC's samples whose labels include all the
# given pairs (0 if none); prom.py --show FILE METRIC [...] prints those samples instead. Exits
# non-zero when FILE is not Prometheus text.
cat >"$TBDIR/prom.py" <<'EOF'
import re, sys
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
def parse(path):
    out = []
    for n, raw in enumerate(open(path, encoding="utf-8"), 1):
        raw = raw.rstrip("\n")
        if not raw or raw.startswith("#"):
            continue
        m = LINE.match(raw)
        if not m:
            sys.exit("%s:%d: not Prometheus text: %r" % (path, n, raw))
        labels, rest = {}, m.group(2) or ""
        pos = 0
        while pos < len(rest):
            lm = LABEL.match(rest, pos)
            if not lm:
                sys.exit("%s:%d: bad labels: %r" % (path, n, rest))
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            sys.exit("%s:%d: bad value: %r" % (path, n, raw))
    return out
show = sys.argv[1] == "--show"
args = sys.argv[2:] if show else sys.argv[1:]
path, metric, want = args[0], args[1], dict(a.split("=", 1) for a in args[2:])
total = 0.0
for name, labels, value in parse(path):
    if name == metric and all(labels.get(k) == v for k, v in want.items()):
        total += value
        if show:
            print(name, labels, value)
if not show:
    print(int(total) if total == int(total) else total)
EOF
prom() { "$PY" "$TBDIR/prom.py" "$@" || tb_fail "prom.py $*"; }
scrape() {	# NODE OUT
	tb_exec_node "$1" timeout 5 curl -sS --max-time 3 -o "$TBDIR/$2" -w '%{http_code}' \
		http://127.0.0.1:15020/metrics >"$TBDIR/$2.code" 2>"$TBDIR/$2.err" &&
		[ "$(cat "$TBDIR/$2.code")" = 200 ] ||
		tb_fail "scraping $1:15020/metrics: HTTP $(cat "$TBDIR/$2.code") $(cat "$TBDIR/$2.err")"
	"$PY" "$TBDIR/prom.py" "$TBDIR/$2" x >/dev/null || tb_fail "$1's /metrics is not Prometheus text"
}
# delta BEFORE AFTER METRIC labels...: the change of the summed metric between two scrapes
delta() {
	local a b
	a=$(prom "$TBDIR/$1" "${@:3}"); b=$(prom "$TBDIR/$2" "${@:3}")
	echo $((b - a))
}
# expect_delta WHAT BEFORE AFTER WANT METRIC labels...
expect_delta() {
	local what=$1 d
	d=$(delta "$2" "$3" "${@:5}")
	if [ "$d" != "$4" ]; then
		tb_log "series of $5 in $3:"
		"$PY" "$TBDIR/prom.py" --show "$TBDIR/$3" "$5" >&2
		tb_fail "$what: $5 changed by $d, want $4 (labels: ${*:6})"
	fi
	tb_log "ok: $what: $5 +$d"
}
# moved NODE BEFORE AFTER METRIC labels...: scrape NODE into AFTER; true when METRIC summed over
# the labels is above its value in BEFORE
moved() {
	local node=$1 before=$2 after=$3; shift 3
	scrape "$node" "$after"
	[ "$(delta "$before" "$after" "$@")" -gt 0 ]
}

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 other 10.201.1.4
tb_pod node2 server 10.201.2.2
{ cat "$BASE"; printf '%s\n' 'policies:' \
	'- {name: deny-port, namespace: default, scope: Global, action: Deny, rules: [[[{destinationPorts: [9999]}]]]}'
} >"$CFG"
tb_agent node1 "$CFG"
tb_agent node2 "$CFG"
tb_enroll node1 client default client
tb_enroll node1 other default other
tb_enroll node2 server default server
tb_wait_port client 15001
tb_wait_port server 15008
tb_bg server "$PY" "$TB_PEERS/halfclose_server.py" --port 9100 >"$TBDIR/hc.log" 2>&1
tb_bg server "$PY" "$TB_PEERS/halfclose_server.py" --port 9999 >"$TBDIR/hc9999.log" 2>&1
tb_wait_port server 9100
tb_wait_port server 9999
tb_whoami server 8080

PAIR=(source_workload=client source_workload_namespace=default
	"source_principal=$SPIFFE/client" destination_workload=server
	destination_workload_namespace=default "destination_principal=$SPIFFE/server"
	request_protocol=tcp)
SRC=(reporter=source "${PAIR[@]}")
DST=(reporter=destination "${PAIR[@]}")
OK=(response_flags=- connection_security_policy=mutual_tls)

# 1. one connection with known bytes both ways
scrape node1 n1.0
scrape node2 n2.0
out=$(tb_exec client timeout 20 "$PY" "$TB_PEERS/tcp_client.py" 10.201.2.2:9100 \
	--send-bytes $NBYTES --timeout 10) || tb_fail "tcp_client through the mesh: $out"
reply=$(sed -n '2p' <<<"$out")
[[ "$reply" == "got $NBYTES bytes sha256="* ]] || tb_fail "unexpected reply: $out"
RBYTES=$((${#reply} + 1))	# the reply line and its newline
tb_log "sent $NBYTES bytes, got a reply of $RBYTES bytes: $reply"
tb_poll 10 moved node1 n1.0 n1.1 istio_tcp_connections_closed_total "${SRC[@]}" "${OK[@]}" ||
	tb_fail "node1: istio_tcp_connections_closed_total{reporter=source,...} did not move"
tb_poll 10 moved node2 n2.0 n2.1 istio_tcp_connections_closed_total "${DST[@]}" "${OK[@]}" ||
	tb_fail "node2: istio_tcp_connections_closed_total{reporter=destination,...} did not move"
for m in opened closed; do
	expect_delta "node1 source" n1.0 n1.1 1 "istio_tcp_connections_${m}_total" "${SRC[@]}" "${OK[@]}"
	expect_delta "node2 destination" n2.0 n2.1 1 "istio_tcp_connections_${m}_total" "${DST[@]}" "${OK[@]}"
done
expect_delta "node1 source: bytes the client sent" n1.0 n1.1 $NBYTES istio_tcp_sent_bytes_total "${SRC[@]}" "${OK[@]}"
expect_delta "node1 source: bytes the client got back" n1.0 n1.1 $RBYTES istio_tcp_received_bytes_total "${SRC[@]}" "${OK[@]}"
expect_delta "node2 destination: bytes to the app" n2.0 n2.1 $NBYTES istio_tcp_received_bytes_total "${DST[@]}" "${OK[@]}"
expect_delta "node2 destination: bytes from the app" n2.0 n2.1 $RBYTES istio_tcp_sent_bytes_total "${DST[@]}" "${OK[@]}"
# nothing else was counted in that window
expect_delta "node1: all opened" n1.0 n1.1 1 istio_tcp_connections_opened_total
expect_delta "node2: all opened" n2.0 n2.1 1 istio_tcp_connections_opened_total
BACKEND=${ZTUNNEL_REDIRECT:-nftables}
expect_delta "node1: the capture delivered it to 15001" n1.0 n1.1 1 \
	ztunnel_redirected_connections_total "backend=$BACKEND" direction=outbound
expect_delta "node2: it came over HBONE, not through 15006" n2.0 n2.1 0 \
	ztunnel_redirected_connections_total "backend=$BACKEND" direction=inbound

# 2. through the service VIP: the service labels are filled in by the source
scrape node1 n1v.0
out=$(tb_exec client timeout 10 curl -sS --max-time 5 http://10.96.0.10/vip) ||
	tb_fail "curl to the service VIP: $out"
[[ "$out" == *"server=server"* ]] || tb_fail "VIP reply: $out"
VIP=(destination_service=web.default.svc.cluster.local destination_service_name=web
	destination_service_namespace=default)
tb_poll 10 moved node1 n1v.0 n1v istio_tcp_connections_closed_total "${SRC[@]}" "${OK[@]}" ||
	tb_fail "node1: the VIP connection was not counted"
expect_delta "node1 source via VIP" n1v.0 n1v 1 istio_tcp_connections_opened_total "${SRC[@]}" "${OK[@]}" "${VIP[@]}"

# 3. a connection denied by policy (port 9999)
scrape node2 n2d.0
if out=$(tb_exec client timeout 20 "$PY" "$TB_PEERS/tcp_client.py" 10.201.2.2:9999 \
	--send-bytes 100 --timeout 5); then
	tb_fail "the connection to port 9999 was not denied: $out"
fi
DENY=("${DST[@]}" response_flags=DENY)
denied_moved() {
	scrape node2 n2d
	local m
	for m in opened closed failed; do
		[ "$(delta n2d.0 n2d "istio_tcp_connections_${m}_total" "${DENY[@]}")" -gt 0 ] && return 0
	done
	return 1
}
tb_poll 10 denied_moved || {
	"$PY" "$TBDIR/prom.py" --show "$TBDIR/n2d" istio_tcp_connections_closed_total >&2
	tb_fail "node2: no istio_tcp_connections_*_total with response_flags=DENY for the denied connection"
}
for m in opened closed failed; do
	d=$(delta n2d.0 n2d "istio_tcp_connections_${m}_total" "${DENY[@]}")
	tb_log "node2 destination, response_flags=DENY: istio_tcp_connections_${m}_total +$d"
	[ "$d" -le 1 ] || tb_fail "one denied connection counted $d times in $m"
done
expect_delta "node2 DENY: no bytes reached the app" n2d.0 n2d 0 istio_tcp_received_bytes_total "${DENY[@]}"
! grep -q "got 100 bytes" "$TBDIR/hc9999.log" || tb_fail "the denied connection reached the app"

# 4. gauges
expect_gauge() {	# FILE WANT METRIC
	local v; v=$(prom "$TBDIR/$1" "$3")
	grep -q "^$3[ {]" "$TBDIR/$1" || tb_fail "$1: no $3"
	[ "$v" = "$2" ] || tb_fail "$3 = $v in $1, want $2"
	tb_log "ok: $1: $3 = $v"
}
scrape node1 g1
expect_gauge g1 2 active_proxy_count
expect_gauge n2d 1 active_proxy_count
now=$(date +%s)
exp=$(prom "$TBDIR/g1" ztunnel_certificate_expiry_seconds)
[ "$exp" -gt "$now" ] && [ "$exp" -le $((now + 86400 + 600)) ] ||
	tb_fail "ztunnel_certificate_expiry_seconds = $exp, want a unix time within the next 24 h"
tb_log "ok: ztunnel_certificate_expiry_seconds = $exp (in $(((exp - now) / 3600)) h)"
[ "$(prom "$TBDIR/g1" istio_build component=ztunnel)" = 1 ] || tb_fail "no istio_build{component=\"ztunnel\"} 1"
tb_unenroll node1 other default other
active_is() { scrape node1 g1b; [ "$(prom "$TBDIR/g1b" active_proxy_count)" = "$1" ]; }
tb_poll 5 active_is 1 || tb_fail "active_proxy_count on node1 is not 1 after CNI DEL"
tb_log "ok: active_proxy_count on node1 drops to 1 after CNI DEL"
code=$(tb_exec_node node1 curl -sS --max-time 3 -o "$TBDIR/sp" -w '%{http_code}' \
	http://127.0.0.1:15020/stats/prometheus)
[ "$code" = 200 ] && grep -q '^istio_tcp_connections_opened_total{' "$TBDIR/sp" ||
	tb_fail "/stats/prometheus: HTTP $code"
tb_log "ok: /stats/prometheus serves the same metrics"
tb_pass "metrics"
