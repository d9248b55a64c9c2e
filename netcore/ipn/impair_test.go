// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// TestImpairSeedDeterminism: with a seed, the k-th frame's choices are
// the same on every run; another seed gives others.
func TestImpairSeedDeterminism(t *testing.T) {
	spec := impairSpec{loss: 5000, dup: 1000, corrupt: 2500, reorder: 3000, jitter: time.Millisecond,
		delay: time.Millisecond, seeded: true, seed: 7}
	a, b := newImpairment(spec), newImpairment(spec)
	spec.seed = 8
	c := newImpairment(spec)
	same, lost := 0, 0
	for range 2000 {
		x, y, z := a.choose(), b.choose(), c.choose()
		if x != y {
			t.Fatalf("same seed, different choices: %+v, %+v", x, y)
		}
		if x == z {
			same++
		}
		if x.loss {
			lost++
		}
	}
	if same > 10 {
		t.Errorf("seeds 7 and 8 made %d identical choices of 2000", same)
	}
	if lost < 900 || lost > 1100 {
		t.Errorf("loss 50%% lost %d of 2000", lost)
	}
	// The choices do not depend on the parameters' other values: the
	// loss decisions of seed 7 are the same with and without a delay.
	d := newImpairment(impairSpec{loss: 5000, seeded: true, seed: 7})
	e := newImpairment(impairSpec{loss: 5000, dup: 100, rate: 1000, seeded: true, seed: 7})
	for range 100 {
		if d.choose().loss != e.choose().loss {
			t.Fatal("loss choices depend on other parameters")
		}
	}
}

// TestImpairScheduleOrder: delay with jitter keeps frames in order;
// reorder lets the chosen ones skip the delay.
func TestImpairScheduleOrder(t *testing.T) {
	m := newImpairment(impairSpec{delay: 10 * time.Millisecond, jitter: 9 * time.Millisecond})
	now := time.Now()
	var last time.Time
	for i := range 1000 {
		c := m.choose()
		at := m.schedule(now.Add(time.Duration(i)*100*time.Microsecond), 100, c.jitter[0], false)
		if at.Before(last) {
			t.Fatalf("frame %d leaves at %v, before the one ahead of it (%v)", i, at, last)
		}
		if d := at.Sub(now.Add(time.Duration(i) * 100 * time.Microsecond)); d < time.Millisecond || d > 19*time.Millisecond+time.Millisecond {
			t.Fatalf("frame %d waits %v, outside delay±jitter", i, d)
		}
		last = at
	}
	if at := m.schedule(now, 100, 0, true); !at.Equal(now) {
		t.Errorf("a reordered frame leaves at +%v, want at once", at.Sub(now))
	}
}

// TestImpairRateMath: the rate spaces frames by their time on the wire,
// and an idle wire saves no credit.
func TestImpairRateMath(t *testing.T) {
	if d := txTime(1250, 10_000_000); d != time.Millisecond {
		t.Errorf("1250 bytes at 10mbit: %v, want 1ms", d)
	}
	if d := txTime(1500, 1_000_000_000); d != 12*time.Microsecond {
		t.Errorf("1500 bytes at 1gbit: %v, want 12us", d)
	}
	m := newImpairment(impairSpec{rate: 10_000_000})
	now := time.Now()
	for i := 1; i <= 10; i++ {
		if at := m.schedule(now, 1250, 0, false); at.Sub(now) != time.Duration(i)*time.Millisecond {
			t.Fatalf("frame %d of a burst leaves at +%v, want +%dms", i, at.Sub(now), i)
		}
	}
	later := now.Add(time.Second)
	if at := m.schedule(later, 1250, 0, false); at.Sub(later) != time.Millisecond {
		t.Errorf("after an idle second a frame leaves at +%v, want +1ms", at.Sub(later))
	}
	// Rate then delay.
	m = newImpairment(impairSpec{rate: 10_000_000, delay: 5 * time.Millisecond})
	if at := m.schedule(now, 1250, 0, false); at.Sub(now) != 6*time.Millisecond {
		t.Errorf("rate and delay: +%v, want +6ms", at.Sub(now))
	}
}

// TestImpairHeapOrder: the scheduler releases by time, then in the order
// frames were scheduled.
func TestImpairHeapOrder(t *testing.T) {
	s := newImpairSched()
	now := time.Now()
	offsets := []int{5, 1, 3, 1, 0, 5, 2}
	for i, o := range offsets {
		s.push(&impairItem{at: now.Add(time.Duration(o) * time.Millisecond), buf: []byte{byte(i)}})
	}
	defer s.timer.close()
	due, _ := s.due(now.Add(3*time.Millisecond), nil)
	var got []byte
	for _, x := range due {
		got = append(got, x.buf[0])
	}
	if want := []byte{4, 1, 3, 6, 2}; !bytes.Equal(got, want) {
		t.Errorf("released %v, want %v", got, want)
	}
}

// impairNet is a network with two file ports, a and b, for impair tests.
func impairNet(t *testing.T) (nd *netDir, a, b netcore.Handle) {
	t.Helper()
	c := newTestCore(t, "")
	nd = mkNet(t, c, rootCred, "im", 0777)
	a = openData(t, nd, rootCred, syscall.O_RDWR)
	b = openData(t, nd, rootCred, syscall.O_RDWR)
	return nd, a, b
}

func recvWithin(t *testing.T, h netcore.Handle, d time.Duration) ([]byte, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	buf := make([]byte, 70000)
	k, err := h.Read(ctx, buf, 0, false)
	if err != nil {
		t.Fatalf("no frame within %v: %v", d, err)
	}
	return buf[:k], time.Since(start)
}

func TestImpairDelay(t *testing.T) {
	nd, a, b := impairNet(t)
	mustCtl(t, nd, "impair #2 delay 100ms\n")
	start := time.Now()
	send(t, a, []byte("slow"))
	expectEmpty(t, b, "b at once")
	got, _ := recvWithin(t, b, waitLimit)
	if d := time.Since(start); string(got) != "slow" || d < 100*time.Millisecond {
		t.Fatalf("b got %q after %v, want \"slow\" after 100ms", got, d)
	}
	// Only egress to #2: b's frames to a are not delayed.
	send(t, b, []byte("fast"))
	expectPkt(t, a, []byte("fast"), "a")
}

// TestImpairAllThenPort: with both, a frame waits in all's delay, then in
// its port's.
func TestImpairAllThenPort(t *testing.T) {
	nd, a, b := impairNet(t)
	mustCtl(t, nd, "impair all delay 40ms\nimpair #2 delay 40ms\n")
	start := time.Now()
	send(t, a, []byte("x"))
	recvWithin(t, b, waitLimit)
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("frame arrived after %v, want 80ms (all, then the port)", d)
	}
	send(t, b, []byte("y"))
	recvWithin(t, a, waitLimit)
}

func TestImpairDupLossCorrupt(t *testing.T) {
	nd, a, b := impairNet(t)
	mustCtl(t, nd, "impair #2 dup 100%\n")
	send(t, a, []byte("twice"))
	recvWithin(t, b, waitLimit)
	got, _ := recvWithin(t, b, waitLimit)
	if string(got) != "twice" {
		t.Fatalf("duplicate %q", got)
	}
	mustCtl(t, nd, "impair #2 loss 100%\n")
	send(t, a, []byte("lost"))
	time.Sleep(quiet)
	expectEmpty(t, b, "b with loss 100%")
	frame := bytes.Repeat([]byte{0xaa}, 60)
	mustCtl(t, nd, "impair #2 corrupt 100%\n")
	send(t, a, frame)
	got, _ = recvWithin(t, b, waitLimit)
	diff := 0
	for i := range frame {
		if x := got[i] ^ frame[i]; x != 0 {
			if i < ethHeaderLen || x&(x-1) != 0 {
				t.Fatalf("byte %d changed %#x: want one bit after the Ethernet header", i, x)
			}
			diff++
		}
	}
	if diff != 1 {
		t.Fatalf("%d bytes changed, want 1", diff)
	}
	// A frame of no more than the header passes as it is.
	send(t, a, frame[:ethHeaderLen])
	if got, _ = recvWithin(t, b, waitLimit); !bytes.Equal(got, frame[:ethHeaderLen]) {
		t.Fatalf("header-only frame changed: %x", got)
	}
	st := statsOf(t, nd)
	if st["impair-dups"] != 1 || st["impair-drops"] != 1 || st["impair-corrupted"] != 1 {
		t.Errorf("stats: dups %d drops %d corrupted %d, want 1 each", st["impair-dups"], st["impair-drops"], st["impair-corrupted"])
	}
}

// TestImpairLimitAndQuota: at most limit frames wait, charged to the
// sender's queued bytes until they leave.
func TestImpairLimitAndQuota(t *testing.T) {
	nd, a, b := impairNet(t)
	n := nd.n
	mustCtl(t, nd, "impair #2 delay 10s limit 3\n")
	for range 5 {
		send(t, a, make([]byte, 1000))
	}
	if got := statsOf(t, nd)["impair-drops"]; got != 2 {
		t.Errorf("impair-drops %d, want 2 (5 frames, limit 3)", got)
	}
	if used := n.fam.quota.UsedBy(0, netcore.Queued); used < 3000 {
		t.Errorf("queued bytes of uid 0: %d, want the 3 waiting frames charged", used)
	}
	// off lets the waiting frames go on at once.
	mustCtl(t, nd, "impair #2 off\n")
	for range 3 {
		recvWithin(t, b, waitLimit)
	}
	for range 3 {
		recvNow(b, 10) // nothing left; the charges go with the reads
	}
	deadline := time.Now().Add(waitLimit)
	for n.fam.quota.UsedBy(0, netcore.Queued) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queued bytes of uid 0: %d after delivery, want 0", n.fam.quota.UsedBy(0, netcore.Queued))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestImpairOffCostsNothing: once the last impairment is off and nothing
// waits, the network has no impair state and no scheduler.
func TestImpairOffCostsNothing(t *testing.T) {
	nd, a, b := impairNet(t)
	n := nd.n
	mustCtl(t, nd, "impair all delay 1ms\nimpair #1 loss 1%\n")
	n.mu.Lock()
	st := n.imp
	n.mu.Unlock()
	if st == nil {
		t.Fatal("no impair state after impair lines")
	}
	mustCtl(t, nd, "impair all off\nimpair #1 off\n")
	select {
	case <-st.sched.done:
	case <-time.After(waitLimit):
		t.Fatal("the scheduler did not end after the last impairment went off")
	}
	n.mu.Lock()
	left := n.imp
	n.mu.Unlock()
	if left != nil {
		t.Fatal("impair state left after every impairment is off")
	}
	send(t, a, []byte("plain"))
	expectPkt(t, b, []byte("plain"), "b")
	if strings.Contains(readAll(t, nd, "ctl"), "impair") {
		t.Errorf("ctl shows impair lines after off:\n%s", readAll(t, nd, "ctl"))
	}
}

// TestImpairCtl: ctl shows the lines in the form that sets them; a write
// with a line naming no port applies nothing.
func TestImpairCtl(t *testing.T) {
	nd, _, _ := impairNet(t)
	mustCtl(t, nd, "impair #2 loss 1.50% delay 1000ms seed 3\nimpair all rate 10000kbit\n")
	text := readAll(t, nd, "ctl")
	want := "impair all rate 10mbit\nimpair #2 delay 1s loss 1.5% seed 3\n"
	if !strings.Contains(text, want) {
		t.Fatalf("ctl:\n%s\nwant the lines\n%s", text, want)
	}
	err := ctl(t, nd, rootCred, "impair all off\nimpair #9 loss 1%\n")
	if !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("impair of a port that is not there: %v, want ENODEV", err)
	}
	if !strings.Contains(readAll(t, nd, "ctl"), want) {
		t.Fatal("a refused write changed the impair lines")
	}
	if err := ctl(t, nd, rootCred, "impair all loss 200%\n"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("loss 200%%: %v, want EINVAL", err)
	}
}

// TestImpairLinkAndPersist: an attachment's impairment is named by the
// attachment, applies to what the network writes to it, and is kept
// with persist on, as all's is; a file port's is not.
func TestImpairLinkAndPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	nd := mkNet(t, c, rootCred, "imp", 0777)
	name := fmt.Sprintf("m%d", memSeq.Add(1))
	memlink.Prepare(name, memlink.Options{})
	mustCtl(t, nd, "mem "+name+"\n")
	l := memlink.Far(name)
	a := openData(t, nd, rootCred, syscall.O_RDWR)
	mustCtl(t, nd, "impair "+name+" delay 60ms seed 5\nimpair all dup 100%\nimpair #"+strconv.Itoa(portID(t, a))+" loss 100%\npersist on\n")
	start := time.Now()
	send(t, a, eth(mac{2, 0, 0, 0, 0, 1}, mac{2, 0, 0, 0, 0, 2}, "to the link"))
	expectOut(t, l, nil, "the link")
	expectOut(t, l, nil, "the link's duplicate")
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("the link got the frame after %v, want 60ms", d)
	}
	c.Close()
	c2, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	node, err := ipnRoot(t, c2).Lookup(rootCred, "imp")
	if err != nil {
		t.Fatal(err)
	}
	text := readAll(t, node.(*netDir), "ctl")
	for _, want := range []string{"impair all dup 100%\n", "impair " + name + " delay 60ms seed 5\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("after a restart ctl lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "loss 100%") {
		t.Errorf("a file port's impairment was kept:\n%s", text)
	}
}

// TestImpairLosslessLoses: impairment is the wire: a lossless network
// loses what loss drops, and a frame waiting in delay does not block the
// sender.
func TestImpairLosslessLoses(t *testing.T) {
	nd, a, b := impairNet(t)
	mustCtl(t, nd, "lossless on\nqlen 1\nimpair #2 delay 50ms\n")
	for range 3 {
		ch := goWrite(context.Background(), a, []byte("w"))
		if r := waitResult(t, ch, "lossless write to a delayed port"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	// Once they left the delay, b's queue (qlen 1) took one and dropped
	// two, counted as any drop.
	time.Sleep(150 * time.Millisecond)
	deadline := time.Now().Add(waitLimit)
	for portRow(t, nd, 2)["DROPS"] != "2" {
		if time.Now().After(deadline) {
			t.Fatalf("b's DROPS %s, want 2 (qlen 1, three frames at once)", portRow(t, nd, 2)["DROPS"])
		}
		time.Sleep(time.Millisecond)
	}
	if d := statsOf(t, nd)["drops"]; d != 2 {
		t.Errorf("stats drops %d, want 2", d)
	}
	recvWithin(t, b, waitLimit)
	mustCtl(t, nd, "impair #2 loss 100%\n")
	send(t, a, []byte("gone"))
	time.Sleep(100 * time.Millisecond)
	for {
		got, err := recvNow(b, 100)
		if err != nil {
			break
		}
		if string(got) == "gone" {
			t.Fatal("loss 100% on a lossless network delivered the frame")
		}
	}
}

// TestImpairPanicContained: a panic while the scheduler releases frames
// costs those frames (counted in panics), not the scheduler.
func TestImpairPanicContained(t *testing.T) {
	netcore.SetTestHooks(true)
	t.Cleanup(func() { netcore.SetTestHooks(false) })
	nd, a, b := impairNet(t)
	mustCtl(t, nd, "impair #2 delay 1ms\n")
	send(t, a, []byte("MNET-TEST-PANIC-IMPAIR"))
	deadline := time.Now().Add(waitLimit)
	for statsOf(t, nd)["panics"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("panics %d, want 1", statsOf(t, nd)["panics"])
		}
		time.Sleep(time.Millisecond)
	}
	send(t, a, []byte("after"))
	if got, _ := recvWithin(t, b, waitLimit); string(got) != "after" {
		t.Fatalf("after the panic b got %q", got)
	}
	if used := nd.n.fam.quota.UsedBy(0, netcore.Queued); used != 0 {
		t.Errorf("queued bytes %d after the panic, want the lost frame's charge released", used)
	}
}

// TestImpairSeedThroughNetwork: the same frames through loss 50% seed 7
// lose the same ones each time the line is written; seed 8 others.
func TestImpairSeedThroughNetwork(t *testing.T) {
	nd, a, b := impairNet(t)
	run := func(line string) string {
		mustCtl(t, nd, line)
		for i := range 64 {
			send(t, a, []byte{byte(i)})
		}
		mustCtl(t, nd, "impair #2 off\n") // what waits goes on
		waitNoImpair(t, nd.n)
		var got []byte
		for {
			f, err := recvNow(b, 10)
			if err != nil {
				break
			}
			got = append(got, f[0])
		}
		return fmt.Sprint(got)
	}
	first := run("impair #2 loss 50% seed 7\n")
	if again := run("impair #2 loss 50% seed 7\n"); again != first {
		t.Fatalf("seed 7 passed %s, then %s", first, again)
	}
	if other := run("impair #2 loss 50% seed 8\n"); other == first {
		t.Fatalf("seeds 7 and 8 passed the same frames: %s", first)
	}
	if n := len(strings.Fields(first)); n < 16 || n > 48 {
		t.Errorf("loss 50%% passed %d of 64: %s", n, first)
	}
}

// waitNoImpair waits until n's scheduler has passed on everything and
// ended.
func waitNoImpair(t *testing.T, n *Network) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		n.mu.Lock()
		st := n.imp
		n.mu.Unlock()
		if st == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the impair scheduler did not end")
		}
		time.Sleep(time.Millisecond)
	}
}

// impair takes every PORT vlan takes, and ctl shows it in that form: an
// attachment by KIND:NAME, a service's client by SERVICE:N. A service
// port number no client has is ENODEV: an impairment is the wire to a
// port there.
func TestImpairPortRefs(t *testing.T) {
	nd, s := servedNet(t, rootCred, "imref", 0700)
	l := attachMem(t, nd, memlink.Options{})
	name := memlinkNameOf(t, nd, l)
	if err := ctl(t, nd, rootCred, "impair memsvc:5 delay 1ms\n"); !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("impair of a port number no client has: %v, want ENODEV", err)
	}
	leave, err := s.net.Join(memLink(t, "imref-5"), link.Member{Name: "five", Recv: true, Send: true, Number: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	mustCtl(t, nd, "impair memsvc:5 delay 1ms\nimpair mem:"+name+" loss 1%\n")
	text := readAll(t, nd, "ctl")
	for _, want := range []string{"impair " + name + " loss 1%\n", "impair memsvc:5 delay 1ms\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("ctl lacks %q:\n%s", want, text)
		}
	}
	mustCtl(t, nd, "impair memsvc:5 off\nimpair "+name+" off\n")
	if text := readAll(t, nd, "ctl"); strings.Contains(text, "\nimpair ") {
		t.Errorf("impair lines left:\n%s", text)
	}
}

// TestImpairLinkFramesUnprivileged: a frame from a link (uid 0) waiting
// in an impairment is charged to the receiving file port's opener, or
// between links to the network's owner, and never as privileged (which
// would skip the per-uid limit and open root's reserve).
func TestImpairLinkFramesUnprivileged(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, ownerCred, "imu", 0777)
	n := nd.n
	names := [2]string{fmt.Sprintf("m%d", memSeq.Add(1)), fmt.Sprintf("m%d", memSeq.Add(1))}
	for _, name := range names {
		memlink.Prepare(name, memlink.Options{})
		mustCtl(t, nd, "mem "+name+"\n")
	}
	reader := &netcore.Cred{Uid: 2000, Gid: 2000, Pid: 43, CapsKnown: true, GroupsKnown: true}
	b := openData(t, nd, reader, syscall.O_RDONLY)
	mustCtl(t, nd, "impair #"+strconv.Itoa(portID(t, b))+" delay 10s\nimpair "+names[1]+" delay 10s\n")
	if !memlink.Far(names[0]).InjectFrame(eth(mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac{2, 0, 0, 0, 0, 1}, strings.Repeat("x", 1000))) {
		t.Fatal("inject refused")
	}
	q := n.fam.quota
	deadline := time.Now().Add(waitLimit)
	for q.UsedBy(2000, netcore.Queued) == 0 || q.UsedBy(1000, netcore.Queued) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queued bytes: reader %d, owner %d, uid 0 %d; want the reader's copy charged to it, the link's to the owner",
				q.UsedBy(2000, netcore.Queued), q.UsedBy(1000, netcore.Queued), q.UsedBy(0, netcore.Queued))
		}
		time.Sleep(time.Millisecond)
	}
	if used := q.UsedBy(0, netcore.Queued); used != 0 {
		t.Errorf("queued bytes of uid 0: %d, want none charged to root", used)
	}
	n.mu.Lock()
	s := n.imp.sched
	s.mu.Lock()
	for _, x := range s.items {
		if x.ch.payer.Privileged() {
			t.Errorf("a frame for port %d waits charged to a privileged payer (uid %d)", x.to.id, x.ch.payer.Uid())
		}
	}
	s.mu.Unlock()
	n.mu.Unlock()
}

// TestImpairPortLeaveFlushes: the frames waiting for a port that leaves,
// in its impairment or in all's, are dropped at once: counted, their
// charges given back.
func TestImpairPortLeaveFlushes(t *testing.T) {
	nd, a, b := impairNet(t)
	n := nd.n
	c := openData(t, nd, rootCred, syscall.O_RDWR)
	mustCtl(t, nd, "impair #2 delay 50s\nimpair all delay 50s\n")
	for range 3 {
		send(t, a, make([]byte, 1000))
	}
	// Each frame waits in all's delay twice: for b, and for c.
	q := n.fam.quota
	if used := q.UsedBy(0, netcore.Queued); used < 6000 {
		t.Fatalf("queued bytes %d, want 6 waiting frames charged", used)
	}
	b.Close()
	if got := statsOf(t, nd)["impair-drops"]; got != 3 {
		t.Errorf("impair-drops %d after b left, want its 3 frames", got)
	}
	c.Close()
	if got := statsOf(t, nd)["impair-drops"]; got != 6 {
		t.Errorf("impair-drops %d after c left, want 6", got)
	}
	deadline := time.Now().Add(waitLimit)
	for q.UsedBy(0, netcore.Queued) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queued bytes %d after the ports left, want 0", q.UsedBy(0, netcore.Queued))
		}
		time.Sleep(time.Millisecond)
	}
	n.mu.Lock()
	waiting := n.imp.all.waiting
	n.mu.Unlock()
	if waiting != 0 {
		t.Errorf("all's waiting count %d, want 0", waiting)
	}
}

// TestImpairRateBacklogBound: a frame that would wait more than
// MaxImpairBacklog for its turn on the rate is dropped and counted.
func TestImpairRateBacklogBound(t *testing.T) {
	m := newImpairment(impairSpec{rate: 8000}) // 1000 bytes a second
	now := time.Now()
	admitted := 0
	for range 100 {
		if m.backlogged(now, 1000) {
			continue
		}
		m.schedule(now, 1000, 0, false)
		admitted++
	}
	if want := int(MaxImpairBacklog / time.Second); admitted != want {
		t.Errorf("admitted %d frames of a second each, want %d", admitted, want)
	}
	nd, a, _ := impairNet(t)
	mustCtl(t, nd, "impair #2 rate 8kbit limit 65536\n")
	for range 100 {
		send(t, a, make([]byte, 1000))
	}
	drops := statsOf(t, nd)["impair-drops"]
	if drops < 35 || drops > 41 {
		t.Errorf("impair-drops %d of 100 frames at 1000 bytes/s, want the ~40 past a minute", drops)
	}
	mustCtl(t, nd, "impair #2 rate 1bit\n")
	send(t, a, make([]byte, 100)) // 800 s on the wire
	if got := statsOf(t, nd)["impair-drops"]; got != drops+1 {
		t.Errorf("a frame of 800 s at rate 1bit: impair-drops %d, want %d", got, drops+1)
	}
}

// TestImpairPanicSettlesCharges: a panic while the scheduler passes
// frames on gives back, once, the charges of what it held: releases
// already collected still run, and a frame passed on before the panic
// is not given back again.
func TestImpairPanicSettlesCharges(t *testing.T) {
	netcore.SetTestHooks(true)
	t.Cleanup(func() { netcore.SetTestHooks(false) })
	nd, a, b := impairNet(t)
	n := nd.n
	q := n.fam.quota
	waitUsed := func(what string) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for q.UsedBy(0, netcore.Queued) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: queued bytes %d, want 0", what, q.UsedBy(0, netcore.Queued))
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitPanics := func(want int) {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for statsOf(t, nd)["panics"] != want {
			if time.Now().After(deadline) {
				t.Fatalf("panics %d, want %d", statsOf(t, nd)["panics"], want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Released together: the first queues at b, the second finds b's
	// queue full (its release collected), the third panics.
	mustCtl(t, nd, "qlen 1\nimpair #2 delay 50s\n")
	send(t, a, bytes.Repeat([]byte{1}, 1000))
	send(t, a, bytes.Repeat([]byte{2}, 1000))
	send(t, a, []byte("MNET-TEST-PANIC-IMPAIR"))
	mustCtl(t, nd, "impair #2 off\n")
	waitPanics(1)
	if got, _ := recvWithin(t, b, waitLimit); got[0] != 1 {
		t.Fatalf("b got %x, want the first frame", got[:1])
	}
	waitUsed("after a panic with a full queue's release collected")
	// A panic once the frame is queued at b: the queue holds its charge.
	mustCtl(t, nd, "impair #2 delay 1ms\n")
	send(t, a, []byte("MNET-TEST-PANIC-RELEASED"))
	waitPanics(2)
	if got, _ := recvWithin(t, b, waitLimit); string(got) != "MNET-TEST-PANIC-RELEASED" {
		t.Fatalf("b got %q, want the frame passed on before the panic", got)
	}
	waitUsed("after a panic with the frame queued")
	if used := q.UsedBy(0, netcore.Queued); used != 0 {
		t.Fatalf("queued bytes %d once b read the frame, want 0 (not given back twice)", used)
	}
}

// ctlOrderExt is an extension instance that shows one item line, as the
// userspace host shows its addresses.
type ctlOrderExt struct{}

func (ctlOrderExt) Parse(*netcore.Cred, string, string) (func() error, error) { return nil, nil }
func (ctlOrderExt) CtlLines() (settings, items []string) {
	return nil, []string{"addr 198.18.0.1/24"}
}
func (ctlOrderExt) Entries() []netcore.DirEntry   { return nil }
func (ctlOrderExt) Busy() bool                    { return false }
func (ctlOrderExt) Save() json.RawMessage         { return nil }
func (ctlOrderExt) Restore(json.RawMessage) error { return nil }
func (ctlOrderExt) Close()                        {}

// TestImpairCtlOrder: reading ctl shows the attachments and addresses
// first, then the settings of ports (vlan, trunk, impair).
func TestImpairCtlOrder(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "imo", 0777)
	n := nd.n
	n.mu.Lock()
	n.exts = append(n.exts, &extension{inst: ctlOrderExt{}, ext: &link.Extension{Name: "ctlorder"}})
	n.mu.Unlock()
	name := fmt.Sprintf("m%d", memSeq.Add(1))
	memlink.Prepare(name, memlink.Options{})
	mustCtl(t, nd, "mem "+name+"\nvlan "+name+" 10\nimpair "+name+" delay 1ms\n")
	text := readAll(t, nd, "ctl")
	var order []string
	for _, l := range strings.Split(text, "\n") {
		if w, _, _ := strings.Cut(l, " "); w == "mem" || w == "addr" || w == "vlan" || w == "impair" {
			order = append(order, w)
		}
	}
	if got, want := strings.Join(order, " "), "mem addr vlan impair"; got != want {
		t.Errorf("ctl line order %q, want %q:\n%s", got, want, text)
	}
}

// A #N naming an attachment that an earlier line of the same write
// detaches fails the whole write: nothing of it is applied.
func TestImpairPortRefDetachedEarlier(t *testing.T) {
	nd, _ := servedNet(t, rootCred, "imrefgone", 0700)
	l := attachMem(t, nd, memlink.Options{})
	name := memlinkNameOf(t, nd, l)
	id := ""
	for _, row := range strings.Split(readAll(t, nd, "ports"), "\n") {
		if f := strings.Fields(row); len(f) > 10 && f[10] == name {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatalf("no port row for %s:\n%s", name, readAll(t, nd, "ports"))
	}
	for _, word := range []string{"impair #" + id + " delay 1ms", "vlan #" + id + " 10"} {
		err := ctl(t, nd, rootCred, "detach "+name+"\n"+word+"\n")
		if !errors.Is(err, syscall.ENODEV) {
			t.Fatalf("detach, then %q: %v, want ENODEV", word, err)
		}
		if !strings.Contains(readAll(t, nd, "ports"), " "+name) {
			t.Fatalf("%q: the detach before it was applied", word)
		}
	}
}
