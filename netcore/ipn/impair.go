// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
)

// Link emulation: a network plays a bad wire on what it delivers to a
// port (impair PORT ...) or on every delivery (impair all ...), the
// all stage first. Each frame is lost, duplicated or corrupted as the
// impairment's choices say, then waits its turn on the rate and its
// delay in the network's one scheduler: a heap of waiting frames and one
// goroutine with one timer, made with the first impairment and gone
// with the last. A network without impairments has n.imp nil and pays
// one nil check per frame.
//
// Every frame draws its choices from the impairment's own PRNG, one draw
// per frame in the order frames reach it, so with a seed the same
// traffic is impaired the same way on every run.

// impairState is a network's impairments and scheduler; the network's
// mu guards everything but the scheduler's heap.
type impairState struct {
	all   *impairment
	ports map[*Port]*impairment
	hit   []*Port // scratch: the targets of the frame in hand that are impaired
	sched *impairSched
}

// impairCounters are the network's impair- counters in stats.
type impairCounters struct{ drops, dups, corrupted atomic.Uint64 }

// impairment is one impair line in force: its parameters, its PRNG and
// what waits in it. Guarded by the network's mu.
type impairment struct {
	spec    impairSpec
	rng     *rand.PCG
	waiting int       // frames scheduled and not yet released
	last    time.Time // when the last delayed frame leaves: later ones keep the order
	free    time.Time // when the rate's wire is free again
}

// impairStream is the PCG stream of every impairment; the seed picks the
// sequence.
const impairStream = 0x6d6e6574696d7072

func newImpairment(s impairSpec) *impairment {
	seed := s.seed
	if !s.seeded {
		seed = rand.Uint64()
	}
	return &impairment{spec: s, rng: rand.NewPCG(seed, impairStream)}
}

// impairChoices are one frame's random choices.
type impairChoices struct {
	loss, dup, corrupt, reorder bool
	jitter                      [2]float64 // in [-1, 1): the frame's and its duplicate's
	bit                         uint64     // picks the bit corrupt flips
}

// choose draws the next frame's choices: one step of the PRNG per frame,
// whatever the parameters, so that the choices of the k-th frame depend
// on the seed and k only.
func (m *impairment) choose() (c impairChoices) {
	x := m.rng.Uint64()
	next := func() uint64 { // splitmix64 from the frame's draw
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		return z ^ z>>31
	}
	hit := func(p int) bool { return int(next()%percentScale) < p }
	c.loss = hit(m.spec.loss)
	c.dup = hit(m.spec.dup)
	c.corrupt = hit(m.spec.corrupt)
	c.reorder = hit(m.spec.reorder)
	for i := range c.jitter {
		c.jitter[i] = float64(next()>>11)/(1<<53)*2 - 1
	}
	c.bit = next()
	return c
}

// txTime is how long size bytes take on a wire of bps bits per second.
func txTime(size int, bps uint64) time.Duration {
	return time.Duration(uint64(size) * 8 * uint64(time.Second) / bps)
}

// backlogged reports whether a frame of size bytes arriving at now would
// wait more than MaxImpairBacklog for its turn on the rate.
func (m *impairment) backlogged(now time.Time, size int) bool {
	if m.spec.rate == 0 {
		return false
	}
	return max(m.free.Sub(now), 0)+txTime(size, m.spec.rate) > MaxImpairBacklog
}

// schedule says when a frame of size bytes arriving at now leaves m: its
// turn on the rate (frames queue behind each other), then its delay with
// jitter, but never before the frame ahead of it unless reorder lets it
// skip the delay.
func (m *impairment) schedule(now time.Time, size int, jitter float64, reorder bool) time.Time {
	at := now
	if m.spec.rate > 0 {
		if m.free.Before(now) {
			m.free = now // an idle wire: no credit saved up
		}
		m.free = m.free.Add(txTime(size, m.spec.rate))
		at = m.free
	}
	if (m.spec.delay > 0 || m.spec.jitter > 0) && !reorder {
		at = at.Add(m.spec.delay + time.Duration(jitter*float64(m.spec.jitter)))
		if at.Before(m.last) {
			at = m.last
		}
		m.last = at
	}
	return at
}

// impairItem is one frame waiting in an impairment for one port.
type impairItem struct {
	at    time.Time
	seq   uint64 // order of scheduling: the tie-break, so equal times keep it
	stage *impairment
	all   bool // in the all stage: the port's comes next
	to    *Port
	left  bool   // to left the network: the frame is dropped when popped
	buf   []byte // vnet.HdrLen zero bytes (a plain frame), then the frame
	ch    *charge
}

func (x *impairItem) frame() []byte { return x.buf[vnet.HdrLen:] }

// impairHeap orders waiting frames by time, then by scheduling order.
type impairHeap []*impairItem

func (h impairHeap) Len() int { return len(h) }
func (h impairHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h impairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *impairHeap) Push(x any)   { *h = append(*h, x.(*impairItem)) }
func (h *impairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// impairSched is a network's one timer: the frames that wait, and the
// goroutine that releases them when due. The timer is armed, under mu,
// to the earliest waiting frame whenever that changes. Lock order: the
// network's mu, then mu.
type impairSched struct {
	mu    sync.Mutex
	items impairHeap
	seq   uint64
	quit  bool
	timer impairTimer
	gone  bool          // the timer is closed: its descriptor may be another's now
	done  chan struct{} // closed when the goroutine ends
}

// arm arms the timer to fire in d, unless it is closed. Called with mu
// held.
func (s *impairSched) arm(d time.Duration) {
	if !s.gone {
		s.timer.arm(d)
	}
}

func newImpairSched() *impairSched {
	return &impairSched{timer: newImpairTimer(), done: make(chan struct{})}
}

// kick wakes the goroutine at once: to look whether it is still needed.
func (s *impairSched) kick() {
	s.mu.Lock()
	s.arm(0)
	s.mu.Unlock()
}

// push schedules x; the timer is armed again if x is now the earliest.
func (s *impairSched) push(x *impairItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x.seq = s.seq
	s.seq++
	heap.Push(&s.items, x)
	if s.items[0] == x {
		s.arm(time.Until(x.at))
	}
}

// due pops the frames due at now into out and arms the timer for the
// next one (or disarms it); quit says the scheduler is stopped.
func (s *impairSched) due(now time.Time, out []*impairItem) (_ []*impairItem, quit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.items) > 0 && !s.items[0].at.After(now) {
		out = append(out, heap.Pop(&s.items).(*impairItem))
	}
	switch {
	case s.quit:
	case len(s.items) > 0:
		s.arm(s.items[0].at.Sub(now))
	default:
		s.timer.disarm()
	}
	return out, s.quit
}

// flush makes the frames waiting in m due now: an impairment switched
// off lets its frames go on at once.
func (s *impairSched) flush(m *impairment, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.items {
		if x.stage == m {
			x.at = now
		}
	}
	heap.Init(&s.items)
	s.arm(0)
}

// dropFor makes the frames waiting for p due now, marked left (p left
// the network), and returns how many there are.
func (s *impairSched) dropFor(p *Port, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := 0
	for _, x := range s.items {
		if x.to == p && !x.left {
			x.at, x.left = now, true
			k++
		}
	}
	if k > 0 {
		heap.Init(&s.items)
		s.arm(0)
	}
	return k
}

// stop ends the goroutine and returns what still waits.
func (s *impairSched) stop() []*impairItem {
	s.mu.Lock()
	s.quit = true
	items := s.items
	s.items = nil
	s.arm(0)
	s.mu.Unlock()
	<-s.done
	return items
}

func (s *impairSched) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items) == 0
}

// runImpair is the scheduler's goroutine: it releases what is due, then
// sleeps until the timer fires (the next frame is due, an earlier one
// was pushed, or it is kicked). It ends when the network stops or has no
// impairment and nothing waits.
func (n *Network) runImpair(s *impairSched) {
	defer close(s.done)
	defer func() {
		s.mu.Lock()
		s.gone = true
		s.timer.close()
		s.mu.Unlock()
	}()
	var due []*impairItem
	for {
		var quit bool
		due, quit = n.releaseImpaired(s, due[:0])
		if quit {
			return
		}
		if len(due) > 0 {
			clear(due)
			continue
		}
		if n.impairIdle(s) {
			return
		}
		s.timer.wait()
	}
}

// impairIdle drops the network's impair state if it has no impairment
// left and nothing waits: the network is back to its cost without.
func (n *Network) impairIdle(s *impairSched) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.imp
	if st == nil || st.sched != s {
		return true
	}
	if st.all != nil || len(st.ports) > 0 || !s.empty() {
		return false
	}
	n.imp = nil
	return true
}

func releaseAll(items []*impairItem) {
	for _, x := range items {
		x.ch.release()
	}
}

// releaseImpaired takes the frames due from s (appended to buf) and
// passes them on: from the all stage to the port's impairment if it has
// one, else to the port, by the rules of its queue (a full queue drops
// and counts, as any delivery). They are taken under n.mu, so that a
// port that leaves finds every frame for it in s (forgetImpairLocked).
// quit says s is stopped. A panic is contained to the frames in hand:
// they are lost, counted and logged, their charges given back once.
func (n *Network) releaseImpaired(s *impairSched, buf []*impairItem) (due []*impairItem, quit bool) {
	due = buf
	var out []*impairItem // frames for links, written once n.mu is released
	var wakes []func()
	defer func() {
		if r := recover(); r != nil {
			n.panicked(r, "panic releasing impaired frames; frames dropped")
			n.settleImpaired(due, out, &wakes)
		}
	}()
	func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		now := time.Now()
		due, quit = s.due(now, due)
		if quit {
			return
		}
		for i, x := range due {
			x.stage.waiting--
			f := x.frame()
			netcore.TestHook("IMPAIR", f)
			// x passes on below, its charge with it: a panic from here
			// may lose the charge, but never gives it back twice.
			due[i] = nil
			switch {
			case n.closed || x.left: // a frame for a port that left was counted then
				wakes = append(wakes, x.ch.release)
			case x.all && n.imp != nil && n.imp.ports[x.to] != nil:
				wakes = n.impairAdmit(n.imp.ports[x.to], false, x.to, f, x.ch.payer, x, now, wakes)
			case x.to.link != nil:
				out = append(out, x)
			case x.to.q.Closed():
				wakes = append(wakes, x.ch.release) // the port left
			default:
				wakes = n.enqueueAt(x.to, f, x.ch, wakes)
			}
			netcore.TestHook("RELEASED", f)
		}
	}()
	if quit {
		releaseAll(due)
		return due, quit
	}
	runWakes(&wakes)
	for i, x := range out {
		n.writeLink(x.to, x.buf, len(x.frame()), true)
		out[i] = nil
		x.ch.release()
	}
	return due, quit
}

// settleImpaired finishes, after a panic, what releaseImpaired held:
// the charges of the frames still in due and out (those not passed on)
// are given back, and the releases and wakeups collected are run. A
// panic in one of them is contained, and each runs once.
func (n *Network) settleImpaired(due, out []*impairItem, wakes *[]func()) {
	for _, xs := range [][]*impairItem{due, out} {
		for i, x := range xs {
			if x != nil {
				xs[i] = nil
				*wakes = append(*wakes, x.ch.release)
			}
		}
	}
	for len(*wakes) > 0 {
		func() {
			defer func() {
				if r := recover(); r != nil {
					n.panicked(r, "panic settling impaired frames")
				}
			}()
			runWakes(wakes)
		}()
	}
}

// runWakes calls the funcs of *wakes in order, each taken off before it
// is called: after a panic in one, the rest are still there to run.
func runWakes(wakes *[]func()) {
	for len(*wakes) > 0 {
		w := (*wakes)[0]
		*wakes = (*wakes)[1:]
		w()
	}
}

// impairSplit moves the targets of the frame in hand that are impaired
// from n.targets to n.imp.hit. Called with n.mu held, n.imp not nil.
func (n *Network) impairSplit() {
	st := n.imp
	st.hit = st.hit[:0]
	if st.all == nil && len(st.ports) == 0 {
		return
	}
	k := 0
	for _, p := range n.targets {
		if st.all != nil || st.ports[p] != nil {
			st.hit = append(st.hit, p)
			continue
		}
		n.targets[k] = p
		k++
	}
	n.targets = n.targets[:k]
}

// impairLocked hands a frame sent into the network to the impairments of
// the targets impairSplit set aside: each gets its own copy, charged to
// impairPayer's queued bytes while it waits; a frame with offloads is
// cut into wire frames first. Called with n.mu held.
func (n *Network) impairLocked(from *Port, frame []byte, plain bool, segmented func() [][]byte) {
	st := n.imp
	frames := [][]byte{frame}
	if !plain {
		frames = segmented()
	}
	now := time.Now()
	for _, p := range st.hit {
		payer := n.impairPayer(from, p)
		m, all := st.all, true
		if m == nil {
			m, all = st.ports[p], false
		}
		for _, f := range frames {
			// In the form p gets it in its VLAN (vlan.go).
			n.impairAdmit(m, all, p, n.vlanOut(p, f), payer, nil, now, nil) // nothing to release: no frame in hand
		}
	}
	st.hit = st.hit[:0]
}

// impairPayer is who pays for a copy from from waiting for to: a file
// port's writer, as for what it queues; for a frame from a link (all of
// uid 0, or a VDE client's), the receiving file port's opener, as
// queueFrame has it, else the network's owner. Never a privileged payer
// for a link's frame: what a link sends is anyone's doing (a ping to the
// userspace host, a remote VXLAN peer), and must meet a user's per-uid
// limit, not eat root's reserve. Called with n.mu held.
func (n *Network) impairPayer(from, to *Port) *netcore.Payer {
	switch {
	case from.payer != nil:
		return from.payer
	case to.payer != nil:
		return to.payer
	default:
		return n.owner
	}
}

// impairAdmit passes frame f for port p into impairment m (all: the
// network's all stage): it is lost, or corrupted and duplicated as m's
// choices say, and each copy is scheduled, or dropped past m's limit or
// the payer's budget. in, if not nil, is the frame coming from the all
// stage, with its buffer and charge; its charge, if let go, is appended
// to wakes, to be released once n.mu is (a new frame's is taken only
// once it is sure to wait). Called with n.mu held.
func (n *Network) impairAdmit(m *impairment, all bool, p *Port, f []byte, payer *netcore.Payer, in *impairItem, now time.Time, wakes []func()) []func() {
	c := m.choose()
	if c.loss {
		n.impStats.drops.Add(1)
		if in != nil {
			wakes = append(wakes, in.ch.release)
		}
		return wakes
	}
	k := 1
	if c.dup {
		k = 2
		n.impStats.dups.Add(1)
	}
	var copies [2]*impairItem
	for i := range k {
		// Past the limit, or past the rate's backlog, the copy is dropped.
		if m.waiting >= m.spec.queueLimit() || m.backlogged(now, len(f)) {
			n.impStats.drops.Add(1)
			if i == 0 && in != nil {
				wakes = append(wakes, in.ch.release)
			}
			continue
		}
		x := in
		if i > 0 || in == nil {
			ch, err := newCharge(payer, len(f), 1)
			if err != nil {
				n.impStats.drops.Add(1)
				continue
			}
			buf := make([]byte, vnet.HdrLen+len(f))
			copy(buf[vnet.HdrLen:], f)
			x = &impairItem{to: p, buf: buf, ch: ch}
		}
		m.waiting++
		x.at = m.schedule(now, len(f), c.jitter[i], c.reorder)
		x.stage, x.all = m, all
		copies[i] = x
	}
	// The duplicate is a copy of the frame as it came (made above); corrupt
	// changes the first. A frame with no byte after its Ethernet header
	// has no bit corrupt may flip: it passes as it is.
	if x := copies[0]; c.corrupt && x != nil && len(f) > ethHeaderLen {
		bits := uint64(len(f)-ethHeaderLen) * 8
		bit := c.bit % bits
		x.frame()[ethHeaderLen+int(bit/8)] ^= 1 << (bit % 8)
		n.impStats.corrupted.Add(1)
	}
	for _, x := range copies[:k] {
		if x != nil {
			n.imp.sched.push(x)
		}
	}
	return wakes
}

// applyImpairLocked puts an impair line in force: p's impairment (or
// the all stage's) is replaced, or with off removed, its waiting frames
// let go at once. Frames waiting in a replaced one keep their times.
// Called with n.mu held.
func (n *Network) applyImpairLocked(l impairLine) *ctlError {
	var p *Port
	if !l.all {
		if p = n.portOfRefLocked(l.port); p == nil {
			return ctlErr(syscall.ENODEV, "%s: no such port on this network", l.port)
		}
	}
	st := n.imp
	if st == nil {
		if l.spec == nil {
			return nil // off, and nothing was on
		}
		if n.closed {
			// Its scheduler is stopped for good (a ctl file still
			// open after rmdir).
			return ctlErr(syscall.ENOENT, "the network is gone")
		}
		st = &impairState{ports: map[*Port]*impairment{}, sched: newImpairSched()}
		n.imp = st
		go n.runImpair(st.sched)
	}
	var old *impairment
	if p == nil {
		old = st.all
		st.all = nil
		if l.spec != nil {
			st.all = newImpairment(*l.spec)
		}
	} else {
		old = st.ports[p]
		delete(st.ports, p)
		if l.spec != nil {
			st.ports[p] = newImpairment(*l.spec)
		}
	}
	if old != nil && l.spec == nil {
		st.sched.flush(old, time.Now())
	}
	st.sched.kick() // an idle scheduler looks whether it is still needed
	return nil
}

// forgetImpairLocked drops the impairment of a port that leaves, and the
// frames waiting for it in any stage: counted in impair-drops now, their
// charges given back by the scheduler at once (not under n.mu: a release
// may wake polls). Called with n.mu held.
func (n *Network) forgetImpairLocked(p *Port) {
	st := n.imp
	if st == nil {
		return
	}
	delete(st.ports, p)
	if k := st.sched.dropFor(p, time.Now()); k > 0 {
		n.impStats.drops.Add(uint64(k))
	}
	st.sched.kick() // an idle scheduler looks whether it is still needed
}

// stopImpair ends the scheduler of a network that shuts down and drops
// what waits.
func (n *Network) stopImpair() {
	n.mu.Lock()
	st := n.imp
	n.imp = nil
	n.mu.Unlock()
	if st != nil {
		releaseAll(st.sched.stop())
	}
}

// impairLinesLocked are the impair lines in force, in the form that sets
// them: all first, then the ports in their order. With saved, only those
// a restart can restore (all, and attachments), without the word.
// Called with n.mu held.
func (n *Network) impairLinesLocked(saved bool) []string {
	st := n.imp
	if st == nil {
		return nil
	}
	word := "impair "
	if saved {
		word = ""
	}
	var out []string
	if st.all != nil {
		out = append(out, word+"all "+st.all.spec.String())
	}
	for _, p := range n.portList {
		m := st.ports[p]
		if m == nil || (saved && p.spec == nil) {
			continue
		}
		out = append(out, word+portRefOf(p)+" "+m.spec.String())
	}
	return out
}

// restoreImpairs puts saved impair lines in force again, once the
// attachments are restored; a line whose port is not there (its
// namespace is gone) is logged and dropped.
func (n *Network) restoreImpairs(lines []string) {
	for _, line := range lines {
		l, bad := parseImpair(line)
		if bad == nil {
			if l.port.link != nil {
				l.port.link.anyNS = true // saved by name, as no namespace sees it
			}
			n.mu.Lock()
			bad = n.applyImpairLocked(l)
			n.mu.Unlock()
		}
		if bad != nil {
			n.fam.log.Error("state file: impair line not restored", "network", n.name, "line", line, "err", bad.reason)
		}
	}
}
