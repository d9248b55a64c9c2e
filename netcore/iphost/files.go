// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mnet-project/mnet/internal/pktq"
	"github.com/mnet-project/mnet/netcore"
)

// ipn/NAME/udp/HOST/PORT: each open is a UDP endpoint of the network's
// host, with the inet family's semantics. HOST is an address literal (no
// resolver serves an IPN network); 0.0.0.0 and :: bind PORT.

// maxNodes bounds the cached HOST and PORT nodes; past it, those without
// open files are forgotten (a later lookup gets a new inode number).
const maxNodes = 4 * MaxConns

type udpDir struct {
	id    uint64
	h     *Host
	start time.Time

	mu    sync.Mutex
	names *netcore.HostPorts[netip.Addr, *udpPeerDir, *udpFile]
}

type udpPeerEntry = netcore.HostEntry[netip.Addr, *udpPeerDir, *udpFile]

func newUDPDir(h *Host) *udpDir {
	d := &udpDir{id: netcore.NewID(), h: h, start: time.Now()}
	d.names = netcore.NewHostPorts[netip.Addr](&d.mu, maxNodes, func(pd *udpPeerDir, port uint16) *udpFile {
		return &udpFile{PortFile: netcore.NewPortFile(pd, port)}
	})
	return d
}

func (d *udpDir) ID() uint64 { return d.id }

func (d *udpDir) Attr(*netcore.Cred) netcore.Attr {
	uid, gid, _ := d.h.net.Access()
	return netcore.Attr{Mode: syscall.S_IFDIR | 0555, Uid: uid, Gid: gid, Mtime: d.start}
}

// parsePeer reads a HOST: an IPv4 or IPv6 literal, without zone.
func parsePeer(name string) (netip.Addr, error) {
	a, err := netip.ParseAddr(name)
	if err != nil || a.Zone() != "" || a.Is4In6() || a.String() != name {
		return netip.Addr{}, syscall.EINVAL
	}
	return a, nil
}

func (d *udpDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	a, err := parsePeer(name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peerNode(a), nil
}

// peerNode returns the node of HOST a; d.mu is held.
func (d *udpDir) peerNode(a netip.Addr) *udpPeerDir {
	return d.names.Host(a, func(e *udpPeerEntry) *udpPeerDir {
		return &udpPeerDir{id: netcore.NewID(), d: d, addr: a, e: e}
	})
}

func (d *udpDir) List(*netcore.Cred) []netcore.DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	addrs := d.names.OpenHosts()
	slices.SortFunc(addrs, netip.Addr.Compare)
	ents := make([]netcore.DirEntry, 0, len(addrs))
	for _, a := range addrs {
		ents = append(ents, netcore.DirEntry{Name: a.String(), Node: d.peerNode(a)})
	}
	return ents
}

type udpPeerDir struct {
	id   uint64
	d    *udpDir
	addr netip.Addr
	e    *udpPeerEntry
}

func (pd *udpPeerDir) ID() uint64                        { return pd.id }
func (pd *udpPeerDir) Attr(c *netcore.Cred) netcore.Attr { return pd.d.Attr(c) }

func (pd *udpPeerDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	return pd.d.names.LookupPort(pd.e, name)
}

// List shows the PORTs with open files.
func (pd *udpPeerDir) List(*netcore.Cred) []netcore.DirEntry {
	return pd.d.names.ListPorts(pd.e)
}

// udpFile is udp/HOST/PORT. Its mode shows the r and w rights of each
// class on the network, as data does.
type udpFile struct{ netcore.PortFile[*udpPeerDir] }

func (f *udpFile) Attr(*netcore.Cred) netcore.Attr {
	uid, gid, mode := f.Dir.d.h.net.Access()
	return netcore.Attr{Mode: syscall.S_IFREG | mode&0666, Uid: uid, Gid: gid, Mtime: f.Dir.d.start}
}

// remember counts delta more open files of HOST/PORT.
func (f *udpFile) remember(delta int) {
	d := f.Dir.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names.AddOpen(f.Dir.addr, f.Port, delta)
}

// Open makes the endpoint: bound to PORT for a wildcard HOST, else
// connected to HOST:PORT from an ephemeral port. The network's r right
// receives, w sends; a caller with one of them opening O_RDWR gets that
// half, as with data.
func (f *udpFile) Open(_ context.Context, c *netcore.Cred, flags int) (netcore.Handle, error) {
	h := f.Dir.d.h
	r, w := h.net.Rights(c)
	acc := flags & syscall.O_ACCMODE
	wantR := acc == syscall.O_RDONLY || acc == syscall.O_RDWR
	wantW := acc == syscall.O_WRONLY || acc == syscall.O_RDWR
	recv, send := wantR && r, wantW && w
	if (acc != syscall.O_RDWR && (wantR && !recv || wantW && !send)) || (!recv && !send) {
		return nil, syscall.EACCES
	}
	a := f.Dir.addr
	var remote netip.AddrPort
	port := uint16(0)
	if a.IsUnspecified() {
		if !c.HasCap(netcore.CapNetBindService) && f.Port < unprivilegedPortStart() {
			return nil, syscall.EACCES
		}
		port = f.Port
	} else {
		remote = netip.AddrPortFrom(a, f.Port)
	}
	uh := &udpHandle{f: f, remote: remote, recv: recv, send: send, payer: h.net.Quota().PayerOf(c)}
	uh.q.Init(uh.charge, uh.release)
	_, uh.qlen = h.net.Limits()
	conn, err := h.Open(a.Is6(), port, remote, uh)
	if err != nil {
		h.net.Log().Info("open refused", "network", h.net.Name(), "file", "udp/"+a.String()+"/"+strconv.Itoa(int(f.Port)),
			"uid", c.Uid, "pid", c.Pid, "err", err.Error())
		return nil, err
	}
	uh.conn = conn
	f.remember(1)
	return uh, nil
}

// unprivilegedPortStart is the kernel's rule for binding low ports, which
// the host follows for its own ports.
func unprivilegedPortStart() uint16 {
	return 1024
}

// udpHandle is one open udp file: its endpoint and receive queue.
type udpHandle struct {
	f          *udpFile
	conn       *Conn
	remote     netip.AddrPort // valid when connected
	recv, send bool
	qlen       int
	// payer is the opener's: datagrams waiting in queue are its queued
	// bytes.
	payer *netcore.Payer

	// q is the receive queue; its pending error is a connected
	// endpoint's, for its next read or write.
	q pktq.Queue[datagram]

	mu   sync.Mutex // guards peer
	peer netip.AddrPort
	once sync.Once
}

type datagram struct {
	from netip.AddrPort
	data []byte
}

var (
	_ Sink             = (*udpHandle)(nil)
	_ netcore.Handle   = (*udpHandle)(nil)
	_ netcore.Streamer = (*udpHandle)(nil)
	_ netcore.Poller   = (*udpHandle)(nil)
)

func costOf(d datagram) int64 { return int64(len(d.data)) + netcore.QueueEntryCost }

func (u *udpHandle) charge(d datagram) bool {
	return u.payer.Take(netcore.Queued, costOf(d)) == nil
}

func (u *udpHandle) release(d datagram) { u.payer.Release(netcore.Queued, costOf(d)) }

// Payer: the opener pays for what it queues and sends (host.Payer).
func (u *udpHandle) Payer() *netcore.Payer { return u.payer }

// Deliver queues a datagram; a full queue drops it (counted).
func (u *udpHandle) Deliver(from, _ netip.AddrPort, payload []byte) func() {
	if !u.recv {
		u.f.Dir.d.h.stats.udpQueueDrops++ // the host's lock is held
		return nil
	}
	ok, w := u.q.Put(datagram{from, append([]byte(nil), payload...)}, u.qlen)
	if !ok {
		u.f.Dir.d.h.stats.udpQueueDrops++ // the host's lock is held
	}
	return w
}

// Error: a connected endpoint keeps the error for its next read or
// write, as a connected socket does; a bound one ignores it.
func (u *udpHandle) Error(peer netip.AddrPort, errno syscall.Errno) func() {
	remote := u.remote
	if !remote.IsValid() || (peer != remote && !(peer.Port() == 0 && peer.Addr() == remote.Addr())) {
		return nil
	}
	return u.q.Fail(errno)
}

func (u *udpHandle) Closed() {
	if w := u.q.Close(false); w != nil {
		w()
	}
}

// Poll reports readiness for poll(2) and epoll (netcore.Poller): readable
// when a datagram is queued, an error is pending (POLLERR too) or the
// host is gone (POLLHUP: end of file); writable
// always where the caller may send (a write waits at most for its
// neighbour and a short queue). A half without the right is never ready.
// wake is armed before the state is looked at, so nothing is missed.
func (u *udpHandle) Poll(events uint32, wake func()) uint32 {
	var ready uint32
	if u.send {
		ready |= netcore.PollOut | netcore.PollWrNorm
	}
	if !u.recv {
		return ready & events
	}
	if events&(netcore.PollIn|netcore.PollRdNorm) == 0 {
		wake = nil
	}
	st := u.q.Poll(wake)
	if st.Len > 0 {
		ready |= netcore.PollIn | netcore.PollRdNorm
	}
	if st.Err != 0 {
		ready |= netcore.PollIn | netcore.PollRdNorm | netcore.PollErr
	}
	if st.Closed {
		ready |= netcore.PollIn | netcore.PollRdNorm | netcore.PollHup
	}
	return ready & (events | netcore.PollErr | netcore.PollHup)
}

func (u *udpHandle) Read(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	if !u.recv {
		return 0, syscall.EBADF
	}
	if len(p) == 0 {
		return 0, nil
	}
	d, err := u.q.Get(ctx, nonblock)
	if err == io.EOF {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if !u.remote.IsValid() {
		u.mu.Lock()
		u.peer = d.from
		u.mu.Unlock()
	}
	return copy(p, d.data), nil
}

// Write sends p as one datagram: to the connected peer, or on a bound
// endpoint to the last sender (EDESTADDRREQ before the first).
func (u *udpHandle) Write(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	if !u.send {
		return 0, syscall.EBADF
	}
	if err := u.q.TakeErr(); err != nil {
		return 0, err
	}
	closed := u.q.Closed()
	u.mu.Lock()
	to := u.remote
	if !to.IsValid() {
		to = u.peer
	}
	u.mu.Unlock()
	if closed {
		return 0, syscall.EPIPE
	}
	if !to.IsValid() {
		return 0, syscall.EDESTADDRREQ
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := u.conn.Send(ctx, to, p, Wait, nonblock); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (u *udpHandle) Stream() bool { return true }

func (u *udpHandle) Close() {
	u.once.Do(func() {
		u.conn.Close()
		u.f.remember(-1)
		u.Closed()
		u.q.Drain()
	})
}
