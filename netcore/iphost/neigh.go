// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The neighbour cache follows the kernel's neighbour state machine
// (net/core/neighbour.c), with times short enough that a dead neighbour is
// known within a few seconds:
//
//	incomplete  resolving: broadcast ARP requests / multicast NS, every
//	            RetransTime, MaxProbes times, then failed
//	reachable   confirmed within ReachableTime (an ARP or NA from it, or
//	            any IP datagram from it with its MAC)
//	stale       not confirmed lately; the next send uses it and probes
//	probe       unicast probes every RetransTime, MaxProbes times, then
//	            failed; frames still go to the known MAC meanwhile
//	failed      sends fail with EHOSTUNREACH for FailedHold, then the next
//	            send resolves again
//
// So a neighbour that stops answering is failed at most ReachableTime +
// MaxProbes*RetransTime (3.4 s) after its last sign of life, once
// something is sent to it. Entries neither used nor confirmed for GCTime
// are removed; the cache holds at most MaxNeighbours, evicting the least
// recently used.
const (
	ReachableTime = 1 * time.Second
	RetransTime   = 800 * time.Millisecond
	MaxProbes     = 3
	FailedHold    = 1 * time.Second
	GCTime        = 30 * time.Second
	MaxNeighbours = 512
	// maxHeld bounds the datagrams held for one unresolved neighbour
	// (non-blocking sends), as the kernel's unres_qlen.
	maxHeld = 3
)

type neighState int

const (
	stIncomplete neighState = iota
	stReachable
	stStale
	stProbe
	stFailed
)

func (s neighState) String() string {
	return [...]string{"incomplete", "reachable", "stale", "probe", "failed"}[s]
}

type neighbour struct {
	addr      netip.Addr
	mac       net.HardwareAddr
	state     neighState
	confirmed time.Time // last sign of life
	used      time.Time
	probes    int
	next      time.Time // next probe
	failedAt  time.Time
	failed    bool          // has failed since it was made
	done      chan struct{} // closed when incomplete ends
	held      []heldFrame
}

// heldFrame is a datagram waiting for its neighbour: the frame with the
// destination MAC to fill in, and who sent it (told if it fails).
type heldFrame struct {
	raw  []byte
	from *Conn
	to   netip.AddrPort
}

type neighbours struct {
	m map[netip.Addr]*neighbour
}

func (n *neighbours) init() { n.m = map[netip.Addr]*neighbour{} }

// clear empties the cache; senders waiting for a resolution wake up.
func (n *neighbours) clear() {
	for _, e := range n.m {
		if e.state == stIncomplete {
			close(e.done)
		}
	}
	n.init()
}

// write lists the cache for the host file, by address.
func (n *neighbours) write(b *strings.Builder) {
	addrs := make([]netip.Addr, 0, len(n.m))
	for a := range n.m {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		e := n.m[a]
		mac := "-"
		if e.mac != nil {
			mac = e.mac.String()
		}
		fmt.Fprintf(b, "neigh %s %s %s\n", a, mac, e.state)
	}
}

// errHeld: the frame waits for its neighbour (a non-blocking send).
var errHeld = fmt.Errorf("held for neighbour resolution")

// SendMode says how a send waits for its neighbour.
type SendMode int

const (
	// Wait: a send to a neighbour being resolved waits for the answer
	// (at most MaxProbes*RetransTime), as a blocking write.
	Wait SendMode = iota
	// NoWait: the datagram is held for the neighbour (at most maxHeld)
	// and the send returns; a failure is the sender's pending error.
	NoWait
	// FailFast: as Wait for a neighbour never resolved before; one that
	// has failed is EHOSTUNREACH at once while it is resolved again in
	// the background (mhost moves on to its next locator).
	FailFast
)

// resolve returns the MAC of neighbour a for a frame about to be sent.
// h.mu is held; it is released while waiting. With NoWait (or held set),
// an unresolved neighbour keeps held and returns errHeld.
func (h *Host) resolve(ctx context.Context, a netip.Addr, mode SendMode, held *heldFrame) (net.HardwareAddr, error) {
	for {
		lk := h.lk
		if lk == nil || h.closed {
			return nil, syscall.ENETUNREACH
		}
		now := time.Now()
		e := h.neigh.m[a]
		if e == nil {
			var err error
			if e, err = h.newNeighbour(a, now); err != nil {
				return nil, err
			}
			h.solicit(lk, e, now)
		}
		e.used = now
		switch e.state {
		case stReachable, stProbe:
			return e.mac, nil
		case stStale:
			e.state, e.probes = stProbe, 0
			h.solicit(lk, e, now)
			return e.mac, nil
		case stFailed:
			if now.Sub(e.failedAt) < FailedHold {
				return nil, syscall.EHOSTUNREACH
			}
			e.state, e.probes, e.done = stIncomplete, 0, make(chan struct{})
			h.solicit(lk, e, now)
		}
		// Incomplete.
		if mode == FailFast && e.failed {
			return nil, syscall.EHOSTUNREACH
		}
		if mode == NoWait {
			if len(e.held) >= maxHeld {
				h.stats.txDrops++ // the oldest goes, as in the kernel
				e.held = e.held[1:]
			}
			e.held = append(e.held, *held)
			return nil, errHeld
		}
		done := e.done
		h.unlock()
		select {
		case <-done:
		case <-ctx.Done():
			h.mu.Lock()
			return nil, syscall.EINTR
		}
		h.mu.Lock()
	}
}

// newNeighbour adds an incomplete entry for a, evicting the least
// recently used resolved one when the cache is full. h.mu is held.
func (h *Host) newNeighbour(a netip.Addr, now time.Time) (*neighbour, error) {
	if len(h.neigh.m) >= MaxNeighbours {
		var old *neighbour
		for _, e := range h.neigh.m {
			if e.state != stIncomplete && (old == nil || e.used.Before(old.used)) {
				old = e
			}
		}
		if old == nil {
			return nil, syscall.ENOBUFS // every entry is being resolved
		}
		delete(h.neigh.m, old.addr)
		h.stats.neighEvicted++
	}
	e := &neighbour{addr: a, state: stIncomplete, used: now, done: make(chan struct{})}
	h.neigh.m[a] = e
	return e, nil
}

// solicit sends the next probe of e: broadcast (ARP) or to the
// solicited-node group (NS) while incomplete, unicast when probing.
// h.mu is held.
func (h *Host) solicit(lk *hostLink, e *neighbour, now time.Time) {
	e.probes++
	e.next = now.Add(RetransTime)
	var dst net.HardwareAddr
	if e.state == stProbe {
		dst = e.mac
	}
	src, ok := h.sourceFor(e.addr)
	if !ok {
		return
	}
	if e.addr.Is4() {
		h.emit(lk, h.buildARP(1, dst, src, nil, e.addr))
	} else {
		h.emit(lk, h.buildNS(src, e.addr, dst))
	}
}

// confirm records a sign of life of a at mac: an ARP or NA from it, or
// a datagram. create makes the entry if there is none (an ARP request
// for us, as the kernel learns its asker). h.mu is held.
func (h *Host) confirm(lk *hostLink, a netip.Addr, mac net.HardwareAddr, create bool, now time.Time) {
	e := h.neigh.m[a]
	if e == nil {
		if !create {
			return
		}
		var err error
		if e, err = h.newNeighbour(a, now); err != nil {
			return
		}
	}
	if e.mac == nil || string(e.mac) != string(mac) {
		e.mac = append(net.HardwareAddr(nil), mac...)
	}
	wasIncomplete := e.state == stIncomplete
	e.state, e.confirmed, e.probes = stReachable, now, 0
	if wasIncomplete {
		close(e.done)
		held := e.held
		e.held = nil
		for _, f := range held {
			copy(f.raw[ethDstOff:], e.mac)
			h.emit(lk, f.raw)
		}
	}
}

// ethDstOff is where the destination MAC of a frame with its virtio-net
// header is.
const ethDstOff = 10

// seen records a datagram from a at mac: it confirms an entry with that
// MAC. h.mu is held.
func (h *Host) seen(a netip.Addr, mac net.HardwareAddr, now time.Time) {
	if e := h.neigh.m[a]; e != nil && e.mac != nil && string(e.mac) == string(mac) && e.state != stFailed {
		e.state, e.confirmed, e.probes = stReachable, now, 0
	}
}

// neighTick runs the neighbour clocks. h.mu is held.
func (h *Host) neighTick(lk *hostLink, now time.Time) {
	for a, e := range h.neigh.m {
		switch e.state {
		case stIncomplete, stProbe:
			if now.Before(e.next) {
				continue
			}
			if e.probes >= MaxProbes {
				h.fail(e, now)
				continue
			}
			h.solicit(lk, e, now)
		case stReachable:
			if now.Sub(e.confirmed) > ReachableTime {
				e.state = stStale
			}
		case stStale, stFailed:
			if now.Sub(e.used) > GCTime && now.Sub(e.confirmed) > GCTime {
				delete(h.neigh.m, a)
			}
		}
	}
}

// fail marks e failed: its held datagrams are dropped and their senders
// get EHOSTUNREACH, as the kernel's ICMP host unreachable tells them; so
// do the endpoints connected to it. h.mu is held.
func (h *Host) fail(e *neighbour, now time.Time) {
	wasIncomplete := e.state == stIncomplete
	e.state, e.failedAt, e.failed = stFailed, now, true
	h.stats.neighFailed++
	if wasIncomplete {
		close(e.done)
	}
	for _, f := range e.held {
		h.stats.txDrops++
		h.later(f.from.sink.Error(f.to, syscall.EHOSTUNREACH))
	}
	e.held = nil
	for _, m := range h.conns {
		for _, cs := range m {
			for _, c := range cs {
				if c.remote.IsValid() && c.remote.Addr() == e.addr {
					h.later(c.sink.Error(c.remote, syscall.EHOSTUNREACH))
				} else if !c.remote.IsValid() {
					h.later(c.sink.Error(netip.AddrPortFrom(e.addr, 0), syscall.EHOSTUNREACH))
				}
			}
		}
	}
}

// sourceFor picks the host's address to send to dst from: one whose
// prefix holds dst (on-link); false if none. h.mu is held.
func (h *Host) sourceFor(dst netip.Addr) (netip.Addr, bool) {
	for _, p := range h.addrs {
		if p.Addr().Is4() == dst.Is4() && p.Contains(dst) {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}
