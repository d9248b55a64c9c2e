// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Policy is a network's delivery policy, by its ctl name.
type Policy string

// Delivery policies.
const (
	PolicyHub    Policy = "hub"    // every packet to every other port
	PolicySwitch Policy = "switch" // an Ethernet learning switch
)

// Limits and defaults from SPEC.md.
const (
	DefaultMTU      = 65535
	MinMTU          = 64
	MaxMTU          = 65535
	DefaultQlen     = 256
	MaxQlen         = 65536
	DefaultMaxPorts = 1024
	MaxMaxPorts     = 65536
	MaxDescr        = 128
)

// Settings are a network's ctl-visible configuration.
type Settings struct {
	Policy   Policy `json:"policy"`
	MTU      int    `json:"mtu"`
	Qlen     int    `json:"qlen"`
	Lossless bool   `json:"lossless"`
	MaxPorts int    `json:"maxports"`
	Descr    string `json:"descr"`
	Persist  bool   `json:"persist"`
	// Services are the services (package link) switched on or off by
	// ctl; one not in the map has its default. Never changed in place
	// (see withService).
	Services map[string]bool `json:"services,omitempty"`
}

// DefaultSettings are those of a new network.
func DefaultSettings() Settings {
	return Settings{Policy: PolicyHub, MTU: DefaultMTU, Qlen: DefaultQlen, MaxPorts: DefaultMaxPorts}
}

// Rights are IPN's rights on a network: receive, send, manage (r, w, x).
type Rights uint32

const (
	RightManage Rights = 1
	RightSend   Rights = 2
	RightRecv   Rights = 4
)

// Network is one IPN network: ports, a delivery policy and counters.
type Network struct {
	name string
	fam  *ipnFamily

	// linkWaiter waits for the link queues that are idle (waiter.go);
	// made once, on first use.
	waiterOnce sync.Once
	linkWaiter atomic.Pointer[linkWaiter]

	dir                           *netDir
	data, ctl, ports, stats, pcap *netFile
	stream                        *netFile
	vlanDir                       *vlanDir

	// mu guards everything below and serializes delivery, which keeps
	// packet order and makes the lossless "room for all" check exact.
	mu        sync.Mutex
	uid, gid  uint32
	owner     *netcore.Payer // the owner's (never privileged): the count of networks, impaired frames between links
	mode      uint32
	mtime     time.Time
	set       Settings
	lastError string
	portList  []*Port
	nextPort  int
	closed    bool
	fdb       fdb
	targets   []*Port // scratch for send
	files     []*Port // scratch for send: the targets that queue
	ready     []*Port // scratch for send: those with room
	captures  []*capture
	// vlanOn: some port has a VLAN setting, and frames are classified
	// (vlan.go); vf is the frame being delivered, as 802.1Q sees it.
	vlanOn bool
	vf     vlanFrame
	// svcVLANs are the VLAN settings of service port numbers ("vde:5"),
	// kept whether or not a client has the number now.
	svcVLANs map[string]*portVLAN

	packets, bytes, pcapDrops, vlanDrops uint64
	// delivered and drops are also counted by interface writes, which
	// run without mu.
	delivered, drops atomic.Uint64
	// panics counts the panics contained on the network's frame paths
	// (panicked).
	panics atomic.Uint64

	// batching: a stream's writer delivers many frames under this hold
	// of mu; each port's share goes into its queue at the end, with one
	// wakeup of its reader (flushBatch, in stream.go). Guarded by mu.
	batching bool
	batchSeq uint64 // counts batches, for Port.queuedInBatch
	// batchSpace is the space notifier's channel taken at the batch's
	// first lossless frame: a room made since closes it, so one is
	// enough for the whole batch.
	batchSpace <-chan struct{}
	signal     []*Port // the ports with packets batched for them

	rejects      int       // refused packets not yet logged
	rejectLogged time.Time // when the last "packet refused" line was logged

	// lossless mirrors set.Lossless for receivers, which do not take mu.
	lossless atomic.Bool
	// space is broadcast when a queue may have room again (lossless senders
	// wait on it).
	space netcore.Notifier

	// svcMu orders the starts and stops of services; running are the
	// services serving this network, by name (guarded by svcMu).
	svcMu   sync.Mutex
	running map[string]link.Stopper

	// exts are the network's extensions (package link), made with it.
	exts []*extension

	// waiting are saved attachments whose namespace was not there at
	// start (where.go); guarded by mu. waitMu is held while they are
	// tried again.
	waiting []*waitingLink
	waitMu  sync.Mutex

	// imp is the network's link emulation (impair.go), nil while it has
	// none; guarded by mu. impStats are its counters.
	imp      *impairState
	impStats impairCounters
}

func newNetwork(fam *ipnFamily, name string, uid, gid, mode uint32, set Settings) *Network {
	n := &Network{name: name, fam: fam, uid: uid, gid: gid, mode: mode & 0777,
		mtime: time.Now(), set: set, nextPort: 1, owner: fam.quota.Payer(uid, false)}
	n.lossless.Store(set.Lossless)
	n.fdb.init()
	n.dir = &netDir{id: netcore.NewID(), n: n}
	n.data = &netFile{id: netcore.NewID(), n: n, kind: fileData}
	n.ctl = &netFile{id: netcore.NewID(), n: n, kind: fileCtl}
	n.ports = &netFile{id: netcore.NewID(), n: n, kind: filePorts}
	n.stats = &netFile{id: netcore.NewID(), n: n, kind: fileStats}
	n.pcap = &netFile{id: netcore.NewID(), n: n, kind: filePcap}
	n.stream = &netFile{id: netcore.NewID(), n: n, kind: fileStream}
	n.vlanDir = newVLANDir(n)
	n.newExtensions()
	return n
}

// Name is the network's directory name.
func (n *Network) Name() string { return n.name }

// rights computes what c may do on this network when it wants the rights
// of want (0: any one): the class bits of the mode, as IPN read the mode
// of its socket file, or every right for a holder of CAP_DAC_OVERRIDE
// where those refuse (netcore.Permitted).
func (n *Network) rights(c *netcore.Cred, want Rights) Rights {
	n.mu.Lock()
	mode, uid, gid := n.mode, n.uid, n.gid
	n.mu.Unlock()
	return rightsOf(c, want, mode, uid, gid)
}

func rightsOf(c *netcore.Cred, want Rights, mode, uid, gid uint32) Rights {
	return Rights(netcore.Permitted(c, uint32(want), mode, uid, gid))
}

// Join adds a port opened by payer. It fails with EBUSY at maxports and
// ENOENT once the network is gone.
func (n *Network) Join(payer *netcore.Payer, pid uint32, name string, recv, send bool) (*Port, error) {
	return n.join(payer, pid, name, recv, send, nil)
}

// join is Join for a port of VLAN setting vl (nil: the default).
func (n *Network) join(payer *netcore.Payer, pid uint32, name string, recv, send bool, vl *portVLAN) (*Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, syscall.ENOENT
	}
	if len(n.portList) >= n.set.MaxPorts {
		return nil, syscall.EBUSY
	}
	p := newPort(n, n.nextPort, nil, payer.Uid(), pid, name, recv, send)
	p.payer = payer
	if vl != nil {
		p.vlan, n.vlanOn = vl, true
	}
	n.nextPort++
	n.portList = append(n.portList, p)
	return p, nil
}

func (n *Network) leave(p *Port) {
	n.mu.Lock()
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
	n.mu.Unlock()
	p.shut() // the file is being released: nobody polls it any more
	n.space.Disarm(p)
	n.fam.quota.DisarmQueued(p)
	n.space.Broadcast() // a lossless sender may have been waiting for p
}

// send sends one packet written to a file port. The caller's buffer is
// reused after we return: the copy, with room for a virtio-net header in
// front for links, is shared read-only by every receiver and capture.
func (n *Network) send(ctx context.Context, from *Port, pkt []byte, nonblock bool) error {
	if len(pkt) == 0 {
		return nil
	}
	if !n.lossless.Load() && !from.payer.Fits(netcore.Queued, chargeOf(len(pkt), 1)) {
		// The writer's budget is spent: no queue takes its packet, so
		// it crosses in a borrowed buffer (links write it at once,
		// captures copy it) and a flood past the budget allocates
		// nothing.
		bp := rawBufs.Get().(*[]byte)
		raw := append(append((*bp)[:0], make([]byte, vnet.HdrLen)...), pkt...)
		err := n.transmit(ctx, from, raw, false, nonblock)
		*bp = raw[:0]
		rawBufs.Put(bp)
		return err
	}
	raw := make([]byte, vnet.HdrLen+len(pkt))
	copy(raw[vnet.HdrLen:], pkt)
	return n.transmit(ctx, from, raw, true, nonblock)
}

// rawBufs are buffers for packets that cross without being kept.
var rawBufs = sync.Pool{New: func() any { b := make([]byte, 0, vnet.HdrLen+MaxMTU); return &b }}

// transmit sends raw, a virtio-net header and a frame, into the network.
// owned says raw may be kept (a file port's copy); a link's read buffer is
// not, and is copied only for receivers that queue it. Frames to links are
// written after the mutex is released, so the network is not held across
// system calls, and a frame with offloads (a TCP segment of up to 64 KiB,
// a checksum left to fill in) crosses to links that take offloads
// (link.CapGSO) as it came; file ports, captures and other links get it
// segmented in software.
func (n *Network) transmit(ctx context.Context, from *Port, raw []byte, owned, nonblock bool) error {
	hdr := vnet.Decode(raw)
	frame := raw[vnet.HdrLen:]
	plain := hdr.Plain()
	var linkBuf [8]*Port
	links := linkBuf[:0]
	// Polls armed on the receivers, woken once n.mu is released.
	var wakeBuf [8]func()
	wakes := wakeBuf[:0]
	var frames [][]byte // what queues and captures got, if made
	var vlanLinks vlanEgress
	for attempt := 0; ; attempt++ {
		// A lossless writer waits for room in the queues and in the
		// payers' budgets, which a read in any network may make: the
		// quota's release is taken before looking, not to miss one.
		var freed <-chan struct{}
		doneWaiting := func() {}
		if n.lossless.Load() {
			freed, doneWaiting = n.fam.quota.WaitQueued()
		}
		var space <-chan struct{}
		var err error
		links, wakes, frames, space, err = n.deliver(from, hdr, frame, owned, links, wakes, attempt, &vlanLinks)
		if err != nil || space == nil {
			doneWaiting()
			if err != nil {
				return err
			}
			break
		}
		if freed == nil {
			continue // lossless came on meanwhile: look again, waiting for releases
		}
		if nonblock {
			doneWaiting()
			return syscall.EAGAIN
		}
		select {
		case <-space:
		case <-freed:
		case <-ctx.Done():
			doneWaiting()
			return syscall.EINTR
		}
		doneWaiting()
	}
	for _, wake := range wakes {
		wake()
	}
	n.writeLinks(links, raw, frames, plain)
	vlanLinks.write(n, raw, frames, plain)
	return nil
}

// writeLinks writes a frame that deliver routed to links, with n.mu not
// held: raw as it came to a link that takes it (plain, or one that takes
// offloads), else each of frames, its segments, as a plain frame.
func (n *Network) writeLinks(links []*Port, raw []byte, frames [][]byte, plain bool) {
	for _, p := range links {
		if plain || p.caps&link.CapGSO != 0 {
			n.writeLink(p, raw, len(raw)-vnet.HdrLen, plain)
			continue
		}
		for _, f := range frames {
			seg := make([]byte, vnet.HdrLen+len(f)) // a zero header: a plain frame
			copy(seg[vnet.HdrLen:], f)
			n.writeLink(p, seg, len(f), true)
		}
	}
}

// deliver routes one frame under n.mu: it queues it for the receiving
// file ports and captures, and appends to links the link ports that get
// it and to wakes the polls to wake, for the caller to write and call
// once n.mu is released; frames is what the queues got (the frame cut
// into segments if it carries an offload that a receiver cannot take).
// In a lossless network where some receiver has no room, or the payer of
// the frame no room in its budget, nothing is delivered and space is what
// to wait on (with the quota's releases) before trying again; attempt
// counts the tries, the first of which logs a payer's refusal. Links
// that get the frame in another VLAN form are appended to vlanLinks.
func (n *Network) deliver(from *Port, hdr vnet.Hdr, frame []byte, owned bool, links []*Port, wakes []func(), attempt int,
	vlanLinks *vlanEgress) (
	_ []*Port, _ []func(), frames [][]byte, space <-chan struct{}, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.deliverLocked(from, hdr, frame, owned, links, wakes, attempt, vlanLinks)
}

// deliverLocked is deliver with n.mu held: a stream's writer delivers
// many frames under one hold (sendFrames).
func (n *Network) deliverLocked(from *Port, hdr vnet.Hdr, frame []byte, owned bool, links []*Port, wakes []func(), attempt int,
	vlanLinks *vlanEgress) (
	_ []*Port, _ []func(), frames [][]byte, space <-chan struct{}, err error) {
	plain := hdr.Plain()
	if n.closed {
		return links, wakes, nil, nil, syscall.EPIPE
	}
	size := len(frame)
	if !plain {
		size = vnet.SegmentLen(hdr, frame)
	}
	if size > n.set.MTU {
		n.logReject(from, fmt.Sprintf("longer than the mtu (%d)", n.set.MTU), size)
		return links, wakes, nil, nil, syscall.EMSGSIZE
	}
	if n.set.Policy == PolicySwitch && len(frame) < ethHeaderLen {
		n.logReject(from, "shorter than an Ethernet header (14 bytes), which policy switch needs", len(frame))
		return links, wakes, nil, nil, syscall.EINVAL
	}
	vlanLinks.reset()
	if n.vlanOn && !n.classifyVLAN(from, frame) {
		return links, wakes, nil, nil, nil
	}
	n.route(from, frame)
	if n.imp != nil {
		n.impairSplit()
	}
	var paid *charge // a lossless writer's, for its frame in every queue
	if n.set.Lossless {
		space = n.spaceWait()
		if !n.roomForAll() {
			return links, wakes, nil, space, nil
		}
		var ok bool
		if paid, ok = n.payLossless(from, frame, attempt); !ok {
			return links, wakes, nil, space, nil
		}
	}

	from.txPkts.Add(1)
	from.txBytes.Add(uint64(len(frame)))
	n.packets++
	n.bytes += uint64(len(frame))
	segmented := func() [][]byte {
		if frames != nil {
			return frames
		}
		switch {
		case !plain:
			segs, err := vnet.Segment(hdr, frame)
			if err != nil {
				n.logReject(from, "offload that cannot be done in software", len(frame))
			}
			frames = segs
		case owned:
			frames = [][]byte{frame}
		default:
			frames = [][]byte{append([]byte(nil), frame...)}
		}
		if frames == nil {
			frames = [][]byte{}
		}
		return frames
	}
	if n.imp != nil && len(n.imp.hit) > 0 {
		n.impairLocked(from, frame, plain, segmented)
	}
	n.files = n.files[:0]
	for _, p := range n.targets {
		if p.link != nil {
			if !plain && p.caps&link.CapGSO == 0 {
				segmented() // made here, under the lock that logReject needs
			}
			if !vlanLinks.route(n, p) {
				links = append(links, p)
			}
			continue
		}
		n.files = append(n.files, p)
	}
	switch {
	case len(n.files) == 0:
	case from.payer != nil:
		wakes = n.queueOwn(from, frame, owned, paid, wakes)
	default:
		for _, f := range segmented() {
			wakes = n.queueFrame(f, wakes)
		}
	}
	if len(n.captures) > 0 {
		now := time.Now()
		for _, f := range segmented() {
			for _, c := range n.captures {
				ok, wake := c.add(now, n.vlanCaptured(f))
				if wake != nil {
					wakes = append(wakes, wake)
				}
				if !ok {
					n.pcapDrops++
				}
			}
		}
	}
	return links, wakes, frames, nil, nil
}

// writeLink writes one frame out of a link port. A frame the link cannot
// take (longer than its MTU allows, or refused) is a drop for that port.
func (n *Network) writeLink(p *Port, raw []byte, size int, plain bool) {
	if plain && size > p.link.MTU()+ethHeaderLen+vlanTagLen {
		p.drops.Add(1)
		n.drops.Add(1)
		return
	}
	if err := n.linkWrite(p, raw); err != nil {
		p.drops.Add(1)
		n.drops.Add(1)
		return
	}
	p.rxPkts.Add(1)
	p.rxBytes.Add(uint64(size))
	n.delivered.Add(1)
}

// errPanicked is what linkWrite returns for a write that panicked.
var errPanicked = errors.New("the link panicked")

// linkWrite writes one frame to p's link. A panic in the link (the
// userspace host parses what it is given) is contained to that frame
// and port: a drop, counted and logged; the sender and the other
// receivers go on.
func (n *Network) linkWrite(p *Port, raw []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			n.panicked(r, "panic writing a frame to a link; frame dropped", "port", p.id, "kind", p.kindName(), "name", p.name)
			err = errPanicked
		}
	}()
	return p.link.Write(raw)
}

// logReject keeps why a packet was refused for ctl's last-error (a bare
// EINVAL or EMSGSIZE from write(2) says little), and logs it at most once
// a second per network (a sender in a loop must not flood the log); the
// line says how many were refused since the last one. Called with n.mu
// held.
func (n *Network) logReject(from *Port, why string, size int) {
	n.lastError = fmt.Sprintf("port %d (uid %d): a %d-byte frame refused: %s", from.id, from.uid, size, why)
	n.rejects++
	now := time.Now()
	if now.Sub(n.rejectLogged) < time.Second {
		return
	}
	n.fam.log.Info("packet refused", "network", n.name, "port", from.id, "uid", from.uid, "pid", from.pid,
		"why", why, "size", size, "refused", n.rejects)
	n.rejects, n.rejectLogged = 0, now
}

// route fills n.targets with the ports that should get buf.
func (n *Network) route(from *Port, buf []byte) {
	n.targets = n.targets[:0]
	vid := uint16(defaultVID)
	if n.vlanOn {
		vid = n.vf.vid
	}
	if n.set.Policy == PolicySwitch {
		if to := n.fdb.route(from, buf, vid, time.Now()); to != nil {
			if to != from && to.recv && (!n.vlanOn || n.vf.reaches(to)) {
				n.targets = append(n.targets, to)
			}
			return
		}
	}
	for _, p := range n.portList {
		if p != from && p.recv && (!n.vlanOn || n.vf.reaches(p)) {
			n.targets = append(n.targets, p)
		}
	}
}

// readyFiles fills n.ready with the ports of n.files that have room, and
// counts a drop at the others. Called with n.mu held.
func (n *Network) readyFiles() {
	n.ready = n.ready[:0]
	for _, p := range n.files {
		if p.room(n.set.Qlen) {
			n.ready = append(n.ready, p)
		} else {
			n.dropAt(p)
		}
	}
}

// queueOwn queues frame, written by a file port, at n.files, the targets
// that queue: its writer pays for it once (paid, if a lossless wait took
// it already), and where its budget is spent it is a drop at every one.
// A frame not owned is copied only once it is paid for. It returns wakes
// with the wakeups of polls armed on the ports. Called with n.mu held.
func (n *Network) queueOwn(from *Port, frame []byte, owned bool, paid *charge, wakes []func()) []func() {
	to := n.files
	if paid == nil {
		n.readyFiles()
		if len(n.ready) == 0 {
			return wakes
		}
		ch, err := newCharge(from.payer, len(frame), len(n.ready))
		if err != nil {
			for _, p := range n.ready {
				n.dropAt(p)
			}
			return wakes
		}
		paid, to = ch, n.ready
	}
	if !owned {
		kept := make([]byte, len(frame))
		copy(kept, frame)
		frame = kept
	}
	for _, p := range to {
		wakes = n.enqueueAt(p, n.vlanOut(p, frame), paid, wakes)
	}
	return wakes
}

// queueFrame queues f, from a link, at n.files, each receiver paying for
// its queue's copy; where the queue is full or the receiver's budget
// spent, it is a drop for that port. Called with n.mu held.
func (n *Network) queueFrame(f []byte, wakes []func()) []func() {
	n.readyFiles()
	for _, p := range n.ready {
		ch, err := newCharge(p.payer, len(f), 1)
		if err != nil {
			n.dropAt(p)
			continue
		}
		wakes = n.enqueueAt(p, n.vlanOut(p, f), ch, wakes)
	}
	return wakes
}

// enqueueAt queues f, paid by ch, at p; a queue that cannot take it is a
// drop there, and hands back its share of ch once n.mu is released (a
// release may wake polls).
//
// A frame tagged for a trunk (vlan.go) may be beyond MaxMTU, more than a
// file port's reader is told a frame can be and than the stream format
// can carry: it is a drop there too.
func (n *Network) enqueueAt(p *Port, f []byte, ch *charge, wakes []func()) []func() {
	var ok bool
	var wake func()
	switch {
	case len(f) > MaxMTU:
	case n.batching:
		if n.enqueueQuiet(p, f, ch) {
			return wakes // counted when the batch is put in the queue
		}
	default:
		ok, wake = p.enqueue(f, ch, n.set.Qlen)
	}
	if wake != nil {
		wakes = append(wakes, wake)
	}
	if ok {
		p.rxPkts.Add(1)
		p.rxBytes.Add(uint64(len(f)))
		n.delivered.Add(1)
	} else {
		n.dropAt(p)
		wakes = append(wakes, ch.release)
	}
	return wakes
}

func (n *Network) dropAt(p *Port) {
	p.drops.Add(1)
	n.drops.Add(1)
}

// payLossless takes, for a lossless network's frame, what it will cost
// in the queues: a file port's writer pays once for every queue (the
// charge returned); for a frame from a link it checks that each
// receiver's budget has room. ok false: wait. Called with n.mu held.
func (n *Network) payLossless(from *Port, frame []byte, attempt int) (paid *charge, ok bool) {
	if from.payer == nil {
		return nil, n.receiversFit(len(frame))
	}
	files := n.fileTargets()
	if files == 0 {
		return nil, true
	}
	need := chargeOf(len(frame), files)
	if attempt == 0 {
		ok = from.payer.Take(netcore.Queued, need) == nil
	} else {
		ok = from.payer.TryTake(netcore.Queued, need)
	}
	if !ok {
		return nil, false
	}
	paid = &charge{payer: from.payer, size: int64(len(frame))}
	paid.refs.Store(int32(files))
	return paid, true
}

// fileTargets counts the targets that queue (file ports).
func (n *Network) fileTargets() int {
	k := 0
	for _, p := range n.targets {
		if p.link == nil {
			k++
		}
	}
	return k
}

// receiversFit reports whether every file port among the targets has
// room in its budget for a frame of size from a link, which its receiver
// pays for.
func (n *Network) receiversFit(size int) bool {
	for _, p := range n.targets {
		if p.link == nil && !p.payer.Fits(netcore.Queued, chargeOf(size, 1)) {
			return false
		}
	}
	return true
}

func (n *Network) roomForAll() bool {
	for _, p := range n.targets {
		if !p.room(n.set.Qlen) {
			return false
		}
	}
	return true
}

// filePorts counts ports opened through the data file.
func (n *Network) filePorts() int {
	c := 0
	for _, p := range n.portList {
		if p.link == nil {
			c++
		}
	}
	return c
}

// shutdown closes every port and capture; blocked readers see end of file.
// Interfaces are let go; at daemon exit (exiting) the TAPs mnet created for
// a persistent network stay, for the next daemon to take over.
func (n *Network) shutdown(exiting bool) {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.syncServices() // their clients leave; closed, none can join again
	n.closeExts()    // their ports leave likewise
	n.stopImpair()
	n.mu.Lock()
	ports := n.portList
	n.portList = nil
	caps := n.captures
	n.captures = nil
	keep := exiting && n.set.Persist
	// A link the state file does not have is let go for good.
	unsaved := map[*Port]bool{}
	for _, p := range ports {
		if p.unnamed {
			unsaved[p] = true
		}
	}
	n.waiting = nil
	n.mu.Unlock()
	for _, p := range ports {
		if p.link != nil {
			n.release(p, keep && !unsaved[p])
		} else if wake := p.shut(); wake != nil {
			wake() // a poll of the data file sees the end
		}
	}
	for _, c := range caps {
		if wake := c.shut(); wake != nil {
			wake()
		}
	}
	n.closeWaiter()
	n.space.Broadcast()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ctlRead is what reading ctl shows, after the attachments that wait for
// their namespace are tried again: one whose namespace has its name back
// shows attached.
func (n *Network) ctlRead() []byte {
	if n.hasWaiting() {
		n.retryWaiting()
	}
	return n.ctlText()
}

// ctlText is what reading ctl shows.
func (n *Network) ctlText() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	s := n.set
	fmt.Fprintf(&b, "policy %s\nmtu %d\nqlen %d\nlossless %s\nmaxports %d\n",
		s.Policy, s.MTU, s.Qlen, onOff(s.Lossless), s.MaxPorts)
	if s.Descr == "" {
		b.WriteString("descr\n")
	} else {
		fmt.Fprintf(&b, "descr %s\n", s.Descr)
	}
	fmt.Fprintf(&b, "persist %s\n", onOff(s.Persist))
	for _, svc := range n.fam.services {
		fmt.Fprintf(&b, "%s %s\n", svc.svc.Name, onOff(serviceOn(s, svc.svc)))
	}
	var items []string
	for _, x := range n.exts {
		settings, its := x.inst.CtlLines()
		for _, l := range settings {
			fmt.Fprintf(&b, "%s\n", l)
		}
		items = append(items, its...)
	}
	for _, p := range n.portList {
		if p.spec == nil {
			continue
		}
		fmt.Fprintf(&b, "%s %s", p.kind.Name, p.spec.Args())
		if p.unnamed && s.Persist {
			b.WriteString(" # not persistent: unnamed namespace")
		}
		b.WriteByte('\n')
	}
	for _, w := range n.waiting {
		if w.where.Unknown {
			fmt.Fprintf(&b, "%s # waiting: namespace %s\n", w.line(), w.why)
			continue
		}
		fmt.Fprintf(&b, "%s # waiting: namespace %s %s\n", w.line(), w.where.Netns, w.why)
	}
	for _, l := range items {
		fmt.Fprintf(&b, "%s\n", l)
	}
	// Then the settings of ports, which name them: as SPEC has it,
	// attachments, cables and addresses come first.
	n.vlanCtlLines(&b)
	for _, l := range n.impairLinesLocked(false) {
		fmt.Fprintf(&b, "%s\n", l)
	}
	if n.lastError != "" {
		fmt.Fprintf(&b, "last-error %s\n", n.lastError)
	}
	return []byte(b.String())
}

func (n *Network) portsText() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var b strings.Builder
	b.WriteString("PORT KIND UID PID MODE RXPKTS RXBYTES TXPKTS TXBYTES DROPS NAME VLAN\n")
	for _, p := range n.portList {
		mode := ""
		if p.recv {
			mode += "r"
		}
		if p.send {
			mode += "w"
		}
		if mode == "" {
			mode = "-"
		}
		name := p.name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(&b, "%d %s %d %d %s %d %d %d %d %d %s %s\n", p.id, p.kindName(), p.uid, p.pid,
			mode, p.rxPkts.Load(), p.rxBytes.Load(), p.txPkts.Load(), p.txBytes.Load(), p.drops.Load(), name, p.vlan.column())
	}
	return []byte(b.String())
}

func (n *Network) statsText() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Appendf(nil, "ports %d\npackets %d\nbytes %d\ndelivered %d\ndrops %d\npcap-drops %d\npanics %d\n"+
		"impair-drops %d\nimpair-dups %d\nimpair-corrupted %d\nvlan-drops %d\n",
		len(n.portList), n.packets, n.bytes, n.delivered.Load(), n.drops.Load(), n.pcapDrops, n.panics.Load(),
		n.impStats.drops.Load(), n.impStats.dups.Load(), n.impStats.corrupted.Load(), n.vlanDrops)
}

// Stats are the network's counters.
type Stats struct {
	Ports                                                          int
	Packets, Bytes, Delivered, Drops, PcapDrops, Panics, VLANDrops uint64
}

// Stats returns the current counters.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return Stats{len(n.portList), n.packets, n.bytes, n.delivered.Load(), n.drops.Load(), n.pcapDrops, n.panics.Load(), n.vlanDrops}
}

// panicked counts a panic recovered on one of the network's frame paths
// (the frame it was handling is lost) and logs it with its stack
// (netcore.Contained).
func (n *Network) panicked(r any, msg string, args ...any) {
	n.panics.Add(1)
	netcore.Contained(n.fam.log, r, msg, append([]any{"network", n.name}, args...)...)
}
