// SPDX-License-Identifier: BSD-3-Clause

package tests

// Link emulation (impair) through a real mount: two TAPs of one network,
// each in a namespace of its own, with IPv6 off and static neighbours so
// that only the tests' own ICMP and TCP cross the network (the same
// traffic on every run is what makes a seeded impairment repeat).

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type imWorld struct {
	e          *ifEnv
	d          *daemon
	net        string
	tapA, tapB string
	nsA, nsB   string
}

// newImWorld makes network "im" with TAPs A (198.18.0.1) and B
// (198.18.0.2) in namespaces of their own.
func newImWorld(t *testing.T, tools ...string) *imWorld {
	t.Helper()
	e := newIfEnv(t, append([]string{"ping", "sysctl"}, tools...)...)
	d := startMnet(t)
	w := &imWorld{e: e, d: d, net: d.mkNet(t, "im"), tapA: e.name("ima"), tapB: e.name("imb")}
	w.nsA = w.tap(w.tapA, "a", "198.18.0.1")
	w.nsB = w.tap(w.tapB, "b", "198.18.0.2")
	macA, macB := w.mac(w.nsA, w.tapA), w.mac(w.nsB, w.tapB)
	sh(t, fmt.Sprintf("ip -n %s neigh replace 198.18.0.2 lladdr %s dev %s nud permanent && "+
		"ip -n %s neigh replace 198.18.0.1 lladdr %s dev %s nud permanent",
		w.nsA, macB, w.tapA, w.nsB, macA, w.tapB))
	return w
}

// tap attaches a TAP, moves it into a new namespace with IPv6 off (no
// router or neighbour solicitations of its own) and gives it addr.
func (w *imWorld) tap(name, nsName, addr string) string {
	t := w.e.t
	t.Helper()
	w.e.link(name)
	mustCtl(t, w.net, "tap "+name)
	ns := w.e.netns(nsName)
	sh(t, fmt.Sprintf("ip link set %s netns %s && ip netns exec %s sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 && "+
		"ip -n %s addr add %s/24 dev %s && ip -n %s link set %s up", name, ns, ns, name, ns, addr, name, ns, name))
	return ns
}

// rxB is RXPKTS of B's port.
func (w *imWorld) rxB() int {
	n, _ := strconv.Atoi(wantAttachRow(w.e.t, w.net, "tap", w.tapB)[5])
	return n
}

func (w *imWorld) mac(ns, name string) string {
	return strings.TrimSpace(sh(w.e.t, inNS(ns, "cat /sys/class/net/"+name+"/address")))
}

var pingReply = regexp.MustCompile(`icmp_seq=(\d+) .*time=([0-9.]+) ms( \(DUP!\))?`)

// pings sends count pings from A to B, interval apart, and returns the
// sequence numbers answered (duplicates included, in order) and the
// round-trip times in ms.
func (w *imWorld) pings(count int, interval string) (seqs []int, rtts []float64, dups int) {
	t := w.e.t
	t.Helper()
	out, _ := shAs(t, nil, time.Duration(count)*time.Second+30*time.Second,
		inNS(w.nsA, fmt.Sprintf("ping -n -c %d -i %s -W 2 198.18.0.2", count, interval)))
	for _, m := range pingReply.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(m[1])
		rtt, _ := strconv.ParseFloat(m[2], 64)
		seqs = append(seqs, seq)
		rtts = append(rtts, rtt)
		if m[3] != "" {
			dups++
		}
	}
	return seqs, rtts, dups
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return -1
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// With delay 50ms on B's port, the median ping RTT rises by 50 ms ± 5;
// with dup 100% every echo request reaches B twice (ping's DUP! lines);
// off restores the plain path; stats count what the impairment did.
func TestImpairDelayDupOff(t *testing.T) {
	w := newImWorld(t)
	ping(t, w.nsA, "198.18.0.2")
	_, base, _ := w.pings(20, "0.05")
	if len(base) < 18 {
		t.Fatalf("only %d of 20 pings answered without impairment", len(base))
	}
	mustCtl(t, w.net, "impair "+w.tapB+" delay 50ms")
	if !hasLine(ctlLines(t, w.net), "impair "+w.tapB+" delay 50ms") {
		t.Errorf("ctl lacks the impair line:\n%s", readFile(t, filepath.Join(w.net, "ctl")))
	}
	_, slow, _ := w.pings(20, "0.1")
	t.Logf("median RTT %.2f ms without, %.2f ms with delay 50ms", median(base), median(slow))
	if rise := median(slow) - median(base); len(slow) < 18 || rise < 45 || rise > 55 {
		t.Errorf("delay 50ms: median RTT %.2f ms against %.2f ms without (+%.2f), want +50 ± 5 (%d answers)",
			median(slow), median(base), rise, len(slow))
	}

	mustCtl(t, w.net, "impair "+w.tapB+" dup 100%")
	rx := w.rxB()
	seqs, _, dups := w.pings(5, "0.2")
	// ping stops at its fifth reply, before the last duplicate.
	if dups < 4 || len(seqs) < 9 {
		t.Errorf("dup 100%%: %d replies, %d DUP!, want 10 and 5 (%v)", len(seqs), dups, seqs)
	}
	if got := w.rxB() - rx; got != 10 {
		t.Errorf("dup 100%%: B's port received %d frames for 5 pings, want 10", got)
	}
	if n, _ := strconv.Atoi(keyValue(t, filepath.Join(w.net, "stats"), "impair-dups")); n < 5 {
		t.Errorf("stats impair-dups %d, want at least 5", n)
	}

	mustCtl(t, w.net, "impair "+w.tapB+" off")
	if strings.Contains(readFile(t, filepath.Join(w.net, "ctl")), "impair") {
		t.Errorf("ctl shows impair after off:\n%s", readFile(t, filepath.Join(w.net, "ctl")))
	}
	seqs, back, dups := w.pings(20, "0.05")
	if len(seqs) != 20 || dups != 0 || median(back) > median(base)+5 {
		t.Errorf("after off: %d answers, %d DUP!, median %.2f ms (%.2f before), want the plain path",
			len(seqs), dups, median(back), median(base))
	}
}

// loss 50% seed 7 on B's port loses the same ping sequence numbers on
// two runs: the impairment's choices depend on the seed and the frames'
// order only.
func TestImpairLossSeedRepeats(t *testing.T) {
	w := newImWorld(t)
	ping(t, w.nsA, "198.18.0.2")
	var runs [2][]int
	for i := range runs {
		// Writing the line again starts the seed's sequence afresh.
		mustCtl(t, w.net, "impair "+w.tapB+" loss 50% seed 7")
		runs[i], _, _ = w.pings(40, "0.05")
	}
	t.Logf("answered on both runs: %v", runs[0])
	if !slices.Equal(runs[0], runs[1]) {
		t.Errorf("loss 50%% seed 7 answered different pings on two runs:\n%v\n%v", runs[0], runs[1])
	}
	if n := len(runs[0]); n < 8 || n > 32 {
		t.Errorf("loss 50%%: %d of 40 answered, want about half", n)
	}
	if n, _ := strconv.Atoi(keyValue(t, filepath.Join(w.net, "stats"), "impair-drops")); n < 16 {
		t.Errorf("stats impair-drops %d, want the lost pings counted", n)
	}
}

// rate 10mbit on B's port gives iperf3 TCP from A to B within 10% of
// 10 Mbit/s.
func TestImpairRateIperf(t *testing.T) {
	w := newImWorld(t, "iperf3")
	ping(t, w.nsA, "198.18.0.2")
	mustCtl(t, w.net, "impair "+w.tapB+" rate 10mbit")
	line := iperf(t, w.nsA, w.nsB, "198.18.0.2", 5)
	m := regexp.MustCompile(`([0-9.]+) ([KMG])bits/sec`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no rate in %q", line)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	v *= map[string]float64{"K": 1e-3, "M": 1, "G": 1e3}[m[2]]
	t.Logf("iperf3 through rate 10mbit: %.2f Mbit/s", v)
	if v < 9 || v > 11 {
		t.Errorf("iperf3 through rate 10mbit: %.2f Mbit/s, want 10 ± 10%% (%s)", v, line)
	}
}

// impair lines of an attachment and of all are shown by ctl and kept
// across a restart with persist on; bad lines fail with the errno the
// spec names and apply nothing.
func TestImpairCtlPersistErrors(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "imp")
	tap := e.link(e.name("imp"))
	mustCtl(t, net, "tap "+tap+"\npersist on\nimpair all delay 5ms jitter 1ms seed 3\nimpair "+tap+" loss 2.5% rate 1mbit limit 10")
	want := []string{"impair all delay 5ms jitter 1ms seed 3", "impair " + tap + " loss 2.5% rate 1mbit limit 10"}
	ctlFails(t, net, "impair nosuch"+e.Tag+" delay 1ms", unix.ENODEV)
	ctlFails(t, net, "impair all delay 5", unix.EINVAL)
	ctlFails(t, net, "impair all loss 100.001%", unix.EINVAL)
	ctlFails(t, net, "impair "+tap+" jitter 2ms delay 1ms", unix.EINVAL)
	if err := ctl(net, "impair all off\nimpair #99 off"); err == nil {
		t.Error("impair #99 of no port succeeded")
	}
	for _, l := range want {
		if !hasLine(ctlLines(t, net), l) {
			t.Errorf("ctl lacks %q after refused writes:\n%s", l, readFile(t, filepath.Join(net, "ctl")))
		}
	}
	if err := d.stop(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	d2 := startMnetAt(t, d.mp, d.state)
	net2 := d2.path("ipn", "imp")
	for _, l := range want {
		if !hasLine(ctlLines(t, net2), l) {
			t.Errorf("after a restart ctl lacks %q:\n%s", l, readFile(t, filepath.Join(net2, "ctl")))
		}
	}
	mustCtl(t, net2, "impair all off\nimpair "+tap+" off\npersist off\ndetach "+tap)
}

// impair names an attachment as detach and vlan do: in the writer's
// namespace. With a TAP of one name in two namespaces, the daemon's
// namespace names neither; each namespace's ctl names its own.
func TestImpairPortInWritersNamespace(t *testing.T) {
	e := newIfEnv(t)
	a, b := e.netns("pra"), e.netns("prb")
	d := startMnet(t)
	nw := d.mkNet(t, "impns")
	ctlPath := filepath.Join(nw, "ctl")
	x := e.name("prx")
	ctlA, ctlB := tapInBoth(t, ctlPath, a, b, x)
	ctlFails(t, nw, "impair "+x+" delay 1ms", unix.ENODEV)
	if err := writeCtlFD(t, ctlA, "impair tap:"+x+" delay 7ms\nvlan "+x+" 10"); err != nil {
		t.Fatalf("impair and vlan of a's %s from a: %v", x, err)
	}
	if !hasLine(ctlLines(t, nw), "impair "+x+" delay 7ms") {
		t.Errorf("ctl lacks a's impair line:\n%s", readFile(t, ctlPath))
	}
	// Detaching b's leaves a's impairment: it was a's port.
	if err := writeCtlFD(t, ctlB, "detach "+x); err != nil {
		t.Fatalf("detach %s from b: %v", x, err)
	}
	if !hasLine(ctlLines(t, nw), "impair "+x+" delay 7ms") || !hasLine(ctlLines(t, nw), "vlan "+x+" 10") {
		t.Errorf("detaching b's %s took a's settings:\n%s", x, readFile(t, ctlPath))
	}
	if err := writeCtlFD(t, ctlA, "detach "+x); err != nil {
		t.Fatalf("detach %s from a: %v", x, err)
	}
	if l := ctlLines(t, nw); slices.ContainsFunc(l, func(s string) bool { return strings.HasPrefix(s, "impair ") }) {
		t.Errorf("an impair line outlives its port:\n%s", strings.Join(l, "\n"))
	}
}
