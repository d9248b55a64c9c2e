// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"errors"
	"sync"

	"github.com/mnet-project/mnet/internal/fdpoll"
	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore/link"
)

// linkWaiter waits for the idle queues of a network's links from one
// goroutine, as vde_switch's poll loop does, and forwards what arrives on
// them itself: a ping, its reply, a request and its answer cross the
// network on the waiter's thread alone, with no wake-up of a pump on the
// way. A queue is the waiter's while its pump is parked: the pump reads
// until there is no frame, arms the queue's descriptor in the waiter's
// set (once: EPOLLONESHOT) and parks. When the descriptor reports, the
// waiter reads the queue; if it drains it, it arms it again, and the
// pump sleeps on. A queue with more than serveMax frames waiting (a
// stream), one in error, one that another goroutine is reading,
// or any queue of a lossless network (whose sends may wait for room,
// which the waiter must never do on a port's behalf) is handed back to
// its pump, which then forwards on a thread of its own, in parallel with
// the other pumps. Only links that are link.FDPollers are waited for
// here; the other pumps wait on their own.
type linkWaiter struct {
	n   *Network
	set *fdpoll.Set

	mu     sync.Mutex
	queues map[uint64]*linkQueue // by token; guarded by mu
	next   uint64                // the next token; guarded by mu
}

// waiter is the network's link waiter, started on first use; nil when
// none can be made (then pumps wait on their own).
func (n *Network) waiter() *linkWaiter {
	n.waiterOnce.Do(func() {
		set, err := fdpoll.New()
		if err != nil {
			n.fam.log.Warn("no link waiter; pumps wait on their own", "network", n.name, "err", err)
			return
		}
		w := &linkWaiter{n: n, set: set, queues: make(map[uint64]*linkQueue)}
		n.linkWaiter.Store(w)
		go w.run()
	})
	return n.linkWaiter.Load()
}

// closeWaiter stops the network's waiter, if it was started.
func (n *Network) closeWaiter() {
	n.waiterOnce.Do(func() {}) // none can start after this
	if w := n.linkWaiter.Load(); w != nil {
		w.set.Close()
	}
}

// add puts q's descriptor in the set, armed; false if it cannot be.
func (w *linkWaiter) add(q *linkQueue, fd int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	if err := w.set.Add(fd, w.next); err != nil {
		w.n.fam.log.Warn("link queue not waited for by the network; its pump waits", "network", w.n.name, "name", q.port.name, "err", err)
		return false
	}
	q.fd, q.token = fd, w.next
	w.queues[q.token] = q
	return true
}

// arm arms q's descriptor again. It is done under mu and only while q is
// in the set: remove takes it out before the link closes its descriptor,
// so that a number the kernel reuses for another file is never armed for
// q.
func (w *linkWaiter) arm(q *linkQueue) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queues[q.token] != q {
		return
	}
	if err := w.set.Arm(q.fd, q.token); err != nil {
		// The set is closed (the network is going) or the descriptor is
		// gone (the link with it): the pump, no longer waited for
		// here, finds out by reading, and waits on its own.
		delete(w.queues, q.token)
		q.kick()
	}
}

// remove takes q out of the set; called before its link is closed.
func (w *linkWaiter) remove(q *linkQueue) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queues[q.token] == q {
		delete(w.queues, q.token)
		w.set.Remove(q.fd)
	}
}

// run waits and serves the queues that report until the set is closed.
// It takes one frame at a time from each queue it serves, the queues that
// just reported first: a reply the kernel queued on one link while the
// waiter wrote the request to it is read and forwarded next, before the
// waiter goes back to the request's link to find it empty.
func (w *linkWaiter) run() {
	buf := make([]byte, vnet.HdrLen+maxLinkFrame)
	var evs []fdpoll.Event
	var active, serving []servedQueue
	for {
		var err error
		if len(active) == 0 {
			evs, err = w.set.Wait(evs[:0])
		} else {
			evs, err = w.set.Poll(evs[:0])
		}
		if errors.Is(err, fdpoll.ErrClosed) {
			return
		}
		if err != nil {
			w.n.fam.log.Error("link waiter stopped; pumps wait on their own", "network", w.n.name, "err", err)
			for _, a := range active {
				a.q.kick()
			}
			w.handBack()
			return
		}
		serving = serving[:0]
		lossless := w.n.lossless.Load()
		for _, ev := range evs {
			w.mu.Lock()
			q := w.queues[ev.Token]
			w.mu.Unlock()
			switch {
			case q == nil:
			case ev.Error || lossless:
				// The pump finds the error; in a lossless network a
				// send may wait for room, which the waiter must not
				// do on a port's behalf.
				q.kick()
			default:
				serving = append(serving, servedQueue{q: q})
			}
		}
		serving = append(serving, active...)
		active = active[:0]
		for _, a := range serving {
			switch a.q.serveOne(buf) {
			case gotFrame:
				if a.n++; a.n < serveMax {
					active = append(active, a)
				} else {
					a.q.kick() // a stream: its pump forwards it in parallel
				}
			case drained:
				w.arm(a.q)
			default:
				a.q.kick()
			}
		}
	}
}

// serveMax is how many frames in a row the waiter takes from one queue
// before it hands the queue to its pump: more is a stream, which the
// pumps forward in parallel.
const serveMax = 8

// servedQueue is a queue the waiter is reading, with the frames it took
// since the queue last reported.
type servedQueue struct {
	q *linkQueue
	n int
}

// serveResult is what serveOne found.
type serveResult int

const (
	gotFrame serveResult = iota // a frame, forwarded
	drained                     // no frame
	notMine                     // another goroutine is reading the queue
	failed                      // the link is closed or gone
)

// serveOne forwards one frame waiting on q, if there is one and no other
// goroutine is reading q. A panic is contained to the frame, as a pump's
// (pass): the waiter goes on serving.
func (q *linkQueue) serveOne(buf []byte) (res serveResult) {
	if !q.rmu.TryLock() {
		return notMine
	}
	defer q.rmu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			p := q.port
			p.net.panicked(r, "panic in a network's link waiter; frame dropped", "port", p.id, "kind", p.kindName(), "name", p.name)
			res = gotFrame
		}
	}()
	k, err := q.fp.TryRead(buf)
	switch {
	case err == nil:
		q.forward(buf[:k])
		return gotFrame
	case err == link.ErrNoFrame:
		return drained
	case errors.Is(err, link.ErrClosed) || q.Err() != nil:
	default:
		// Not left for q's pump to find: a packet socket reports an
		// error once.
		q.port.gone(err)
	}
	return failed
}

// handBack wakes every pump, which then waits on its own (the waiter is
// gone; see pumpWaited).
func (w *linkWaiter) handBack() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t, q := range w.queues {
		delete(w.queues, t)
		q.kick()
	}
}

// kick wakes q's parked pump (or makes its next park return at once).
func (q *linkQueue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pumpWaited is the pump of a queue the waiter watches while it is idle:
// it forwards frames until there is none, then arms the queue in the
// waiter and parks until the waiter hands the queue back. If the waiter
// goes (the queue was taken out of its set), the pump goes on reading on
// its own (pumpReading).
func (q *linkQueue) pumpWaited(buf []byte, w *linkWaiter) {
	for {
		err := q.pass(buf, true)
		if err == nil {
			continue
		}
		if err != link.ErrNoFrame {
			q.readFailed(err)
			return
		}
		w.mu.Lock()
		waited := w.queues[q.token] == q
		w.mu.Unlock()
		if !waited {
			if q.Err() == nil {
				q.pumpReading(buf)
			}
			return
		}
		w.arm(q)
		select {
		case <-q.wake:
		case <-q.Done():
			return
		}
	}
}
