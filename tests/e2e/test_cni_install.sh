#!/usr/bin/env bash
# `ztunnel-cni install|uninstall` (the chart's install-cni container) on a node's CNI dirs: the
# binary is copied and the plugin chained at the end of the conflist, once however often it runs;
# the other plugins and keys stay as they were; --watch repairs a rewritten conflist and on
# SIGTERM takes out what its owner installed, but not an entry a newer pod (rollout) took over;
# the last uninstall restores the original plugin list and removes the binary.
set -u
. "$(dirname "$0")/lib.sh"
tb_init
B=$TBDIR/opt-cni-bin D=$TBDIR/etc-cni-net.d
mkdir -p "$B" "$D"
cat >"$D/10-calico.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [
  {"type": "calico", "ipam": {"type": "calico-ipam"}, "mtu": 1440},
  {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}]}
JSON
echo '{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}' >"$D/20-other.conflist"
ORIG=$(cat "$D/10-calico.conflist")
inst() { "$ZT_CNI" "$@" --bin-dir "$B" --conf-dir "$D" >>"$TBDIR/install.log" 2>&1; }
# plugins FILE: the plugin entries as one line of compact JSON
plugins() { "$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["plugins"], sort_keys=True))' "$1"; }
types() { "$PY" -c 'import json,sys; print(" ".join(p["type"] for p in json.load(open(sys.argv[1]))["plugins"]))' "$1"; }

inst install --owner pod-a || tb_fail "install: $(cat "$TBDIR/install.log")"
cmp -s "$ZT_CNI" "$B/ztunnel-cni" && [ -x "$B/ztunnel-cni" ] || tb_fail "binary not copied"
[ "$(types "$D/10-calico.conflist")" = "calico portmap ztunnel-cni" ] ||
	tb_fail "not chained last: $(types "$D/10-calico.conflist")"
[ "$(types "$D/20-other.conflist")" = bridge ] || tb_fail "the second conflist was touched"
"$PY" - "$D/10-calico.conflist" <<'PY' || tb_fail "entry or kept keys wrong: $(cat "$D/10-calico.conflist")"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["name"] == "k8s-pod-network" and c["cniVersion"] == "1.0.0"
assert c["plugins"][0] == {"type": "calico", "ipam": {"type": "calico-ipam"}, "mtu": 1440}
assert c["plugins"][2] == {"type": "ztunnel-cni", "ztunnel_socket": "/var/run/ztunnel/cni.sock",
                           "ztunnel_owner": "pod-a"}
PY
tb_log "ok: installed: binary copied, chained last, the rest kept"

before=$(stat -c %i:%Y "$D/10-calico.conflist")
cp "$D/10-calico.conflist" "$TBDIR/after-first"
inst install --owner pod-a || tb_fail "second install failed"
cmp -s "$D/10-calico.conflist" "$TBDIR/after-first" && [ "$(stat -c %i:%Y "$D/10-calico.conflist")" = "$before" ] ||
	tb_fail "a second install rewrote the conflist"
tb_log "ok: idempotent: a second install changes nothing"

# a newer pod of the rollout takes over; the old one's uninstall leaves it
inst install --owner pod-b || tb_fail "install pod-b"
[ "$(types "$D/10-calico.conflist")" = "calico portmap ztunnel-cni" ] || tb_fail "two entries after takeover"
inst uninstall --owner pod-a || tb_fail "uninstall pod-a"
[ "$(types "$D/10-calico.conflist")" = "calico portmap ztunnel-cni" ] && [ -x "$B/ztunnel-cni" ] ||
	tb_fail "the old pod's uninstall removed the newer pod's install"
tb_log "ok: rollout: the old pod leaves the newer pod's entry and the binary"

# --watch: repairs, then uninstalls on SIGTERM
"$ZT_CNI" install --bin-dir "$B" --conf-dir "$D" --owner pod-c --watch >>"$TBDIR/install.log" 2>&1 &
W=$!
TB_PIDS+=("$W")
owner_is() { grep -q "\"ztunnel_owner\": \"$1\"" "$D/10-calico.conflist"; }
tb_poll 10 owner_is pod-c || tb_fail "--watch did not install"
printf '%s\n' "$ORIG" >"$D/10-calico.conflist.new" && mv "$D/10-calico.conflist.new" "$D/10-calico.conflist"
tb_poll 15 owner_is pod-c || tb_fail "--watch did not repair a rewritten conflist"
tb_log "ok: --watch repaired the conflist the primary plugin rewrote"
kill -TERM "$W"
tb_wait_pid "$W" 10 || tb_fail "--watch did not exit on SIGTERM"
wait "$W"; rc=$?
[ $rc -eq 0 ] || tb_fail "--watch exited $rc"
[ "$(plugins "$D/10-calico.conflist")" = "$(plugins <(printf '%s' "$ORIG"))" ] ||
	tb_fail "uninstall did not restore the plugins: $(types "$D/10-calico.conflist")"
[ ! -e "$B/ztunnel-cni" ] || tb_fail "the binary is still there"
tb_log "ok: SIGTERM: entry removed, plugins as before, binary removed"

"$ZT_CNI" install --bin-dir "$B" >/dev/null 2>&1 && tb_fail "install without --conf-dir accepted"
rm -f "$D"/*.conflist
inst install --owner x && tb_fail "install with no conflist succeeded"
grep -q "no \*.conflist" "$TBDIR/install.log" || tb_fail "no clear message for a missing conflist"
tb_pass "ztunnel-cni install/uninstall"
