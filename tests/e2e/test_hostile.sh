#!/usr/bin/env bash
# Hostile peers against node2's agent, with a long-lived mesh connection that must keep echoing
# through the attacks: 2,000 idle pre-handshake connections cost little memory (bound, not timing); the
# per-source and node bounds on pending handshakes refuse the excess; a rapid-reset peer opens
# (almost) no app connections; a 1 MiB header list gets 431; rounds of 5,000 tunnelled
# connections held and closed leave no ratchet and RSS comes back; slow apps stay under the
# node's buffer bound.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
ulimit -n 65536
export ZTUNNEL_MAX_PENDING_HANDSHAKES=2300 ZTUNNEL_MAX_PENDING_HANDSHAKES_PER_SOURCE=2050
export ZTUNNEL_APP_BUFFER_LIMIT=$((8 << 20))
tb_mesh
SA=spiffe://cluster.local/ns/default/sa
tb_cert tester "$SA/tester"
H=("$PY" "$TB_PEERS/hostile.py")
P1=$(tb_agent_pid node1)
P2=$(tb_agent_pid node2)
LOG2=$TBDIR/agent-node2.log
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }	# kB
nfd() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
fds_at_least() { [ "$(nfd "$1")" -ge "$2" ]; }
fds_at_most() { [ "$(nfd "$1")" -le "$2" ]; }

tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 9000 >/dev/null 2>&1
tb_wait_port server-remote 9000
tb_whoami server-remote 8080
tb_bg client "$PY" "$TB_PEERS/longconn.py" 10.201.2.2 9000 0 >"$TBDIR/long.log" 2>&1
LONG=$TB_BG_PID
tb_wait_log "$TBDIR/long.log" '^echo 3 ' 10 || tb_fail "long-lived connection did not start"
idle1=$(rss "$P1") idle2=$(rss "$P2")
fd0=$(nfd "$P2")
tb_log "idle RSS: node1 ${idle1} kB, node2 ${idle2} kB; node2 fds $fd0"

# 1. 2,000 idle connections to 15008 from one source, never a byte sent
tb_bg plain "${H[@]}" idle --connect 10.201.2.2:15008 --count 2000 --hold "$TBDIR/hold1" \
	>"$TBDIR/idle1.log" 2>&1
tb_wait_log "$TBDIR/idle1.log" 'opened=2000 failed=0' 20 || tb_fail "idle: $(cat "$TBDIR/idle1.log")"
tb_poll 8 fds_at_least "$P2" $((fd0 + 2000)) || tb_fail "agent holds $(nfd "$P2") fds, want $((fd0 + 2000))"
r=$(rss "$P2")
growth=$((r - idle2))
tb_log "2000 idle pre-handshake connections: node2 RSS +${growth} kB ($((growth * 1024 / 2000)) bytes each)"
[ "$growth" -lt 32768 ] || tb_fail "2000 idle connections grew RSS by ${growth} kB (bound 32 MB)"

# 2. the same source past its bound (2,050), and another source past the node's (2,300)
# (one after the other: all of this runs inside the agent's 10 s handshake timeout)
tb_exec plain timeout 20 "${H[@]}" idle --connect 10.201.2.2:15008 --count 100 \
	--hold "$TBDIR/none" --max 1.5 >"$TBDIR/idle2.log" 2>&1
tb_exec ext timeout 20 "${H[@]}" idle --connect 10.201.2.2:15008 --count 400 \
	--hold "$TBDIR/none" --max 1.5 >"$TBDIR/idle3.log" 2>&1
grep -q alive= "$TBDIR/idle2.log" && grep -q alive= "$TBDIR/idle3.log" ||
	tb_fail "idle peers did not report: $(cat "$TBDIR/idle2.log" "$TBDIR/idle3.log")"
tb_log "over the source bound: $(tr '\n' ' ' <"$TBDIR/idle2.log"); over the node bound: $(tr '\n' ' ' <"$TBDIR/idle3.log")"
refused() {	# connects reset before they completed, plus connections reset afterwards
	echo $(($(sed -n 's/.*failed=\([0-9]*\).*/\1/p' "$1") + $(sed -n 's/.*dead=\([0-9]*\).*/\1/p' "$1")))
}
d2=$(refused "$TBDIR/idle2.log")
d3=$(refused "$TBDIR/idle3.log")
[ "${d2:-0}" -ge 45 ] || tb_fail "source bound: only ${d2:-0} of 100 refused (want about 50)"
[ "${d3:-0}" -ge 95 ] || tb_fail "node bound: only ${d3:-0} of 400 refused (want 100: 2,000 held, the 50 of the source test gone)"
grep -q 'too many pending handshakes.*source_bound=[1-9]' "$LOG2" || tb_fail "no source-bound log line"
tb_check "refusals are logged once per interval, not per connection" \
	test "$(tb_count "$LOG2" 'too many pending handshakes')" -lt 10
touch "$TBDIR/hold1"
tb_poll 15 fds_at_most "$P2" $((fd0 + 20)) || tb_fail "node2 still holds $(nfd "$P2") fds"
out=$(tb_curl client http://10.201.2.2:8080/after-attack)
[[ "$out" == *"server=server-remote"* ]] || tb_fail "mesh request after the attack: $out"
tb_log "ok: bounds enforced; the mesh serves new connections once the attackers leave"

# 3. rapid reset: 20,000 CONNECTs reset at once; the app must not see them
tb_bg server-remote "${H[@]}" count-server --port 9300 --out "$TBDIR/count" >/dev/null 2>&1
tb_wait_port server-remote 9300
out=$(tb_exec plain timeout 60 "${H[@]}" rapid-reset --connect 10.201.2.2:15008 \
	--authority 10.201.2.2:9300 --cert "$TBDIR/tester.pem" --key "$TBDIR/tester.key" \
	--ca "$TBDIR/ca.pem" --streams 20000 2>&1)
[[ "$out" == *acked* ]] || tb_fail "rapid reset: $out"
apps=$(cat "$TBDIR/count")
tb_log "rapid reset: 20000 streams reset, app connections opened: $apps"
[ "$apps" -lt 200 ] || tb_fail "rapid reset opened $apps app connections (want < 1%)"

# 4. a 1 MiB header list is refused with 431; a 16 KiB one is served
hb() { tb_exec plain timeout 30 "${H[@]}" big-header --connect 10.201.2.2:15008 \
	--authority 10.201.2.2:8080 --cert "$TBDIR/tester.pem" --key "$TBDIR/tester.key" \
	--ca "$TBDIR/ca.pem" --bytes "$1" 2>&1; }
out=$(hb $((1 << 20)))
[ "$out" = "status=431" ] || tb_fail "1 MiB header list: $out (want status=431)"
out=$(hb 16384)
[ "$out" = "status=200" ] || tb_fail "16 KiB header list: $out (want status=200)"
tb_log "ok: 1 MiB header list -> 431, 16 KiB -> 200"

# 5. slow apps: 4 streams of 6 MiB toward apps that never read; node bound 8 MiB
tb_bg server-remote "${H[@]}" slow-app --port 9400 --out "$TBDIR/slow" >/dev/null 2>&1
tb_wait_port server-remote 9400
before=$(rss "$P2")
for i in 1 2 3 4; do
	tb_bg client timeout 20 "$PY" -c 'import socket,sys
s=socket.create_connection(("10.201.2.2",9400),timeout=15)
try: s.sendall(b"z"*(6<<20))
except OSError: pass' >/dev/null 2>&1
done
tb_wait_log "$LOG2" "node's buffer bound is reached" 20 || tb_fail "no stream gave way at the node's buffer bound"
peak=$(rss "$P2")
tb_log "slow apps: node2 RSS ${before} -> ${peak} kB with the 8 MiB bound"
[ $((peak - before)) -lt 20480 ] || tb_fail "slow apps grew node2 by $((peak - before)) kB"

grep -Eq '^(closed|timeout|mismatch)' "$TBDIR/long.log" && tb_fail "long-lived connection broke: $(tail -2 "$TBDIR/long.log")"
kill -0 "$LONG" 2>/dev/null || tb_fail "long-lived connection ended"
tb_log "ok: the long-lived connection echoed $(grep -c '^echo' "$TBDIR/long.log") lines throughout"
tb_stop "$LONG"	# the rounds below are load, not an attack: no echo deadline under them

# 6. rounds of 5,000 tunnelled connections held, then closed: no ratchet, memory comes back
back_ok() { [ "$(rss "$1")" -le $(($2 * 12 / 10 + 16384)) ]; }
held=()
for round in 1 2 3; do
	rm -f "$TBDIR/hold-r"
	tb_bg client "${H[@]}" hold --connect 10.201.2.2:9000 --count 5000 --hold "$TBDIR/hold-r" \
		>"$TBDIR/round$round.log" 2>&1
	pid=$TB_BG_PID
	tb_wait_log "$TBDIR/round$round.log" 'established=' 60 || tb_fail "round $round did not finish"
	grep -q 'established=5000 failed=0' "$TBDIR/round$round.log" ||
		tb_fail "round $round: $(cat "$TBDIR/round$round.log")"
	h1=$(rss "$P1") h2=$(rss "$P2")
	held+=("$h1:$h2")
	touch "$TBDIR/hold-r"
	tb_wait_pid "$pid" 30 || tb_fail "round $round: holder did not exit"
	tb_poll 30 back_ok "$P1" "$idle1" || tb_fail "round $round: node1 RSS $(rss "$P1") kB did not come back (idle $idle1)"
	tb_poll 30 back_ok "$P2" "$idle2" || tb_fail "round $round: node2 RSS $(rss "$P2") kB did not come back (idle $idle2)"
	tb_log "round $round: held node1 ${h1} kB node2 ${h2} kB; after: node1 $(rss "$P1") kB node2 $(rss "$P2") kB"
done
r1=${held[0]} r3=${held[2]}
for n in 1 2; do
	a=$(echo "$r1" | cut -d: -f$n) c=$(echo "$r3" | cut -d: -f$n)
	[ "$c" -le $((a * 11 / 10)) ] || tb_fail "node$n ratchets: round 3 held $c kB, round 1 $a kB"
done
tb_log "ok: no ratchet (held per round node1:node2 kB: ${held[*]})"

tb_pass "hostile peers bounded"
