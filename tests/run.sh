#!/usr/bin/env bash
# Runs the unit tests (built with ASan/UBSan), each fuzz target briefly, the chart rendering test
# and the end-to-end tests,
# one line per test, and ends with "N passed, N failed, N skipped". Each test has a time limit.
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0 skip=0
failed=()
logdir=build/test-logs
mkdir -p "$logdir"
only=${TEST_ONLY:-}

run_one() {	# name, limit seconds, command...
	local name=$1 limit=$2; shift 2
	[ -n "$only" ] && [[ "$name" != *"$only"* ]] && return
	local log="$logdir/${name//\//_}.log" start=$SECONDS rc
	timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1)); printf 'PASS %-50s %3ds\n' "$name" $((SECONDS - start))
	elif [ $rc -eq 77 ]; then
		skip=$((skip + 1)); printf 'SKIP %-50s %s\n' "$name" "$(tail -1 "$log")"
	else
		fail=$((fail + 1)); failed+=("$name")
		printf 'FAIL %-50s rc=%d (log: %s)\n' "$name" $rc "$log"
		tail -25 "$log" | sed 's/^/    | /'
	fi
}

for t in build/unit/*_test; do
	[ -x "$t" ] || continue
	run_one "unit/$(basename "$t")" 120 "$t"
done
for t in build/fuzz/*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	run_one "fuzz/$(basename "$t")" 60 bash tests/fuzz/run.sh "$t"
done
for t in tests/chart/test_*.sh; do
	[ -f "$t" ] || continue
	run_one "chart/$(basename "$t" .sh)" 120 bash "$t"
done
for t in tests/e2e/test_*.sh; do
	[ -f "$t" ] || continue
	run_one "e2e/$(basename "$t" .sh)" 300 bash "$t"
done
# The capture-dependent tests again with the eBPF backend. (test_drain checks the RST a closed
# redirect gives; the ebpf backend drops instead, see test_ebpf_restart.)
for name in mesh_traffic source_ip bulk_and_halfclose policy refusals restart pool interop \
	    peer_auth metrics packet_mark dns dualstack; do
	run_one "e2e/test_${name}[ebpf]" 300 env ZTUNNEL_REDIRECT=ebpf bash "tests/e2e/test_$name.sh"
done
# And with the socket fast path on the in-pod legs (tests/e2e/test_sockmap.sh proves it is used).
for name in mesh_traffic source_ip bulk_and_halfclose policy refusals pool interop peer_auth \
	    metrics packet_mark; do
	run_one "e2e/test_${name}[ebpf+sockmap]" 300 env ZTUNNEL_REDIRECT=ebpf \
		ZTUNNEL_BPF_SOCKMAP=true bash "tests/e2e/test_$name.sh"
done
# ZTUNNEL_KTLS=true: where the kernel has no CONFIG_TLS (these machines) the fallback, logged
# once; elsewhere the kernel seals what the agents send. Either way the same traffic and wire.
for name in mesh_traffic bulk_and_halfclose; do
	run_one "e2e/test_${name}[ktls]" 300 env ZTUNNEL_KTLS=true bash "tests/e2e/test_$name.sh"
done

echo
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
