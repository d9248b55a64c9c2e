// SPDX-License-Identifier: BSD-3-Clause

package vxlan

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// defaultPathMTU is assumed when the routing table has no path to a
// remote yet (its interface is not up, say): an Ethernet underlay.
const defaultPathMTU = 1500

// rxQueue is how many frames another cable's Read may queue for a cable
// that shares its socket; beyond it a frame is dropped.
const rxQueue = 512

// cable is one attached vxlan link.
type cable struct {
	spec *spec
	env  link.Env
	v6   bool
	u    *underlay
	fdb  *fdb
	// group is the multicast membership, if the cable floods to a group.
	group groupKey
	// pathMTU is the largest outer IP packet: the smallest path MTU to
	// the remotes (or the group's interface MTU).
	pathMTU int

	// sockets is how many sockets the cable counts for env.Payer: its
	// senders and its share of the receiving socket.
	sockets int64

	in        chan []byte
	closed    chan struct{}
	closeOnce sync.Once

	// tx is what Write alone uses, and Close once Write is done.
	tx struct {
		mu     sync.Mutex // Write against Close
		fds    []int      // the sending sockets, one chosen per inner flow
		closed bool
		buf    []byte                       // datagrams being sent
		oob    []byte                       // the UDP_SEGMENT control message
		floods []unix.Sockaddr              // every remote, or the group
		learnt map[netip.Addr]unix.Sockaddr // learned VTEPs
	}
	// portOf is the UDP port of each configured remote; a VTEP learned
	// elsewhere is sent to the cable's own port.
	portOf map[netip.Addr]uint16

	rxDrops, tooBig  atomic.Uint64
	dropLog, fullLog rateLog
}

var (
	_ link.Link  = (*cable)(nil)
	_ link.Saver = (*cable)(nil)
)

var (
	errTooBig     = errors.New("vxlan: frame longer than the underlay's path allows")
	errShortFrame = errors.New("vxlan: frame shorter than an Ethernet header")
)

// senders is how many sending sockets a cable has: the UDP source port is
// one of theirs, chosen by a hash of the inner flow, so that routers that
// spread flows by port (ECMP) see several. Linux hashes into its whole
// ephemeral range; a socket cannot send from a port it is not bound to,
// and a raw socket could not use UDP segmentation offload.
const senders = 8

func sockaddr(a netip.Addr, port uint16) unix.Sockaddr {
	if a.Is4() {
		return &unix.SockaddrInet4{Addr: a.As4(), Port: int(port)}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: int(port)}
}

// Open opens the cable: its sending sockets, its share of the receiving
// socket of its port, and its group membership. Its errors name the line.
func (s *spec) Open(env link.Env) (link.Link, error) {
	l, err := s.open(env)
	if err != nil {
		return nil, link.Errorf(link.ErrnoOf(err), "vxlan %s: %s", s.Args(), strings.TrimPrefix(err.Error(), "vxlan: "))
	}
	return l, nil
}

func (s *spec) open(env link.Env) (*cable, error) {
	w := whereFor(env)
	var err error
	c := &cable{spec: s, env: env, v6: s.v6(), fdb: newFDB(fdbAge, fdbMax),
		in: make(chan []byte, rxQueue), closed: make(chan struct{}), portOf: map[netip.Addr]uint16{}}
	ifindex := 0
	if s.dev != "" {
		if ifindex, err = ifIndex(w, s.dev); err != nil {
			return nil, err
		}
	}
	c.pathMTU = c.findPathMTU(w)
	if c.pathMTU-Overhead(c.v6) < 68 {
		return nil, link.Errorf(syscall.EINVAL, "vxlan: the underlay's MTU (%d) leaves no room for frames", c.pathMTU)
	}
	if s.group.IsValid() {
		c.group = groupKey{s.group.Addr(), ifindex}
		c.tx.floods = []unix.Sockaddr{sockaddr(s.group.Addr(), s.group.Port())}
	} else {
		for _, r := range s.remotes {
			c.tx.floods = append(c.tx.floods, sockaddr(r.Addr(), r.Port()))
			if _, ok := c.portOf[r.Addr()]; !ok {
				c.portOf[r.Addr()] = r.Port()
			}
		}
	}
	c.tx.learnt = map[netip.Addr]unix.Sockaddr{}
	c.tx.oob = make([]byte, unix.CmsgSpace(2))
	c.sockets = int64(senders*btoi(!s.group.IsValid()) + 1)
	if env.Payer != nil {
		if err := env.Payer.Take(netcore.Sockets, c.sockets); err != nil {
			return nil, link.Errorf(link.ErrnoOf(err), "vxlan: %d more sockets for uid %d: %v", c.sockets, env.Payer.Uid(), err)
		}
	}
	for range senders * btoi(!s.group.IsValid()) {
		fd, err := c.openSender(w)
		if err != nil {
			c.closeSenders()
			c.releaseSockets()
			return nil, err
		}
		c.tx.fds = append(c.tx.fds, fd)
	}
	u, err := acquireUnderlay(env, w, underlayKey{w.key(), c.v6, s.port()})
	if err != nil {
		c.closeSenders()
		c.releaseSockets()
		return nil, err
	}
	c.u = u
	if s.group.IsValid() {
		if err := u.join(c.group, c.v6); err != nil {
			u.release()
			c.closeSenders()
			c.releaseSockets()
			return nil, err
		}
	}
	if err := u.add(c); err != nil {
		if s.group.IsValid() {
			u.leave(c.group)
		}
		u.release()
		c.closeSenders()
		c.releaseSockets()
		return nil, err
	}
	return c, nil
}

// releaseSockets gives back what the cable counted for its payer.
func (c *cable) releaseSockets() {
	if c.env.Payer != nil {
		c.env.Payer.Release(netcore.Sockets, c.sockets)
	}
}

func (c *cable) closeSenders() {
	for _, fd := range c.tx.fds {
		unix.Close(fd)
	}
	c.tx.fds = nil
}

// findPathMTU is the smallest path MTU to the remotes, or the group's
// interface MTU. A path the routing table does not know yet is taken to
// be an Ethernet's, and logged.
func (c *cable) findPathMTU(w where) int {
	s := c.spec
	if s.dev != "" {
		if m, err := devMTU(w, s.dev); err == nil {
			return m
		}
	}
	dsts := s.remotes
	if s.group.IsValid() {
		dsts = []netip.AddrPort{s.group}
	}
	mtu := 0
	for _, d := range dsts {
		m, err := routeMTU(w, d)
		if err != nil {
			if c.env.Log != nil {
				c.env.Log.Warn("vxlan: no path MTU to a remote; assuming 1500", "network", c.env.Network,
					"vni", s.vni, "remote", d.Addr(), "err", err)
			}
			m = defaultPathMTU
		}
		if mtu == 0 || m < mtu {
			mtu = m
		}
	}
	return mtu
}

// openSender makes one UDP socket frames of a cable to unicast remotes
// leave by, from a port the kernel picks in its ephemeral range when it
// first sends. (A cable over a group sends from the port it listens on,
// as group members expect: vxvde answers to the port a frame came from.)
func (c *cable) openSender(w where) (int, error) {
	domain := unix.AF_INET
	if c.v6 {
		domain = unix.AF_INET6
	}
	fd, err := w.socket(domain, unix.SOCK_DGRAM, 0)
	if err != nil {
		return -1, link.Errorf(link.ErrnoOf(err), "vxlan: UDP socket: %v", err)
	}
	growBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF)
	// Nothing is read from it: a small receive buffer bounds what
	// strays to its port can hold.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	return fd, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// deliver queues a frame another cable's Read took from the socket for
// this one: learned, and copied. A full queue is a drop (counted and
// logged), so that a slow network never holds up the cables that share
// its socket.
func (c *cable) deliver(frame []byte, vtep netip.Addr) {
	c.learn(frame, vtep)
	b := getBuf(len(frame))
	copy(b, frame)
	select {
	case c.in <- b:
	default:
		putBuf(b)
		c.rxDrops.Add(1)
		c.dropLog.log(c.env.Log, "vxlan: frames dropped, the network does not keep up", "network", c.env.Network,
			"vni", c.spec.vni, "dropped", c.rxDrops.Load())
	}
}

// Read hands the network the next frame for the cable: one queued for it
// by another cable's Read, or one it reads from the socket itself when it
// holds the socket's token. The datagram is read so that its frame lands
// right after the virtio-net header, which then overwrites the VXLAN
// header: no copy.
func (c *cable) Read(p []byte) (int, error) {
	for {
		select {
		case b := <-c.in:
			n := copy(p[vnet.HdrLen:], b)
			putBuf(b)
			return c.finish(p, n), nil
		case <-c.closed:
			return 0, link.ErrClosed
		case <-c.u.token:
		}
		// select picks at random among ready cases: a frame already
		// queued for us, or Close, may have been ready too. Checked with
		// the token held: only its holder queues frames for others, and
		// Close's wake-up of the reader comes after, so neither is
		// missed while we wait on the socket.
		select {
		case <-c.closed:
			c.u.token <- struct{}{}
			return 0, link.ErrClosed
		case b := <-c.in:
			c.u.token <- struct{}{}
			n := copy(p[vnet.HdrLen:], b)
			putBuf(b)
			return c.finish(p, n), nil
		default:
		}
		vni, frame, from, ok, err := c.readHolding(p)
		if err != nil {
			return 0, link.ErrClosed // the socket closes after its last cable
		}
		if !ok {
			continue
		}
		if vni != c.spec.vni {
			if other := c.u.cable(vni); other != nil {
				other.deliver(frame, from)
			} else {
				c.u.unknownVNI(vni, from)
			}
			continue
		}
		select {
		case <-c.closed:
			return 0, link.ErrClosed
		default:
		}
		c.learn(frame, from)
		return c.finish(p, len(frame)), nil
	}
}

// readHolding reads one datagram from the socket into p, behind room
// for the virtio-net header, for the holder of the socket's token, and
// gives the token back: by defer, so that a panic in what reads the
// datagram (contained by the network's pump) leaves the socket to the
// other cables.
func (c *cable) readHolding(p []byte) (vni uint32, frame []byte, from netip.Addr, ok bool, err error) {
	defer func() { c.u.token <- struct{}{} }()
	return c.u.read(p[vnet.HdrLen-HeaderLen:])
}

// learn learns the frame's source behind vtep; when the table is full,
// the address is not learned (frames to it are flooded), counted and
// logged.
func (c *cable) learn(frame []byte, vtep netip.Addr) {
	if _, full := c.fdb.learn(mac(frame[6:12]), vtep, time.Now()); full {
		c.fullLog.log(c.env.Log, "vxlan: learning table full; addresses not learned are flooded", "network", c.env.Network,
			"vni", c.spec.vni, "entries", fdbMax, "not learned", c.fdb.unlearnedCount())
	}
}

// finish writes the virtio-net header in front of the n-byte frame in p
// and returns the length of both. It is a zero header, or one that asks
// to complete a checksum a kernel VTEP left partial, or to cut a TCP
// segment it never cut (its frames crossed only virtual devices to reach
// us) to the cable's MTU.
func (c *cable) finish(p []byte, n int) int {
	frame := p[vnet.HdrLen : vnet.HdrLen+n]
	h, ok := vnet.SuperFrame(frame, c.MTU())
	if !ok {
		h, ok = vnet.PartialChecksum(frame)
	}
	if ok {
		h.Encode(p)
	} else {
		clear(p[:vnet.HdrLen])
	}
	return vnet.HdrLen + n
}

// Write sends one frame: to the VTEP learned for its destination, or to
// every remote when the destination is broadcast, multicast or not
// learned; a cable over a group sends every frame to the group. A TCP or
// UDP segment of up to 64 KiB (the cable takes offloads) is cut to wire
// size here and leaves as one sendmsg with UDP segmentation offload, so
// the kernel carries it as one packet as far as it can. Write never
// waits: a full socket buffer is an error (a drop), as is a frame too
// long for the underlay's path.
func (c *cable) Write(p []byte) error {
	if len(p) < vnet.HdrLen+ethHeaderLen {
		return errShortFrame
	}
	hdr := vnet.Decode(p)
	frame := p[vnet.HdrLen:]
	ipHdr := ipv4HeaderLen
	if c.v6 {
		ipHdr = ipv6HeaderLen
	}
	maxFrame := c.pathMTU - ipHdr - udpHeaderLen - HeaderLen
	if hdr.Plain() && len(frame) > maxFrame || !hdr.Plain() && vnet.SegmentLen(hdr, frame) > maxFrame {
		c.tooBig.Add(1)
		return errTooBig
	}
	c.tx.mu.Lock()
	defer c.tx.mu.Unlock()
	if c.tx.closed {
		return link.ErrClosed
	}
	fd := -1 // the shared socket
	if len(c.tx.fds) > 0 {
		fd = c.tx.fds[flowHash(frame)%senders]
	}
	var vx [HeaderLen]byte
	putHeader(vx[:], c.spec.vni)
	gso := 0 // one datagram
	if hdr.Plain() {
		c.tx.buf = append(append(c.tx.buf[:0], vx[:]...), frame...)
	} else {
		var err error
		// The buffer holds each segment behind its VXLAN header: the
		// datagrams UDP segmentation cuts it into.
		if c.tx.buf, gso, err = vnet.AppendSegments(c.tx.buf[:0], hdr, frame, vx[:]); err != nil {
			return err
		}
	}
	// A cable over a group sends everything to the group: members take
	// unicast at different ports (Linux at the group's, vxvde at the one
	// it sent from), and the group reaches them all.
	if frame[0]&1 == 0 && !c.spec.group.IsValid() {
		if vtep, ok := c.fdb.lookup(mac(frame[0:6]), time.Now()); ok {
			sa := c.tx.learnt[vtep]
			if sa == nil {
				if len(c.tx.learnt) >= fdbMax {
					clear(c.tx.learnt)
				}
				port, ok := c.portOf[vtep]
				if !ok {
					port = c.spec.port()
				}
				sa = sockaddr(vtep, port)
				c.tx.learnt[vtep] = sa
			}
			return c.send(fd, sa, gso)
		}
	}
	var errs error
	for _, sa := range c.tx.floods {
		if err := c.send(fd, sa, gso); err != nil {
			errs = err
		}
	}
	return errs
}

// maxUDPPayload is the most one sendmsg may carry, segmented or not: a
// UDP datagram's length field, less its header, and IPv4's; and
// maxUDPSegments the most datagrams one sendmsg may be cut into
// (UDP_MAX_SEGMENTS of kernels before 5.19; later ones take 128).
const (
	maxUDPPayload  = 0xffff - udpHeaderLen - ipv4HeaderLen
	maxUDPSegments = 64
)

// send sends the datagrams in c.tx.buf to sa: gso bytes each but the
// last (0: the buffer is one datagram), in as few sendmsg calls as UDP
// allows. Called with c.tx.mu held.
func (c *cable) send(fd int, sa unix.Sockaddr, gso int) error {
	if gso == 0 || gso >= len(c.tx.buf) {
		return c.sendmsg(fd, c.tx.buf, nil, sa)
	}
	oob := c.tx.oob
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(gso)
	chunk := min(maxUDPPayload/gso, maxUDPSegments) * gso
	for b := c.tx.buf; len(b) > 0; {
		n := min(chunk, len(b))
		if err := c.sendmsg(fd, b[:n], oob, sa); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// sendmsg sends one buffer from fd, or from the shared socket if fd is
// -1, without waiting.
func (c *cable) sendmsg(fd int, b, oob []byte, sa unix.Sockaddr) error {
	if fd < 0 {
		return c.u.sendmsg(b, oob, sa)
	}
	return sendmsg(fd, b, oob, sa)
}

func sendmsg(fd int, b, oob []byte, sa unix.Sockaddr) error {
	for {
		_, err := unix.SendmsgN(fd, b, oob, sa, unix.MSG_DONTWAIT)
		if err != syscall.EINTR {
			return err
		}
	}
}

// MTU is the largest payload of a frame that fits the underlay's path
// with the VXLAN overhead (50 bytes over IPv4, 70 over IPv6).
func (c *cable) MTU() int { return c.pathMTU - Overhead(c.v6) }

// Caps: the cable takes segments of up to 64 KiB and cuts them itself.
func (c *cable) Caps() link.Caps { return link.CapGSO }

// Close lets the cable go; the receiving socket closes with its last
// cable. keep changes nothing: a cable holds nothing outside mnet.
func (c *cable) Close(bool) error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.u.remove(c)
		if c.spec.group.IsValid() {
			c.u.leave(c.group)
		}
		c.u.release()
		c.tx.mu.Lock()
		c.closeSenders()
		c.tx.closed = true
		c.tx.mu.Unlock()
		c.releaseSockets()
	})
	return nil
}

// Save keeps the cable's line.
func (c *cable) Save() (json.RawMessage, error) {
	return json.Marshal(saved{Args: c.spec.Args()})
}

// Frame buffers for the receive queue: most frames fit in a small one.
const smallBuf = 2048

var bufPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}

func getBuf(n int) []byte {
	if n > smallBuf {
		return make([]byte, n)
	}
	return (*bufPool.Get().(*[]byte))[:n]
}

func putBuf(b []byte) {
	if cap(b) != smallBuf {
		return
	}
	b = b[:smallBuf]
	bufPool.Put(&b)
}
