// SPDX-License-Identifier: BSD-3-Clause

package mhost

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/iphost"
)

// mhost/any/udp/PORT: each open binds PORT on inet (0.0.0.0), inet6 (::)
// and the userspace host of every network the caller may receive on (r),
// for IPv4 and IPv6; it reads datagrams from all of them and writes back
// to the last sender by the way its datagram came.

type anyDir struct {
	id  uint64
	f   *Family
	udp *anyUDPDir
}

func newAnyDir(f *Family) *anyDir {
	return &anyDir{id: netcore.NewID(), f: f, udp: &anyUDPDir{id: netcore.NewID(), f: f, ports: portFiles[*anyFile]{}}}
}

func (d *anyDir) ID() uint64 { return d.id }
func (d *anyDir) Attr(*netcore.Cred) netcore.Attr {
	return netcore.Attr{Mode: syscall.S_IFDIR | 0555, Mtime: d.f.start}
}
func (d *anyDir) List(*netcore.Cred) []netcore.DirEntry {
	return []netcore.DirEntry{{Name: "udp", Node: d.udp}}
}
func (d *anyDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	if name == "udp" {
		return d.udp, nil
	}
	return nil, syscall.ENOENT
}

type anyUDPDir struct {
	id    uint64
	f     *Family
	mu    sync.Mutex
	ports portFiles[*anyFile]
}

func (d *anyUDPDir) ID() uint64 { return d.id }
func (d *anyUDPDir) Attr(*netcore.Cred) netcore.Attr {
	return netcore.Attr{Mode: syscall.S_IFDIR | 0555, Mtime: d.f.start}
}

func (d *anyUDPDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	p, err := netcore.ParsePort(name)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ports.lookup(p, func() *anyFile { return &anyFile{id: netcore.NewID(), d: d, port: p} }), nil
}

// List shows the PORTs with open files.
func (d *anyUDPDir) List(*netcore.Cred) []netcore.DirEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ports.list()
}

type anyFile struct {
	id     uint64
	d      *anyUDPDir
	port   uint16
	opened int // guarded by d.mu
}

func (f *anyFile) ID() uint64 { return f.id }
func (f *anyFile) Attr(*netcore.Cred) netcore.Attr {
	return netcore.Attr{Mode: syscall.S_IFREG | 0666, Mtime: f.d.f.start}
}

// Open binds PORT everywhere the caller may. A port taken on any of them
// is EADDRINUSE, and nothing stays bound.
func (f *anyFile) Open(_ context.Context, c *netcore.Cred, _ int) (netcore.Handle, error) {
	// Kernel sockets in the caller's network namespace, owned by its
	// uid; a port below the namespace's unprivileged start needs
	// CAP_NET_BIND_SERVICE, as for inet.
	ns, err := netns.OfTask(c.Pid)
	if err != nil {
		return nil, err
	}
	defer ns.Close() // sockets keep their namespace
	if int(f.port) < ns.UnprivilegedPortStart() && !c.HasCap(netcore.CapNetBindService) {
		return nil, syscall.EACCES
	}
	payer := f.d.f.quota.PayerOf(c)
	a := &anyEndpoint{f: f}
	a.q.init(payer)
	fail := func(err error) (netcore.Handle, error) {
		a.closePaths()
		return nil, err
	}
	for _, v6 := range []bool{false, true} {
		// Each socket counts in the caller's quota of sockets.
		if err := payer.Take(netcore.Sockets, 1); err != nil {
			return fail(err)
		}
		conn, err := ns.ListenUDP(v6, f.port, c.Uid)
		if err != nil {
			payer.Release(netcore.Sockets, 1)
			if v6 && errors.Is(err, syscall.EAFNOSUPPORT) {
				continue // no IPv6 in this namespace
			}
			return fail(errnoOf(err))
		}
		kp := &anyKernel{conn: conn, payer: payer, done: make(chan struct{})}
		a.paths = append(a.paths, kp)
		go kp.readLoop(a)
	}
	for _, h := range iphost.Hosts() {
		if recv, _ := h.Rights(c); !recv {
			continue
		}
		for _, v6 := range []bool{false, true} {
			hp := &anyIPHost{a: a}
			conn, err := h.Open(v6, f.port, netip.AddrPort{}, hp)
			if err != nil {
				return fail(err)
			}
			hp.conn = conn
			a.paths = append(a.paths, hp)
		}
	}
	if err := f.d.f.reserve(a, payer); err != nil {
		return fail(err)
	}
	f.d.mu.Lock()
	f.opened++
	f.d.mu.Unlock()
	return a, nil
}

type anyEndpoint struct {
	f     *anyFile
	q     queue
	paths []path

	mu   sync.Mutex
	last datagram // its data is not kept
	once sync.Once
}

var (
	_ netcore.Handle   = (*anyEndpoint)(nil)
	_ netcore.Streamer = (*anyEndpoint)(nil)
	_ netcore.Poller   = (*anyEndpoint)(nil)
)

func (a *anyEndpoint) Stream() bool { return true }

func (a *anyEndpoint) deliver(from netip.AddrPort, via path, b []byte) func() {
	_, wake := a.q.put(datagram{from: from, via: via, data: append([]byte(nil), b...)})
	return wake
}

// Poll: see queue.poll; an any endpoint may always write (to the last
// sender, or EDESTADDRREQ at once).
func (a *anyEndpoint) Poll(events uint32, wake func()) uint32 {
	return a.q.poll(events, wake, true, true)
}

func (a *anyEndpoint) Read(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	d, err := a.q.get(ctx, nonblock)
	if err == io.EOF {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	a.mu.Lock()
	a.last = datagram{from: d.from, via: d.via}
	a.mu.Unlock()
	return copy(p, d.data), nil
}

// Write answers the last sender, by the way its datagram came.
func (a *anyEndpoint) Write(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	a.mu.Lock()
	last := a.last
	a.mu.Unlock()
	if last.via == nil {
		return 0, syscall.EDESTADDRREQ
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := last.via.send(ctx, last.from, p, nonblock); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (a *anyEndpoint) closePaths() {
	for _, pa := range a.paths {
		pa.close()
	}
}

func (a *anyEndpoint) Close() {
	a.once.Do(func() {
		a.closePaths()
		a.q.close()
		a.f.d.f.release(a)
		a.f.d.mu.Lock()
		a.f.opened--
		a.f.d.mu.Unlock()
	})
}

// anyKernel is a kernel socket bound to the wildcard.
type anyKernel struct {
	conn  *net.UDPConn
	payer *netcore.Payer // its socket counts for it
	done  chan struct{}
}

func (k *anyKernel) readLoop(a *anyEndpoint) {
	defer close(k.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := k.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		k.deliver(a, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), buf[:n])
	}
}

// deliver hands one datagram read from the socket to the endpoint. A
// panic is contained to the datagram (lost, counted, logged): the reader
// goes on.
func (k *anyKernel) deliver(a *anyEndpoint, from netip.AddrPort, b []byte) {
	defer func() {
		if r := recover(); r != nil {
			netcore.Contained(a.f.d.f.log, r, "panic delivering a datagram; datagram dropped", "host", "any")
		}
	}()
	if wake := a.deliver(from, k, b); wake != nil {
		wake()
	}
}

func (k *anyKernel) send(_ context.Context, to netip.AddrPort, p []byte, _ bool) error {
	_, err := k.conn.WriteToUDPAddrPort(p, to)
	return errnoOf(err)
}

func (k *anyKernel) close() {
	k.conn.Close()
	<-k.done
	k.payer.Release(netcore.Sockets, 1)
}

// anyIPHost is the endpoint bound to the port on a network's userspace IP
// host.
type anyIPHost struct {
	a    *anyEndpoint
	conn *iphost.Conn
}

func (h *anyIPHost) send(ctx context.Context, to netip.AddrPort, p []byte, nonblock bool) error {
	return h.conn.Send(ctx, to, p, iphost.Wait, nonblock)
}

func (h *anyIPHost) close() {
	if h.conn != nil {
		h.conn.Close()
	}
}

// Payer: see hostPath.Payer.
func (h *anyIPHost) Payer() *netcore.Payer { return h.a.q.payer }

func (h *anyIPHost) Deliver(from, _ netip.AddrPort, payload []byte) func() {
	return h.a.deliver(from, h, payload)
}
func (h *anyIPHost) Error(netip.AddrPort, syscall.Errno) func() { return nil }
func (h *anyIPHost) Closed()                                    {}
