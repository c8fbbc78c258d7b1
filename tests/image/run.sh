#!/usr/bin/env bash
# The image test: the e2e mesh test (cross-node and same-node traffic, the wire carries only
# HBONE; with nftables and again with the chart's redirect=ebpf, which mounts bpffs) and the
# policy test (deny and allow) with node1's agent run from the image
# (build/image/oci:<tag>, `make image`) under runc instead of the bare binary; node2 runs
# build/ztunnel. lib.sh checks the running container against the chart (namespaces, user,
# capabilities, read-only root, mounts). Ends with "N passed, N failed".
#   tests/image/run.sh TAG
set -u
cd "$(dirname "$0")/../.."
TAG=${1:?usage: tests/image/run.sh TAG}
LAYOUT=build/image/oci
logdir=build/test-logs
mkdir -p "$logdir"
for tool in runc umoci; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (make image-deps)"; exit 1; }
done
[ -f "$LAYOUT/index.json" ] || { echo "FAIL: no image in $LAYOUT (make image)"; exit 1; }
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$PWD/build/gocache" \
	go build -o build/chart-render tests/chart/render.go || { echo "FAIL: chart renderer"; exit 1; }
pass=0 fail=0
# NAME TEST [CHART ARGS]: the chart's redirect value is node1's; node2 gets the same backend
for spec in "mesh_traffic mesh_traffic" "policy policy" "mesh_traffic[ebpf] mesh_traffic redirect=ebpf"; do
	read -r name t set <<<"$spec"
	log=$logdir/image_test_$name.log start=$SECONDS
	redirect=${set#redirect=}
	TB_IMAGE="$LAYOUT:$TAG" TB_IMAGE_CHART_ARGS=${set:+--set $set} ZTUNNEL_REDIRECT=${redirect:-nftables} \
		timeout --kill-after=10 300 bash "tests/e2e/test_$t.sh" >"$log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && grep -q "runs from the image under runc.*redirect=${redirect:-nftables})" "$log"; then
		pass=$((pass + 1)); printf 'PASS %-50s %3ds\n' "image/test_$name" $((SECONDS - start))
	else
		fail=$((fail + 1)); printf 'FAIL %-50s rc=%d (log: %s)\n' "image/test_$name" $rc "$log"
		tail -30 "$log" | sed 's/^/    | /'
	fi
done
echo
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
