// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
)

// The stream file is a port whose bytes are VDE's stream format (what
// vde_plug speaks on its standard input and output): each frame is a
// 2-byte big-endian length, then that many bytes. Many frames cross per
// read and write, so a packet costs a fraction of a FUSE round trip.

// streamLenSize is the size of a frame's length in the stream.
const streamLenSize = 2

// framesPerLock bounds the frames a stream write delivers under one hold
// of the network's lock, and parses at a time: other senders wait at most
// that long, and a write's scratch stays small.
const framesPerLock = 256

// readChunk is how many packets a stream read takes from its queue per
// hold of the queue's lock.
const readChunk = 128

// keptScratch is the largest buffer for a kept frame a stream file keeps
// between writes; a larger one, made for a jumbo frame, is let go.
const keptScratch = 4096

// streamIn cuts the bytes written to a stream file into frames, keeping
// the frame a write ends inside (its length, or its first bytes) for the
// next write, as a pipe would. It holds at most one frame: the length's
// 2 bytes and up to mtu bytes of body, its buffer grown as they arrive
// (the writer pays for them: streamHandle.chargeKept). A kept frame its
// writer cannot pay for is discarded: its bytes are counted as they come,
// not kept, and the frame is not sent.
type streamIn struct {
	lenBytes [streamLenSize]byte
	nlen     int    // bytes of the kept frame's length held: 0 (no kept frame), 1 or 2
	body     []byte // the kept frame's bytes so far
	discard  bool   // the kept frame is discarded: got counts its bytes
	got      int
}

// streamCut is what parse found in one write, for commit to settle once
// the frames were sent.
type streamCut struct {
	frames [][]byte // whole frames in order: slices of the write, the first maybe completing the kept frame
	ends   []int    // ends[i]: the bytes of the write up to the end of frames[i]
	// bad: a frame with a bad length (0, or above the mtu) or refused by
	// the network starts where frames end; nothing after it is parsed.
	bad bool
	// more: parsing stopped after framesPerLock frames; the rest of the
	// write is parsed once they are sent.
	more bool
	// badLen is the bad length parse found (0 when the network refused
	// the frame: it said why).
	badLen int
	// skip: the write's first skip bytes complete a discarded kept frame.
	skip int
}

// parse cuts b, the bytes of one write, into frames of at most mtu
// bytes, after what the last write kept. It does not change what is kept
// (commit does, knowing what was sent), except for bytes beyond the kept
// frame's length in its buffer.
func (s *streamIn) parse(b []byte, mtu int, c *streamCut) {
	c.frames, c.ends, c.bad, c.more, c.badLen, c.skip = c.frames[:0], c.ends[:0], false, false, 0, 0
	i := 0
	if s.nlen > 0 {
		lb, nlen := s.lenBytes, s.nlen
		for nlen < streamLenSize && i < len(b) {
			lb[nlen] = b[i]
			nlen++
			i++
		}
		if nlen < streamLenSize {
			return // the write is all length: kept
		}
		size := int(binary.BigEndian.Uint16(lb[:]))
		if s.nlen < streamLenSize && (size == 0 || size > mtu) {
			c.bad, c.badLen = true, size // its length began in the last write
			return
		}
		need := size - len(s.body)
		if s.discard {
			need = size - s.got
		}
		if len(b)-i < need {
			return // still not whole: kept
		}
		switch {
		case s.discard:
			c.skip = i + need
		case len(s.body) > 0:
			// Within its cap if it has the room: the kept bytes stay as
			// they are.
			c.frames = append(c.frames, append(s.body, b[i:i+need]...))
		default:
			c.frames = append(c.frames, b[i:i+need])
		}
		i += need
		if !s.discard {
			c.ends = append(c.ends, i)
		}
	}
	for i+streamLenSize <= len(b) {
		if len(c.frames) == framesPerLock {
			c.more = true
			return
		}
		size := int(binary.BigEndian.Uint16(b[i:]))
		if size == 0 || size > mtu {
			c.bad, c.badLen = true, size
			return
		}
		if len(b)-i-streamLenSize < size {
			return // the write ends inside this frame
		}
		i += streamLenSize + size
		c.frames = append(c.frames, b[i-size:i])
		c.ends = append(c.ends, i)
	}
}

// refused marks frame k of c as refused by the network: a bad frame, with
// the frames before it sent.
func (c *streamCut) refused(k int) {
	c.frames, c.ends, c.bad, c.more = c.frames[:k], c.ends[:k], true, false
}

// commit settles the write of b that parse cut into c, of whose frames
// the first sent went out, and returns how many bytes of b the write
// took: all of them when every frame went out and no bad one stopped it
// (what follows the last frame is kept), else up to the end of the last
// frame sent. A bad frame that began in the bytes kept from the last
// write (a length completed by this write to 0 or above the mtu, or a
// kept frame the network refused) is dropped with them: the next write
// starts a new frame.
func (s *streamIn) commit(b []byte, c *streamCut, sent int) int {
	switch {
	case sent == len(c.frames) && !c.bad && !c.more:
		switch {
		case sent > 0:
			s.reset()
			s.keep(b[c.ends[sent-1]:])
		case c.skip > 0:
			s.reset()
			s.keep(b[c.skip:])
		default:
			s.keep(b)
		}
		return len(b)
	case sent == 0:
		if c.skip > 0 {
			s.reset() // the discarded frame is over
			return c.skip
		}
		if c.bad && len(c.frames) == 0 && s.nlen > 0 {
			s.reset()
		}
		return 0
	}
	s.reset()
	return c.ends[sent-1]
}

// keep adds p, bytes of a frame that p does not complete, to the kept
// frame. Its buffer grows with what arrives, at most to the frame's
// length: a length alone costs nothing.
func (s *streamIn) keep(p []byte) {
	for s.nlen < streamLenSize && len(p) > 0 {
		s.lenBytes[s.nlen] = p[0]
		s.nlen++
		p = p[1:]
	}
	if len(p) == 0 {
		return
	}
	if s.discard {
		s.got += len(p)
		return
	}
	if need := len(s.body) + len(p); need > cap(s.body) {
		size := int(binary.BigEndian.Uint16(s.lenBytes[:]))
		nb := make([]byte, len(s.body), min(size, max(need, 2*cap(s.body))))
		copy(nb, s.body)
		s.body = nb
	}
	s.body = append(s.body, p...)
}

// discardKept discards the kept frame: its buffer is let go, the rest of
// its bytes will be counted, not kept.
func (s *streamIn) discardKept() {
	s.discard, s.got = true, len(s.body)
	s.body = nil
}

// reset forgets the kept frame; a large buffer is let go.
func (s *streamIn) reset() {
	s.nlen, s.discard, s.got = 0, false, 0
	s.body = s.body[:0]
	if cap(s.body) > keptScratch {
		s.body = nil
	}
}

// kept is the number of bytes kept from earlier writes.
func (s *streamIn) kept() int { return s.nlen + len(s.body) }

// keptBody is the number of bytes of the kept frame's buffer that its
// writer pays for.
func (s *streamIn) keptBody() int64 { return int64(len(s.body)) }

// linkRun says which links, links[from:to] of a batch, get frames[frame]:
// as it is, or as raw, a virtio-net header and the frame in another VLAN
// form (vlan.go).
type linkRun struct {
	frame, from, to int
	raw             []byte
}

// frameBatch is what delivering a batch of frames under n.mu leaves to do
// once it is released.
type frameBatch struct {
	links  []*Port    // the links the frames go to
	runs   []linkRun  // which of links get which frame
	wakes  []func()   // polls to wake, charges to release
	signal []*Port    // ports whose blocked readers to wake
	vlan   vlanEgress // the links of a frame that get it in another VLAN form
}

// settle wakes the readers of b.signal and runs b.wakes, each once: an
// entry is cleared before it runs, so that settling again after a panic
// in one runs only those left.
func (b *frameBatch) settle() {
	for _, p := range b.signal {
		p.q.Signal()
	}
	for i, wake := range b.wakes {
		if wake != nil {
			b.wakes[i] = nil
			wake()
		}
	}
}

// reset empties b for the next batch, keeping nothing alive.
func (b *frameBatch) reset() {
	clear(b.links)
	clear(b.wakes)
	clear(b.signal)
	b.links, b.runs, b.wakes, b.signal = b.links[:0], b.runs[:0], b.wakes[:0], b.signal[:0]
}

// sendFrames sends frames, plain Ethernet frames written to a stream file
// port, in order, with n.mu taken once per framesPerLock frames rather
// than once per frame. The frames are the caller's: what is kept is
// copied. It returns how many were sent: all of them, or fewer with the
// error that stopped the rest: EINTR or EAGAIN (a lossless wait), EPIPE
// (the network is gone), or EMSGSIZE or EINVAL (frames[sent] refused).
func (n *Network) sendFrames(ctx context.Context, from *Port, frames [][]byte, nonblock bool) (sent int, err error) {
	var b frameBatch
	defer func() {
		// A contained panic (the caller answers EIO) must still let go
		// of the charges of the frames the batch dropped, and wake.
		if r := recover(); r != nil {
			b.settle()
			panic(r)
		}
	}()
	attempt := 0
	for sent < len(frames) {
		// As transmit: a lossless writer waits for room in the queues
		// and in the payers' budgets, the quota's release taken before
		// looking.
		var freed <-chan struct{}
		doneWaiting := func() {}
		if n.lossless.Load() {
			freed, doneWaiting = n.fam.quota.WaitQueued()
		}
		var space <-chan struct{}
		sent, space, err = n.deliverBatch(from, frames, sent, attempt, &b)
		b.settle()
		n.writeFrameLinks(frames, b.links, b.runs)
		b.reset()
		switch {
		case err != nil:
			doneWaiting()
			return sent, err
		case space == nil:
			doneWaiting()
			attempt = 0
			continue
		}
		attempt++
		if freed == nil {
			continue // lossless came on meanwhile: look again, waiting for releases
		}
		if nonblock {
			doneWaiting()
			return sent, syscall.EAGAIN
		}
		select {
		case <-space:
		case <-freed:
		case <-ctx.Done():
			doneWaiting()
			return sent, syscall.EINTR
		}
		doneWaiting()
	}
	return sent, nil
}

// deliverBatch delivers frames from sent on, at most framesPerLock of
// them, under one hold of n.mu, and returns the index of the first not
// delivered; space is what a lossless one waits on, err why one was
// refused. What is left to do without the lock is in b.
func (n *Network) deliverBatch(from *Port, frames [][]byte, sent, attempt int, b *frameBatch) (_ int, space <-chan struct{}, err error) {
	var hdr vnet.Hdr // zero: plain frames
	n.mu.Lock()
	defer n.mu.Unlock() // last, even if what follows panics
	n.batching = true
	n.batchSeq++
	defer func() { n.batching, n.batchSpace = false, nil }()
	defer n.flushBatch(b)
	for end := min(len(frames), sent+framesPerLock); sent < end; sent++ {
		at := len(b.links)
		b.links, b.wakes, _, space, err = n.deliverLocked(from, hdr, frames[sent], false, b.links, b.wakes, attempt, &b.vlan)
		if err != nil || space != nil {
			break
		}
		attempt = 0
		if testHookBatchFrame != nil {
			testHookBatchFrame(n, sent)
		}
		if len(b.links) > at {
			b.runs = append(b.runs, linkRun{frame: sent, from: at, to: len(b.links)})
		}
		b.runs, b.links = b.vlan.batchRuns(sent, frames[sent], b.runs, b.links)
	}
	return sent, space, err
}

// testHookBatchFrame, if set, runs in deliverBatch after each frame.
var testHookBatchFrame func(n *Network, frame int)

// spaceWait is n.space.Wait, taken once per batch. Called with n.mu
// held.
func (n *Network) spaceWait() <-chan struct{} {
	if !n.batching {
		return n.space.Wait()
	}
	if n.batchSpace == nil {
		n.batchSpace = n.space.Wait()
	}
	return n.batchSpace
}

// enqueueQuiet batches f for p during a batch; flushBatch puts it in p's
// queue at the end, with what else the batch holds for p. Called with
// n.mu held.
func (n *Network) enqueueQuiet(p *Port, f []byte, ch *charge) bool {
	if p.queuedInBatch() >= n.set.Qlen {
		return false
	}
	if len(p.batched) == 0 {
		n.signal = append(n.signal, p)
	}
	p.batched = append(p.batched, queued{f, ch})
	return true
}

// flushBatch puts in each port's queue what the batch holds for it, under
// one hold of the queue's lock, and appends to b the ports whose readers
// to wake and the polls to wake; the counters are added to once per port,
// not per packet (the readers share their cache lines). A queue that
// refuses some (closed under the batch) drops them. Called with n.mu
// held.
func (n *Network) flushBatch(b *frameBatch) {
	var delivered uint64
	for _, p := range n.signal {
		k, wake := p.q.PutMany(p.batched, n.set.Qlen)
		if wake != nil {
			b.wakes = append(b.wakes, wake)
		}
		var bytes uint64
		for _, e := range p.batched[:k] {
			bytes += uint64(len(e.pkt))
		}
		p.rxPkts.Add(uint64(k))
		p.rxBytes.Add(bytes)
		delivered += uint64(k)
		for _, e := range p.batched[k:] {
			n.dropAt(p)
			b.wakes = append(b.wakes, e.ch.release)
		}
		clear(p.batched)
		p.batched = p.batched[:0]
		if cap(p.batched) > framesPerLock {
			p.batched = nil
		}
		b.signal = append(b.signal, p)
	}
	n.delivered.Add(delivered)
	clear(n.signal)
	n.signal = n.signal[:0]
}

// writeFrameLinks writes the frames that a batch routed to links, with
// n.mu not held, each behind a zero virtio-net header in a borrowed
// buffer (links do not keep what they are given).
func (n *Network) writeFrameLinks(frames [][]byte, links []*Port, runs []linkRun) {
	if len(runs) == 0 {
		return
	}
	bp := rawBufs.Get().(*[]byte)
	for _, r := range runs {
		if r.raw != nil {
			n.writeLinks(links[r.from:r.to], r.raw, nil, true)
			continue
		}
		raw := append(append((*bp)[:0], make([]byte, vnet.HdrLen)...), frames[r.frame]...)
		n.writeLinks(links[r.from:r.to], raw, nil, true)
		*bp = raw[:0]
	}
	rawBufs.Put(bp)
}

// refuseLength keeps and logs, as for a refused packet, why a stream
// write stopped at a bad length.
func (n *Network) refuseLength(from *Port, size, mtu int) {
	why := "a stream length of 0"
	if size > 0 {
		why = fmt.Sprintf("longer than the mtu (%d)", mtu)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.logReject(from, why, size)
}

// mtu is the network's current mtu.
func (n *Network) mtu() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.set.MTU
}

// streamHandle is an open stream file: a port (of the network, or of a
// VLAN as an access port) read and written in VDE's stream format. Any
// file that joins a port makes one with newStreamHandle.
type streamHandle struct {
	p *Port

	// wlock is held by the write in progress, which may wait (lossless):
	// another write of the same open file waits for it interruptibly.
	wlock chan struct{}
	in    streamIn
	cut   streamCut
	// keptPaid is what the writer's payer is charged for the kept frame.
	keptPaid int64

	// rmu orders reads, held only while packets are taken and copied,
	// never while a read waits.
	rmu sync.Mutex
	// pend is the packet a short read began, pendOff how much of it
	// (its length included) was read; pending says pend is set, for
	// Poll, which does not take rmu.
	pend    []byte
	pendOff int
	pending atomic.Bool
	// pendCh is pend's charge, held (holdCharge) as the queue let it go.
	pendCh *charge
}

var (
	_ netcore.Handle   = (*streamHandle)(nil)
	_ netcore.Poller   = (*streamHandle)(nil)
	_ netcore.Streamer = (*streamHandle)(nil)
)

func newStreamHandle(p *Port) *streamHandle {
	return &streamHandle{p: p, wlock: make(chan struct{}, 1)}
}

// Stream: a stream file has no position, and a read blocked on it must
// not hold up a write of the same descriptor (FOPEN_STREAM).
func (h *streamHandle) Stream() bool { return true }

// Write sends the whole frames of b (and of what the last write kept
// before them); a frame b ends inside is kept for the next write. It
// returns len(b), or, when a bad frame, a signal or the lack of room
// (lossless, with nonblock) stopped it, the bytes up to the end of the
// last frame sent; EINVAL when a bad frame comes first, the error that
// stopped it when no frame was sent.
func (h *streamHandle) Write(ctx context.Context, b []byte, _ int64, nonblock bool) (int, error) {
	p := h.p
	if !p.send {
		return 0, syscall.EBADF
	}
	if len(b) == 0 {
		return 0, nil
	}
	select {
	case h.wlock <- struct{}{}:
	default:
		if nonblock {
			return 0, syscall.EAGAIN
		}
		select {
		case h.wlock <- struct{}{}:
		case <-ctx.Done():
			return 0, syscall.EINTR
		}
	}
	defer func() { <-h.wlock }()
	mtu := p.net.mtu()
	c := &h.cut
	total := 0
	var err error
	for {
		h.in.parse(b[total:], mtu, c)
		var sent int
		sent, err = p.net.sendFrames(ctx, p, c.frames, nonblock)
		if errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.EINVAL) {
			c.refused(sent)
			err = nil
		} else if c.bad && sent == len(c.frames) {
			p.net.refuseLength(p, c.badLen, mtu)
		}
		total += h.in.commit(b[total:], c, sent)
		h.chargeKept(ctx, nonblock)
		if err != nil || !c.more {
			break
		}
	}
	bad := c.bad
	clear(c.frames) // not to keep the caller's buffer alive
	c.frames, c.ends = c.frames[:0], c.ends[:0]
	if cap(c.frames) > framesPerLock {
		c.frames, c.ends = nil, nil
	}
	switch {
	case total > 0:
		return total, nil
	case bad:
		return 0, syscall.EINVAL
	}
	return 0, err
}

// chargeKept charges the writer's payer for the kept frame's buffer as it
// grows, and gives back what it no longer holds. On a lossless network a
// blocking writer waits for the budget, as a lossless data write does.
// A charge refused (the budget spent, and no wait, or a signal ended it)
// discards the frame, a drop as a data write's frame past the budget is:
// the rest of its bytes are taken and let go. Called with wlock held.
func (h *streamHandle) chargeKept(ctx context.Context, nonblock bool) {
	payer := h.p.payer
	if payer == nil {
		return
	}
	switch want := h.in.keptBody(); {
	case want > h.keptPaid:
		take := func() error { return payer.Take(netcore.Queued, want-h.keptPaid) }
		if h.p.net.lossless.Load() && !nonblock {
			take = func() error { return payer.TakeWaiting(ctx, want-h.keptPaid) }
		}
		if err := take(); err != nil {
			h.in.discardKept()
			h.p.net.drops.Add(1)
			payer.Release(netcore.Queued, h.keptPaid)
			h.keptPaid = 0
			return
		}
		h.keptPaid = want
	case want < h.keptPaid:
		payer.Release(netcore.Queued, h.keptPaid-want)
		h.keptPaid = want
	}
}

// holdCharge keeps ch, the charge of a packet a queue lets go, for a
// short read that leaves its end pending: the packet stays counted where
// it was until releaseHeld. The extra hold costs no queue entry.
func holdCharge(ch *charge) {
	if ch != nil {
		ch.refs.Add(1)
	}
}

// releaseHeld lets go of what holdCharge kept.
func releaseHeld(ch *charge) {
	if ch != nil && ch.refs.Add(-1) == 0 {
		ch.payer.Release(netcore.Queued, ch.size)
	}
}

// Read returns as many whole queued frames as fit in b, each behind its
// length; a b too small for the next frame gets its first bytes and the
// next reads the rest. It waits only while nothing is queued.
func (h *streamHandle) Read(ctx context.Context, b []byte, _ int64, nonblock bool) (int, error) {
	p := h.p
	if !p.recv {
		return 0, syscall.EBADF
	}
	if len(b) == 0 {
		return 0, nil
	}
	for {
		k, err := h.readOnce(b)
		switch {
		case k > 0:
			return k, nil
		case err == io.EOF:
			return 0, nil
		case err != syscall.EAGAIN || nonblock:
			return 0, err
		}
		if err := p.q.Wait(ctx); err != nil {
			return 0, err
		}
	}
}

// readOnce is readLocked under rmu.
func (h *streamHandle) readOnce(b []byte) (int, error) {
	h.rmu.Lock()
	defer h.rmu.Unlock() // a contained panic must not leave later reads stuck
	return h.readLocked(b)
}

// readLocked fills b from what is pending and queued, without waiting.
// Called with rmu held.
func (h *streamHandle) readLocked(b []byte) (int, error) {
	k := 0
	if h.pend != nil {
		k = h.readPending(b)
		if k == len(b) {
			return k, nil
		}
	}
	// Packets are taken a chunk at a time, into a buffer on the stack.
	var chunk [readChunk]queued
	room, taken, inChunk, cut := len(b)-k, 0, 0, false
	take := func(e queued) bool {
		if inChunk == readChunk {
			return false // the next call takes on
		}
		size := streamLenSize + len(e.pkt)
		switch {
		case size <= room:
			room -= size
		case k == 0 && taken == 0:
			cut, room = true, 0 // not even one fits: its first bytes
			if len(e.pkt) > 0 && len(e.pkt) <= MaxMTU {
				holdCharge(e.ch) // before the queue lets it go
			}
		default:
			return false
		}
		taken++
		inChunk++
		return true
	}
	var items []queued
	var err error
	for {
		inChunk = 0
		items, err = h.p.q.GetMany(chunk[:0], take)
		for i, e := range items {
			if len(e.pkt) == 0 || len(e.pkt) > MaxMTU {
				continue // not a frame the format can carry
			}
			if cut && i == len(items)-1 {
				h.pend, h.pendOff, h.pendCh = e.pkt, 0, e.ch
				h.pending.Store(true)
				k += h.readPending(b[k:])
				break
			}
			binary.BigEndian.PutUint16(b[k:], uint16(len(e.pkt)))
			k += streamLenSize + copy(b[k+streamLenSize:], e.pkt)
		}
		clear(items)
		if err != nil || inChunk < readChunk || cut || room <= streamLenSize {
			break
		}
	}
	if taken > 0 && h.p.net.lossless.Load() {
		h.p.net.space.Broadcast()
	}
	switch {
	case k > 0:
		return k, nil
	case err == nil:
		return 0, syscall.EAGAIN // all it took were packets the format cannot carry
	}
	return 0, err
}

// readPending copies to b what is left of the packet a short read began.
func (h *streamHandle) readPending(b []byte) int {
	var lb [streamLenSize]byte
	binary.BigEndian.PutUint16(lb[:], uint16(len(h.pend)))
	k := 0
	if h.pendOff < streamLenSize {
		k = copy(b, lb[h.pendOff:])
	}
	if off := h.pendOff + k; off >= streamLenSize {
		k += copy(b[k:], h.pend[off-streamLenSize:])
	}
	h.pendOff += k
	if h.pendOff == streamLenSize+len(h.pend) {
		releaseHeld(h.pendCh)
		h.pend, h.pendOff, h.pendCh = nil, 0, nil
		h.pending.Store(false)
	}
	return k
}

// Poll is the port's readiness (Port.Poll), and readable while a frame a
// short read began is left to read.
func (h *streamHandle) Poll(events uint32, wake func()) uint32 {
	ready := h.p.Poll(events, wake)
	if h.p.recv && events&(netcore.PollIn|netcore.PollRdNorm) != 0 && h.pending.Load() {
		ready |= netcore.PollIn | netcore.PollRdNorm
	}
	return ready
}

func (h *streamHandle) Close() {
	h.p.Close()
	// What the file held outside the queue: the kept frame, the end of
	// a packet a short read began. No read or write is under way.
	h.wlock <- struct{}{}
	if h.keptPaid > 0 {
		h.p.payer.Release(netcore.Queued, h.keptPaid)
		h.keptPaid = 0
	}
	h.in.reset()
	h.in.body = nil
	<-h.wlock
	h.rmu.Lock()
	releaseHeld(h.pendCh)
	h.pend, h.pendCh = nil, nil
	h.rmu.Unlock()
	h.p.net.fam.log.Debug("port left", "network", h.p.net.name, "port", h.p.id)
}
