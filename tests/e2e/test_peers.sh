#!/usr/bin/env bash
# The independent HBONE peers against each other (no agent): hbone_client.py -> hbone_server.py
# with openssl-made certs. Round trip, 20 MiB with half-close and flow control, identity check,
# foreign-CA client refused, 503 for a closed port, concurrent clients.
set -u
TB_NEED_AGENT=0
. "$(dirname "$0")/lib.sh"
tb_init
tb_node node1 1
tb_pod node1 srv 10.201.1.2
tb_pod node1 cli 10.201.1.3

tb_openssl_ca ca
tb_openssl_ca other
tb_openssl_cert server spiffe://cluster.local/ns/default/sa/server
tb_openssl_cert tester spiffe://cluster.local/ns/default/sa/tester
tb_openssl_cert stranger spiffe://cluster.local/ns/default/sa/tester other

tb_bg srv "$PY" "$TB_PEERS/hbone_server.py" --cert "$TBDIR/server.pem" --key "$TBDIR/server.key" \
	--ca "$TBDIR/ca.pem" >"$TBDIR/hbone_server.log" 2>&1
tb_bg srv "$PY" "$TB_PEERS/whoami_server.py" --port 8080 --name srv 2>/dev/null
tb_bg srv "$PY" "$TB_PEERS/halfclose_server.py" --port 9100 2>/dev/null
tb_wait_port srv 15008
tb_wait_port srv 8080
tb_wait_port srv 9100

hc() {	# CERT AUTHORITY [args...]
	local cert=$1 auth=$2; shift 2
	tb_exec cli timeout 60 "$PY" "$TB_PEERS/hbone_client.py" --connect 10.201.1.2:15008 \
		--authority "$auth" --cert "$TBDIR/$cert.pem" --key "$TBDIR/$cert.key" \
		--ca "$TBDIR/ca.pem" "$@"
}

# 1. round trip with the identity check
out=$(hc tester 10.201.1.2:8080 --expect-identity spiffe://cluster.local/ns/default/sa/server \
	--data $'GET /hello HTTP/1.0\r\n\r\n' 2>"$TBDIR/c1.err")
rc=$?
cat "$TBDIR/c1.err"
[ $rc -eq 0 ] || tb_fail "round trip: exit $rc"
grep -q 'server identity=spiffe://cluster.local/ns/default/sa/server' "$TBDIR/c1.err" ||
	tb_fail "client did not print the server SAN"
[[ "$out" == *"HTTP/1.0 200"*"server=srv"*"path=/hello"* ]] || tb_fail "round trip reply: $out"
tb_log "ok: CONNECT round trip to the app, reply: $(echo "$out" | grep peer=)"
tb_wait_log "$TBDIR/hbone_server.log" 'identity=spiffe://cluster.local/ns/default/sa/tester authority=10.201.1.2:8080 status=200' ||
	tb_fail "server did not log the client SAN"
tb_log "ok: server logged the client's URI SAN"

# 2. 20 MiB from stdin (more than the 16 MiB connection window), half-close, reply after EOF
head -c $((20 << 20)) /dev/urandom >"$TBDIR/blob"
want="got $((20 << 20)) bytes sha256=$(sha256sum "$TBDIR/blob" | cut -d' ' -f1)"
out=$(hc tester 10.201.1.2:9100 <"$TBDIR/blob" 2>"$TBDIR/c2.err")
rc=$?
[ $rc -eq 0 ] || { cat "$TBDIR/c2.err"; tb_fail "bulk: exit $rc"; }
[ "$out" = "$want" ] || tb_fail "bulk: got '$out', want '$want'"
tb_log "ok: 20 MiB through the tunnel with half-close: $out"

# 3. the wrong expected identity is a TLS failure (4)
hc tester 10.201.1.2:8080 --expect-identity spiffe://cluster.local/ns/default/sa/other \
	--data x >/dev/null 2>"$TBDIR/c3.err"
rc=$?
[ $rc -eq 4 ] || { cat "$TBDIR/c3.err"; tb_fail "wrong identity: exit $rc, want 4"; }
tb_log "ok: wrong server identity -> exit 4: $(tail -1 "$TBDIR/c3.err")"

# 4. a client certificate from another CA is refused (4)
hc stranger 10.201.1.2:8080 --data x >/dev/null 2>"$TBDIR/c4.err"
rc=$?
[ $rc -eq 4 ] || { cat "$TBDIR/c4.err"; tb_fail "foreign CA client: exit $rc, want 4"; }
tb_log "ok: client cert from another CA refused -> exit 4: $(tail -1 "$TBDIR/c4.err")"

# 5. connect failure at the server -> 503 -> exit 3
hc tester 10.201.1.2:9999 --data x >/dev/null 2>"$TBDIR/c5.err"
rc=$?
[ $rc -eq 3 ] && grep -q 'status=503' "$TBDIR/c5.err" ||
	{ cat "$TBDIR/c5.err"; tb_fail "closed port: exit $rc, want 3 with status=503"; }
tb_log "ok: closed port -> 503 -> exit 3"

# 6. 20 concurrent clients
pids=()
for i in $(seq 1 20); do
	hc tester 10.201.1.2:9100 --data "client $i" >"$TBDIR/p$i.out" 2>"$TBDIR/p$i.err" &
	pids+=($!)
done
for i in $(seq 1 20); do
	wait "${pids[$((i - 1))]}" || tb_fail "concurrent client $i failed: $(cat "$TBDIR/p$i.err")"
	n=$(printf 'client %s' "$i" | wc -c)
	grep -q "^got $n bytes sha256=$(printf 'client %s' "$i" | sha256sum | cut -d' ' -f1)$" \
		"$TBDIR/p$i.out" || tb_fail "concurrent client $i: $(cat "$TBDIR/p$i.out")"
done
tb_log "ok: 20 concurrent clients got their own replies"
tb_pass "HBONE peers interoperate"
