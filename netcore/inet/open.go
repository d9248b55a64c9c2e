// SPDX-License-Identifier: BSD-3-Clause

package inet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
)

// Open makes the socket this open file is: a connected UDP socket, a UDP
// socket bound to the wildcard, a TCP connection made, or one accepted on
// the wildcard. A refusal is logged with who asked.
func (pf *portFile) Open(ctx context.Context, c *netcore.Cred, flags int) (netcore.Handle, error) {
	f := pf.Dir.proto.f
	s, err := pf.open(ctx, c, flags)
	if err != nil {
		var e syscall.Errno
		if !errors.As(err, &e) {
			f.log.Error("open failed", "path", pf.path(), "uid", c.Uid, "pid", c.Pid, "err", err)
			return nil, syscall.EIO
		}
		log := f.log.Info
		switch e {
		case syscall.EINTR, syscall.EAGAIN:
			log = f.log.Debug // not a refusal: the caller asked not to wait
		case syscall.EMFILE, syscall.ENFILE:
			log = f.log.Debug // the quota logged it, rate-limited
		}
		log("open failed", "path", pf.path(), "uid", c.Uid, "pid", c.Pid,
			"flags", fmt.Sprintf("%#x", flags), "err", e.Error())
		return nil, e
	}
	f.log.Debug("socket opened", "path", pf.path(), "uid", c.Uid, "pid", c.Pid)
	return s, nil
}

func (pf *portFile) open(ctx context.Context, c *netcore.Cred, flags int) (*sock, error) {
	f := pf.Dir.proto.f
	to := pf.Dir.peer
	tcp := pf.Dir.proto.name == "tcp"
	// The socket is the caller's: made in its network namespace, owned
	// by its uid. A caller the daemon cannot see has no namespace here.
	ns, err := netns.OfTask(c.Pid)
	if err != nil {
		return nil, err
	}
	defer ns.Close() // sockets keep their namespace
	if to.wildcard() {
		if err := mayBind(c, ns, pf.Port); err != nil {
			return nil, err
		}
	}
	payer := f.quota.PayerOf(c)
	if err := f.reserve(pf, payer); err != nil {
		return nil, err
	}
	var (
		s *sock
		l *listener
	)
	switch {
	case tcp && to.wildcard():
		l, err = f.listen(ns, c, pf.Port)
		if err == nil {
			s, err = l.accept(ctx, flags&syscall.O_NONBLOCK != 0)
			if err != nil {
				f.unlisten(l, err == syscall.EAGAIN)
			}
		}
	case tcp:
		s, err = f.dialTCP(ctx, ns, c.Uid, to, pf.Port)
	case to.wildcard():
		s, err = f.bindUDP(ns, c.Uid, pf.Port)
	default:
		s, err = f.dialUDP(ctx, ns, c.Uid, to, pf.Port)
	}
	if err != nil {
		f.unreserve(pf, payer)
		// A wait a signal cut short is EINTR. An answer the socket gave
		// by itself stands, even if a signal came meanwhile: a
		// non-blocking accept with no connection is EAGAIN, as the
		// kernel's would be (a Go caller's threads get the runtime's
		// preemption signals all the time).
		var e syscall.Errno
		if ctx.Err() != nil && (!errors.As(err, &e) || e == syscall.EINTR) {
			return nil, syscall.EINTR
		}
		return nil, errnoOf(err)
	}
	if err := f.adopt(s, pf, payer, l); err != nil {
		return nil, err
	}
	return s, nil
}

// mayBind applies the kernel's rule to the caller: ports below
// net.ipv4.ip_unprivileged_port_start of the caller's namespace are bound
// only with CAP_NET_BIND_SERVICE in the caller's effective set. uid 0
// without it is refused, as the kernel refuses it.
func mayBind(c *netcore.Cred, ns *netns.NS, port uint16) error {
	if int(port) < ns.UnprivilegedPortStart() && !c.HasCap(netcore.CapNetBindService) {
		return syscall.EACCES
	}
	return nil
}

// resolve returns the addresses of to in the family: the literal itself,
// or what the resolver answers for the name (EHOSTUNREACH if nothing),
// asked from the caller's namespace.
func (f *Family) resolve(ctx context.Context, ns *netns.NS, uid uint32, to peer) ([]netip.Addr, error) {
	if to.literal() {
		return []netip.Addr{to.addr}, nil
	}
	addrs, err := ns.Resolver(uid).LookupNetIP(ctx, f.v.ip, to.name)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if (f.v == v4) == a.Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, syscall.EHOSTUNREACH
	}
	return out, nil
}

func (f *Family) dialUDP(ctx context.Context, ns *netns.NS, uid uint32, to peer, port uint16) (*sock, error) {
	addrs, err := f.resolve(ctx, ns, uid, to)
	if err != nil {
		return nil, err
	}
	conn, err := ns.Dial(ctx, "udp", netip.AddrPortFrom(addrs[0], port), uid)
	if err != nil {
		return nil, err
	}
	return newSock(conn.(*net.UDPConn), false, false)
}

// bindUDP binds the wildcard, with no SO_REUSEADDR: a port already bound
// is EADDRINUSE; an inet6 socket is IPv6 only (IPV6_V6ONLY).
func (f *Family) bindUDP(ns *netns.NS, uid uint32, port uint16) (*sock, error) {
	conn, err := ns.ListenUDP(f.v == v6, port, uid)
	if err != nil {
		return nil, err
	}
	return newSock(conn, false, true)
}

// dialTCP connects to each address of to in turn; the first error is the
// one returned if none answers. ctx (a signal) ends the wait.
func (f *Family) dialTCP(ctx context.Context, ns *netns.NS, uid uint32, to peer, port uint16) (*sock, error) {
	addrs, err := f.resolve(ctx, ns, uid, to)
	if err != nil {
		return nil, err
	}
	var first error
	for _, a := range addrs {
		conn, err := ns.Dial(ctx, "tcp", netip.AddrPortFrom(a, port), uid)
		if err == nil {
			tc := conn.(*net.TCPConn)
			tc.SetNoDelay(true) // each write(2) leaves at once
			return newSock(tc, true, false)
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// listener is the listening socket behind inet/tcp/0.0.0.0/PORT in one
// network namespace. Every open of the file accepts one connection from
// it; it is shared by the opens of one uid (the kernel lets only one uid
// share a port, with SO_REUSEPORT) and closed when no open waits on it or
// holds a connection from it. After an O_NONBLOCK open found no
// connection it stays nonblockLinger longer, so that connections can
// queue for the retry.
type listener struct {
	key    listenerKey
	uid    uint32
	file   *os.File // the listening socket, in Go's poller
	rc     syscall.RawConn
	intr   interrupter
	closed atomic.Bool
	users  int // opens using it, and linger timers; guarded by Family.mu
}

// listenerKey is a port in a network namespace.
type listenerKey struct {
	ns   netns.ID
	port uint16
}

// nonblockLinger is how long a listener outlives an O_NONBLOCK open that
// found no connection waiting.
const nonblockLinger = 5 * time.Second

// listen returns the port's listener in the caller's namespace, made if
// there is none yet.
func (f *Family) listen(ns *netns.NS, c *netcore.Cred, port uint16) (*listener, error) {
	key := listenerKey{ns.ID(), port}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, syscall.ECONNABORTED
	}
	if l := f.listeners[key]; l != nil {
		if l.uid != c.Uid {
			return nil, syscall.EADDRINUSE
		}
		l.users++
		return l, nil
	}
	file, err := ns.ListenTCP(f.v == v6, port, c.Uid)
	if err != nil {
		return nil, err
	}
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	l := &listener{key: key, uid: c.Uid, file: file, rc: rc, users: 1}
	l.intr.setDeadline = file.SetReadDeadline
	f.listeners[key] = l
	f.log.Debug("listening", "port", port, "uid", c.Uid, "own-netns", ns.Self())
	return l, nil
}

// unlisten drops one user of l and closes it after the last, or, with
// linger, nonblockLinger after the last.
func (f *Family) unlisten(l *listener, linger bool) {
	f.mu.Lock()
	l.users--
	if linger {
		l.users++ // the timer's
		time.AfterFunc(nonblockLinger, func() { f.unlisten(l, false) })
	}
	closing := l.users == 0 && f.listeners[l.key] == l
	if closing {
		delete(f.listeners, l.key)
	}
	f.mu.Unlock()
	if closing {
		l.close()
		f.log.Debug("listener closed", "port", l.key.port)
	}
}

func (l *listener) close() {
	l.closed.Store(true)
	l.file.Close()
}

// accept takes one connection, owned by the listener's uid; with
// nonblock, EAGAIN if none is waiting.
func (l *listener) accept(ctx context.Context, nonblock bool) (*sock, error) {
	nfd := -1
	var aerr error
	// try returns false to wait in the poller when nothing is queued
	// and wait is set.
	try := func(fd uintptr, wait bool) bool {
		nfd, aerr = netns.Accept(l.uid, int(fd))
		return aerr != unix.EAGAIN || !wait
	}
	err := l.rc.Control(func(fd uintptr) { try(fd, false) })
	if err == nil && aerr == unix.EAGAIN && !nonblock {
		err = l.intr.do(ctx, func() error { return l.rc.Read(func(fd uintptr) bool { return try(fd, true) }) })
	}
	if err != nil {
		if l.closed.Load() || netns.IsClosed(err) {
			return nil, syscall.ECONNABORTED
		}
		return nil, err
	}
	if aerr != nil {
		return nil, aerr
	}
	file := os.NewFile(uintptr(nfd), "tcp")
	conn, err := net.FileConn(file) // a dup, in Go's poller
	file.Close()
	if err != nil {
		return nil, err
	}
	tc := conn.(*net.TCPConn)
	tc.SetNoDelay(true) // as for connections made: each write(2) leaves at once
	return newSock(tc, true, false)
}
