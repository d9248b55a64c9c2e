// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// outQueue bounds the frames the host has built and the network has not
// taken yet. A blocking UDP write waits for room (as a socket's send
// buffer makes it wait); what the host sends on its own (replies,
// probes) is dropped and counted when there is none.
const outQueue = 512

// hostLink is the host's port on the network: the network reads the
// frames the host sends and writes the frames it delivers to the host.
type hostLink struct {
	h         *Host
	out       chan outFrame
	closed    chan struct{}
	closeOnce sync.Once
	inMu      sync.Mutex // serializes the frame path
}

var _ link.Link = (*hostLink)(nil)

// outFrame is a frame on its way out (header and frame), and who pays
// for it as queued bytes until the network takes it: the writer of the
// udp file or mhost endpoint it comes from; nil for the host's own.
type outFrame struct {
	raw   []byte
	payer *netcore.Payer
}

func (f outFrame) cost() int64 { return int64(len(f.raw)) + netcore.QueueEntryCost }

func (f outFrame) release() {
	if f.payer != nil {
		f.payer.Release(netcore.Queued, f.cost())
	}
}

func newHostLink(h *Host) *hostLink {
	return &hostLink{h: h, out: make(chan outFrame, outQueue), closed: make(chan struct{})}
}

func (l *hostLink) Read(p []byte) (int, error) {
	select {
	case f := <-l.out:
		n := copy(p, f.raw)
		f.release()
		return n, nil
	case <-l.closed:
		return 0, link.ErrClosed
	}
}

// Write takes one frame the network delivers to the host and handles it
// at once: nothing in the host's frame path waits. Its locks are
// released by defer: a panic in the frame path, which the network
// contains to the frame, leaves none held.
func (l *hostLink) Write(p []byte) error {
	if len(p) <= vnet.HdrLen {
		return nil
	}
	l.inMu.Lock()
	defer l.inMu.Unlock()
	l.h.input(p[vnet.HdrLen:])
	return nil
}

// MTU: the host takes any frame the network carries (IPv4 reassembles
// what it must); it sends IP packets of at most h.mtu.
func (l *hostLink) MTU() int        { return 65535 }
func (l *hostLink) Caps() link.Caps { return 0 }

func (l *hostLink) Close(bool) error {
	l.closeOnce.Do(func() {
		close(l.closed)
		for {
			select {
			case f := <-l.out:
				f.release()
			default:
				return
			}
		}
	})
	return nil
}

// send queues one frame (with room for the virtio-net header in front,
// zeroed: a plain frame), paid for by payer (nil: the host's own). With
// wait it waits for room in the queue and in the payer's budget until ctx
// is done (EINTR); without, a full queue or budget is ENOBUFS (a drop).
func (l *hostLink) send(ctx context.Context, raw []byte, wait bool, payer *netcore.Payer) error {
	f := outFrame{raw, payer}
	if payer != nil {
		if !wait {
			if payer.Take(netcore.Queued, f.cost()) != nil {
				return syscall.ENOBUFS
			}
		} else if err := payer.TakeWaiting(ctx, f.cost()); err != nil {
			return err
		}
	}
	select {
	case l.out <- f:
		return nil
	case <-l.closed:
		f.release()
		return syscall.ENETDOWN
	default:
	}
	if !wait {
		f.release()
		return syscall.ENOBUFS
	}
	select {
	case l.out <- f:
		return nil
	case <-l.closed:
		f.release()
		return syscall.ENETDOWN
	case <-ctx.Done():
		f.release()
		return syscall.EINTR
	}
}

// emit sends a frame the host makes on its own (replies, probes, ICMP
// errors): never waits; counted when dropped. h.mu may be held.
func (h *Host) emit(lk *hostLink, raw []byte) {
	if lk == nil || raw == nil {
		return
	}
	if lk.send(context.Background(), raw, false, nil) != nil {
		h.stats.txDrops++
		return
	}
	h.stats.txFrames++
}

// timerTick is how often the neighbour cache and the reassembly buffers
// are looked at.
const timerTick = 100 * time.Millisecond

// timers runs the host's clocks while lk is its port: neighbour probes,
// failures and aging, and reassembly timeouts.
func (h *Host) timers(lk *hostLink) {
	t := time.NewTicker(timerTick)
	defer t.Stop()
	for {
		select {
		case <-lk.closed:
			return
		case now := <-t.C:
			h.tick(lk, now)
		}
	}
}

// tick is one turn of the clocks. A panic in it is contained to the turn
// (counted in the network's stats, logged): the clocks go on.
func (h *Host) tick(lk *hostLink, now time.Time) {
	defer func() {
		if r := recover(); r != nil {
			h.net.Recovered(r, "panic in the userspace host's timers", "kind", Kind)
		}
	}()
	netMTU, _ := h.net.Limits() // without h.mu: it takes the network's lock
	h.mu.Lock()
	defer h.unlock()
	h.mtu = ipMTUOf(netMTU)
	h.neighTick(lk, now)
	h.frags.expire(now, &h.stats)
}
