# Network-namespace testbed: nodes, pods, links, agents and enrollment for the e2e tests.
# Source it, call tb_init, build a topology, run checks. Everything is torn down by tb_cleanup
# (trapped on EXIT/INT/TERM/HUP). Functions that fail call tb_fail, so do not call them inside
# $(...) where the exit would only leave the subshell.
# shellcheck shell=bash

TB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TB_E2E=$TB_ROOT/tests/e2e
TB_PEERS=$TB_E2E/peers
TB_TESTDATA=$TB_E2E/testdata
ZT=${ZT:-$TB_ROOT/build/ztunnel}
ZT_CNI=${ZT_CNI:-$TB_ROOT/build/ztunnel-cni}
# The python that has the h2 package (the first python3 on PATH may not).
PY=${PY:-/usr/bin/python3}
# Set TB_NEED_AGENT=0 before tb_init for tests of the testbed or the peers alone.
TB_NEED_AGENT=${TB_NEED_AGENT:-1}
# Image mode (tests/image/run.sh): TB_IMAGE=<OCI layout>:<tag> runs the agent of TB_IMAGE_NODE
# from that image under runc, in a bundle made by `umoci unpack` and set up as the chart asks
# of Kubernetes (tests/image/bundle_config.py); the other nodes run build/ztunnel as usual.
TB_IMAGE=${TB_IMAGE:-}
TB_IMAGE_NODE=${TB_IMAGE_NODE:-node1}
TB_CHART_RENDER=${TB_CHART_RENDER:-$TB_ROOT/build/chart-render}

TB=
TBDIR=
TB_CLEANED=0
TB_SANITIZER_FAIL=0
TB_NPODS=0
TB_NLINKS=0
TB_PIDS=()
TB_AGENTS=()
TB_CONTAINERS=()
declare -A TB_NODE_IDX=()
declare -A TB_POD_IP=()
declare -A TB_POD_NODE=()

tb_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
tb_fail() { printf '[%s] FAIL: %s\n' "$(date +%T)" "$*" >&2; exit 1; }
tb_pass() { printf '[%s] PASS: %s\n' "$(date +%T)" "$*" >&2; exit 0; }
tb_skip() { printf 'SKIP: %s\n' "$*"; exit 77; }

# tb_check DESCRIPTION cmd... : run cmd, print "ok"/fail with the description.
tb_check() {
	local what=$1; shift
	if "$@"; then
		tb_log "ok: $what"
	else
		tb_fail "$what (command: $*)"
	fi
}

tb__on_exit() {
	local rc=$? f
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -n "$TBDIR" ]; then
		for f in "$TBDIR"/agent-*.log; do
			[ -f "$f" ] || continue
			echo "--- last lines of $f" >&2
			tail -30 "$f" >&2
		done
	fi
	tb_cleanup
	if [ "$TB_SANITIZER_FAIL" = 1 ] && [ $rc -eq 0 ]; then
		echo "FAIL: the agent reported a sanitizer error (see above)" >&2
		rc=1
	fi
	exit $rc
}

tb_init() {
	[ "$(id -u)" -eq 0 ] || tb_skip "e2e tests need root"
	command -v ip >/dev/null || tb_skip "iproute2 missing"
	if [ "$TB_NEED_AGENT" = 1 ]; then
		[ -x "$ZT" ] || tb_skip "$ZT not built (make all)"
		[ -x "$ZT_CNI" ] || tb_skip "$ZT_CNI not built (make all)"
	fi
	local base="zt$$" sfx=""
	for sfx in "" a b c d e f g h; do
		ip netns list | awk '{print $1}' | grep -q "^$base$sfx-" || break
	done
	TB=$base$sfx
	TBDIR=$(mktemp -d "/tmp/$TB.XXXXXX") || tb_fail "mktemp"
	trap tb__on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	tb_log "testbed $TB in $TBDIR"
	if [ -x "$ZT" ]; then
		"$ZT" ca-init "$TBDIR/ca.pem" "$TBDIR/ca.key" >"$TBDIR/ca-init.log" 2>&1 ||
			tb_fail "ztunnel ca-init: $(cat "$TBDIR/ca-init.log")"
	fi
}

# tb_deadline SECONDS -> prints an absolute deadline in ms (use with tb_before).
tb__now_ms() { date +%s%3N; }
tb_before() { [ "$(tb__now_ms)" -lt "$1" ]; }
tb_deadline() { echo $(($(tb__now_ms) + ${1%.*} * 1000)); }

# tb_poll TIMEOUT cmd... : run cmd every 50 ms until it succeeds; 1 if the deadline passes.
tb_poll() {
	local dl; dl=$(tb_deadline "$1"); shift
	while ! "$@"; do
		tb_before "$dl" || return 1
		sleep 0.05
	done
}

tb__ns() { echo "$TB-$1"; }
tb__var() { echo "${1//[^a-zA-Z0-9_]/_}"; }

# Dual stack (opt-in: TB_DUALSTACK=1 before the topology is built): every node, link and pod
# also gets an IPv6 ULA address, the v6 twin of its IPv4 one: pod 10.201.I.N is fd00:201:I::N
# (node I's pod CIDR fd00:201:I::/64, the node itself fd00:201:I::1 on lo), link K is
# fd00:200:K::1/64 <-> ::2. Addresses are added "nodad" and DAD is off in the testbed's
# namespaces, so none is left "tentative" (tb__v6_ready polls for that all the same).
TB_DUALSTACK=${TB_DUALSTACK:-0}
declare -A TB_POD_IP6=()

# tb_ip6 IPV4: the v6 twin of a testbed address 10.20X.I.N -> fd00:20X:I::N.
tb_ip6() {
	local a=${1#10.} x i n
	x=${a%%.*}; a=${a#*.}; i=${a%%.*}; n=${a#*.}
	echo "fd00:$x:$i::$n"
}

# tb__v6_off_dad NS: new devices of netns NS start without duplicate address detection.
tb__v6_off_dad() {
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.disable_ipv6=0 \
		net.ipv6.conf.default.disable_ipv6=0
}
tb__v6_settled() { [ -z "$(ip -n "$1" -6 addr show tentative 2>/dev/null)" ]; }
# tb__v6_ready NS: poll (5 s) until no address of NS is tentative.
tb__v6_ready() {
	tb_poll 5 tb__v6_settled "$1" || tb_fail "IPv6 addresses still tentative in $1: $(ip -n "$1" -6 addr show tentative)"
}

# tb_node NODE IDX: node netns with forwarding; its pod CIDR is 10.201.IDX.0/24, and the node
# owns 10.201.IDX.1 (the pods' gateway) on lo.
tb_node() {
	local node=$1 idx=$2 ns
	ns=$(tb__ns "$node")
	ip netns add "$ns" || tb_fail "ip netns add $ns"
	TB_NODE_IDX[$node]=$idx
	ip -n "$ns" link set lo up &&
		ip -n "$ns" addr add "10.201.$idx.1/32" dev lo &&
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 ||
		tb_fail "setting up node $node"
	[ "$TB_DUALSTACK" = 1 ] || return 0
	tb__v6_off_dad "$ns" &&
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1 &&
		ip -n "$ns" -6 addr add "fd00:201:$idx::1/128" dev lo nodad ||
		tb_fail "setting up IPv6 on node $node"
}

# tb_link NODE_A NODE_B: veth between the nodes, 10.200.K.1/30 <-> 10.200.K.2/30 (K counts links
# from 0), routes to each other's pod CIDR. Exports TB_LINK_A / TB_LINK_B (device names).
tb_link() {
	local a=$1 b=$2 k=$TB_NLINKS nsa nsb
	nsa=$(tb__ns "$a"); nsb=$(tb__ns "$b")
	TB_NLINKS=$((TB_NLINKS + 1))
	TB_LINK_A=${TB}l${k}a
	TB_LINK_B=${TB}l${k}b
	export TB_LINK_A TB_LINK_B
	ip -n "$nsa" link add "$TB_LINK_A" type veth peer name "$TB_LINK_B" netns "$nsb" &&
		ip -n "$nsa" addr add "10.200.$k.1/30" dev "$TB_LINK_A" &&
		ip -n "$nsb" addr add "10.200.$k.2/30" dev "$TB_LINK_B" &&
		ip -n "$nsa" link set "$TB_LINK_A" up &&
		ip -n "$nsb" link set "$TB_LINK_B" up &&
		ip -n "$nsa" route add "10.201.${TB_NODE_IDX[$b]}.0/24" via "10.200.$k.2" &&
		ip -n "$nsb" route add "10.201.${TB_NODE_IDX[$a]}.0/24" via "10.200.$k.1" ||
		tb_fail "linking $a and $b"
	[ "$TB_DUALSTACK" = 1 ] || return 0
	ip -n "$nsa" -6 addr add "fd00:200:$k::1/64" dev "$TB_LINK_A" nodad &&
		ip -n "$nsb" -6 addr add "fd00:200:$k::2/64" dev "$TB_LINK_B" nodad &&
		ip -n "$nsa" -6 route add "fd00:201:${TB_NODE_IDX[$b]}::/64" via "fd00:200:$k::2" &&
		ip -n "$nsb" -6 route add "fd00:201:${TB_NODE_IDX[$a]}::/64" via "fd00:200:$k::1" ||
		tb_fail "linking $a and $b over IPv6"
	tb__v6_ready "$nsa"
	tb__v6_ready "$nsb"
}

# tb_pod NODE POD IP: pod netns with eth0 (IP/24, default route via the node's 10.x.y.1).
# The node side is a short counter-named veth with proxy_arp and a /32 route to IP.
tb_pod() {
	local node=$1 pod=$2 ip=$3 ns nns dev gw
	ns=$(tb__ns "$pod"); nns=$(tb__ns "$node")
	TB_NPODS=$((TB_NPODS + 1))
	dev=${TB}p$TB_NPODS
	gw=${ip%.*}.1
	ip netns add "$ns" || tb_fail "ip netns add $ns"
	[ "$TB_DUALSTACK" = 1 ] && { tb__v6_off_dad "$ns" || tb_fail "IPv6 sysctls of $pod"; }
	TB_POD_IP[$pod]=$ip
	TB_POD_NODE[$pod]=$node
	ip -n "$nns" link add "$dev" type veth peer name eth0 netns "$ns" &&
		ip netns exec "$nns" sysctl -qw "net.ipv4.conf.$dev.proxy_arp=1" \
			"net.ipv4.conf.$dev.rp_filter=0" "net.ipv4.neigh.$dev.proxy_delay=0" &&
		ip -n "$nns" link set "$dev" up &&
		ip -n "$nns" route add "$ip/32" dev "$dev" &&
		ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
			net.ipv4.conf.default.rp_filter=0 &&
		ip -n "$ns" link set lo up &&
		ip -n "$ns" addr add "$ip/24" dev eth0 &&
		ip -n "$ns" link set eth0 up &&
		ip -n "$ns" route add default via "$gw" dev eth0 ||
		tb_fail "setting up pod $pod ($ip) on $node"
	[ "$TB_DUALSTACK" = 1 ] && tb__pod6 "$node" "$pod" "$ip" "$dev"
	return 0
}

# tb__pod6 NODE POD IP DEV: the pod's IPv6 twin address on eth0 (a /128: every other pod is
# reached through the node, as proxy_arp does for IPv4), a default route via the node
# side's fe80::1, and the node's /128 route to it.
tb__pod6() {
	local node=$1 pod=$2 ip6 ns nns
	ns=$(tb__ns "$pod"); nns=$(tb__ns "$node")
	ip6=$(tb_ip6 "$3")
	TB_POD_IP6[$pod]=$ip6
	ip -n "$nns" -6 addr add fe80::1/64 dev "$4" nodad &&
		ip -n "$nns" -6 route add "$ip6/128" dev "$4" &&
		ip -n "$ns" -6 addr add "$ip6/128" dev eth0 nodad &&
		ip -n "$ns" -6 route add default via fe80::1 dev eth0 ||
		tb_fail "setting up IPv6 of pod $pod ($ip6) on $node"
	tb__v6_ready "$ns"
}

tb_exec() { local ns; ns=$(tb__ns "$1"); shift; ip netns exec "$ns" "$@"; }
tb_exec_node() { tb_exec "$@"; }

# tb_bg POD cmd...: run in the background in its own session; pid in TB_BG_PID, killed (whole
# process group) by tb_cleanup. Redirect output at the call: tb_bg pod cmd >file 2>&1
tb_bg() {
	local ns; ns=$(tb__ns "$1"); shift
	setsid ip netns exec "$ns" "$@" </dev/null &
	TB_BG_PID=$!
	TB_PIDS+=("$TB_BG_PID")
}
tb_bg_node() { tb_bg "$@"; }

# tb_stop PID [TIMEOUT]: SIGTERM the process group, wait for it (deadline), then SIGKILL.
tb_stop() {
	local pid=$1 t=${2:-5}
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
	if ! tb_poll "$t" tb__dead "$pid"; then
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}
tb__dead() { ! kill -0 "$1" 2>/dev/null; }

# tb_wait_pid PID TIMEOUT: wait for a background process to exit; sets TB_WAIT_RC to its status.
# Returns 1 if it is still running at the deadline.
tb_wait_pid() {
	tb_poll "$2" tb__dead "$1" || return 1
	wait "$1"
	TB_WAIT_RC=$?
	return 0
}

tb_config() { cat >"$TBDIR/$1"; }

tb__state() { echo "$TBDIR/state-$1"; }
# tb_bpf_links POD sk_lookup|tcx: how many of the ebpf backend's programs are attached in POD's
# netns (sk_lookup) or on its eth0's ingress (tcx).
tb_bpf_links() {
	local pat="sk_lookup zt_sk_lookup"
	[ "$2" = tcx ] && pat="tcx_ingress eth0 zt_tc_ingress"
	tb_exec "$1" "$TB_ROOT/build/tools/bpf_links" | grep -cx "$pat"
}
# tb_pin_dir NODE: where NODE's agent pins its eBPF objects (one per test run and node).
tb_pin_dir() { echo "/sys/fs/bpf/$TB-$1"; }

# tb_agent NODE CONFIG: start the agent in NODE's netns; CONFIG is a path, or a file name in
# $TBDIR. Waits (10 s) for its CNI socket. Re-running it reuses the state dir (restart).
tb_agent() {
	local node=$1 cfg=$2 st log pid dl
	[ -f "$cfg" ] || cfg=$TBDIR/$cfg
	[ -f "$cfg" ] || tb_fail "tb_agent: no config $2"
	st=$(tb__state "$node")
	log=$TBDIR/agent-$node.log
	mkdir -p "$st"
	rm -f "$st/cni.sock"
	echo "=== agent start $(date +%T.%N)" >>"$log"
	if [ -n "$TB_IMAGE" ] && [ "$node" = "$TB_IMAGE_NODE" ]; then
		tb__image_bundle "$node" "$cfg" "$st"
		runc delete -f "$TB-$node" >/dev/null 2>&1	# a previous run of ours killed hard
		setsid runc run --bundle "$TBDIR/bundle-$node" "$TB-$node" </dev/null >>"$log" 2>&1 &
		TB_CONTAINERS+=("$TB-$node")
	else
		setsid nsenter --net="/run/netns/$(tb__ns "$node")" env LOCAL_XDS_PATH="$cfg" \
			NODE_NAME="$node" ZTUNNEL_CA_CERT="$TBDIR/ca.pem" ZTUNNEL_CA_KEY="$TBDIR/ca.key" \
			ZTUNNEL_STATE_DIR="$st" ZTUNNEL_CNI_SOCKET="$st/cni.sock" ZTUNNEL_LOG=debug \
			ZTUNNEL_BPF_PIN_DIR="$(tb_pin_dir "$node")" \
			"$ZT" </dev/null >>"$log" 2>&1 &
	fi
	pid=$!
	TB_AGENTS+=("$pid")
	printf -v "TB_AGENT_PID_$(tb__var "$node")" %s "$pid"
	dl=$(tb_deadline 10)
	while [ ! -S "$st/cni.sock" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -20 "$log" >&2
			tb_fail "agent on $node exited during start-up"
		fi
		tb_before "$dl" || { tail -20 "$log" >&2; tb_fail "agent on $node: no socket in 10 s"; }
		sleep 0.05
	done
	if [ -n "$TB_IMAGE" ] && [ "$node" = "$TB_IMAGE_NODE" ]; then
		tb__image_check "$node"
	fi
	tb_log "agent on $node ready (pid $pid, log $log)"
}

# tb__image_bundle NODE CFG STATE_DIR: $TBDIR/bundle-NODE/config.json for runc, on the rootfs
# `umoci unpack` made of $TB_IMAGE (once per test) and the DaemonSet the chart renders (with
# $TB_IMAGE_CHART_ARGS): the testbed's paths stand in for the node's, its local config and CA
# for istiod.
tb__image_bundle() {
	local node=$1 cfg=$2 st=$3 ns
	ns=$(tb__ns "$node")
	if [ ! -d "$TBDIR/image/rootfs" ]; then
		umoci unpack --image "$TB_IMAGE" "$TBDIR/image" >"$TBDIR/umoci.log" 2>&1 ||
			tb_fail "umoci unpack $TB_IMAGE: $(tail -5 "$TBDIR/umoci.log")"
		# shellcheck disable=SC2086
		"$TB_CHART_RENDER" "$TB_ROOT/helm/ztunnel" ${TB_IMAGE_CHART_ARGS:-} >"$TBDIR/chart.yaml" ||
			tb_fail "rendering the chart"
	fi
	mkdir -p "$TBDIR/bundle-$node"
	"$PY" "$TB_ROOT/tests/image/bundle_config.py" "$TBDIR/image/config.json" "$TBDIR/chart.yaml" \
		"$TBDIR/bundle-$node/config.json" --rootfs "$TBDIR/image/rootfs" \
		--netns "/run/netns/$ns" --k8s-dir "$TBDIR/k8s-$node" --host-path "/var/run/ztunnel=$st" --host-path /sys/fs/bpf=/sys/fs/bpf \
		--field "metadata.name=ztunnel-$node" --field metadata.namespace=istio-system \
		--field "spec.nodeName=$node" --field "status.podIP=10.201.${TB_NODE_IDX[$node]}.1" \
		--field spec.serviceAccountName=ztunnel \
		--env "LOCAL_XDS_PATH=$cfg" --env "ZTUNNEL_CA_CERT=$TBDIR/ca.pem" \
		--env "ZTUNNEL_CA_KEY=$TBDIR/ca.key" --env ZTUNNEL_LOG=debug \
		--env "ZTUNNEL_BPF_PIN_DIR=$(tb_pin_dir "$node")" \
		--extra-mount "$TBDIR:$TBDIR:rbind,rslave,ro" \
		--extra-mount "/run/netns:/run/netns:rbind,rslave,ro" >"$TBDIR/bundle-$node.log" 2>&1 ||
		tb_fail "bundle config for $node: $(cat "$TBDIR/bundle-$node.log")"
}

# tb__image_check NODE: the running container is what the chart asks for: the agent from the
# image (args proxy ztunnel) in the node's netns, its own pid and mount namespaces, uid 0 gid
# 1337, exactly NET_ADMIN NET_RAW SYS_ADMIN, a read-only root, /var/run/ztunnel mounted.
tb__image_check() {
	local node=$1 cpid st caps redirect
	cpid=$(runc state "$TB-$node" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["pid"])') ||
		tb_fail "runc state $TB-$node"
	st=/proc/$cpid/status
	[ "$(stat -L -c %i "/proc/$cpid/ns/net")" = "$(stat -L -c %i "/run/netns/$(tb__ns "$node")")" ] ||
		tb_fail "container agent not in $node's network namespace"
	[ "$(readlink "/proc/$cpid/ns/pid")" != "$(readlink /proc/self/ns/pid)" ] &&
		[ "$(readlink "/proc/$cpid/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] ||
		tb_fail "container agent shares the host's pid or mount namespace"
	[ "$(tr '\0' ' ' <"/proc/$cpid/cmdline")" = "/usr/local/bin/ztunnel proxy ztunnel " ] ||
		tb_fail "container runs: $(tr '\0' ' ' <"/proc/$cpid/cmdline")"
	cmp -s "/proc/$cpid/root/usr/local/bin/ztunnel" "$ZT" ||
		tb_fail "the container's /usr/local/bin/ztunnel is not build/ztunnel"
	awk '/^Uid:/{u=$2} /^Gid:/{g=$2} END{exit !(u == 0 && g == 1337)}' "$st" ||
		tb_fail "container agent uid/gid: $(grep -E '^(Uid|Gid):' "$st" | tr '\n' ' ')"
	# NET_ADMIN (12), NET_RAW (13), SYS_ADMIN (21): the chart's add list, nothing else
	caps=$(awk '/^CapEff:/{e=$2} /^CapBnd:/{b=$2} /^CapPrm:/{p=$2} END{print e, p, b}' "$st")
	[ "$caps" = "0000000000203000 0000000000203000 0000000000203000" ] ||
		tb_fail "container agent capabilities (eff prm bnd): $caps"
	grep -q '^NoNewPrivs:[[:space:]]*0' "$st" || tb_fail "no_new_privs set (chart: allowPrivilegeEscalation)"
	if touch "/proc/$cpid/root/usr/zt-rw-probe" 2>/dev/null; then
		rm -f "/proc/$cpid/root/usr/zt-rw-probe"
		tb_fail "the container's root filesystem is writable (chart: readOnlyRootFilesystem)"
	fi
	awk '$5 == "/run/ztunnel" || $5 == "/var/run/ztunnel"' "/proc/$cpid/mountinfo" | grep -q . ||
		tb_fail "/var/run/ztunnel not mounted in the container"
	redirect=$(tr '\0' '\n' <"/proc/$cpid/environ" | sed -n 's/^ZTUNNEL_REDIRECT=//p')
	[ "$redirect" != ebpf ] || awk '$5 == "/sys/fs/bpf" && $9 == "bpf"' "/proc/$cpid/mountinfo" | grep -q . ||
		tb_fail "redirect=ebpf but no bpffs at /sys/fs/bpf in the container"
	tb_log "ok: $node's agent runs from the image under runc (pid $cpid in the container's pid" \
		"namespace, uid 0 gid 1337, caps NET_ADMIN NET_RAW SYS_ADMIN, read-only root," \
		"redirect=$redirect)"
}

# tb_agent_pid NODE: prints the agent's pid.
tb_agent_pid() { local v; v=TB_AGENT_PID_$(tb__var "$1"); echo "${!v:-}"; }

# tb_agent_stop NODE [SIGNAL]: signal the agent and wait (10 s) for it to exit; sets TB_WAIT_RC.
tb_agent_stop() {
	local pid; pid=$(tb_agent_pid "$1")
	[ -n "$pid" ] || tb_fail "no agent for $1"
	kill "-${2:-TERM}" "$pid" 2>/dev/null
	tb_wait_pid "$pid" 10 || tb_fail "agent on $1 did not exit within 10 s of SIG${2:-TERM}"
}

tb__cni() {	# CMD NODE POD NAMESPACE NAME [UID]
	local cmd=$1 node=$2 pod=$3 kns=$4 name=$5 uid=${6:-uid-$4-$5} ns conf out rc
	ns=$(tb__ns "$pod")
	conf=$(printf '{"cniVersion":"1.0.0","name":"ambient","type":"ztunnel-cni",'`
		`'"ztunnel_socket":"%s","prevResult":{"cniVersion":"1.0.0","interfaces":'`
		`'[{"name":"eth0","sandbox":"/run/netns/%s"}],"ips":[{"address":"%s/24",'`
		`'"interface":0}]}}' "$(tb__state "$node")/cni.sock" "$ns" "${TB_POD_IP[$pod]}")
	out=$(printf '%s' "$conf" | timeout 15 env CNI_COMMAND="$cmd" CNI_CONTAINERID="$TB-$pod" \
		CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 CNI_PATH=/nonexistent \
		CNI_ARGS="K8S_POD_NAME=$name;K8S_POD_NAMESPACE=$kns;K8S_POD_UID=$uid" "$ZT_CNI" 2>&1)
	rc=$?
	[ $rc -eq 0 ] || tb_fail "CNI $cmd $kns/$name on $node: rc=$rc: $out"
	tb_log "CNI $cmd $kns/$name ($pod) on $node: ok"
}

tb_enroll() { tb__cni ADD "$@"; }
tb_unenroll() { tb__cni DEL "$@"; }

tb__listening() { [ -n "$(tb_exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]; }

# tb_wait_port POD PORT [TIMEOUT]: poll until something listens on PORT in POD.
tb_wait_port() {
	tb_poll "${3:-10}" tb__listening "$1" "$2" || tb_fail "nothing listens on port $2 in $1"
}

# tb_wait_log FILE PATTERN [TIMEOUT]: poll until FILE has a line matching the ERE PATTERN.
tb_wait_log() { tb_poll "${3:-10}" grep -Eq -- "$2" "$1"; }

# tb_count FILE PATTERN: number of lines of FILE matching the ERE PATTERN.
tb_count() { grep -Ec -- "$2" "$1" 2>/dev/null || true; }

# tb_more_lines FILE ERE N: FILE has more than N lines matching ERE (a condition for tb_poll).
tb_more_lines() { [ "$(tb_count "$1" "$2")" -gt "$3" ]; }

# tb_reload_config WHAT FILE: standard input replaces FILE atomically (a rename: no agent reads
# half a file), then waits (5 s) until the agents of node1 and node2 both logged a new
# "configuration loaded". Feed it with < <(generator), not a pipe, so that tb_fail ends the test.
tb_reload_config() {
	local what=$1 file=$2 n1 n2 pat='msg="configuration loaded"'
	local l1=$TBDIR/agent-node1.log l2=$TBDIR/agent-node2.log
	n1=$(tb_count "$l1" "$pat"); n2=$(tb_count "$l2" "$pat")
	cat >"$file.tmp" && mv -f "$file.tmp" "$file" || tb_fail "writing $file"
	tb_poll 5 tb_more_lines "$l1" "$pat" "$n1" ||
		tb_fail "config '$what': node1 did not log $pat within 5 s of the file change"
	tb_poll 5 tb_more_lines "$l2" "$pat" "$n2" ||
		tb_fail "config '$what': node2 did not log $pat within 5 s of the file change"
	tb_log "config '$what' loaded by both agents"
}

# tb_cert NAME SPIFFE_ID [CA_NAME]: issue $TBDIR/NAME.pem/.key from $TBDIR/CA_NAME.pem (ca).
tb_cert() {
	local ca=${3:-ca}
	"$ZT" cert-issue "$TBDIR/$ca.pem" "$TBDIR/$ca.key" "$2" "$TBDIR/$1.pem" "$TBDIR/$1.key" \
		>"$TBDIR/$1.issue.log" 2>&1 || tb_fail "cert-issue $2: $(cat "$TBDIR/$1.issue.log")"
}

# tb_ca NAME: a second, unrelated CA in $TBDIR/NAME.pem/.key.
tb_ca() {
	"$ZT" ca-init "$TBDIR/$1.pem" "$TBDIR/$1.key" >"$TBDIR/$1.ca.log" 2>&1 ||
		tb_fail "ca-init $1: $(cat "$TBDIR/$1.ca.log")"
}

tb__umount_state() {
	[ -n "$TBDIR" ] || return 0
	local m
	# deepest first; mountinfo field 5 is the mount point
	awk -v d="$TBDIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r -u |
		while read -r m; do umount -l "$m" 2>/dev/null; done
}

# An agent built with sanitizers (ZT=build/ztunnel-asan) writes its reports to its log: memory
# errors and undefined behaviour fail the test; leaks at exit (open connections) are only shown.
tb__sanitizer_check() {
	local f
	for f in "$TBDIR"/agent-*.log; do
		[ -f "$f" ] || continue
		if grep -Eq 'ERROR: AddressSanitizer|runtime error:' "$f"; then
			echo "--- sanitizer report in $f" >&2
			grep -E -A30 'ERROR: AddressSanitizer|runtime error:' "$f" | head -60 >&2
			TB_SANITIZER_FAIL=1
		elif grep -q 'ERROR: LeakSanitizer' "$f"; then
			echo "note: LeakSanitizer report at agent exit in $f:" \
				"$(grep -E '^SUMMARY' "$f" | tail -1)" >&2
		fi
	done
}

tb_cleanup() {
	[ "$TB_CLEANED" = 1 ] && return 0
	TB_CLEANED=1
	trap - INT TERM HUP
	local pid ns p
	for pid in "${TB_PIDS[@]}" "${TB_AGENTS[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${TB_PIDS[@]}" "${TB_AGENTS[@]}"; do
		tb_poll 5 tb__dead "$pid" || kill -KILL -- "-$pid" 2>/dev/null ||
			kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for p in "${TB_CONTAINERS[@]}"; do	# a container whose runc was killed hard
		runc delete -f "$p" >/dev/null 2>&1
	done
	tb__sanitizer_check
	if [ -n "$TB" ]; then	# what the agents pinned (the ebpf backend): unpinned, detached
		for p in /sys/fs/bpf/"$TB"-*; do
			[ -d "$p" ] || continue
			ZTUNNEL_BPF_PIN_DIR=$p ZTUNNEL_STATE_DIR="$TBDIR/state-${p##*-}" \
				timeout 10 "$ZT" redirect-clean >/dev/null 2>&1
			rm -rf "$p" 2>/dev/null
		done
	fi
	tb__umount_state
	if [ -n "$TB" ]; then
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$TB-"); do
			# stragglers started inside our own namespaces (e.g. by tb_exec ... &)
			for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
			ip netns del "$ns" 2>/dev/null
		done
	fi
	tb__umount_state
	if [ -n "$TBDIR" ] && [ -d "$TBDIR" ]; then
		if [ -n "${TB_KEEP:-}" ]; then
			tb_log "kept $TBDIR"
		else
			rm -rf "$TBDIR"
		fi
	fi
}

# tb_openssl_ca NAME / tb_openssl_cert NAME SPIFFE_ID [CA_NAME]: the same kind of CA and leaf
# (ECDSA P-256, one URI SAN) made with the openssl CLI, independent of the agent's tools.
tb_openssl_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-keyout "$TBDIR/$1.key" -out "$TBDIR/$1.pem" -subj "/O=$1" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign >"$TBDIR/$1.ca.log" 2>&1 ||
		tb_fail "openssl CA $1: $(cat "$TBDIR/$1.ca.log")"
}
tb_openssl_cert() {
	local ca=${3:-ca} ext=$TBDIR/$1.ext
	printf '%s\n' "subjectAltName=critical,URI:$2" "keyUsage=critical,digitalSignature" \
		"extendedKeyUsage=serverAuth,clientAuth" "basicConstraints=critical,CA:FALSE" >"$ext"
	{ openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$TBDIR/$1.key" -out "$TBDIR/$1.csr" -subj "/" &&
	  openssl x509 -req -in "$TBDIR/$1.csr" -CA "$TBDIR/$ca.pem" -CAkey "$TBDIR/$ca.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days 1 -extfile "$ext" -out "$TBDIR/$1.pem"
	} >"$TBDIR/$1.issue.log" 2>&1 || tb_fail "openssl cert $2: $(cat "$TBDIR/$1.issue.log")"
}

# tb_mesh: the topology of testdata/mesh.yaml: node1 (client 10.201.1.2, server-local
# 10.201.1.3), node2 (server-remote 10.201.2.2, plain 10.201.2.9, ext 10.201.2.5), linked; both
# agents running with mesh.yaml; client, server-local and server-remote enrolled (plain and ext
# are not: plain is outside the mesh, ext is for independent HBONE servers).
tb_mesh() {
	tb_node node1 1
	tb_node node2 2
	tb_link node1 node2
	tb_pod node1 client 10.201.1.2
	tb_pod node1 server-local 10.201.1.3
	tb_pod node2 server-remote 10.201.2.2
	tb_pod node2 plain 10.201.2.9
	tb_pod node2 ext 10.201.2.5
	cp "$TB_TESTDATA/mesh.yaml" "$TBDIR/mesh.yaml"
	tb_agent node1 mesh.yaml
	tb_agent node2 mesh.yaml
	tb_enroll node1 client default client
	tb_enroll node1 server-local default server-local
	tb_enroll node2 server-remote default server-remote
	tb_wait_port client 15001
	tb_wait_port server-remote 15008
}

# tb_whoami POD PORT: whoami_server.py in POD (answers peer=, server=POD); waits for the port.
tb_whoami() {
	tb_bg "$1" "$PY" "$TB_PEERS/whoami_server.py" --port "$2" --name "$1" \
		>>"$TBDIR/whoami-$1.log" 2>&1
	tb_wait_port "$1" "$2"
}

# tb_curl POD URL [curl args...]: curl from POD, 10 s limit; prints the body.
tb_curl() {
	local pod=$1 url=$2; shift 2
	tb_exec "$pod" timeout 15 curl -sS --max-time 10 "$@" "$url"
}

# tb_capture_start NODE DEVICE NAME: tcpdump into $TBDIR/NAME.pcap; pid in TB_CAPTURE_PID.
tb_capture_start() {
	tb_bg_node "$1" tcpdump --immediate-mode -i "$2" -nn -s 0 -U -Z root -w "$TBDIR/$3.pcap" tcp \
		>"$TBDIR/$3.tcpdump.log" 2>&1
	TB_CAPTURE_PID=$TB_BG_PID
	tb_wait_log "$TBDIR/$3.tcpdump.log" 'listening on' 10 || tb_fail "tcpdump did not start"
}
tb_capture_stop() { tb_stop "$TB_CAPTURE_PID" 5; }
