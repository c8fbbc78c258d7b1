#!/usr/bin/env bash
# Measurement, not a test (make test does not run it): the agents' RSS under rounds of held
# connections, for the reliability figures. MODE=preauth: rounds of 5,000 idle connections to a
# pod's 15008 (no byte sent), node2's RSS held and 12 s after they close. MODE=tunnel: rounds of
# N (default 10,000) tunnelled connections client -> server-remote, both agents' RSS held and
# every 2 s for 14 s after. ZT=<other build> measures another agent the same way.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
ulimit -n 65536
export ZTUNNEL_MAX_PENDING_HANDSHAKES=0 ZTUNNEL_MAX_PENDING_HANDSHAKES_PER_SOURCE=0
MODE=${MODE:-tunnel} N=${N:-10000} ROUNDS=${ROUNDS:-2}
tb_mesh
H=("$PY" "$TB_PEERS/hostile.py")
P1=$(tb_agent_pid node1) P2=$(tb_agent_pid node2)
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
nfd() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
fds_at_least() { [ "$(nfd "$1")" -ge "$2" ]; }
tb_bg server-remote "$PY" "$TB_PEERS/echo_server.py" 9000 >/dev/null 2>&1
tb_wait_port server-remote 9000
fd0=$(nfd "$P2")
tb_log "idle RSS: node1 $(rss "$P1") kB, node2 $(rss "$P2") kB"
for round in $(seq 1 "$ROUNDS"); do
	rm -f "$TBDIR/release"
	if [ "$MODE" = preauth ]; then
		tb_bg plain "${H[@]}" idle --connect 10.201.2.2:15008 --count 5000 \
			--hold "$TBDIR/release" >"$TBDIR/r$round.log" 2>&1
		tb_wait_log "$TBDIR/r$round.log" 'opened=' 30
		tb_poll 8 fds_at_least "$P2" $((fd0 + 4900))
	else
		tb_bg client "${H[@]}" hold --connect 10.201.2.2:9000 --count "$N" \
			--hold "$TBDIR/release" >"$TBDIR/r$round.log" 2>&1
		tb_wait_log "$TBDIR/r$round.log" 'established=' 120
	fi
	tb_log "round $round: $(head -1 "$TBDIR/r$round.log"); held node1 $(rss "$P1") kB node2 $(rss "$P2") kB"
	touch "$TBDIR/release"
	after=""
	for i in 1 2 3 4 5 6 7; do sleep 2; after+="$(rss "$P1")/$(rss "$P2") "; done	# a time series, on purpose
	tb_log "round $round after close (node1/node2 kB every 2 s): $after"
done
tb_pass "measured"
