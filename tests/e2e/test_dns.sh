#!/usr/bin/env bash
# DNS proxy: an enrolled pod's port-53 queries (to any server address) reach the agent's proxy on
# 15053 in the pod: dig gets the mesh's answers (service VIP, short forms expanded with the pod's
# namespace, CNAME when a search domain was stripped, wildcard host, headless service -> its
# endpoints and its pod by hostname, AAAA of a v4-only name -> NOERROR without records), the
# glibc resolver (getent with a search list) too, and curl by hostname reaches the service
# behind the VIP; other names are forwarded to a real dnsmasq in a pod of the test (NXDOMAIN
# relayed, a large answer truncated over UDP and fetched over TCP). Garbage datagrams and
# streams are dropped and counted, and a normal query is answered afterwards; a pod that floods
# forwards is shed while another pod is served. A pod outside the mesh is not captured. With
# ISTIO_META_DNS_CAPTURE=false: no listener, no port-53 rule, config_dump says off. The same
# with ZTUNNEL_REDIRECT=ebpf (the sk_lookup DNS hook, its ip rule instead of nftables rules).
set -u
. "$(dirname "$0")/lib.sh"
command -v dig >/dev/null || tb_skip "dig missing (dnsutils)"
command -v dnsmasq >/dev/null || tb_skip "dnsmasq missing"
tb_init

UPSTREAM=10.201.2.53		# dnsmasq, in a pod of node2 outside the mesh
KUBEDNS=10.96.0.53		# what the pods think their resolver is: nothing listens there

tb_node node1 1
tb_node node2 2
tb_link node1 node2
tb_pod node1 client 10.201.1.2
tb_pod node1 other 10.201.1.4
tb_pod node1 plain 10.201.1.9
tb_pod node2 server 10.201.2.2
tb_pod node2 resolver "$UPSTREAM"
# the pods' default route reaches the other node's pods, not 10.96/16: a captured query only
# gets an answer through the proxy

tb_config mesh.yaml <<'EOF'
workloads:
- uid: "Kubernetes//Pod/default/client"
  name: client
  namespace: default
  serviceAccount: client
  workloadIps: ["10.201.1.2"]
  protocol: HBONE
  node: node1
  canonicalName: client-app
  canonicalRevision: v1
- uid: "Kubernetes//Pod/prod/other"
  name: other
  namespace: prod
  serviceAccount: other
  workloadIps: ["10.201.1.4"]
  protocol: HBONE
  node: node1
- uid: "Kubernetes//Pod/default/server"
  name: server
  namespace: default
  serviceAccount: server
  workloadIps: ["10.201.2.2"]
  protocol: HBONE
  node: node2
  services: {"default/db.default.svc.cluster.local": {5432: 5432},
             "default/web.default.svc.cluster.local": {80: 8080},
             "default/example.com": {80: 8080}}
- uid: "Kubernetes//Pod/default/server-b"
  name: server-b
  namespace: default
  serviceAccount: server
  workloadIps: ["10.201.2.3"]
  protocol: HBONE
  node: node2
  hostname: db-1.db.default.svc.cluster.local
  services: {"default/db.default.svc.cluster.local": {5432: 5432}}
services:
- {name: web, namespace: default, hostname: web.default.svc.cluster.local,
   vips: ["/10.96.0.10"], ports: {80: 8080}}
- {name: web, namespace: prod, hostname: web.prod.svc.cluster.local,
   vips: ["/10.96.1.10"], ports: {80: 8080}}
- {name: db, namespace: default, hostname: db.default.svc.cluster.local, vips: [],
   ports: {5432: 5432}}
- {name: example, namespace: default, hostname: example.com, vips: ["/240.240.0.1"],
   ports: {80: 80}}
- {name: wild, namespace: default, hostname: "*.wild.example", vips: ["/240.240.0.2"],
   ports: {443: 443}}
- {name: entry-novip, namespace: default, hostname: novip.example, vips: [], ports: {80: 80}}
EOF

# The upstream resolver: dnsmasq with a few names of its own, NXDOMAIN for the rest of .test
# and of cluster.local, a TXT answer too big for 512 bytes, and slow.test sent on to an address
# where nothing answers (queries for it stay unanswered).
big=()
for i in $(seq 1 12); do
	big+=("--txt-record=big.test,record-$i-$(printf 'x%.0s' $(seq 1 60))")
done
tb_bg resolver dnsmasq --no-daemon --log-facility=- --no-resolv --no-hosts --bind-interfaces \
	--listen-address="$UPSTREAM" --port=53 --local=/test/ --local=/cluster.local/ --log-queries \
	--address=/outside.test/192.0.2.7 --address=/novip.example/192.0.2.8 "${big[@]}" \
	--server=/slow.test/10.201.2.99 \
	>"$TBDIR/dnsmasq.log" 2>&1
tb_wait_log "$TBDIR/dnsmasq.log" 'started' 10 || tb_fail "dnsmasq did not start"

export DNS_UPSTREAMS=$UPSTREAM
tb_agent node1 mesh.yaml
tb_agent node2 mesh.yaml
tb_enroll node1 client default client
tb_enroll node1 other prod other
tb_enroll node2 server default server
tb_wait_port client 15001
tb_wait_port server 15008
tb_whoami server 8080

udp_listening() { [ -n "$(tb_exec "$1" ss -Hlun "sport = :15053" 2>/dev/null)" ]; }
tb_poll 10 udp_listening client || tb_fail "no UDP listener on 15053 in the client pod"
tb_wait_port client 15053
tb_log "ok: UDP and TCP 15053 listen in the client pod"

# dig POD ARGS...: one try, 2 s (no retries hide nothing: the proxy answers at once)
q() { local pod=$1; shift; tb_exec "$pod" timeout 10 dig +tries=1 +time=2 "$@" 2>&1; }
answers() { q "$@" | awk '/^;; ANSWER SECTION:/{a=1;next} /^$/{a=0} a && !/^;/' ; }
status_of() { q "$@" | sed -n 's/.*status: \([A-Z]*\).*/\1/p' | head -1; }
expect() {	# WHAT WANT GOT
	[ "$3" = "$2" ] || tb_fail "$1: want '$2', got '$3'"
	tb_log "ok: $1 -> $(echo "$3" | tr '\n' ' ')"
}
ips_of() { answers "$@" | awk '$4 == "A" {print $5}' | sort | tr '\n' ' ' | sed 's/ $//'; }


# 1. mesh names, whatever server address the pod asks
expect "A web.default.svc.cluster.local" 10.96.0.10 \
	"$(ips_of client @$KUBEDNS web.default.svc.cluster.local)"
expect "A web (short, the pod's namespace)" 10.96.0.10 "$(ips_of client @$KUBEDNS web)"
expect "A web.prod (short)" 10.96.1.10 "$(ips_of client @$KUBEDNS web.prod)"
expect "A web.default.svc (short)" 10.96.0.10 "$(ips_of client @$KUBEDNS web.default.svc)"
expect "A web from a pod in prod" 10.96.1.10 "$(ips_of other @$KUBEDNS web)"
expect "A web asked of the upstream's own address (still captured)" 10.96.0.10 \
	"$(ips_of client @$UPSTREAM web.default.svc.cluster.local)"
ttl=$(answers client @$KUBEDNS web.default.svc.cluster.local | awk '{print $2}' | head -1)
expect "TTL" 30 "$ttl"
flags=$(q client @$KUBEDNS web.default.svc.cluster.local | sed -n 's/.*flags: \([a-z ]*\);.*/\1/p')
[[ " $flags " == *" aa "* ]] || tb_fail "mesh answer is not authoritative: flags '$flags'"
tb_log "ok: flags '$flags'"

# CNAME: the name glibc builds from "example.com" and the first search domain
out=$(answers client @$KUBEDNS example.com.default.svc.cluster.local)
echo "$out" | grep -Eq '^example\.com\.default\.svc\.cluster\.local\.[[:space:]]+30[[:space:]]+IN[[:space:]]+CNAME[[:space:]]+example\.com\.$' ||
	tb_fail "no CNAME example.com.default.svc.cluster.local -> example.com: $out"
echo "$out" | grep -Eq '^example\.com\.[[:space:]]+30[[:space:]]+IN[[:space:]]+A[[:space:]]+240\.240\.0\.1$' ||
	tb_fail "no A example.com 240.240.0.1 after the CNAME: $out"
tb_log "ok: CNAME then A: $(echo "$out" | tr '\n' ' ' | tr -s ' \t' ' ')"
expect "A example.com (ServiceEntry-style host)" 240.240.0.1 "$(ips_of client @$KUBEDNS example.com)"
expect "A wildcard host" 240.240.0.2 "$(ips_of client @$KUBEDNS a.b.wild.example)"
expect "A headless service: its endpoints" "10.201.2.2 10.201.2.3" "$(ips_of client @$KUBEDNS db)"
expect "A a headless service's pod by its hostname (pod.subdomain)" 10.201.2.3 \
	"$(ips_of client @$KUBEDNS db-1.db)"
# shuffled: over some tries both endpoints come first
firsts=$(for i in $(seq 1 30); do answers client @$KUBEDNS db | awk '$4 == "A" {print $5; exit}'; done |
	sort -u | tr '\n' ' ')
[ "$(echo "$firsts" | wc -w)" -eq 2 ] || tb_fail "headless answers never reordered: first were '$firsts'"
tb_log "ok: answers are shuffled (first seen: $firsts)"
expect "AAAA web (v4 only): status" NOERROR "$(status_of client @$KUBEDNS web AAAA)"
expect "AAAA web (v4 only): no records" "" "$(answers client @$KUBEDNS web AAAA)"
expect "A over TCP" 10.96.0.10 "$(ips_of client +tcp @$KUBEDNS web.default.svc.cluster.local)"

# the glibc resolver with the pod's search list
mkdir -p "/etc/netns/$TB-client"
NETNS_ETC=/etc/netns/$TB-client
trap 'rc=$?; rm -rf "$NETNS_ETC"; (exit $rc); tb__on_exit' EXIT
printf 'nameserver %s\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 attempts:1 timeout:2\n' \
	"$KUBEDNS" >"$NETNS_ETC/resolv.conf"
got=$(tb_exec client timeout 10 getent ahostsv4 web | awk '{print $1}' | sort -u | tr '\n' ' ')
expect "getent ahostsv4 web (glibc, search list)" "10.96.0.10 " "$got"
got=$(tb_exec client timeout 10 getent ahostsv4 example.com | awk '{print $1}' | sort -u | tr '\n' ' ')
expect "getent ahostsv4 example.com (glibc: CNAME via search domain)" "240.240.0.1 " "$got"

# a hostname-addressed connection: curl resolves example.com through the proxy (glibc, search
# list) and its connection to the VIP goes to the service's endpoint over HBONE
out=$(tb_curl client http://example.com/by-name) || tb_fail "curl http://example.com/ from the client"
[[ "$out" == *"server=server"* ]] || tb_fail "example.com reply '$out' does not come from server"
tb_wait_log "$TBDIR/agent-node1.log" \
	'msg="connection complete".*src.addr=10\.201\.1\.2:[0-9]+ .*dst.addr=10\.201\.2\.2:8080 .*dst.service=example.com .*direction=outbound' 10 ||
	tb_fail "node1: no outbound connection to example.com's endpoint logged"
tb_log "ok: curl http://example.com/ -> VIP 240.240.0.1 -> service example.com -> server (HBONE)"

# 2. forwarded to the upstream resolver, answers relayed
expect "A outside.test (forwarded)" 192.0.2.7 "$(ips_of client @$KUBEDNS outside.test)"
expect "NXDOMAIN relayed" NXDOMAIN "$(status_of client @$KUBEDNS nope.test)"
expect "VIP-less ServiceEntry host is the upstream's" 192.0.2.8 \
	"$(ips_of client @$KUBEDNS novip.example)"
grep -q 'query\[A\] outside.test from 10.201.1.2' "$TBDIR/dnsmasq.log" ||
	tb_fail "dnsmasq did not see the forwarded query from the pod's address"
tb_log "ok: dnsmasq saw the forwarded query"
if grep -q 'web.default.svc.cluster.local' "$TBDIR/dnsmasq.log"; then
	tb_fail "a mesh name reached the upstream resolver"
fi
big_out=$(q client +noedns +ignore @$KUBEDNS big.test TXT)
echo "$big_out" | grep -q 'flags: qr[a-z ]* tc' ||
	tb_fail "big.test over UDP without EDNS was not truncated: $big_out"
n=$(q client +noedns @$KUBEDNS big.test TXT | grep -c 'TXT.*"record-')
[ "$n" -eq 12 ] || tb_fail "big.test: dig (retrying over TCP after TC) got $n of 12 TXT records"
tb_log "ok: big answer truncated over UDP, complete over TCP (12 TXT records)"
n=$(q client +bufsize=4096 @$KUBEDNS big.test TXT | grep -c 'TXT.*"record-')
[ "$n" -eq 12 ] || tb_fail "big.test with EDNS 4096 over UDP: $n of 12 records"
tb_log "ok: with EDNS 4096 the whole answer comes over UDP"

# 3. not captured: a pod outside the mesh asks the upstream's address and gets its answer
out=$(q plain @$UPSTREAM web.default.svc.cluster.local)
echo "$out" | grep -q 'status: NXDOMAIN' || tb_fail "non-enrolled pod was answered by the proxy: $out"
tb_log "ok: non-enrolled pod: upstream says NXDOMAIN for the mesh name (not captured)"
q plain @$KUBEDNS web | grep -q 'timed out\|no servers could be reached' ||
	tb_fail "non-enrolled pod got an answer from $KUBEDNS (nothing should listen there)"
tb_log "ok: non-enrolled pod: $KUBEDNS does not answer"

# 4. bad input: dropped, counted, still answering
tb_exec client timeout 20 "$PY" - "$KUBEDNS" <<'EOF' || tb_fail "garbage sender failed"
import random, socket, struct, sys
dst = (sys.argv[1], 53)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
hdr = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
msgs = [b"", b"\x00", b"\x12\x34\x01", hdr,                      # empty, truncated header
        hdr + b"\x03www",                                       # truncated name
        hdr + b"\xc0\x0c\x00\x01\x00\x01",                      # pointer to itself
        hdr + b"\x01a\xc0\x12\x00\x01\x00\x01" + b"\xc0\x0c",   # pointer loop a -> b -> a
        hdr + b"\x3f" + b"a" * 63 * 5,                          # name over 255 bytes
        hdr[:2] + b"\x81\x80" + hdr[4:] + b"\x00\x00\x01\x00\x01",  # a response, not a query
        b"\x00" * 6000, bytes(random.getrandbits(8) for _ in range(3000))]  # oversized
random.seed(7)
for i in range(300):
    msgs.append(bytes(random.getrandbits(8) for _ in range(random.randint(1, 600))))
for m in msgs:
    u.sendto(m, dst)
# TCP: a length over the limit, a stream of garbage, a half query then close
for data in (b"\xff\xff" + b"a" * 100, bytes(random.getrandbits(8) for _ in range(5000)),
             b"\x00\x40\x12\x34"):
    t = socket.create_connection(dst, timeout=5)
    try:
        t.sendall(data)
        t.settimeout(2)
        t.recv(100)
    except OSError:
        pass
    t.close()
EOF
expect "A web after garbage" 10.96.0.10 "$(ips_of client @$KUBEDNS web)"
expect "A web over TCP after garbage" 10.96.0.10 "$(ips_of client +tcp @$KUBEDNS web)"
kill -0 "$(tb_agent_pid node1)" || tb_fail "agent on node1 died"
metrics() { tb_exec node1 curl -sS --max-time 5 http://127.0.0.1:15020/metrics; }
m=$(metrics)
mal=$(echo "$m" | sed -n 's/^ztunnel_dns_dropped_total{reason="malformed"} //p')
over=$(echo "$m" | sed -n 's/^ztunnel_dns_dropped_total{reason="oversized"} //p')
[ "${mal:-0}" -ge 5 ] || tb_fail "malformed drops not counted: '$mal'"
[ "${over:-0}" -ge 2 ] || tb_fail "oversized drops not counted: '$over'"
tb_log "ok: dropped malformed=$mal oversized=$over"

# 5. metrics with upstream's names and labels
echo "$m" | grep -Eq '^istio_dns_requests_total\{request_query_type="a",request_protocol="udp",source_canonical_service="client-app",source_canonical_revision="v1"\} [1-9]' ||
	tb_fail "istio_dns_requests_total for the client's A/udp queries missing: $(echo "$m" | grep istio_dns_requests)"
echo "$m" | grep -Eq '^istio_dns_requests_total\{request_query_type="a",request_protocol="tcp",' ||
	tb_fail "no istio_dns_requests_total for tcp"
echo "$m" | grep -Eq '^istio_dns_upstream_requests_total\{request_query_type="txt",request_protocol="(udp|tcp)",source_canonical_service="client-app"' ||
	tb_fail "no istio_dns_upstream_requests_total for the forwarded TXT queries"
echo "$m" | grep -Eq '^istio_dns_upstream_request_duration_seconds_count\{request_query_type="a",' ||
	tb_fail "no istio_dns_upstream_request_duration_seconds for A"
echo "$m" | grep -Eq '^istio_dns_upstream_failures_total' || tb_fail "no istio_dns_upstream_failures_total"
tb_log "ok: $(echo "$m" | grep -E '^istio_dns_(upstream_)?requests_total' | wc -l) istio_dns request series"

# 6. a pod that floods queries the upstream never answers is held to its bound of forwards in
# flight, the rest shed; another pod is still answered, forwards included
cat >"$TBDIR/flood.py" <<'EOF'
import os, socket, struct, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setblocking(False)
i = 0
while not (i % 256 == 0 and os.path.exists(sys.argv[2])):
    q = struct.pack("!HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l for l in (b"n%d" % i, b"slow", b"test")) + b"\x00\x00\x01\x00\x01"
    try:
        u.sendto(q, (sys.argv[1], 53))
    except BlockingIOError:
        time.sleep(0.001)
    i += 1
EOF
tb_bg client timeout 60 "$PY" "$TBDIR/flood.py" "$KUBEDNS" "$TBDIR/flood.stop" \
	>"$TBDIR/flood.log" 2>&1
flood=$TB_BG_PID
shed() { metrics | sed -n 's/^ztunnel_dns_dropped_total{reason="overload"} //p'; }
shedding() { [ "$(shed)" -gt 100 ]; }
tb_poll 10 shedding || tb_fail "the flood was not shed: overload drops '$(shed)'"
tb_log "ok: flood shed: $(shed) queries over the pod's bound dropped"
# (a stub resolver retries: so does dig here; the flooding pod's own queries share its socket
# with the flood and may be lost with it, so they are checked after it)
expect "other pod: A web during the flood" 10.96.1.10 "$(ips_of other +tries=3 @$KUBEDNS web)"
expect "other pod: forwarded A during the flood" 192.0.2.7 \
	"$(ips_of other +tries=3 @$KUBEDNS outside.test)"
kill -0 "$flood" 2>/dev/null || tb_fail "the flood ended before the checks (they prove nothing)"
touch "$TBDIR/flood.stop"
tb_wait_pid "$flood" 10 || tb_fail "the flood did not stop"
kill -0 "$(tb_agent_pid node1)" || tb_fail "agent on node1 died during the flood"
expect "client: A web after the flood" 10.96.0.10 "$(ips_of client @$KUBEDNS web)"

# a pod leaves with forwards in flight (slow.test is never answered): its listeners close at
# once, the agent goes on serving the others
tb_exec other timeout 10 "$PY" - "$KUBEDNS" <<'EOF' || tb_fail "sending from other"
import socket, struct, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(40):
    q = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0) + b"\x02l%d\x04slow\x04test\x00\x00\x01\x00\x01" % (i % 10)
    u.sendto(q, (sys.argv[1], 53))
EOF
tb_unenroll node1 other prod other
gone() { ! udp_listening other && ! tb__listening other 15053; }
tb_poll 10 gone || tb_fail "the removed pod's DNS listeners are still open"
kill -0 "$(tb_agent_pid node1)" || tb_fail "agent on node1 died when a pod with forwards left"
expect "client: A web after another pod left" 10.96.0.10 "$(ips_of client @$KUBEDNS web)"
# (the client's own bound may still be full of its flood's forwards, each given up after 4
# tries of 2 s: poll, as its stub resolver would retry)
forwarded_ok() { [ "$(ips_of client @$KUBEDNS outside.test)" = 192.0.2.7 ]; }
tb_poll 30 forwarded_ok || tb_fail "client: forwarded A not answered after the flood's forwards ended"
tb_log "ok: client: forwarded A answered again once its flood's forwards were over"

# 7. config_dump shows it; then DNS off: no listener, no rule, plain resolution
dump=$(tb_exec node1 curl -sS --max-time 5 http://127.0.0.1:15000/config_dump)
echo "$dump" | grep -q '"dns":{"enabled":true,"address":"127.0.0.1:15053","upstreams":\["10.201.2.53:53"\]}' ||
	tb_fail "config_dump lacks dns on: $(echo "$dump" | grep -o '"dns":{[^}]*}')"
tb_log "ok: config_dump $(echo "$dump" | grep -o '"dns":{[^}]*}')"
EBPF=0
[ "${ZTUNNEL_REDIRECT:-nftables}" = ebpf ] && EBPF=1
if [ $EBPF = 1 ]; then
	tb_exec client ip rule | grep -q 'ipproto udp dport 53 lookup 101' ||
		tb_fail "ebpf: no DNS rule: $(tb_exec client ip rule)"
else
	rules=$(tb_exec client nft list table inet istio-ambient-nat)
	echo "$rules" | grep -q 'udp dport 53 .*redirect to :15053' || tb_fail "no UDP 53 rule: $rules"
	echo "$rules" | grep -q 'tcp dport 53 .*redirect to :15053' || tb_fail "no TCP 53 rule: $rules"
fi
tb_agent_stop node1
ISTIO_META_DNS_CAPTURE=false tb_agent node1 mesh.yaml
tb_wait_log "$TBDIR/agent-node1.log" 'pod enrolled.*default/client' 10 || tb_fail "client not restored"
tb_wait_port client 15001
dump=$(tb_exec node1 curl -sS --max-time 5 http://127.0.0.1:15000/config_dump)
echo "$dump" | grep -q '"dns":{"enabled":false' || tb_fail "config_dump lacks dns off"
if udp_listening client || tb__listening client 15053; then
	tb_fail "DNS off, but 15053 still listens in the pod"
fi
if [ $EBPF = 1 ]; then
	if tb_exec client ip rule | grep -q 'dport 53'; then
		tb_fail "ebpf: DNS off, but the DNS rule is there: $(tb_exec client ip rule)"
	fi
else
	rules=$(tb_exec client nft list table inet istio-ambient-nat)
	if echo "$rules" | grep -q 'dport 53'; then
		tb_fail "DNS off, but a port-53 rule is there: $rules"
	fi
	echo "$rules" | grep -q 'redirect to :15001' || tb_fail "the TCP capture went missing: $rules"
fi
out=$(q client @$UPSTREAM web.default.svc.cluster.local)
echo "$out" | grep -q 'status: NXDOMAIN' || tb_fail "DNS off: the query was still answered by the proxy: $out"
tb_log "ok: DNS off: no 15053 listener, no port-53 rule, queries go to the real server"
tb_pass "DNS proxy answers, forwards, survives garbage and floods, and turns off"
