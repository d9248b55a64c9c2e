// SPDX-License-Identifier: BSD-3-Clause

package mhost

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/pktq"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/iphost"
)

// qlen bounds the datagrams waiting to be read on one endpoint; past it
// they are dropped.
const qlen = 256

// udpDir is mhost/NAME/udp: any PORT may be looked up.
type udpDir struct {
	id    uint64
	h     *Host
	mu    sync.Mutex
	ports portFiles[*udpFile]
}

func (d *udpDir) ID() uint64 { return d.id }

func (d *udpDir) Attr(*netcore.Cred) netcore.Attr {
	return netcore.Attr{Mode: syscall.S_IFDIR | 0555, Mtime: d.h.f.start}
}

func (d *udpDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	p, err := netcore.ParsePort(name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ports.lookup(p, func() *udpFile { return &udpFile{id: netcore.NewID(), d: d, port: p} }), nil
}

// List shows the PORTs with open files.
func (d *udpDir) List(*netcore.Cred) []netcore.DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ports.list()
}

// udpFile is mhost/NAME/udp/PORT; its mode shows the r and w of the
// host's mode.
type udpFile struct {
	id     uint64
	d      *udpDir
	port   uint16
	opened int // guarded by d.mu
}

func (f *udpFile) ID() uint64 { return f.id }

func (f *udpFile) Attr(*netcore.Cred) netcore.Attr {
	h := f.d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	return netcore.Attr{Mode: syscall.S_IFREG | h.mode&0666, Uid: h.uid, Gid: h.gid, Mtime: h.mtime}
}

// Open makes an endpoint to NAME:PORT: r receives, w sends (O_RDWR with
// one of them gets that half).
func (f *udpFile) Open(_ context.Context, c *netcore.Cred, flags int) (netcore.Handle, error) {
	h := f.d.h
	acc := flags & syscall.O_ACCMODE
	wantR := acc == syscall.O_RDONLY || acc == syscall.O_RDWR
	wantW := acc == syscall.O_WRONLY || acc == syscall.O_RDWR
	var want rights
	if wantR {
		want |= rightRecv
	}
	if wantW {
		want |= rightSend
	}
	r := h.rights(c, want)
	recv, send := wantR && r&rightRecv != 0, wantW && r&rightSend != 0
	if (acc != syscall.O_RDWR && (wantR && !recv || wantW && !send)) || (!recv && !send) {
		return nil, syscall.EACCES
	}
	// The endpoint keeps the opener's credentials for the checks of later
	// writes (rights through an ipn network's host): pinned now, while
	// the opener's pid names it.
	c.Pin()
	payer := h.f.quota.PayerOf(c)
	ep := &endpoint{f: f, h: h, cred: *c, payer: payer, recv: recv, send: send, paths: map[string]path{}}
	ep.q.init(payer)
	if err := h.f.reserve(ep, payer); err != nil {
		return nil, err
	}
	// Kernel paths are made later, at a write, in the opener's network
	// namespace and owned by its uid; an opener the daemon cannot see
	// has none, and its inet locators fail over (EACCES).
	ep.ns, ep.nsErr = netns.OfTask(c.Pid)
	f.d.mu.Lock()
	f.opened++
	f.d.mu.Unlock()
	h.mu.Lock()
	h.files++
	h.mu.Unlock()
	return ep, nil
}

type datagram struct {
	from netip.AddrPort
	via  path // the way it came (mhost/any answers by it)
	data []byte
}

// queue is an endpoint's bounded receive queue (of at most qlen). What
// waits in it is its opener's queued bytes.
type queue struct {
	pktq.Queue[datagram]
	payer *netcore.Payer
}

func (q *queue) init(payer *netcore.Payer) {
	q.payer = payer
	q.Init(q.charge, q.release)
}

func costOf(d datagram) int64 { return int64(len(d.data)) + netcore.QueueEntryCost }

func (q *queue) charge(d datagram) bool { return q.payer.Take(netcore.Queued, costOf(d)) == nil }

func (q *queue) release(d datagram) { q.payer.Release(netcore.Queued, costOf(d)) }

// put queues d; false if it was dropped (full, closed or past the
// payer's budget). wake is a poll's wakeup, for the caller to run once
// it holds no lock.
func (q *queue) put(d datagram) (ok bool, wake func()) { return q.Put(d, qlen) }

// get returns the next datagram, blocking as a socket's read does; at
// the end, io.EOF.
func (q *queue) get(ctx context.Context, nonblock bool) (datagram, error) {
	return q.Get(ctx, nonblock)
}

// close ends the queue, wakes its readers and polls, and drops what it
// holds.
func (q *queue) close() {
	if w := q.Close(true); w != nil {
		w()
	}
}

// poll is the readiness of an endpoint with this queue (netcore.Poller):
// readable with a datagram queued or at the end (POLLHUP); writable where
// the caller may send. wake is armed before looking.
func (q *queue) poll(events uint32, wake func(), recv, send bool) uint32 {
	var ready uint32
	if send {
		ready |= netcore.PollOut | netcore.PollWrNorm
	}
	if !recv {
		return ready & events
	}
	if events&(netcore.PollIn|netcore.PollRdNorm) == 0 {
		wake = nil
	}
	st := q.Poll(wake)
	if st.Len > 0 {
		ready |= netcore.PollIn | netcore.PollRdNorm
	}
	if st.Closed {
		ready |= netcore.PollIn | netcore.PollRdNorm | netcore.PollHup
	}
	return ready & (events | netcore.PollErr | netcore.PollHup)
}

// path is one way out of an endpoint: a kernel socket connected to an
// inet locator, or a userspace host's endpoint toward an ipn one.
type path interface {
	send(ctx context.Context, to netip.AddrPort, p []byte, nonblock bool) error
	close()
}

// endpoint is one open mhost/NAME/udp/PORT.
type endpoint struct {
	f          *udpFile
	h          *Host
	cred       netcore.Cred
	payer      *netcore.Payer // the opener's: its sockets and queued bytes
	ns         *netns.NS      // the opener's network namespace; nil: nsErr
	nsErr      error
	recv, send bool
	q          queue

	mu     sync.Mutex // guards paths and serializes writes
	paths  map[string]path
	closed bool
	once   sync.Once
}

var (
	_ netcore.Handle   = (*endpoint)(nil)
	_ netcore.Streamer = (*endpoint)(nil)
	_ netcore.Poller   = (*endpoint)(nil)
)

func (ep *endpoint) Stream() bool { return true }

func (ep *endpoint) Read(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	if !ep.recv {
		return 0, syscall.EBADF
	}
	if len(p) == 0 {
		return 0, nil
	}
	d, err := ep.q.get(ctx, nonblock)
	if err == io.EOF {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return copy(p, d.data), nil
}

// failover reports whether err means the locator is down, so the next
// one is tried.
func failover(err error) (syscall.Errno, bool) {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return syscall.EIO, true
	}
	switch e {
	case syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ECONNREFUSED, syscall.ENETDOWN, syscall.EHOSTDOWN,
		syscall.EADDRNOTAVAIL, syscall.EACCES, syscall.EPERM, syscall.ENOENT, syscall.EAFNOSUPPORT, syscall.ENOBUFS:
		return e, true
	}
	return e, false
}

// Write sends p as one datagram to NAME:PORT by the first locator that
// works: locators that failed within downHold are tried only when no
// other works; an error that means "this way is down" moves to the next.
func (ep *endpoint) Write(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	if !ep.send {
		return 0, syscall.EBADF
	}
	if len(p) == 0 {
		return 0, nil
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return 0, syscall.EPIPE
	}
	locs := ep.h.locators()
	ep.forgetPaths(locs)
	if len(locs) == 0 {
		return 0, syscall.EHOSTUNREACH // no way to the host at all
	}
	now := time.Now()
	var first error
	for pass := 0; pass < 2; pass++ {
		for _, l := range locs {
			if l.held(now) != (pass == 1) {
				continue
			}
			err := ep.sendVia(ctx, l, p, nonblock)
			if err == nil {
				l.sentBy(now, l.family == "ipn")
				return len(p), nil
			}
			errno, next := failover(err)
			if !next {
				return 0, err
			}
			l.markDown(errno)
			if errno == syscall.ENETDOWN {
				// Its network is gone: a new one of that name gets a
				// new path.
				if pa := ep.paths[l.line()]; pa != nil {
					pa.close()
					delete(ep.paths, l.line())
				}
			}
			if first == nil {
				first = errno
			}
		}
	}
	return 0, first
}

func (ep *endpoint) sendVia(ctx context.Context, l *locator, p []byte, nonblock bool) error {
	pa, err := ep.path(l)
	if err != nil {
		return err
	}
	return pa.send(ctx, netip.AddrPortFrom(l.addr, ep.f.port), p, nonblock)
}

// path returns the way out by l, made on first use. ep.mu is held.
func (ep *endpoint) path(l *locator) (path, error) {
	if pa := ep.paths[l.line()]; pa != nil {
		return pa, nil
	}
	to := netip.AddrPortFrom(l.addr, ep.f.port)
	var pa path
	var err error
	if l.family == "ipn" {
		pa, err = newIPHostPath(ep, l, to)
	} else {
		pa, err = newKernelPath(ep, l, to)
	}
	if err != nil {
		return nil, err
	}
	ep.paths[l.line()] = pa
	return pa, nil
}

// forgetPaths closes the paths of locators no longer listed (mobility:
// a deleted locator is no longer used, nor heard), but for those an open
// ctl may list again (Host.dropped). ep.mu is held.
func (ep *endpoint) forgetPaths(locs []*locator) {
	for key, pa := range ep.paths {
		found := false
		for _, l := range locs {
			if l.line() == key {
				found = true
			}
		}
		if !found && !ep.h.keepsPath(key) {
			pa.close()
			delete(ep.paths, key)
		}
	}
}

func (ep *endpoint) Close() {
	ep.once.Do(func() {
		ep.mu.Lock()
		ep.closed = true
		for _, pa := range ep.paths {
			pa.close()
		}
		ep.paths = nil
		ep.mu.Unlock()
		ep.q.close()
		if ep.ns != nil {
			ep.ns.Close()
		}
		ep.h.f.release(ep)
		ep.f.d.mu.Lock()
		ep.f.opened--
		ep.f.d.mu.Unlock()
		ep.h.mu.Lock()
		ep.h.files--
		ep.h.mu.Unlock()
	})
}

// Poll: see queue.poll.
func (ep *endpoint) Poll(events uint32, wake func()) uint32 {
	return ep.q.poll(events, wake, ep.recv, ep.send)
}

// deliver queues a datagram that came by l; it returns a poll's wakeup to
// run once no lock is held.
func (ep *endpoint) deliver(l *locator, from netip.AddrPort, via path, b []byte) func() {
	if !ep.recv {
		return nil
	}
	ok, wake := ep.q.put(datagram{from: from, via: via, data: append([]byte(nil), b...)})
	if ok && l != nil {
		l.gotOne()
	}
	return wake
}

// kernelPath is a kernel UDP socket connected to an inet or inet6
// locator: connected, so that ICMP errors come back to it, and with
// IP_RECVERR (IPV6_RECVERR), so that all of them do: without it, a
// connected UDP socket ignores "host unreachable" and "network
// unreachable", which is what the kernel reports when the locator's
// neighbour stops answering. Its socket counts in its opener's quota of
// sockets, with those of every family: past it the write that needs it
// fails with EMFILE.
type kernelPath struct {
	conn  *net.UDPConn
	payer *netcore.Payer
	done  chan struct{}
}

func newKernelPath(ep *endpoint, l *locator, to netip.AddrPort) (*kernelPath, error) {
	if ep.ns == nil {
		return nil, ep.nsErr
	}
	if err := ep.payer.Take(netcore.Sockets, 1); err != nil {
		return nil, err
	}
	c, err := ep.ns.Dial(context.Background(), "udp", to, ep.cred.Uid)
	if err != nil {
		ep.payer.Release(netcore.Sockets, 1)
		return nil, errnoOf(err)
	}
	uc := c.(*net.UDPConn)
	if err := setRecvErr(uc, to.Addr().Is6()); err != nil {
		uc.Close()
		ep.payer.Release(netcore.Sockets, 1)
		return nil, errnoOf(err)
	}
	kp := &kernelPath{conn: uc, payer: ep.payer, done: make(chan struct{})}
	go kp.readLoop(ep, l, to)
	return kp, nil
}

func setRecvErr(c *net.UDPConn, v6 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// readLoop delivers the replies and marks l down on an error the socket
// reports: its error queue holds one entry per ICMP error (or local
// one), read before the datagrams so that it cannot fill up.
func (kp *kernelPath) readLoop(ep *endpoint, l *locator, to netip.AddrPort) {
	defer close(kp.done)
	rc, err := kp.conn.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 65536)
	oob := make([]byte, 512)
	for {
		n := -1
		var sockErr syscall.Errno
		err := rc.Read(func(fd uintptr) bool {
			for {
				_, oobn, _, _, err := unix.Recvmsg(int(fd), nil, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
				if err != nil {
					break
				}
				if e := queuedErrno(oob[:oobn]); e != 0 {
					sockErr = e
				}
			}
			m, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			switch {
			case err == unix.EAGAIN:
				return sockErr != 0 // else wait for more
			case err != nil:
				if e, ok := err.(syscall.Errno); ok && sockErr == 0 {
					sockErr = e
				}
			default:
				n = m
			}
			return true
		})
		if err != nil {
			return // closed
		}
		if sockErr != 0 {
			if errno, down := failover(sockErr); down {
				l.markDown(errno) // the next write moves on
			}
		}
		if n >= 0 {
			kp.deliver(ep, l, to, buf[:n])
		}
	}
}

// deliver hands one datagram read from the socket to the endpoint. A
// panic is contained to the datagram (lost, counted, logged): the reader
// goes on.
func (kp *kernelPath) deliver(ep *endpoint, l *locator, to netip.AddrPort, b []byte) {
	defer func() {
		if r := recover(); r != nil {
			netcore.Contained(ep.h.f.log, r, "panic delivering a datagram; datagram dropped", "host", ep.h.name)
		}
	}()
	if wake := ep.deliver(l, to, kp, b); wake != nil {
		wake()
	}
}

// queuedErrno is the errno of an error queue entry's control message
// (struct sock_extended_err of IP_RECVERR or IPV6_RECVERR); 0 if none.
func queuedErrno(oob []byte) syscall.Errno {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if (m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR ||
			m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR) && len(m.Data) >= 4 {
			return syscall.Errno(binary.NativeEndian.Uint32(m.Data))
		}
	}
	return 0
}

func (kp *kernelPath) send(_ context.Context, _ netip.AddrPort, p []byte, _ bool) error {
	_, err := kp.conn.Write(p)
	return errnoOf(err)
}

func (kp *kernelPath) close() {
	kp.conn.Close()
	<-kp.done
	kp.payer.Release(netcore.Sockets, 1)
}

func errnoOf(err error) error {
	if err == nil {
		return nil
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.EIO
}

// ipHostPath is an endpoint of a network's userspace IP host, connected
// to an ipn locator.
type ipHostPath struct {
	ep   *endpoint
	l    *locator
	conn *iphost.Conn
}

func newIPHostPath(ep *endpoint, l *locator, to netip.AddrPort) (*ipHostPath, error) {
	h := iphost.Of(l.net)
	if h == nil {
		return nil, syscall.ENETUNREACH // no such network
	}
	recv, send := h.Rights(&ep.cred)
	if !send || ep.recv && !recv {
		return nil, syscall.EACCES
	}
	hp := &ipHostPath{ep: ep, l: l}
	conn, err := h.Open(to.Addr().Is6(), 0, to, hp)
	if err != nil {
		return nil, err
	}
	hp.conn = conn
	return hp, nil
}

func (hp *ipHostPath) send(ctx context.Context, to netip.AddrPort, p []byte, nonblock bool) error {
	err := hp.conn.Send(ctx, to, p, iphost.FailFast, nonblock)
	if err == syscall.EBADF {
		return syscall.ENETDOWN // the network (and its host) went away
	}
	return err
}

func (hp *ipHostPath) close() { hp.conn.Close() }

// Payer: what the endpoint sends through a network's host is its
// opener's queued bytes until the network takes it (host.Payer).
func (hp *ipHostPath) Payer() *netcore.Payer { return hp.ep.payer }

// Deliver, Error and Closed: the host's Sink; called with the host's lock
// held, they only queue and mark.
func (hp *ipHostPath) Deliver(from, _ netip.AddrPort, payload []byte) func() {
	return hp.ep.deliver(hp.l, from, hp, payload)
}

func (hp *ipHostPath) Error(_ netip.AddrPort, errno syscall.Errno) func() {
	hp.l.markDown(errno)
	return nil
}
func (hp *ipHostPath) Closed() { hp.l.markDown(syscall.ENETDOWN) }

// portFiles are the PORT files of a udp directory, kept so that a PORT
// keeps its inode number while it is open; past a bound the ones with no
// open file are forgotten. The directory's lock guards it.
type portFiles[F interface {
	netcore.Node
	openCount() int
}] map[uint16]F

// lookup returns the file of port p, made by mk if there is none.
func (m portFiles[F]) lookup(p uint16, mk func() F) F {
	if f, ok := m[p]; ok {
		return f
	}
	if len(m) >= maxPortFiles {
		for port, f := range m {
			if f.openCount() == 0 {
				delete(m, port)
			}
		}
	}
	f := mk()
	m[p] = f
	return f
}

// list names the ports with open files, in numeric order.
func (m portFiles[F]) list() []netcore.DirEntry {
	var ports []int
	for p, f := range m {
		if f.openCount() > 0 {
			ports = append(ports, int(p))
		}
	}
	sort.Ints(ports)
	ents := make([]netcore.DirEntry, len(ports))
	for i, p := range ports {
		ents[i] = netcore.DirEntry{Name: strconv.Itoa(p), Node: m[uint16(p)]}
	}
	return ents
}

func (f *udpFile) openCount() int { return f.opened }
func (f *anyFile) openCount() int { return f.opened }
