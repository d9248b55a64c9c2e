// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"errors"
	"slices"
	"sync"
	"syscall"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Links (package link) join a network as ports of their kind. Each has a
// pump goroutine that reads frames from the link into the network; frames
// the network delivers to it are written by the sender (transmit), after
// the network's mutex is released.

// maxLinkFrame is the largest frame read from a link: a 64 KiB TSO
// segment with its Ethernet header and a VLAN tag.
const maxLinkFrame = 65536 + ethHeaderLen + vlanTagLen

// linkClaim records which network holds a claimed key (an interface), so
// that no two networks (nor one, twice) attach the same thing.
type linkClaim struct {
	n    *Network
	kind *link.Kind
}

// claim reserves key for n, before the link is opened.
func (f *ipnFamily) claim(n *Network, kind *link.Kind, key, line string) *ctlError {
	if key == "" {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.claims[key]; ok {
		switch {
		case kind.Busy && c.kind == kind:
			return ctlErr(syscall.EBUSY, "%s: busy, attached to network %s", line, c.n.name)
		case c.n == n:
			return ctlErr(syscall.EEXIST, "%s: already attached to this network", line)
		default:
			return ctlErr(syscall.EEXIST, "%s: in use by network %s", line, c.n.name)
		}
	}
	f.claims[key] = linkClaim{n, kind}
	return nil
}

func (f *ipnFamily) unclaim(n *Network, key string) {
	if key == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.claims[key]; ok && c.n == n {
		delete(f.claims, key)
	}
}

// attachment is one link between its ctl check and its apply.
type attachment struct {
	kind *link.Kind
	spec link.Spec
	link link.Link // open, not yet a port
	// nsID is the network namespace a link that lives in one (a
	// link.Binder) was opened in; zero for the daemon's own, or a link
	// of no namespace.
	nsID netns.ID
}

// line is the ctl line that makes the attachment.
func (a *attachment) line() string { return a.kind.Name + " " + a.spec.Args() }

// open claims what the link needs and opens it in ns: for a ctl write,
// the caller's namespace pinned when it opened ctl (nil: the daemon cannot
// see it), with c the caller; for a restored attachment, the namespace it
// was made in, with c nil. On failure nothing is held.
func (a *attachment) open(n *Network, c *netcore.Cred, ns *netns.NS) *ctlError {
	if b, ok := a.spec.(link.Binder); ok {
		if ns == nil {
			return ctlErr(syscall.EACCES, "%s: the caller's network namespace cannot be seen", a.line())
		}
		if err := b.Bind(ns); err != nil {
			return ctlErr(link.ErrnoOf(err), "%v", err)
		}
		if !ns.Self() {
			a.nsID = ns.ID()
		}
	}
	if err := n.fam.claim(n, a.kind, a.spec.Claim(), a.line()); err != nil {
		return err
	}
	n.mu.Lock()
	env := link.Env{Network: n.name, MTU: n.set.MTU, Cred: c, NS: ns, Log: n.fam.log}
	n.mu.Unlock()
	if c != nil {
		env.Payer = n.fam.quota.PayerOf(c)
	} else {
		env.Payer = n.fam.quota.Payer(0, true) // restored at start: the daemon's
	}
	l, err := a.spec.Open(env)
	if err != nil {
		n.fam.unclaim(n, a.spec.Claim())
		return ctlErr(link.ErrnoOf(err), "%v", err)
	}
	a.link = l
	return nil
}

// abort undoes open.
func (a *attachment) abort(n *Network) {
	if a.link != nil {
		a.link.Close(false)
		a.link = nil
		n.fam.unclaim(n, a.spec.Claim())
	}
}

// attachLocked adds the opened link as a port. Called with n.mu held,
// after checkLinksLocked.
func (n *Network) attachLocked(a *attachment) *Port {
	p := newPort(n, n.nextPort, a.kind, 0, 0, a.spec.Name(), true, true)
	n.nextPort++
	p.link, p.spec, p.nsID = a.link, a.spec, a.nsID
	p.caps = a.link.Caps()
	p.stop, p.cancel = context.WithCancel(context.Background())
	p.pumpDone = make(chan struct{})
	n.portList = append(n.portList, p)
	a.link = nil // the port owns it now
	return p
}

// linkKey is an attachment's identity in a network: its kind, its name
// and the namespace it was made in (zero: the daemon's), so that
// interfaces of one name in different namespaces are different
// attachments.
type linkKey struct {
	kind *link.Kind
	name string
	ns   netns.ID
}

func (p *Port) key() linkKey        { return linkKey{p.kind, p.name, p.nsID} }
func (a *attachment) key() linkKey  { return linkKey{a.kind, a.spec.Name(), a.nsID} }
func (w *waitingLink) key() linkKey { return linkKey{w.kind, w.spec.Name(), w.where.id()} }

// linkPort returns the attachment called name (of kind, if not nil) in
// the daemon's namespace or, failing that, the only one of that name; nil
// if there is none. Ports of services and extensions are not attachments.
// Called with n.mu held.
func (n *Network) linkPort(kind *link.Kind, name string) *Port {
	return n.detachPortLocked(&detachment{kind: kind, name: name, anyNS: true}, "")
}

// detachPortLocked returns the attached port d names, or nil. Called with
// n.mu held.
func (n *Network) detachPortLocked(d *detachment, line string) *Port {
	var keys []linkKey
	for _, p := range n.portList {
		if p.spec != nil {
			keys = append(keys, p.key())
		}
	}
	k, err := d.pick(keys, line)
	if err != nil {
		return nil
	}
	for _, p := range n.portList {
		if p.spec != nil && p.key() == k {
			return p
		}
	}
	return nil
}

// detachWaitingLocked is the index in n.waiting of the waiting attachment
// d names, or -1. Called with n.mu held.
func (n *Network) detachWaitingLocked(d *detachment) int {
	var keys []linkKey
	for _, w := range n.waiting {
		keys = append(keys, w.key())
	}
	k, ok := d.pickWaiting(keys)
	if !ok {
		return -1
	}
	return slices.IndexFunc(n.waiting, func(w *waitingLink) bool { return w.key() == k })
}

// detachLocked takes a link port out of the network; release finishes
// the job once n.mu is released.
func (n *Network) detachLocked(p *Port) {
	for i, q := range n.portList {
		if q == p {
			n.portList = append(n.portList[:i], n.portList[i+1:]...)
			break
		}
	}
	n.fdb.forget(p)
	n.forgetImpairLocked(p)
	if p.vlan != nil {
		n.vlanRecount()
	}
}

// release stops a link port that has left the network: its pump ends, the
// link is closed (a created TAP deleted unless keep) and its claim is free
// again when release returns.
func (n *Network) release(p *Port, keep bool) {
	p.shut()
	p.cancel()
	if w := n.linkWaiter.Load(); w != nil {
		for _, q := range p.linkQueues() {
			w.remove(q) // before the descriptors close
		}
	}
	p.link.Close(keep)
	<-p.pumpDone // the link's descriptor is really closed once Read returned
	if p.spec != nil {
		n.fam.unclaim(n, p.spec.Claim())
	}
	n.space.Broadcast()
}

// linkQueue is one queue of a link port (a link that is not a
// link.Multiqueue is its own single queue), read by a pump of its own or,
// while it is idle, by the network's link waiter (waiter.go). It is the
// context of the frames it sends: the port's stop.
type linkQueue struct {
	context.Context // the port's stop
	port            *Port
	r               link.Reader
	fp              link.FDPoller // r as an FDPoller, or nil

	// rmu is held while a frame is read and sent, by the queue's pump or
	// by the waiter, so that the frames of one queue enter the network
	// in order whoever reads them.
	rmu sync.Mutex

	// For a queue the network's waiter watches: its descriptor and token
	// there, and where the waiter wakes its pump.
	fd    int
	token uint64
	wake  chan struct{}
}

// linkQueues are the port's link queues, made on first use (by its pump,
// or by another pump reading through it), whoever made the port.
func (p *Port) linkQueues() []*linkQueue {
	p.queuesOnce.Do(func() {
		readers := []link.Reader{p.link}
		if mq, ok := p.link.(link.Multiqueue); ok {
			readers = mq.Queues()
		}
		for _, r := range readers {
			q := &linkQueue{Context: p.stop, port: p, r: r, fd: -1, wake: make(chan struct{}, 1)}
			q.fp, _ = r.(link.FDPoller)
			p.queues = append(p.queues, q)
		}
	})
	return p.queues
}

// pump reads frames from the link into the network until the port leaves
// or the link goes away: one goroutine per queue.
func (p *Port) pump() {
	defer close(p.pumpDone)
	qs := p.linkQueues()
	var wg sync.WaitGroup
	for _, q := range qs[1:] {
		wg.Go(q.pump)
	}
	qs[0].pump()
	wg.Wait()
}

func (q *linkQueue) pump() {
	buf := make([]byte, vnet.HdrLen+maxLinkFrame)
	if q.fp != nil {
		if w := q.port.net.waiter(); w != nil && w.add(q, q.fp.PollFD()) {
			q.pumpWaited(buf, w)
			return
		}
	}
	q.pumpReading(buf)
}

// pumpReading is the pump of a queue no waiter watches: it reads, waiting
// for each frame, and forwards. rmu is held throughout, also while Read
// waits: a waiter that still holds the queue in its list of active ones
// (it was just handed back) then leaves it alone (serveOne's TryLock).
func (q *linkQueue) pumpReading(buf []byte) {
	for {
		if err := q.pass(buf, false); err != nil {
			q.readFailed(err)
			return
		}
	}
}

// pass reads one frame from the queue, waiting for it (or, with try, not:
// TryRead's ErrNoFrame) and forwards it, holding rmu. A panic on the way
// (in the link's Read, in the network, in a receiver) is contained to
// that frame: it is lost, counted and logged, and the pump goes on.
func (q *linkQueue) pass(buf []byte, try bool) (err error) {
	q.rmu.Lock()
	defer q.rmu.Unlock()
	defer q.contain()
	var k int
	if try {
		k, err = q.fp.TryRead(buf)
	} else {
		k, err = q.r.Read(buf)
	}
	if err != nil {
		return err
	}
	q.forward(buf[:k])
	return nil
}

// contain recovers a panic of the frame being passed (deferred).
func (q *linkQueue) contain() {
	if r := recover(); r != nil {
		p := q.port
		p.net.panicked(r, "panic in a link pump; frame dropped", "port", p.id, "kind", p.kindName(), "name", p.name)
	}
}

// forward sends a frame the link gave into the network; a port without
// the send right only receives. Errors (too long, too short for a switch)
// are counted and logged by the network; the link just goes on.
func (q *linkQueue) forward(raw []byte) {
	netcore.TestHook("PUMP", raw)
	if len(raw) > vnet.HdrLen && q.port.send {
		q.port.net.transmit(q, q.port, raw, false, false)
	}
}

// readFailed ends a pump after a read error: the link was closed, or it
// is gone and the port is detached.
func (q *linkQueue) readFailed(err error) {
	if q.Err() != nil || errors.Is(err, link.ErrClosed) {
		return
	}
	q.port.gone(err)
	<-q.Done()
}

// gone detaches a link port whose link went away.
func (p *Port) gone(err error) {
	p.goneOnce.Do(func() {
		n := p.net
		n.fam.log.Warn("link gone; detached", "network", n.name, "kind", p.kindName(), "name", p.name, "err", err)
		go n.detachGone(p)
	})
}

// detachGone removes a link port whose link went away.
func (n *Network) detachGone(p *Port) {
	n.mu.Lock()
	if !n.hasPort(p) {
		n.mu.Unlock()
		return // detached meanwhile
	}
	n.detachLocked(p)
	persist := n.set.Persist && p.spec != nil
	n.mu.Unlock()
	n.release(p, false)
	if persist {
		n.fam.saveState()
	}
}
