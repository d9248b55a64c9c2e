// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/pktq"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Port is one member of a network. Packets delivered to it wait in a
// bounded receive queue until read.
type Port struct {
	net *Network
	id  int
	// kind is the kind of a link port; nil for a port opened through
	// the data file.
	kind *link.Kind
	uid  uint32
	pid  uint32
	name string
	recv bool // receives packets (r right and opened for reading)
	send bool // may send (w right and opened for writing)
	// payer is the opener's, for the bytes it queues (file ports only):
	// what it sends, and what links deliver to it.
	payer *netcore.Payer

	// vlan is the port's VLAN setting (vlan.go), nil for the default;
	// vlanCtl: a ctl line set it by the port's number. svcNum is the
	// number a service's client knows its port by (a VDE port number),
	// 0 for none. Guarded by the network's mu.
	vlan    *portVLAN
	vlanCtl bool
	svcNum  int

	// Counters. Interface ports count what they write after the
	// network's mutex is released, so these are atomic.
	rxPkts, rxBytes, txPkts, txBytes, drops atomic.Uint64

	// Link ports only.
	link link.Link
	spec link.Spec
	caps link.Caps
	// nsID is the network namespace the link was opened in, if it lives
	// in one other than the daemon's (where.go).
	nsID netns.ID
	// unnamed: the last save found the link in a namespace without a
	// name, and left it out (guarded by the network's mu).
	unnamed bool
	// stop is cancelled when the port leaves: it ends the pump's read
	// loop and any lossless wait of its sends.
	stop       context.Context
	cancel     context.CancelFunc
	pumpDone   chan struct{} // closed when the pump has stopped reading dev
	queues     []*linkQueue  // the link's queues, each with a pump (links.go)
	queuesOnce sync.Once     // makes queues
	goneOnce   sync.Once     // the link went away: detach once

	// During a batch (Network.batching), guarded by the network's mu:
	// batched holds the packets for q, put at the end of the batch under
	// one hold of q's lock; batchLen is what q held when the batch first
	// looked (readers only take: a bound on room), taken at batch number
	// batchSeq.
	batched  []queued
	batchLen int
	batchSeq uint64

	// q is the receive queue (of at most the network's qlen); each
	// packet's charge is taken before it is put, and let go as it leaves.
	q pktq.Queue[queued]
}

func newPort(n *Network, id int, kind *link.Kind, uid, pid uint32, name string, recv, send bool) *Port {
	p := &Port{net: n, id: id, kind: kind, uid: uid, pid: pid, name: name, recv: recv, send: send}
	p.q.Init(nil, func(e queued) { e.ch.release() })
	p.q.SetReleaseMany(releaseQueued)
	return p
}

// releaseQueued lets go of many packets taken from a queue at once: their
// charges are given back with one release per run of one payer, not one
// per packet, as readers of many packets per call would otherwise
// contend on the payers' counters for each.
func releaseQueued(items []queued) {
	var payer *netcore.Payer
	var n int64
	for _, e := range items {
		if e.ch.payer != payer {
			if payer != nil {
				payer.Release(netcore.Queued, n)
			}
			payer, n = e.ch.payer, 0
		}
		n += e.ch.drop()
	}
	if payer != nil {
		payer.Release(netcore.Queued, n)
	}
}

// queued is one packet in a receive queue, and what it costs its payer.
type queued struct {
	pkt []byte
	ch  *charge
}

// charge is what one packet in receive queues costs: its length once (one
// buffer, shared by every queue that holds it) and entryCost per queue
// holding it, counted as queued bytes for one payer until the last queue
// lets it go.
type charge struct {
	payer *netcore.Payer
	size  int64
	refs  atomic.Int32 // queues holding it
}

// entryCost is what a queue entry costs beyond the packet's bytes.
// Charged per queue, it bounds what a flood of tiny packets to many ports
// holds.
const entryCost = netcore.QueueEntryCost

// newCharge charges size plus entryCost for each of refs queues to payer.
func newCharge(payer *netcore.Payer, size, refs int) (*charge, error) {
	if err := payer.Take(netcore.Queued, chargeOf(size, refs)); err != nil {
		return nil, err
	}
	ch := &charge{payer: payer, size: int64(size)}
	ch.refs.Store(int32(refs))
	return ch, nil
}

func chargeOf(size, refs int) int64 { return int64(size) + int64(refs)*entryCost }

// release is one queue letting the packet go.
func (ch *charge) release() { ch.payer.Release(netcore.Queued, ch.drop()) }

// drop is one queue letting the packet go, and returns what to give back
// to its payer for it.
func (ch *charge) drop() int64 {
	n := int64(entryCost)
	if ch.refs.Add(-1) == 0 {
		n += ch.size
	}
	return n
}

// enqueue appends pkt, charged by ch, unless the queue already holds qlen
// packets. It returns the wakeup of a poll armed on the port, if any, for
// the caller to call once it holds no lock (it writes to /dev/fuse).
func (p *Port) enqueue(pkt []byte, ch *charge, qlen int) (ok bool, pollWake func()) {
	return p.q.Put(queued{pkt, ch}, qlen)
}

// kindName is what the KIND column shows.
func (p *Port) kindName() string {
	if p.kind == nil {
		return "file"
	}
	return p.kind.Name
}

// room reports whether one more packet fits under qlen. Links take every
// frame at once: they are written, not queued.
func (p *Port) room(qlen int) bool {
	if p.link != nil {
		return true
	}
	if n := p.net; n.batching {
		return p.queuedInBatch() < qlen
	}
	return p.q.Room(qlen)
}

// queuedInBatch is, during a batch, what p's queue holds with the
// packets batched for it. Called with the network's mu held.
func (p *Port) queuedInBatch() int {
	if n := p.net; p.batchSeq != n.batchSeq {
		p.batchSeq, p.batchLen = n.batchSeq, p.q.Len()
	}
	return p.batchLen + len(p.batched)
}

// Recv copies the next packet into buf and returns its length; a packet
// longer than buf is cut (datagram semantics). It blocks until a packet
// arrives, ctx is done (EINTR, nothing dequeued) or the port is closed
// (0, nil: end of file).
func (p *Port) Recv(ctx context.Context, buf []byte, nonblock bool) (int, error) {
	if !p.recv {
		return 0, syscall.EBADF
	}
	e, err := p.q.Get(ctx, nonblock)
	if err == io.EOF {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	k := copy(buf, e.pkt)
	if p.net.lossless.Load() {
		p.net.space.Broadcast()
	}
	return k, nil
}

// Send sends one packet into the network from this port.
func (p *Port) Send(ctx context.Context, pkt []byte, nonblock bool) error {
	if !p.send {
		return syscall.EBADF
	}
	return p.net.send(ctx, p, pkt, nonblock)
}

// Poll reports what the data file is ready for (netcore.Poller): reading
// when a packet is queued or the port is closed (then with PollHup: reads
// return end of file), writing unless lossless is on and some other
// receiver's queue is full. A half the port has no right to (opened
// without it, or without the r or w right) is never ready, since its
// read or write fails at once, and a loop polling for it would spin.
func (p *Port) Poll(events uint32, wake func()) uint32 {
	var ready uint32
	if p.send && events&(netcore.PollOut|netcore.PollWrNorm) != 0 {
		// Armed before looking, so that room made in between wakes
		// the poll. Armed even when there is room now: lossless may be
		// turned on, and an edge-triggered waiter waits for the next
		// change.
		if wake != nil {
			if p.net.lossless.Load() && p.payer != nil {
				// Room in the queues or in the writer's budget:
				// whichever comes first wakes the poll, once.
				wake = sync.OnceFunc(wake)
				p.net.fam.quota.ArmQueued(p, wake)
			}
			p.net.space.Arm(p, wake, nil)
		}
		if p.writable() {
			ready |= netcore.PollOut | netcore.PollWrNorm
		}
	}
	in := p.recv && events&(netcore.PollIn|netcore.PollRdNorm) != 0
	if !in {
		wake = nil
	}
	st := p.q.Poll(wake)
	if in && (st.Len > 0 || st.Closed) {
		ready |= netcore.PollIn | netcore.PollRdNorm
	}
	if st.Closed {
		ready |= netcore.PollHup
	}
	return ready
}

// writable reports whether a write would go through now: without lossless
// always (full queues drop), with it when every other receiving port has
// room. That is what a hub needs; a switch may deliver a unicast to one
// port only, so it may be writable where this says no, never the reverse.
// A closed network is writable: the write fails at once.
func (p *Port) writable() bool {
	n := p.net
	if !n.lossless.Load() {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || !n.set.Lossless {
		return true
	}
	files := 0
	for _, q := range n.portList {
		if q != p && q.recv {
			if !q.room(n.set.Qlen) {
				return false
			}
			if q.link == nil {
				files++
			}
		}
	}
	// The writer pays for what it queues: writable while a packet of
	// the mtu fits its budget.
	return files == 0 || p.payer == nil || p.payer.Fits(netcore.Queued, chargeOf(n.set.MTU, files))
}

// Close leaves the network; queued packets are discarded and blocked
// readers see end of file.
func (p *Port) Close() { p.net.leave(p) }

// shut closes the queue: blocked readers see end of file. It returns the
// wakeup of a poll armed on the port, if any: the caller calls it when the
// port closes under its users (the network is removed), and drops it when
// the file itself is being released (nobody polls a released file).
func (p *Port) shut() (pollWake func()) {
	return p.q.Close(true)
}
