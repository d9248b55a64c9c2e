#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# vxbench: iperf3 TCP across a VXLAN cable between two namespaces,
#   mnet <-> Linux vxlan: an mnet network (policy switch) with a TAP into
#     namespace h1 and a vxlan cable to host B, where a Linux vxlan device
#     is bridged with a veth into namespace h2; measured both ways
#     (mnet-tx: h1 -> h2, mnet encapsulates; mnet-rx: h2 -> h1);
#   Linux <-> Linux: the same with a Linux vxlan device and bridge on both
#     hosts (h3 -> h4).
# Every "host" is a network namespace on one underlay bridge (MTU 1500,
# 198.18.0.0/24); the overlay endpoints have MTU 1450. The mnet daemon
# runs inside host A's namespace (nsenter --net), where its sockets are.
# All setups are made once, then measured in interleaved rounds so that
# drift on the machine hits each alike. See bench/README.md.
#
# Run as root:   bench/vxbench/run.sh [-m MNET] [-t SECS] [-r ROUNDS]
# Needs: iperf3, iproute2, util-linux (nsenter), python3, go (to build mnet
# when -m is not given).
set -euo pipefail

MNET="" DUR=10 ROUNDS=3 KEEP=0
usage() { echo "usage: run.sh [-m MNET] [-t SECS] [-r ROUNDS] [-k]" >&2; }
while getopts 'm:t:r:kh' opt; do
	case $opt in
	m) MNET=$OPTARG ;;
	t) DUR=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	k) KEEP=1 ;;
	h) usage; exit 0 ;;
	*) usage; exit 2 ;;
	esac
done
for v in DUR ROUNDS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "vxbench: $v must be a positive integer" >&2; exit 2; }
done
die() { echo "vxbench: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }
[[ $EUID -eq 0 ]] || die "must run as root"
for c in ip iperf3 nsenter python3 mountpoint; do command -v "$c" >/dev/null || die "missing $c (apt-get install -y iproute2 iperf3 util-linux python3)"; done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d /tmp/vxbench.XXXXXX)
P="vb$$"
MP=$TMP/mnt
MNET_PID=""
NSS=()

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	for f in "$TMP"/iperf-*.pid; do [[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null; done
	if [[ -n $MNET_PID ]] && kill -0 "$MNET_PID" 2>/dev/null; then
		kill -TERM "$MNET_PID"
		for _ in $(seq 50); do kill -0 "$MNET_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$MNET_PID" 2>/dev/null
		wait "$MNET_PID" 2>/dev/null
	fi
	mountpoint -q "$MP" 2>/dev/null && umount -l "$MP"
	for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	if ((rc != 0)) && [[ -s $TMP/mnet.log ]]; then tail -n 20 "$TMP/mnet.log" >&2; fi
	if ((KEEP || rc != 0)); then echo "vxbench: logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

addns() { ip netns add "$P-$1"; NSS+=("$P-$1"); ip -n "$P-$1" link set lo up; }
waitfor() {
	local n=$(($1 * 10)); shift
	until "$@" >/dev/null 2>&1; do ((--n > 0)) || return 1; sleep 0.1; done
}

# The underlay: a bridge in namespace "wire", and host namespaces on it.
addns wire
ip -n "$P-wire" link add sw0 type bridge
ip -n "$P-wire" link set sw0 up
N=0
host() { # NAME ADDR
	addns "$1"
	N=$((N + 1))
	ip link add ul netns "$P-$1" type veth peer name p$N netns "$P-wire"
	ip -n "$P-wire" link set p$N master sw0 up
	ip -n "$P-$1" addr add "$2/24" dev ul
	ip -n "$P-$1" link set ul up
}
# linuxvtep HOST VNI REMOTE EP ADDR: a Linux vxlan device bridged with a
# veth into endpoint namespace EP.
linuxvtep() {
	local h=$P-$1 ep=$P-$4
	addns "$4"
	ip -n "$h" link add vx type vxlan id "$2" remote "$3" dev ul dstport 4789
	ip -n "$h" link add sw0 type bridge
	ip -n "$h" link set vx master sw0
	ip -n "$h" link add ep type veth peer name ep netns "$ep"
	ip -n "$h" link set ep master sw0
	ip -n "$h" link set vx up
	ip -n "$h" link set ep up
	ip -n "$h" link set sw0 up
	ip -n "$ep" link set ep mtu 1450 up
	ip -n "$ep" addr add "$5/24" dev ep
}

host a 198.18.0.1
host b 198.18.0.2
host c 198.18.0.3
host d 198.18.0.4
linuxvtep b 42 198.18.0.1 h2 198.18.1.2
linuxvtep c 43 198.18.0.4 h3 198.18.2.3
linuxvtep d 43 198.18.0.3 h4 198.18.2.4

if [[ -z $MNET ]]; then
	log "building mnet from $REPO"
	(cd "$REPO" && go build -o "$TMP/mnet" ./cmd/mnet)
	MNET=$TMP/mnet
fi
mkdir -p "$MP"
nsenter --net=/run/netns/$P-a "$MNET" mount --state '' --vde-dir "$TMP/vde" "$MP" >"$TMP/mnet.log" 2>&1 &
MNET_PID=$!
waitfor 10 mountpoint -q "$MP" || die "mnet did not mount"
NET=$MP/ipn/vx
mkdir "$NET"
inA() { nsenter --net=/run/netns/$P-a "$@"; }
inA sh -c "echo 'policy switch' > $NET/ctl && echo 'vxlan 42 198.18.0.2' > $NET/ctl && echo 'tap tp' > $NET/ctl" ||
	die "ctl: $(grep last-error "$NET/ctl")"
addns h1
ip -n "$P-a" link set tp netns "$P-h1"
ip -n "$P-h1" link set tp mtu 1450 up
ip -n "$P-h1" addr add 198.18.1.1/24 dev tp

# setup name: client namespace, server namespace, server address
declare -A CLI SRV ADDR
CLI[mnet-tx]=h1 SRV[mnet-tx]=h2 ADDR[mnet-tx]=198.18.1.2
CLI[mnet-rx]=h2 SRV[mnet-rx]=h1 ADDR[mnet-rx]=198.18.1.1
CLI[linux]=h3 SRV[linux]=h4 ADDR[linux]=198.18.2.4
SETUPS="mnet-tx mnet-rx linux"
for s in $SETUPS; do
	waitfor 10 ip netns exec "$P-${CLI[$s]}" ping -c 1 -W 1 "${ADDR[$s]}" || die "$s: no ping across"
done
for ns in h1 h2 h4; do
	ip netns exec "$P-$ns" iperf3 -s -D --pidfile "$TMP/iperf-$ns.pid"
	waitfor 10 test -s "$TMP/iperf-$ns.pid" || die "iperf3 server in $ns did not start"
done

log "vxbench: ${DUR} s per iperf3 run (+1 s warm-up), $ROUNDS rounds"
log "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) (shared with other work)"
: >"$TMP/results.tsv"
for r in $(seq "$ROUNDS"); do
	for s in $SETUPS; do
		j=$TMP/iperf-$s-$r.json
		ip netns exec "$P-${CLI[$s]}" iperf3 -c "${ADDR[$s]}" -t "$DUR" -O 1 -J >"$j" 2>&1 || die "$s: iperf3 failed: $(tail -n 3 "$j")"
		python3 - "$r" "$s" "$j" >>"$TMP/results.tsv" <<'EOF'
import json, sys
r, s, path = sys.argv[1:]
e = json.load(open(path))["end"]
print(f'{r}\t{s}\t{e["sum_received"]["bits_per_second"] / 1e9:.3f}\t{e["sum_sent"].get("retransmits", 0)}')
EOF
		tail -n 1 "$TMP/results.tsv" | awk -F'\t' '{ printf "round %s  %-8s %7.3f Gbit/s  retr %s\n", $1, $2, $3, $4 }'
	done
done
log "mnet's ports after the runs:"
sed 's/^/#   /' "$NET/ports" >&2

python3 - "$TMP/results.tsv" "$DUR" "$ROUNDS" <<'EOF'
import statistics as st, sys
path, dur, rounds = sys.argv[1:]
res = {}
rows = [l.split("\t") for l in open(path) if l.strip()]
for r, s, g, retr in rows:
    res.setdefault(s, {}).setdefault(int(r), float(g))
names = {"mnet-tx": "mnet -> Linux vxlan (mnet encapsulates)", "mnet-rx": "Linux vxlan -> mnet (mnet decapsulates)",
         "linux": "Linux vxlan -> Linux vxlan"}
print()
print(f"iperf3 TCP, 1 stream, {dur} s per run, median of {rounds} interleaved rounds")
print()
print("| path | Gbit/s (median) | min..max | vs Linux<->Linux (median of per-round ratios) |")
print("|---|---|---|---|")
for s in ("mnet-tx", "mnet-rx", "linux"):
    g = list(res[s].values())
    ratio = ""
    if s != "linux":
        ratios = [res[s][r] / res["linux"][r] for r in res[s] if res["linux"].get(r)]
        ratio = f"**{st.median(ratios):.2f}** ({min(ratios):.2f}..{max(ratios):.2f})"
    print(f"| {names[s]} | {st.median(g):.2f} | {min(g):.2f}..{max(g):.2f} | {ratio} |")
EOF
