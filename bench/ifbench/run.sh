#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# ifbench: iperf3 TCP throughput and ping RTT between two network namespaces
# joined by
#   (a) mnet: an IPN network with `policy switch` and two TAP ports,
#   (b) Debian's vde_switch with two tap ports (vde_switch -t A -t B),
#   (c) a Linux bridge over two veth pairs,
# all set up once, then measured in interleaved rounds (a, b, c, a, b, c, ...)
# so that drift on the machine hits every setup alike: in each round, ping
# RTT, iperf3 TCP throughput, and the 64-byte frames/s that reach B while
# bench/ifbench/flood sends as fast as it can from A. See bench/README.md.
#
# Run as root from anywhere:   bench/ifbench/run.sh [-m MNET] [-t SECS] [-r ROUNDS] [-P STREAMS]
# With -B BASE and -s "mnet-base mnet mnet-vlan", two builds and a network
# with VLANs configured elsewhere are compared in the same run.
# Needs: iperf3, vde2 (vde_switch), iproute2 (ip), iputils-ping, python3, go
# (only to build mnet when -m is not given).
set -euo pipefail

usage() {
	cat <<'EOF'
usage: run.sh [-m MNET] [-B BASE] [-t SECS] [-r ROUNDS] [-P STREAMS] [-c PINGS] [-f SECS] [-s SETUPS] [-p] [-T] [-k]

  -m MNET     mnet binary to benchmark (default: go build -o TMP/mnet ./cmd/mnet
              from this repository)
  -B BASE     a second mnet binary (say, a build of main), benchmarked as
              setup mnet-base, in a daemon of its own
  -t SECS     seconds of each iperf3 run, after 1 s of warm-up that is not
              counted (iperf3 -O 1) (default 10)
  -r ROUNDS   rounds; each round measures every setup once, in turn (default 3)
  -P STREAMS  parallel TCP streams per iperf3 run (iperf3 -P) (default 1)
  -c PINGS    pings per RTT measurement, 50 ms apart (default 20)
  -f SECS     seconds of each small-frame flood (bench/ifbench/flood: UDP with
              an 18-byte payload, i.e. 60-byte frames, 64 with the FCS, to
              an address B's MAC answers for but B does not have, so that B
              drops them at once); 0 skips it (default 5)
  -s SETUPS   which setups, in this order (default "mnet vde bridge"); also
              mnet-vlan: as mnet (a daemon of its own), with VLANs
                configured elsewhere on the network: a third TAP, an
                access port of VLAN 20, and a fourth, a trunk of 10 and
                20; the two measured TAPs stay untagged ports of VLAN 1
              mnet-base: as mnet, with the binary of -B
              relay: bench/ifbench/taprelay -vnet, a bare Go TAP-to-TAP relay
                with virtio-net headers and TSO, as mnet opens its TAPs;
              relay-plain: the same without offloads (frames <= MTU, as vde)
              relay-netpoll: the relay with vnet hdr + TSO, but reading
                through os.File on non-blocking descriptors (waiting in
                Go's netpoller, as mnet does), one goroutine per direction
  -p          profile mnet with perf record -g during its last iperf3 run and
              print the top of perf report (perf.data is kept in TMP with -k)
  -T          after the rounds, trace 100 pings through each switch with
              perf (scheduler and system call events, system-wide) and
              print where their microseconds go, stage by stage
              (bench/ifbench/stages.py)
  -k          keep the temporary directory (logs, iperf3 JSON) at the end

Output: one line per run, then Markdown tables (median Gbit/s and frames/s
over the rounds, ping RTT) with mnet's ratios to vde_switch and to the
bridge, per round and of the medians.
EOF
}

MNET=""
BASE=""
DUR=10
ROUNDS=3
STREAMS=1
PINGS=20
FLOOD=5
SETUPS="mnet vde bridge"
KEEP=0
PROFILE=0
TRACE=0
while getopts 'm:B:t:r:P:c:f:s:pTkh' opt; do
	case $opt in
	m) MNET=$OPTARG ;;
	B) BASE=$OPTARG ;;
	t) DUR=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	P) STREAMS=$OPTARG ;;
	c) PINGS=$OPTARG ;;
	f) FLOOD=$OPTARG ;;
	s) SETUPS=$OPTARG ;;
	k) KEEP=1 ;;
	p) PROFILE=1 ;;
	T) TRACE=1 ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -eq 0 ]] || { usage >&2; exit 2; }
for v in DUR ROUNDS STREAMS PINGS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "ifbench: $v must be a positive integer, not '${!v}'" >&2; exit 2; }
done
[[ $FLOOD =~ ^[0-9]+$ ]] || { echo "ifbench: -f must be a number of seconds, not '$FLOOD'" >&2; exit 2; }
for s in $SETUPS; do
	case $s in mnet | mnet-vlan | mnet-base | vde | bridge | relay | relay-plain | relay-netpoll | relay-epoll | relay-rawepoll | relay-rawpoll) ;; *) echo "ifbench: unknown setup '$s' (mnet, mnet-vlan, mnet-base, vde, bridge, relay, relay-plain, relay-netpoll, relay-epoll, relay-rawepoll)" >&2; exit 2 ;; esac
done
if [[ " $SETUPS " == *" mnet-base "* && -z $BASE ]]; then echo "ifbench: setup mnet-base needs -B BASE" >&2; exit 2; fi

die() { echo "ifbench: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }
has() { [[ " $SETUPS " == *" $1 "* ]]; }

[[ $EUID -eq 0 ]] || die "must run as root (namespaces, TAP devices, a FUSE mount)"
missing=()
for c in ip iperf3 ping python3 mountpoint; do command -v "$c" >/dev/null || missing+=("$c"); done
if has vde; then command -v vde_switch >/dev/null || missing+=(vde_switch); fi
if ((PROFILE || TRACE)); then command -v perf >/dev/null || missing+=(perf); fi
((${#missing[@]} == 0)) || die "missing commands: ${missing[*]} (apt-get install -y iproute2 iperf3 iputils-ping vde2 python3 util-linux)"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d /tmp/ifbench.XXXXXX)
ID=$$
P="ib$ID" # prefix of every name this run creates; with a pid < 2^22, names stay <= 15 chars

# Per setup: the two namespaces, the interface each sees, and its pid to
# watch for CPU use (the switch process; none for the bridge).
declare -A NSA NSB IFA IFB
NSA[mnet]=$P-ma NSB[mnet]=$P-mb IFA[mnet]=${P}ma IFB[mnet]=${P}mb
NSA[mnet-vlan]=$P-la NSB[mnet-vlan]=$P-lb IFA[mnet-vlan]=${P}la IFB[mnet-vlan]=${P}lb
NSA[mnet-base]=$P-ba NSB[mnet-base]=$P-bb IFA[mnet-base]=${P}ba IFB[mnet-base]=${P}bb
NSA[vde]=$P-va NSB[vde]=$P-vb IFA[vde]=${P}va IFB[vde]=${P}vb
NSA[bridge]=$P-ca NSB[bridge]=$P-cb IFA[bridge]=${P}ca IFB[bridge]=${P}cb
NSA[relay]=$P-ra NSB[relay]=$P-rb IFA[relay]=${P}ra IFB[relay]=${P}rb
NSA[relay-plain]=$P-pa NSB[relay-plain]=$P-pb IFA[relay-plain]=${P}pa IFB[relay-plain]=${P}pb
NSA[relay-netpoll]=$P-na NSB[relay-netpoll]=$P-nb IFA[relay-netpoll]=${P}na IFB[relay-netpoll]=${P}nb
NSA[relay-epoll]=$P-ea NSB[relay-epoll]=$P-eb IFA[relay-epoll]=${P}ea IFB[relay-epoll]=${P}eb
NSA[relay-rawepoll]=$P-wa NSB[relay-rawepoll]=$P-wb IFA[relay-rawepoll]=${P}wa IFB[relay-rawepoll]=${P}wb
NSA[relay-rawpoll]=$P-ta NSB[relay-rawpoll]=$P-tb IFA[relay-rawpoll]=${P}ta IFB[relay-rawpoll]=${P}tb
declare -A RELAY_PID
# The daemons of mnet-vlan and mnet-base, each on a mount of its own.
declare -A MNET_PIDS
NSBR=$P-cs # the bridge and the host ends of the veths live here
BR=${P}br
MP=$TMP/mnt
NET=ifbench
MNET_PID=""
VDE_PIDFILE=$TMP/vde.pid
CREATED_NS=()

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	for f in "$TMP"/iperf-*.pid; do
		[[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null
	done
	if [[ -n $MNET_PID ]] && kill -0 "$MNET_PID" 2>/dev/null; then
		kill -TERM "$MNET_PID"
		for _ in $(seq 50); do kill -0 "$MNET_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$MNET_PID" 2>/dev/null
		wait "$MNET_PID" 2>/dev/null
	fi
	mountpoint -q "$MP" 2>/dev/null && umount -l "$MP"
	local s
	for s in "${!MNET_PIDS[@]}"; do
		kill -TERM "${MNET_PIDS[$s]}" 2>/dev/null
		for _ in $(seq 50); do kill -0 "${MNET_PIDS[$s]}" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "${MNET_PIDS[$s]}" 2>/dev/null
		wait "${MNET_PIDS[$s]}" 2>/dev/null
		mountpoint -q "$TMP/mnt-$s" 2>/dev/null && umount -l "$TMP/mnt-$s"
	done
	if [[ -s $VDE_PIDFILE ]]; then
		local vp
		vp=$(cat "$VDE_PIDFILE")
		kill -TERM "$vp" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$vp" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$vp" 2>/dev/null
	fi
	for ns in "${CREATED_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	# TAPs left in the root namespace (a setup that failed before moving them).
	for s in "${!RELAY_PID[@]}"; do
		kill -TERM "${RELAY_PID[$s]}" 2>/dev/null && wait "${RELAY_PID[$s]}" 2>/dev/null
	done
	for s in mnet mnet-vlan mnet-base vde relay relay-plain relay-netpoll relay-epoll relay-rawepoll relay-rawpoll; do
		for i in "${IFA[$s]}" "${IFB[$s]}"; do ip link del "$i" 2>/dev/null; done
	done
	ip link del "${P}lv" 2>/dev/null
	ip link del "${P}lt" 2>/dev/null
	if ((rc != 0)) && [[ -s $TMP/mnet.log ]]; then
		echo "ifbench: failed; the end of mnet's log:" >&2
		tail -n 20 "$TMP/mnet.log" >&2
	fi
	if ((KEEP || rc != 0)); then
		echo "ifbench: logs kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

addns() { ip netns add "$1"; CREATED_NS+=("$1"); ip -n "$1" link set lo up; }

# ifup NS IF ADDR: give IF its address in NS and bring it up.
ifup() {
	ip -n "$1" addr add "$3/24" dev "$2"
	ip -n "$1" link set "$2" up
}

# waitfor SECS CMD...: poll CMD every 0.1 s until it succeeds.
waitfor() {
	local n=$(($1 * 10)); shift
	until "$@" 2>/dev/null; do
		((--n > 0)) || return 1
		sleep 0.1
	done
}

# joinpair SETUP: move the two interfaces (already in the root namespace)
# into the setup's namespaces and configure them.
joinpair() {
	local s=$1
	addns "${NSA[$s]}"
	addns "${NSB[$s]}"
	ip link set "${IFA[$s]}" netns "${NSA[$s]}"
	ip link set "${IFB[$s]}" netns "${NSB[$s]}"
	ifup "${NSA[$s]}" "${IFA[$s]}" 198.18.0.1
	ifup "${NSB[$s]}" "${IFB[$s]}" 198.18.0.2
}

# buildmnet: the binary of setups mnet and mnet-vlan.
buildmnet() {
	if [[ -z $MNET ]]; then
		command -v go >/dev/null || die "go is needed to build mnet (or pass -m MNET)"
		log "building mnet from $REPO"
		(cd "$REPO" && go build -o "$TMP/mnet" ./cmd/mnet)
		MNET=$TMP/mnet
	fi
	[[ -x $MNET ]] || die "$MNET is not an executable"
}

setup_mnet() {
	buildmnet
	mkdir -p "$MP"
	"$MNET" mount --state '' "$MP" >"$TMP/mnet.log" 2>&1 &
	MNET_PID=$!
	waitfor 10 mountpoint -q "$MP" || die "mnet did not mount $MP within 10 s"
	local d=$MP/ipn/$NET
	mkdir "$d"
	echo 'policy switch' >"$d/ctl"
	local i
	for i in "${IFA[mnet]}" "${IFB[mnet]}"; do
		if ! echo "tap $i" >"$d/ctl"; then
			die "mnet refused 'tap $i' ($(grep '^last-error' "$d/ctl" || true)); does this mnet support TAPs (issue 3)?"
		fi
	done
	joinpair mnet
}

# mnetdaemon SETUP BIN: a daemon of BIN for SETUP on TMP/mnt-SETUP with
# network NET, policy switch, the setup's two TAPs; prints the network's
# directory.
mnetdaemon() {
	local s=$1 bin=$2 mp=$TMP/mnt-$1
	[[ -x $bin ]] || die "$bin is not an executable"
	mkdir -p "$mp"
	"$bin" mount --state '' --vde-dir "$TMP/vde-$s" "$mp" >"$TMP/$s.log" 2>&1 &
	MNET_PIDS[$s]=$!
	waitfor 10 mountpoint -q "$mp" || die "$s: mnet did not mount $mp within 10 s"
	local d=$mp/ipn/$NET i
	mkdir "$d"
	echo 'policy switch' >"$d/ctl"
	for i in "${IFA[$s]}" "${IFB[$s]}"; do
		echo "tap $i" >"$d/ctl" || die "$s: mnet refused 'tap $i' ($(grep '^last-error' "$d/ctl" || true))"
	done
}

setup_mnet-base() {
	mnetdaemon mnet-base "$BASE"
	joinpair mnet-base
}

# setup_mnet-vlan: VLANs elsewhere on the network: two more TAPs, left in
# the root namespace, one an access port of VLAN 20, one a trunk.
setup_mnet-vlan() {
	buildmnet
	mnetdaemon mnet-vlan "$MNET"
	local d=$TMP/mnt-mnet-vlan/ipn/$NET
	printf 'tap %s\ntap %s\nvlan %s 20\ntrunk %s 10,20\n' "${P}lv" "${P}lt" "${P}lv" "${P}lt" >"$d/ctl" ||
		die "mnet-vlan: VLAN settings refused ($(grep '^last-error' "$d/ctl" || true))"
	joinpair mnet-vlan
}

setup_vde() {
	vde_switch -d -p "$VDE_PIDFILE" -s "$TMP/vde.ctl" -M "$TMP/vde.mgmt" \
		-f /dev/null -t "${IFA[vde]}" -t "${IFB[vde]}" >"$TMP/vde.log" 2>&1 ||
		die "vde_switch failed: $(cat "$TMP/vde.log")"
	waitfor 5 test -s "$VDE_PIDFILE" || die "vde_switch wrote no pid file"
	waitfor 5 ip link show "${IFB[vde]}" >/dev/null || die "vde_switch created no tap ${IFB[vde]}"
	joinpair vde
}

buildflood() {
	[[ -x $TMP/flood ]] && return
	command -v go >/dev/null || die "go is needed to build bench/ifbench/flood"
	(cd "$REPO" && go build -o "$TMP/flood" ./bench/ifbench/flood)
}

# floodtarget SETUP: A sends the flood to 198.18.0.3, which B does not
# have, with B's MAC: every frame crosses the switch as a known unicast
# frame and B drops it in IP input (no forwarding, no ICMP error).
floodtarget() {
	local s=$1 mac
	mac=$(ip -n "${NSB[$s]}" -o link show "${IFB[$s]}" | sed -n 's/.* link\/ether \([0-9a-f:]*\) .*/\1/p')
	[[ -n $mac ]] || die "$s: no MAC address on ${IFB[$s]}"
	ip -n "${NSA[$s]}" neigh replace 198.18.0.3 lladdr "$mac" dev "${IFA[$s]}" nud permanent
}

# rxpackets SETUP: frames B's interface has received.
rxpackets() {
	ip netns exec "${NSB[$1]}" cat "/sys/class/net/${IFB[$1]}/statistics/rx_packets"
}

buildrelay() {
	[[ -x $TMP/taprelay ]] && return
	command -v go >/dev/null || die "go is needed to build bench/ifbench/taprelay"
	(cd "$REPO" && go build -o "$TMP/taprelay" ./bench/ifbench/taprelay)
}

# setup_relay SETUP [-vnet]
setup_relay() {
	local s=$1
	shift
	buildrelay
	"$TMP/taprelay" "$@" "${IFA[$s]}" "${IFB[$s]}" 2>"$TMP/$s.log" &
	RELAY_PID[$s]=$!
	waitfor 5 ip link show "${IFB[$s]}" >/dev/null || die "taprelay created no tap ${IFB[$s]}: $(cat "$TMP/$s.log")"
	joinpair "$s"
}
setup_relay-plain() { setup_relay relay-plain; }
setup_relay-netpoll() { setup_relay relay-netpoll -vnet -netpoll; }
setup_relay-epoll() { setup_relay relay-epoll -vnet -epoll; }
setup_relay-rawepoll() { setup_relay relay-rawepoll -vnet -rawepoll; }
setup_relay-rawpoll() { setup_relay relay-rawpoll -vnet -rawpoll; }

setup_bridge() {
	addns "$NSBR"
	addns "${NSA[bridge]}"
	addns "${NSB[bridge]}"
	ip -n "$NSBR" link add "$BR" type bridge
	ip -n "$NSBR" link set "$BR" up
	local s=bridge side
	for side in a b; do
		local ns host=${P}h$side dev
		if [[ $side == a ]]; then ns=${NSA[$s]} dev=${IFA[$s]}; else ns=${NSB[$s]} dev=${IFB[$s]}; fi
		ip -n "$NSBR" link add "$host" type veth peer name "$dev" netns "$ns"
		ip -n "$NSBR" link set "$host" master "$BR"
		ip -n "$NSBR" link set "$host" up
	done
	ifup "${NSA[$s]}" "${IFA[$s]}" 198.18.0.1
	ifup "${NSB[$s]}" "${IFB[$s]}" 198.18.0.2
}

# offloads SETUP: the offloads that decide how big a frame crosses the link.
offloads() {
	local s=$1 out
	out=$(ip netns exec "${NSA[$s]}" ethtool -k "${IFA[$s]}" 2>/dev/null) || { echo "?"; return; }
	awk -F': ' '/^(tcp-segmentation-offload|generic-segmentation-offload|tx-checksumming|scatter-gather):/ {
		sub(/ \[fixed\]/, "", $2); printf "%s%s=%s", sep, $1, $2; sep=" " }' <<<"$out" |
		sed -e 's/tcp-segmentation-offload/tso/' -e 's/generic-segmentation-offload/gso/' \
			-e 's/tx-checksumming/tx-csum/' -e 's/scatter-gather/sg/'
}

# switchpid SETUP: the process that forwards the frames, if any.
switchpid() {
	case $1 in
	mnet) echo "$MNET_PID" ;;
	mnet-*) echo "${MNET_PIDS[$1]}" ;;
	vde) cat "$VDE_PIDFILE" ;;
	relay*) echo "${RELAY_PID[$1]}" ;;
	*) echo "" ;;
	esac
}

# cputicks PID: user+system clock ticks of PID and its threads so far.
cputicks() {
	[[ -n $1 ]] || { echo 0; return; }
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# measure SETUP ROUND: ping then iperf3 from A to B; appends a results line.
measure() {
	local s=$1 r=$2 nsa=${NSA[$1]} j=$TMP/iperf-$1-$2.json pingout
	pingout=$(ip netns exec "$nsa" ping -c "$PINGS" -i 0.05 -n 198.18.0.2) ||
		die "$s: ping failed: $pingout"
	# every reply's RTT in ms, for the summary's median
	sed -n 's/.* time=\([0-9.]*\) ms$/\1/p' <<<"$pingout" | sed "s/^/$s\t$r\t/" >>"$TMP/rtts.tsv"
	local rtt
	rtt=$(awk -F'[/ =]+' '/^(rtt|round-trip)/ { print $7 }' <<<"$pingout")
	local pid t0 t1 start end
	pid=$(switchpid "$s")
	t0=$(cputicks "$pid")
	local perfpid=""
	if ((PROFILE)) && [[ $s == mnet && $r == "$ROUNDS" ]]; then
		# Skip iperf3's warm-up second; stop before its end.
		perf record -q -F 999 -g -p "$pid" -o "$TMP/perf.data" -- sleep "$((DUR > 2 ? DUR - 1 : 1))" \
			>"$TMP/perf.log" 2>&1 &
		perfpid=$!
	fi
	start=$(date +%s.%N)
	if ! ip netns exec "$nsa" iperf3 -c 198.18.0.2 -t "$DUR" -O 1 -P "$STREAMS" -J >"$j" 2>&1; then
		die "$s: iperf3 failed: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error","?"))' "$j" 2>/dev/null || tail -n 3 "$j")"
	fi
	end=$(date +%s.%N)
	t1=$(cputicks "$pid")
	if [[ -n $perfpid ]]; then wait "$perfpid" || log "perf record failed: $(cat "$TMP/perf.log")"; fi
	python3 - "$s" "$r" "$j" "$rtt" "$((t1 - t0))" "$(getconf CLK_TCK)" "$start" "$end" "$pid" >>"$TMP/results.tsv" <<'EOF'
import json, sys
s, r, path, rtt, ticks, hz, start, end, pid = sys.argv[1:]
end_ = json.load(open(path))["end"]
gbps = end_["sum_received"]["bits_per_second"] / 1e9
retr = end_["sum_sent"].get("retransmits", 0)
# the switch's CPU over the whole iperf3 run (including its 1 s warm-up)
cpu = int(ticks) / int(hz) / (float(end) - float(start)) * 100 if pid else float("nan")
print(f"{r}\t{s}\t{gbps:.3f}\t{retr}\t{rtt}\t{cpu:.0f}")
EOF
	tail -n 1 "$TMP/results.tsv" | awk -F'\t' '{
		printf "round %s  %-11s  %7.3f Gbit/s  retr %6s  rtt avg %s ms  switch CPU %s\n", $1, $2, $3, $4, $5, ($6 == "nan" ? "(kernel)" : $6 "%") }'
}

# measure_flood SETUP ROUND: 64-byte frames from A; appends a flood line.
measure_flood() {
	local s=$1 r=$2 pid t0 t1 rx0 rx1 start end out
	pid=$(switchpid "$s")
	rx0=$(rxpackets "$s")
	t0=$(cputicks "$pid")
	start=$(date +%s.%N)
	out=$(ip netns exec "${NSA[$s]}" "$TMP/flood" -l 18 -t "$FLOOD" 198.18.0.3) || die "$s: flood failed: $out"
	end=$(date +%s.%N)
	t1=$(cputicks "$pid")
	rx1=$(rxpackets "$s")
	python3 - "$s" "$r" "$out" "$((rx1 - rx0))" "$((t1 - t0))" "$(getconf CLK_TCK)" "$start" "$end" "$pid" >>"$TMP/flood.tsv" <<'EOF'
import sys
s, r, out, rx, ticks, hz, start, end, pid = sys.argv[1:]
f = out.split()
sent, secs = int(f[1]), float(f[3])
wall = float(end) - float(start)
cpu = int(ticks) / int(hz) / wall * 100 if pid else float("nan")
print(f"{r}\t{s}\t{int(rx) / secs:.0f}\t{sent / secs:.0f}\t{cpu:.0f}")
EOF
	tail -n 1 "$TMP/flood.tsv" | awk -F'\t' '{
		printf "round %s  %-11s  %9d frames/s reach B (of %d/s sent)  switch CPU %s\n", $1, $2, $3, $4, ($5 == "nan" ? "(kernel)" : $5 "%") }'
}

# ---- setup -------------------------------------------------------------------

log "ifbench: ${DUR} s per iperf3 run (+1 s warm-up), $ROUNDS rounds, $STREAMS stream(s), setups: $SETUPS"
log "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), kernel $(uname -r); iperf3 client, server and switch share them; load average $(cut -d" " -f1-3 /proc/loadavg)"
for s in $SETUPS; do
	case $s in
	relay) setup_relay relay -vnet ;;
	*) "setup_$s" ;;
	esac
done
for s in $SETUPS; do
	ip netns exec "${NSB[$s]}" iperf3 -s -D -B 198.18.0.2 --pidfile "$TMP/iperf-$s.pid"
done
if ((FLOOD > 0)); then buildflood; fi
for s in $SETUPS; do
	# Wait for the server and for the path (the first frames also fill
	# the switches' address tables and the ARP caches).
	waitfor 10 ip netns exec "${NSA[$s]}" ping -c 1 -W 1 198.18.0.2 >/dev/null ||
		die "$s: no ping through the setup after 10 s"
	waitfor 10 test -s "$TMP/iperf-$s.pid" || die "$s: iperf3 server did not start"
	if ((FLOOD > 0)); then floodtarget "$s"; fi
	log "$s: ${IFA[$s]} mtu $(ip -n "${NSA[$s]}" -o link show "${IFA[$s]}" | sed -n 's/.* mtu \([0-9]*\) .*/\1/p'), $(offloads "$s")"
done
if [[ -n $MNET_PID ]]; then log "mnet: $MNET (pid $MNET_PID), log $TMP/mnet.log"; fi

# ---- rounds ------------------------------------------------------------------

: >"$TMP/results.tsv"
: >"$TMP/rtts.tsv"
: >"$TMP/flood.tsv"
for r in $(seq "$ROUNDS"); do
	for s in $SETUPS; do
		measure "$s" "$r"
		if ((FLOOD > 0)); then measure_flood "$s" "$r"; fi
	done
done

for s in "${!MNET_PIDS[@]}"; do
	log "$s: ports after the runs:"
	sed 's/^/#   /' "$TMP/mnt-$s/ipn/$NET/ports" >&2
done
if [[ -n $MNET_PID ]]; then
	log "mnet counters after the runs:"
	sed 's/^/#   /' "$MP/ipn/$NET/stats" >&2
	sed 's/^/#   /' "$MP/ipn/$NET/ports" >&2
	for side in A B; do
		if [[ $side == A ]]; then ns=${NSA[mnet]} dev=${IFA[mnet]}; else ns=${NSB[mnet]} dev=${IFB[mnet]}; fi
		ip -n "$ns" -s link show "$dev" | sed 's/^/#   /' >&2
	done
fi

if ((PROFILE)) && [[ -s $TMP/perf.data ]]; then
	log "mnet's profile in its last run (perf report --no-children, self time):"
	perf report -i "$TMP/perf.data" --no-children --sort comm,dso,sym --percent-limit 1 --stdio -g none 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -n 40 | sed 's/^/#   /' >&2
	log "by syscall-level entry points (children, top 25):"
	perf report -i "$TMP/perf.data" --children --sort sym --percent-limit 3 --stdio -g none 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -n 25 | sed 's/^/#   /' >&2
fi

# trace_stages SETUP: 100 pings 50 ms apart under perf; where their time goes.
trace_stages() {
	local s=$1 pid
	pid=$(switchpid "$s")
	[[ -n $pid ]] || return 0
	perf record -q -a -o "$TMP/stages-$s.data" \
		-e sched:sched_switch,sched:sched_wakeup,raw_syscalls:sys_enter,raw_syscalls:sys_exit \
		-- ip netns exec "${NSA[$s]}" ping -c 100 -i 0.05 -n 198.18.0.2 >"$TMP/stages-$s.log" 2>&1 ||
		{ log "$s: perf record failed: $(tail -n 3 "$TMP/stages-$s.log")"; return 0; }
	perf script -i "$TMP/stages-$s.data" -F comm,tid,cpu,time,event,trace >"$TMP/stages-$s.txt" 2>/dev/null
	log "$s: stages of a ping (perf trace; each traced system call adds about 1 µs):"
	python3 "$REPO/bench/ifbench/stages.py" "$TMP/stages-$s.txt" "$pid" | sed 's/^/#   /' >&2
	rm -f "$TMP/stages-$s.data"
}

if ((TRACE)); then
	for s in $SETUPS; do trace_stages "$s"; done
fi

# ---- summary -----------------------------------------------------------------

python3 - "$TMP/results.tsv" "$TMP/rtts.tsv" "$TMP/flood.tsv" "$DUR" "$ROUNDS" "$STREAMS" "$(nproc)" "$PINGS" "$FLOOD" <<'EOF'
import statistics as st, sys
path, rttpath, floodpath, dur, rounds, streams, ncpu, pings, flood = sys.argv[1:]
allrtt, roundrtt = {}, {}
for l in open(rttpath):
    if l.strip():
        k, r, v = l.split("\t")
        allrtt.setdefault(k, []).append(float(v))
        roundrtt.setdefault(k, {}).setdefault(r, []).append(float(v))
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
names = {"mnet": "mnet switch, 2 TAP ports", "vde": "vde_switch, 2 tap ports",
         "mnet-vlan": "mnet switch, 2 TAP ports, VLANs elsewhere", "mnet-base": "mnet (-B build) switch, 2 TAP ports", "bridge": "Linux bridge, 2 veth pairs",
         "relay": "bare Go TAP relay, vnet hdr + TSO", "relay-plain": "bare Go TAP relay, no offloads",
         "relay-netpoll": "bare Go TAP relay, vnet hdr + TSO, netpoller",
         "relay-epoll": "bare Go TAP relay, one thread in its own epoll",
         "relay-rawepoll": "bare Go TAP relay, own epoll, raw syscall",
         "relay-rawpoll": "bare Go TAP relay, thread per direction, raw ppoll"}
order = ("mnet-base", "mnet", "mnet-vlan", "vde", "bridge", "relay", "relay-plain", "relay-netpoll", "relay-epoll", "relay-rawepoll", "relay-rawpoll")
res = {}
for r, s, g, retr, rtt, cpu in rows:
    d = res.setdefault(s, {"g": [], "retr": [], "cpu": []})
    d["g"].append(float(g)); d["retr"].append(int(retr))
    if cpu != "nan": d["cpu"].append(float(cpu))

def spread(ratios):
    return f"rounds {min(ratios):.2f}–{max(ratios):.2f}" if ratios else "no rounds"

def ratios(a, b):
    """Per-round ratios a/b of two setups' per-round figures."""
    return [x / y for x, y in zip(a, b) if y > 0]

print()
print(f"iperf3 TCP, {streams} stream(s), {dur} s per run, median of {rounds} interleaved rounds; "
      f"{ncpu} CPUs shared by the iperf3 client, the server and the switch. "
      f"RTT: {pings} pings 50 ms apart before each iperf3 run; median and mean of all of them, "
      f"and the spread of the rounds' medians.")
print()
print("| setup | Gbit/s (median) | min..max | retransmits (median) | ping RTT median | rounds' medians | ping RTT mean | switch CPU |")
print("|---|---|---|---|---|---|---|---|")
med, rtt, rrtt = {}, {}, {}
for s in order:
    if s not in res: continue
    d = res[s]
    med[s] = st.median(d["g"]); rtt[s] = st.median(allrtt[s]); mean = st.mean(allrtt[s])
    rrtt[s] = [st.median(v) for _, v in sorted(roundrtt[s].items(), key=lambda kv: int(kv[0]))]
    cpu = f"{st.median(d['cpu']):.0f}%" if d["cpu"] else "(kernel)"
    print(f"| {names[s]} | {med[s]:.2f} | {min(d['g']):.2f}..{max(d['g']):.2f} | {st.median(d['retr']):.0f} "
          f"| {rtt[s]*1000:.0f} µs | {min(rrtt[s])*1000:.0f}..{max(rrtt[s])*1000:.0f} µs | {mean*1000:.0f} µs | {cpu} |")

fl = {}
for l in open(floodpath):
    if l.strip():
        r, s, rx, sent, cpu = l.rstrip("\n").split("\t")
        d = fl.setdefault(s, {"rx": [], "sent": [], "cpu": []})
        d["rx"].append(float(rx)); d["sent"].append(float(sent))
        if cpu != "nan": d["cpu"].append(float(cpu))
fmed = {}
if fl:
    print()
    print(f"64-byte frames (60 bytes + FCS: UDP, 18-byte payload) sent from A by bench/ifbench/flood as fast as "
          f"one thread can, {flood} s per run; frames/s counted at B's interface; median of {rounds} rounds.")
    print()
    print("| setup | frames/s at B (median) | min..max | sent/s (median) | switch CPU |")
    print("|---|---|---|---|---|")
    for s in order:
        if s not in fl: continue
        d = fl[s]
        fmed[s] = st.median(d["rx"])
        cpu = f"{st.median(d['cpu']):.0f}%" if d["cpu"] else "(kernel)"
        print(f"| {names[s]} | {fmed[s]:.0f} | {min(d['rx']):.0f}..{max(d['rx']):.0f} | {st.median(d['sent']):.0f} | {cpu} |")

def compare(a, b, label):
    if a not in med or b not in med:
        return
    line = (f"- {label}: throughput **{med[a]/med[b]:.2f}×** ({spread(ratios(res[a]['g'], res[b]['g']))}), "
            f"RTT **{rtt[a]/rtt[b]:.2f}×** ({spread(ratios(rrtt[a], rrtt[b]))})")
    if a in fmed and b in fmed and fmed[b] > 0:
        line += f", 64-byte frames/s **{fmed[a]/fmed[b]:.2f}×** ({spread(ratios(fl[a]['rx'], fl[b]['rx']))})"
    print(line)

if any(s in med for s in ("mnet-vlan", "mnet-base")):
    print()
compare("mnet-vlan", "mnet", "mnet with VLANs elsewhere / mnet")
compare("mnet", "mnet-base", "mnet / the -B build")
compare("mnet-vlan", "mnet-base", "mnet with VLANs elsewhere / the -B build")

if "mnet" in med:
    print()
    for o, label in (("vde", "vde_switch"), ("bridge", "the bridge"), ("relay", "the bare relay (vnet hdr + TSO)"),
                     ("relay-netpoll", "the bare relay waiting in the netpoller")):
        if o not in med:
            continue
        line = (f"- mnet / {label}: throughput **{med['mnet']/med[o]:.2f}×** ({spread(ratios(res['mnet']['g'], res[o]['g']))}), "
                f"RTT **{rtt['mnet']/rtt[o]:.2f}×** ({spread(ratios(rrtt['mnet'], rrtt[o]))})")
        if o in fmed and fmed[o] > 0:
            line += f", 64-byte frames/s **{fmed['mnet']/fmed[o]:.2f}×** ({spread(ratios(fl['mnet']['rx'], fl[o]['rx']))})"
        print(line)
    if "vde" in rtt:
        print(f"- target RTT ≤ vde_switch's: {'met' if rtt['mnet'] <= rtt['vde'] else 'NOT met'}")
    if "bridge" in med:
        print(f"- target throughput ≥ the bridge's: {'met' if med['mnet'] >= med['bridge'] else 'NOT met'}")
EOF
