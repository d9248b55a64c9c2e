// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

func TestHubDeliversToEveryOtherReceiverOnce(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "hub", 0777)
	a := openData(t, nd, rootCred, syscall.O_RDWR)
	b := openData(t, nd, rootCred, syscall.O_RDWR)
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	w := openData(t, nd, rootCred, syscall.O_WRONLY)

	send(t, a, []byte("from-a"))
	expectPkt(t, b, []byte("from-a"), "b")
	expectEmpty(t, b, "b after one packet")
	expectPkt(t, r, []byte("from-a"), "r")
	expectEmpty(t, r, "r after one packet")
	expectEmpty(t, a, "sender a (no echo)")
	if _, err := recvNow(w, 100); !errors.Is(err, syscall.EBADF) {
		t.Errorf("read on write-only port: %v, want EBADF", err)
	}

	send(t, w, []byte("from-w"))
	expectPkt(t, a, []byte("from-w"), "a")
	expectPkt(t, b, []byte("from-w"), "b")
	expectPkt(t, r, []byte("from-w"), "r")
	expectEmpty(t, a, "a")
	expectEmpty(t, b, "b")
	expectEmpty(t, r, "r")

	if _, err := r.Write(context.Background(), []byte("x"), 0, false); !errors.Is(err, syscall.EBADF) {
		t.Errorf("write on read-only port: %v, want EBADF", err)
	}

	// The write-only port got nothing: its RX counters stay zero and the
	// network delivered 2+3 copies.
	row := portRow(t, nd, portID(t, w))
	if row["RXPKTS"] != "0" || row["RXBYTES"] != "0" || row["MODE"] != "w" {
		t.Errorf("write-only port row %v, want MODE w, RXPKTS 0, RXBYTES 0", row)
	}
	if row["TXPKTS"] != "1" || row["TXBYTES"] != "6" {
		t.Errorf("write-only port row %v, want TXPKTS 1 TXBYTES 6", row)
	}
	st := statsOf(t, nd)
	if st["packets"] != 2 || st["delivered"] != 5 || st["bytes"] != 12 || st["drops"] != 0 || st["ports"] != 4 {
		t.Errorf("stats %v, want ports 4 packets 2 bytes 12 delivered 5 drops 0", st)
	}
}

func TestZeroLengthWriteSendsNothing(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "zero", 0777)
	a := openData(t, nd, rootCred, syscall.O_RDWR)
	b := openData(t, nd, rootCred, syscall.O_RDWR)
	n, err := a.Write(context.Background(), nil, 0, false)
	if n != 0 || err != nil {
		t.Fatalf("zero-length write = %d, %v; want 0, nil", n, err)
	}
	expectEmpty(t, b, "b after zero-length write")
	if st := statsOf(t, nd); st["packets"] != 0 || st["delivered"] != 0 {
		t.Errorf("stats after zero-length write: %v", st)
	}
}

func TestPacketBoundariesAndTruncation(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "dgram", 0777)
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)
	send(t, a, []byte("first"))
	send(t, a, []byte("second-packet"))
	send(t, a, []byte("third"))

	// One read returns exactly one packet even if the buffer could hold more.
	expectPkt(t, b, []byte("first"), "b")
	// A short buffer truncates; the rest of that packet is gone.
	buf := make([]byte, 3)
	n, err := b.Read(context.Background(), buf, 0, true)
	if err != nil || string(buf[:n]) != "sec" {
		t.Fatalf("short read = %q, %v; want \"sec\"", buf[:n], err)
	}
	expectPkt(t, b, []byte("third"), "b after truncated read")
	expectEmpty(t, b, "b")
}

func TestMTU(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "mtu", 0777)
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)

	send(t, a, bytes.Repeat([]byte{1}, DefaultMTU))
	got, err := recvNow(b, DefaultMTU+10)
	if err != nil || len(got) != DefaultMTU {
		t.Fatalf("mtu-sized packet: read %d bytes, %v", len(got), err)
	}
	if _, err := a.Write(context.Background(), make([]byte, DefaultMTU+1), 0, false); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("write of mtu+1 bytes: %v, want EMSGSIZE", err)
	}

	mustCtl(t, nd, "mtu 1500\n")
	if kv := keyValues(readAll(t, nd, "ctl")); kv["mtu"] != "1500" {
		t.Fatalf("ctl shows mtu %q after \"mtu 1500\"", kv["mtu"])
	}
	send(t, a, make([]byte, 1500))
	if _, err := a.Write(context.Background(), make([]byte, 1501), 0, false); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("write of 1501 bytes with mtu 1500: %v, want EMSGSIZE", err)
	}
	got, err = recvNow(b, 2000)
	if err != nil || len(got) != 1500 {
		t.Fatalf("1500-byte packet: read %d, %v", len(got), err)
	}
	expectEmpty(t, b, "b: oversized packets must not be sent")
	st := statsOf(t, nd)
	if st["packets"] != 2 || st["bytes"] != DefaultMTU+1500 || st["delivered"] != 2 {
		t.Errorf("stats %v: oversized packets must not be counted", st)
	}
	if row := portRow(t, nd, portID(t, a)); row["TXPKTS"] != "2" {
		t.Errorf("sender row %v: TXPKTS want 2", row)
	}
}

func TestQueueDropsWhenFull(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "q", 0777)
	mustCtl(t, nd, "qlen 3\n")
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	idle := openData(t, nd, rootCred, syscall.O_RDONLY)
	busy := openData(t, nd, rootCred, syscall.O_RDONLY)
	for i := range 5 {
		send(t, a, fmt.Appendf(nil, "p%d", i)) // never blocks with lossless off
		expectPkt(t, busy, fmt.Appendf(nil, "p%d", i), "busy port, read as it goes")
	}
	for i := range 3 {
		expectPkt(t, idle, fmt.Appendf(nil, "p%d", i), "idle port keeps the first qlen packets")
	}
	expectEmpty(t, idle, "idle port: packets beyond qlen are dropped")
	expectEmpty(t, busy, "busy")

	row := portRow(t, nd, portID(t, idle))
	if row["DROPS"] != "2" || row["RXPKTS"] != "3" {
		t.Errorf("idle port row %v, want DROPS 2 RXPKTS 3", row)
	}
	if row := portRow(t, nd, portID(t, busy)); row["DROPS"] != "0" {
		t.Errorf("busy port row %v, want DROPS 0", row)
	}
	st := statsOf(t, nd)
	if st["drops"] != 2 || st["packets"] != 5 || st["delivered"] != 8 {
		t.Errorf("stats %v, want packets 5 delivered 8 (3+5) drops 2", st)
	}
}

func TestNonblockReadEmptyIsEAGAIN(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "nb", 0777)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)
	n, err := b.Read(context.Background(), make([]byte, 10), 0, true)
	if n != 0 || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("nonblocking read on empty queue = %d, %v; want EAGAIN", n, err)
	}
}

func TestBlockedReadInterruptedLosesNothing(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "intr", 0777)
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)

	ctx, cancel := context.WithCancel(context.Background())
	ch := goRead(ctx, b, 100)
	expectBlocked(t, ch, "read on empty queue")
	cancel()
	r := waitResult(t, ch, "interrupted read")
	if r.n != 0 || !errors.Is(r.err, syscall.EINTR) {
		t.Fatalf("interrupted read = %d, %v; want 0, EINTR", r.n, r.err)
	}

	// A packet sent afterwards is read by the next (blocking) read.
	send(t, a, []byte("after"))
	r = waitResult(t, goRead(context.Background(), b, 100), "read after interrupt")
	if r.err != nil || string(r.buf) != "after" {
		t.Fatalf("read after interrupt = %q, %v", r.buf, r.err)
	}

	// A blocked read wakes for a packet sent while it waits.
	ch = goRead(context.Background(), b, 100)
	expectBlocked(t, ch, "second read")
	send(t, a, []byte("wake"))
	r = waitResult(t, ch, "blocked read")
	if r.err != nil || string(r.buf) != "wake" {
		t.Fatalf("blocked read = %q, %v", r.buf, r.err)
	}
}

func TestLossless(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "ll", 0777)
	mustCtl(t, nd, "qlen 1\nlossless on\n")
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)

	send(t, a, []byte("p1")) // fills b's queue
	// The deadline only keeps a broken (blocking) nonblocking send from
	// hanging the test; it would show as EINTR.
	tctx, tcancel := context.WithTimeout(context.Background(), waitLimit)
	defer tcancel()
	if _, err := a.Write(tctx, []byte("p2"), 0, true); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("nonblocking send to a full lossless queue: %v, want EAGAIN at once", err)
	}
	w := goWrite(context.Background(), a, []byte("p2"))
	expectBlocked(t, w, "lossless send to a full queue")

	expectPkt(t, b, []byte("p1"), "b") // makes room
	if r := waitResult(t, w, "lossless sender after the receiver read"); r.err != nil || r.n != 2 {
		t.Fatalf("unblocked send = %d, %v", r.n, r.err)
	}

	// b's queue is full again with p2; a third send blocks and is
	// interrupted: nothing is delivered for it.
	ctx, cancel := context.WithCancel(context.Background())
	w = goWrite(ctx, a, []byte("p3"))
	expectBlocked(t, w, "third lossless send")
	cancel()
	if r := waitResult(t, w, "interrupted lossless send"); !errors.Is(r.err, syscall.EINTR) {
		t.Fatalf("interrupted lossless send = %d, %v; want EINTR", r.n, r.err)
	}
	expectPkt(t, b, []byte("p2"), "b")
	expectEmpty(t, b, "b: interrupted send must deliver nothing, nothing twice")

	// Retrying the interrupted packet delivers it exactly once.
	send(t, a, []byte("p3"))
	expectPkt(t, b, []byte("p3"), "b")
	expectEmpty(t, b, "b")

	st := statsOf(t, nd)
	if st["packets"] != 3 || st["delivered"] != 3 || st["drops"] != 0 {
		t.Errorf("stats %v, want packets 3 delivered 3 drops 0", st)
	}
}

func TestLosslessSenderUnblocksWhenReceiverLeaves(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "ll2", 0777)
	mustCtl(t, nd, "qlen 1\nlossless on\n")
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	f, _ := nd.Lookup(rootCred, "data")
	b, err := f.(netcore.File).Open(context.Background(), rootCred, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	send(t, a, []byte("p1"))
	w := goWrite(context.Background(), a, []byte("p2"))
	expectBlocked(t, w, "lossless send to a full queue")
	b.Close()
	if r := waitResult(t, w, "lossless sender after the receiver left"); r.err != nil {
		t.Fatalf("send after receiver left: %v", r.err)
	}
}

func TestCloseEndsBlockedRead(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	nd := mkNet(t, c, rootCred, "closing", 0777)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)
	ch := goRead(context.Background(), b, 100)
	expectBlocked(t, ch, "read before Close")
	c.Close()
	r := waitResult(t, ch, "read blocked across netcore.Core.Close")
	if r.n != 0 || r.err != nil {
		t.Fatalf("read after Close = %d, %v; want 0, nil (end of file)", r.n, r.err)
	}
	// Later reads also see end of file, not a hang.
	r = waitResult(t, goRead(context.Background(), b, 100), "read after Close")
	if r.n != 0 || r.err != nil {
		t.Fatalf("second read after Close = %d, %v; want 0, nil", r.n, r.err)
	}
}

// After the core closes, a sender learns the network is gone.
func TestWriteAfterCloseIsEPIPE(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	nd := mkNet(t, c, rootCred, "gone", 0777)
	w := openData(t, nd, rootCred, syscall.O_WRONLY)
	c.Close()
	if _, err := w.Write(context.Background(), []byte("late"), 0, false); err != syscall.EPIPE {
		t.Fatalf("write after Close: %v, want EPIPE", err)
	}
}

// The number of networks is bounded: mkdir beyond it is ENOSPC.
func TestMaxNetworks(t *testing.T) {
	c := newTestCore(t, "")
	m := ipnRoot(t, c).(netcore.Mkdirer)
	maxNetworks := int(c.Quota().Limits().Global(Networks))
	for i := range maxNetworks {
		if _, err := m.Mkdir(rootCred, fmt.Sprintf("n%d", i), 0755); err != nil {
			t.Fatalf("network %d: %v", i+1, err)
		}
	}
	if _, err := m.Mkdir(rootCred, "one-too-many", 0755); err != syscall.ENOSPC {
		t.Fatalf("network %d: %v, want ENOSPC", maxNetworks+1, err)
	}
	if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(rootCred, "n0"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Mkdir(rootCred, "one-too-many", 0755); err != nil {
		t.Fatalf("after an rmdir: %v", err)
	}
}

func TestMaxPorts(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "mp", 0777)
	mustCtl(t, nd, "maxports 2\n")
	openData(t, nd, rootCred, syscall.O_RDWR)
	openData(t, nd, rootCred, syscall.O_RDWR)
	if h, err := netFileOf(t, nd, "data").Open(context.Background(), rootCred, syscall.O_RDWR); !errors.Is(err, syscall.EBUSY) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("third open with maxports 2: %v, want EBUSY", err)
	}
}

func TestRmdir(t *testing.T) {
	c := newTestCore(t, "")
	ipn := ipnRoot(t, c)
	nd := mkNet(t, c, ownerCred, "gone", 0750)
	rm := ipn.(netcore.Rmdirer)
	h, err := netFileOf(t, nd, "data").Open(context.Background(), ownerCred, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if err := rm.Rmdir(ownerCred, "gone"); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("rmdir with an open port: %v, want EBUSY", err)
	}
	if _, err := ipn.Lookup(ownerCred, "gone"); err != nil {
		t.Fatalf("network vanished after refused rmdir: %v", err)
	}
	other := &netcore.Cred{Uid: 2000, Gid: 2000}
	h.Close()
	if err := rm.Rmdir(other, "gone"); err == nil {
		t.Fatal("rmdir by a caller without the manage right succeeded")
	}
	if err := rm.Rmdir(ownerCred, "gone"); err != nil {
		t.Fatalf("rmdir after close: %v", err)
	}
	if _, err := ipn.Lookup(ownerCred, "gone"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Lookup after rmdir: %v, want ENOENT", err)
	}
	if len(ipn.List(ownerCred)) != 0 {
		t.Fatalf("ipn lists %v after rmdir", ipn.List(ownerCred))
	}
	if err := rm.Rmdir(ownerCred, "gone"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("second rmdir: %v, want ENOENT", err)
	}
	// Opening data of the removed network through a stale node fails.
	if h, err := netFileOf(t, nd, "data").Open(context.Background(), ownerCred, syscall.O_RDWR); err == nil {
		h.Close()
		t.Fatal("open of a removed network's data succeeded")
	}
}

func TestMkdirNames(t *testing.T) {
	c := newTestCore(t, "")
	m := ipnRoot(t, c).(netcore.Mkdirer)
	for _, name := range []string{"", ".hidden", "a/b", "sp ace", string(bytes.Repeat([]byte("x"), 65))} {
		if _, err := m.Mkdir(ownerCred, name, 0777); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Mkdir(%q) = %v, want EINVAL", name, err)
		}
	}
	for _, name := range []string{"a", "A.b_c-9", string(bytes.Repeat([]byte("x"), 64))} {
		if _, err := m.Mkdir(ownerCred, name, 0777); err != nil {
			t.Errorf("Mkdir(%q) = %v", name, err)
		}
	}
	if _, err := m.Mkdir(ownerCred, "a", 0777); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("second Mkdir(a) = %v, want EEXIST", err)
	}
}

// A cancel racing with a packet's arrival never loses the packet: either
// the read returns it, or it returns EINTR and the packet stays queued.
func TestReadCancelRaceLosesNothing(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "intrace", 0777)
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)
	for i := range 300 {
		pkt := fmt.Appendf(nil, "pkt%d", i)
		ctx, cancel := context.WithCancel(context.Background())
		ch := goRead(ctx, b, 100)
		go cancel()
		send(t, a, pkt)
		r := waitResult(t, ch, "racing read")
		switch {
		case r.err == nil:
			if string(r.buf) != string(pkt) {
				t.Fatalf("round %d: read %q, want %q", i, r.buf, pkt)
			}
		case errors.Is(r.err, syscall.EINTR):
			expectPkt(t, b, pkt, fmt.Sprintf("round %d: after EINTR the packet", i))
		default:
			t.Fatalf("round %d: read error %v", i, r.err)
		}
		expectEmpty(t, b, "b")
		cancel()
	}
}

// A cancel racing with room appearing: a lossless send either delivers
// its packet once (nil) or delivers nothing (EINTR).
func TestLosslessCancelRaceDeliversOnce(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "llrace", 0777)
	mustCtl(t, nd, "qlen 1\nlossless on\n")
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)
	send(t, a, []byte("first")) // b's queue is full from here on
	prev := []byte("first")
	for i := range 300 {
		pkt := fmt.Appendf(nil, "pkt%d", i)
		ctx, cancel := context.WithCancel(context.Background())
		w := goWrite(ctx, a, pkt)
		go cancel()
		expectPkt(t, b, prev, fmt.Sprintf("round %d", i)) // makes room
		r := waitResult(t, w, "racing lossless send")
		switch {
		case r.err == nil:
			prev = pkt
		case errors.Is(r.err, syscall.EINTR):
			expectEmpty(t, b, fmt.Sprintf("round %d: interrupted send delivered", i))
			send(t, a, pkt)
			prev = pkt
		default:
			t.Fatalf("round %d: send error %v", i, r.err)
		}
		cancel()
	}
	expectPkt(t, b, prev, "last")
	expectEmpty(t, b, "b")
	if st := statsOf(t, nd); st["packets"] != 301 || st["delivered"] != 301 || st["drops"] != 0 {
		t.Errorf("stats %v, want packets = delivered = 301, drops 0", st)
	}
}
