// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"log/slog"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

const (
	pollIn  = netcore.PollIn | netcore.PollRdNorm
	pollOut = netcore.PollOut | netcore.PollWrNorm
)

// waker counts its calls; check that it is called with no network or port
// lock held by taking them.
type waker struct {
	n     atomic.Int32
	check func()
}

func (w *waker) wake() {
	if w.check != nil {
		w.check()
	}
	w.n.Add(1)
}

func pollOf(t *testing.T, h netcore.Handle) netcore.Poller {
	t.Helper()
	p, ok := h.(netcore.Poller)
	if !ok {
		t.Fatalf("%T is not a netcore.Poller", h)
	}
	return p
}

// A packet wakes an armed poll once, after the network's and the port's
// locks are released; later packets wake nobody until the next poll arms
// again.
func TestPollWakesOncePerArm(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "once", 0777)
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	w := openData(t, nd, rootCred, syscall.O_WRONLY)
	port := r.(*dataHandle).p
	wk := &waker{}
	wk.check = func() {
		// Taking each lock proves the callback runs without it held.
		port.net.mu.Lock()
		_ = port.net
		port.net.mu.Unlock()
		_ = port.q.Closed() // takes the queue's lock
	}
	if got := pollOf(t, r).Poll(pollIn|pollOut, wk.wake); got != 0 {
		t.Fatalf("idle read-only port: revents %#x, want 0", got)
	}
	send(t, w, []byte("one"))
	send(t, w, []byte("two"))
	if n := wk.n.Load(); n != 1 {
		t.Fatalf("two packets after one poll: %d wakeups, want 1", n)
	}
	if got := pollOf(t, r).Poll(pollIn, wk.wake); got != pollIn {
		t.Fatalf("queued packets: revents %#x, want POLLIN", got)
	}
	// Armed although ready: the next arrival wakes it.
	send(t, w, []byte("three"))
	if n := wk.n.Load(); n != 2 {
		t.Fatalf("a packet after a poll that found the port ready: %d wakeups, want 2", n)
	}
	// A poll without a waker (poll(2) with timeout 0) arms nothing.
	pollOf(t, r).Poll(pollIn, nil)
	send(t, w, []byte("four"))
	if n := wk.n.Load(); n != 2 {
		t.Fatalf("a packet after an unarmed poll: %d wakeups, want 2", n)
	}
}

// The end of the network wakes a poll, which then sees POLLIN|POLLHUP;
// closing the file itself wakes nobody.
func TestPollHangUp(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	nd := mkNet(t, c, rootCred, "hup", 0777)
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	closed := openData(t, nd, rootCred, syscall.O_RDONLY)
	capture := openFile(t, nd, "pcap", rootCred, syscall.O_RDONLY)
	readHandleN(t, capture, 24) // the file header
	rw, cw, xw := &waker{}, &waker{}, &waker{}
	pollOf(t, r).Poll(pollIn, rw.wake)
	pollOf(t, capture).Poll(pollIn, cw.wake)
	pollOf(t, closed).Poll(pollIn, xw.wake)
	closed.Close()
	if xw.n.Load() != 0 {
		t.Fatal("closing a polled file woke its poll")
	}
	c.Close()
	if rw.n.Load() != 1 || cw.n.Load() != 1 {
		t.Fatalf("the end of the network: data woken %d times, pcap %d; want 1 each", rw.n.Load(), cw.n.Load())
	}
	if got := pollOf(t, r).Poll(pollIn, nil); got != pollIn|netcore.PollHup {
		t.Fatalf("data after the end: revents %#x, want POLLIN|POLLHUP", got)
	}
	if got := pollOf(t, capture).Poll(pollIn, nil); got != pollIn|netcore.PollHup {
		t.Fatalf("pcap after the end: revents %#x, want POLLIN|POLLHUP", got)
	}
}

// Under lossless, a full receiver makes the writer not writable, and a read
// by that receiver wakes the writer's poll.
func TestPollLosslessPollout(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "full", 0777)
	mustCtl(t, nd, "lossless on\nqlen 2\n")
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	w := openData(t, nd, rootCred, syscall.O_WRONLY)
	if got := pollOf(t, w).Poll(pollIn|pollOut, nil); got != pollOut {
		t.Fatalf("write-only port with room: revents %#x, want POLLOUT only", got)
	}
	send(t, w, []byte("1"))
	send(t, w, []byte("2"))
	wk := &waker{}
	if got := pollOf(t, w).Poll(pollOut, wk.wake); got != 0 {
		t.Fatalf("full receiver: revents %#x, want 0", got)
	}
	if _, err := r.Read(context.Background(), make([]byte, 10), 0, true); err != nil {
		t.Fatal(err)
	}
	if wk.n.Load() != 1 {
		t.Fatalf("a read by the full receiver woke the writer %d times, want 1", wk.n.Load())
	}
	if got := pollOf(t, w).Poll(pollOut, nil); got != pollOut {
		t.Fatalf("after the read: revents %#x, want POLLOUT", got)
	}
	// Lossless off: always writable.
	mustCtl(t, nd, "lossless off\n")
	send(t, w, []byte("3"))
	if got := pollOf(t, w).Poll(pollOut, nil); got != pollOut {
		t.Fatalf("lossless off, full receiver: revents %#x, want POLLOUT", got)
	}
}

// pcap bytes left by a short read keep the file readable.
func TestPollPcapShortRead(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "cap", 0777)
	capture := openFile(t, nd, "pcap", rootCred, syscall.O_RDONLY)
	if got := pollOf(t, capture).Poll(pollIn|pollOut, nil); got != pollIn {
		t.Fatalf("pcap at open: revents %#x, want POLLIN (the header), never POLLOUT", got)
	}
	readHandleN(t, capture, 10)
	if got := pollOf(t, capture).Poll(pollIn, nil); got != pollIn {
		t.Fatalf("pcap with 14 header bytes left: revents %#x, want POLLIN", got)
	}
	readHandleN(t, capture, 14)
	if got := pollOf(t, capture).Poll(pollIn, nil); got != 0 {
		t.Fatalf("drained pcap: revents %#x, want 0", got)
	}
}

func readHandleN(t *testing.T, h netcore.Handle, n int) {
	t.Helper()
	got, err := h.Read(context.Background(), make([]byte, n), 0, true)
	if err != nil || got != n {
		t.Fatalf("read %d bytes: %d, %v", n, got, err)
	}
}
