#!/usr/bin/env bash
# Runs one libFuzzer target briefly: every seed of tests/fuzz/corpus/<name>/, then mutations for
# FUZZ_SECONDS (default 5), on a copy of the corpus under build/ so the tree is not modified.
# Exit 0 when nothing crashed, leaked or timed out; the inputs that did are kept in
# build/fuzz-run/<name>/ (reproduce: build/fuzz/<name> build/fuzz-run/<name>/crash-...).
# Usage: tests/fuzz/run.sh build/fuzz/<name>
set -u
cd "$(dirname "$0")/../.."
bin=$1
name=$(basename "$bin")
seeds=tests/fuzz/corpus/$name
run=build/fuzz-run/$name
[ -x "$bin" ] || { echo "$bin not built (make fuzz)"; exit 1; }
[ -d "$seeds" ] && [ -n "$(ls -A "$seeds")" ] || { echo "no seed corpus in $seeds"; exit 1; }
rm -rf "$run"
mkdir -p "$run/corpus"
cp "$seeds"/* "$run/corpus/"
echo "$name: $(ls "$run/corpus" | wc -l) seeds, ${FUZZ_SECONDS:-5} s"
# libFuzzer's own exit code for a finding is 77, which tests/run.sh reads as a skip: use 1
exec "$bin" -max_total_time="${FUZZ_SECONDS:-5}" -rss_limit_mb=1024 -malloc_limit_mb=512 \
	-timeout=10 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
	-artifact_prefix="$run/" "$run/corpus"
