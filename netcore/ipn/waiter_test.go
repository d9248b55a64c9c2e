// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// These tests drive the network's link waiter (waiter.go) with in-memory
// links whose readiness an eventfd reports (memlink.Options.FD), as a
// TAP's descriptor does.

// waitedQueues is how many link queues nd's waiter watches.
func waitedQueues(nd *netDir) int {
	w := nd.n.linkWaiter.Load()
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queues)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// A request into an idle link and the reply its far end queues during the
// write cross the network, both watched by the waiter.
func TestWaiterServesRequestAndReply(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "wr", 0700)
	a := attachMem(t, nd, memlink.Options{FD: true})
	reply := plain(eth(mac{2, 0, 0, 0, 0, 1}, mac{2, 0, 0, 0, 0, 2}, "reply"))
	b := attachMem(t, nd, memlink.Options{FD: true, Reply: func([]byte) []byte { return reply }})
	waitFor(t, "the waiter never watches both links", func() bool { return waitedQueues(nd) == 2 })
	for i := range 20 {
		request := plain(eth(mac{2, 0, 0, 0, 0, 2}, mac{2, 0, 0, 0, 0, 1}, fmt.Sprintf("request %d", i)))
		if !a.Inject(request) {
			t.Fatal("inject refused")
		}
		expectOut(t, b, request, "the request")
		expectOut(t, a, reply, "the reply")
		time.Sleep(2 * time.Millisecond) // idle again: the waiter's
	}
	if n := waitedQueues(nd); n != 2 {
		t.Errorf("the waiter watches %d queues after the exchange, want 2", n)
	}
}

// A stream is handed from the waiter to the link's pump and back without
// losing or reordering a frame.
func TestWaiterStreamKeepsOrder(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "ws", 0700)
	a := attachMem(t, nd, memlink.Options{FD: true, Queue: 8192})
	b := attachMem(t, nd, memlink.Options{FD: true, Queue: 8192})
	waitFor(t, "the waiter never watches both links", func() bool { return waitedQueues(nd) == 2 })
	const n = 5000
	for i := range n {
		b.Inject(plain(eth(mac{2, 0, 0, 0, 0, 1}, mac{2, 0, 0, 0, 0, 2}, fmt.Sprintf("%06d", i))))
		if i%100 == 99 {
			time.Sleep(time.Millisecond) // idle now and then: the waiter takes over again
		}
	}
	for i := range n {
		got := expectOut(t, a, nil, "b's frame")
		if want := fmt.Sprintf("%06d", i); !bytes.HasSuffix(got, []byte(want)) {
			t.Fatalf("frame %d from b arrived as %q: out of order", i, got[len(got)-6:])
		}
	}
}

// A watched link that vanishes is detached, and one detached by ctl
// leaves the waiter's set.
func TestWaiterDetach(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "wd", 0700)
	a := attachMem(t, nd, memlink.Options{FD: true})
	b := attachMem(t, nd, memlink.Options{FD: true})
	waitFor(t, "the waiter never watches both links", func() bool { return waitedQueues(nd) == 2 })
	a.Vanish()
	waitFor(t, "a vanished link stays attached", func() bool {
		select {
		case <-a.Closed():
			return true
		default:
			return false
		}
	})
	waitFor(t, "a vanished link stays in the waiter's set", func() bool { return waitedQueues(nd) == 1 })
	mustCtl(t, nd, "detach mem "+fdLinkName(t, nd, b)+"\n")
	if n := waitedQueues(nd); n != 0 {
		t.Errorf("the waiter watches %d queues after detach, want 0", n)
	}
}

// In a lossless network the waiter hands every queue to its pump (which
// may wait for room); frames still cross.
func TestWaiterLossless(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "wl", 0700)
	mustCtl(t, nd, "lossless on\n")
	a := attachMem(t, nd, memlink.Options{FD: true})
	b := attachMem(t, nd, memlink.Options{FD: true})
	waitFor(t, "the waiter never watches both links", func() bool { return waitedQueues(nd) == 2 })
	for i := range 10 {
		f := plain(eth(mac{2, 0, 0, 0, 0, 2}, mac{2, 0, 0, 0, 0, 1}, fmt.Sprintf("frame %d", i)))
		a.Inject(f)
		expectOut(t, b, f, "a's frame")
	}
}

// fdLinkName finds the port name of the FD link whose far end is l.
func fdLinkName(t *testing.T, nd *netDir, l *memlink.Link) string {
	t.Helper()
	nd.n.mu.Lock()
	defer nd.n.mu.Unlock()
	for _, p := range nd.n.portList {
		if fl, ok := p.link.(interface{ EventFD() int }); ok && fl.EventFD() == l.EventFD() {
			return p.name
		}
	}
	t.Fatal("far end not attached")
	return ""
}
