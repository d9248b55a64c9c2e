// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/netcore"
)

var (
	macA     = mac{0x02, 0, 0, 0, 0, 0xa}
	macB     = mac{0x02, 0, 0, 0, 0, 0xb}
	macC     = mac{0x02, 0, 0, 0, 0, 0xc}
	macX     = mac{0x02, 0, 0, 0, 0, 0x99} // never seen
	macBcast = mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	macMcast = mac{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}
)

func TestSwitchPolicy(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "sw", 0777)
	mustCtl(t, nd, "policy switch\n")
	a := openData(t, nd, rootCred, syscall.O_RDWR)
	b := openData(t, nd, rootCred, syscall.O_RDWR)
	cc := openData(t, nd, rootCred, syscall.O_RDWR)
	all := map[string]netcore.Handle{"a": a, "b": b, "c": cc}
	expect := func(f []byte, to ...string) {
		t.Helper()
		got := map[string]bool{}
		for _, n := range to {
			got[n] = true
			expectPkt(t, all[n], f, n)
		}
		for n, h := range all {
			if !got[n] {
				expectEmpty(t, h, n)
			}
		}
	}

	// Unknown unicast before anything is learned: flooded.
	f := eth(macB, macA, "unknown-b")
	send(t, a, f)
	expect(f, "b", "c")
	// Broadcast: flooded (and b's address is learned).
	f = eth(macBcast, macB, "bcast")
	send(t, b, f)
	expect(f, "a", "c")
	// Multicast: flooded.
	f = eth(macMcast, macC, "mcast")
	send(t, cc, f)
	expect(f, "a", "b")
	// Known unicast: only to the learned port.
	f = eth(macA, macB, "to-a")
	send(t, b, f)
	expect(f, "a")
	f = eth(macB, macC, "to-b")
	send(t, cc, f)
	expect(f, "b")
	f = eth(macC, macA, "to-c")
	send(t, a, f)
	expect(f, "c")
	// Still unknown: flooded.
	f = eth(macX, macA, "to-x")
	send(t, a, f)
	expect(f, "b", "c")

	// Frames shorter than an Ethernet header are EINVAL and not counted.
	before := statsOf(t, nd)["packets"]
	for _, n := range []int{1, 13} {
		if _, err := a.Write(context.Background(), make([]byte, n), 0, false); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("switch: %d-byte frame: %v, want EINVAL", n, err)
		}
	}
	// The reason is ctl's last-error: a bare EINVAL says little.
	if ctlText := readAll(t, nd, "ctl"); !strings.Contains(ctlText, "last-error port ") ||
		!strings.Contains(ctlText, "a 13-byte frame refused: shorter than an Ethernet header") {
		t.Errorf("after a short frame, ctl has no last-error saying why:\n%s", ctlText)
	}
	send(t, a, make([]byte, 14)) // exactly a header is fine (dst 00:.. unknown: flood)
	if after := statsOf(t, nd)["packets"]; after != before+1 {
		t.Errorf("packets went from %d to %d; short frames must not count", before, after)
	}

	// When the learned port leaves, its address is forgotten: flood again.
	b.Close()
	delete(all, "b")
	f = eth(macB, macA, "b-left")
	send(t, a, f)
	expect(f, "c")
}

func TestHubIgnoresShortFrames(t *testing.T) {
	// Only the switch needs an Ethernet header; a hub carries any bytes.
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "hub14", 0777)
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)
	send(t, a, []byte("hi"))
	expectPkt(t, b, []byte("hi"), "b")
}

func TestFdbAging(t *testing.T) {
	var f fdb
	f.init()
	pa, pb := &Port{id: 1}, &Port{id: 2}
	t0 := time.Unix(1_000_000, 0)

	if to := f.route(pa, eth(macB, macA, ""), 1, t0); to != nil {
		t.Fatalf("unknown destination routed to port %d", to.id)
	}
	if to := f.route(pb, eth(macA, macB, ""), 1, t0); to != pa {
		t.Fatalf("learned destination routed to %v, want port 1", to)
	}
	if to := f.route(pa, eth(macB, macA, ""), 1, t0.Add(299*time.Second)); to != pb {
		t.Fatalf("entry 299 s old routed to %v, want port 2", to)
	}
	// b's address was last seen at t0; more than 300 s later it is gone.
	if to := f.route(pa, eth(macB, macA, ""), 1, t0.Add(fdbAge+time.Second)); to != nil {
		t.Fatalf("entry more than 300 s old routed to port %d, want flood", to.id)
	}
	// a's address was refreshed by its own frames: still known.
	if to := f.route(pb, eth(macA, macB, ""), 1, t0.Add(fdbAge+time.Second)); to != pa {
		t.Fatalf("refreshed entry routed to %v, want port 1", to)
	}
	// Group addresses are never learned as sources.
	f.route(pa, eth(macX, macMcast, ""), 1, t0)
	if _, ok := f.table[fdbKey{1, macMcast}]; ok {
		t.Fatal("multicast source address was learned")
	}
}

func TestFdbBounded(t *testing.T) {
	var f fdb
	f.init()
	p := &Port{id: 1}
	t0 := time.Unix(1_000_000, 0)
	src := func(i int) mac { return mac{0x02, 0, byte(i >> 16), byte(i >> 8), byte(i), 0} }
	for i := range fdbMax + 100 {
		f.route(p, eth(macBcast, src(i), ""), 1, t0)
		if len(f.table) > fdbMax {
			t.Fatalf("fdb grew to %d entries, bound is %d", len(f.table), fdbMax)
		}
	}
	if len(f.table) != fdbMax {
		t.Fatalf("fdb has %d entries after %d sources, want %d", len(f.table), fdbMax+100, fdbMax)
	}
	// A destination not learned for lack of room is flooded.
	if to := f.route(p, eth(src(fdbMax+50), macX, ""), 1, t0); to != nil {
		t.Fatal("address beyond the table bound was routed")
	}
	// Once the old entries age out there is room again.
	later := t0.Add(fdbAge + 2*time.Second)
	f.route(p, eth(macBcast, macC, ""), 1, later)
	if _, ok := f.table[fdbKey{1, macC}]; !ok {
		t.Fatal("after aging, a new source was not learned")
	}
	if len(f.table) > fdbMax {
		t.Fatalf("fdb has %d entries, bound %d", len(f.table), fdbMax)
	}
}
