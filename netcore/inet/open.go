package inet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/netcore"
)

// Open makes the socket this open file is: a connected UDP socket, a UDP
// socket bound to the wildcard, a TCP connection made, or one accepted on
// the wildcard. A refusal is logged with who asked.
func (pf *portFile) Open(ctx context.Context, c *netcore.Cred, flags int) (netcore.Handle, error) {
	f := pf.host.proto.f
	s, err := pf.open(ctx, c, flags)
	if err != nil {
		var e syscall.Errno
		if !errors.As(err, &e) {
			f.log.Error("open failed", "path", pf.path(), "uid", c.Uid, "pid", c.Pid, "err", err)
			return nil, syscall.EIO
		}
		log := f.log.Info
		if e == syscall.EINTR || e == syscall.EAGAIN {
			log = f.log.Debug // not a refusal: the caller asked not to wait
		}
		log("open failed", "path", pf.path(), "uid", c.Uid, "pid", c.Pid,
			"flags", fmt.Sprintf("%#x", flags), "err", e.Error())
		return nil, e
	}
	f.log.Debug("socket opened", "path", pf.path(), "uid", c.Uid, "pid", c.Pid)
	return s, nil
}

func (pf *portFile) open(ctx context.Context, c *netcore.Cred, flags int) (*sock, error) {
	f := pf.host.proto.f
	h := pf.host.h
	tcp := pf.host.proto.name == "tcp"
	if h.wildcard() {
		if err := mayBind(c, pf.port); err != nil {
			return nil, err
		}
	}
	if err := f.reserve(pf); err != nil {
		return nil, err
	}
	var (
		s   *sock
		l   *listener
		err error
	)
	switch {
	case tcp && h.wildcard():
		l, err = f.listen(c, pf.port)
		if err == nil {
			s, err = l.accept(ctx, flags&syscall.O_NONBLOCK != 0)
			if err != nil {
				f.unlisten(l, err == syscall.EAGAIN)
			}
		}
	case tcp:
		s, err = f.dialTCP(ctx, h, pf.port)
	case h.wildcard():
		s, err = f.bindUDP(pf.port)
	default:
		s, err = f.dialUDP(ctx, h, pf.port)
	}
	if err != nil {
		f.unreserve(pf)
		if ctx.Err() != nil {
			return nil, syscall.EINTR
		}
		return nil, errnoOf(err)
	}
	if err := f.adopt(s, pf, l); err != nil {
		return nil, err
	}
	return s, nil
}

// portStartFile holds the lowest port that needs no privilege to bind.
const portStartFile = "/proc/sys/net/ipv4/ip_unprivileged_port_start"

// mayBind applies the kernel's rule to the caller: ports below
// net.ipv4.ip_unprivileged_port_start (read at every bind, as the kernel
// does; it governs IPv6 too) are bound only by uid 0.
func mayBind(c *netcore.Cred, port uint16) error {
	if c.Root() {
		return nil
	}
	start := 1024 // the kernel's default, if the sysctl cannot be read
	if b, err := os.ReadFile(portStartFile); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			start = n
		}
	}
	if int(port) < start {
		return syscall.EACCES
	}
	return nil
}

// resolve returns the addresses of h in the family: the literal itself,
// or what the resolver answers for the name (EHOSTUNREACH if nothing).
func (f *Family) resolve(ctx context.Context, h host) ([]netip.Addr, error) {
	if h.literal() {
		return []netip.Addr{h.addr}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, f.v.ip, h.name)
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

func (f *Family) dialUDP(ctx context.Context, h host, port uint16) (*sock, error) {
	addrs, err := f.resolve(ctx, h)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialUDP(f.v.udp, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrs[0], port)))
	if err != nil {
		return nil, err
	}
	return newSock(conn, false, false)
}

// bindUDP binds the wildcard. Go sets no SO_REUSEADDR on it, so a port
// already bound is EADDRINUSE; an inet6 socket is IPv6 only (IPV6_V6ONLY).
func (f *Family) bindUDP(port uint16) (*sock, error) {
	conn, err := net.ListenUDP(f.v.udp, &net.UDPAddr{IP: f.v.unspecified(), Port: int(port)})
	if err != nil {
		return nil, err
	}
	return newSock(conn, false, true)
}

// dialTCP connects to each address of h in turn; the first error is the
// one returned if none answers. ctx (a signal) ends the wait.
func (f *Family) dialTCP(ctx context.Context, h host, port uint16) (*sock, error) {
	addrs, err := f.resolve(ctx, h)
	if err != nil {
		return nil, err
	}
	var first error
	for _, a := range addrs {
		var d net.Dialer
		conn, err := d.DialContext(ctx, f.v.tcp, netip.AddrPortFrom(a, port).String())
		if err == nil {
			return newSock(conn.(*net.TCPConn), true, false)
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

func (v *version) unspecified() net.IP {
	if v == v4 {
		return net.IPv4zero
	}
	return net.IPv6unspecified
}

// listener is the listening socket behind inet/tcp/0.0.0.0/PORT. Every
// open of the file accepts one connection from it; it is shared by the
// opens of one uid (the kernel lets only one uid share a port, with
// SO_REUSEPORT) and closed when no open waits on it or holds a connection
// from it. After an O_NONBLOCK open found no connection it stays
// nonblockLinger longer, so that connections can queue for the retry.
type listener struct {
	port  uint16
	uid   uint32
	ln    *net.TCPListener
	rc    syscall.RawConn
	intr  interrupter
	users int // opens using it, and linger timers; guarded by Family.mu
}

// nonblockLinger is how long a listener outlives an O_NONBLOCK open that
// found no connection waiting.
const nonblockLinger = 5 * time.Second

// listen returns the port's listener, made if there is none yet.
func (f *Family) listen(c *netcore.Cred, port uint16) (*listener, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, syscall.ECONNABORTED
	}
	if l := f.listeners[port]; l != nil {
		if l.uid != c.Uid {
			return nil, syscall.EADDRINUSE
		}
		l.users++
		return l, nil
	}
	ln, err := net.ListenTCP(f.v.tcp, &net.TCPAddr{IP: f.v.unspecified(), Port: int(port)})
	if err != nil {
		return nil, err
	}
	rc, err := ln.SyscallConn()
	if err != nil {
		ln.Close()
		return nil, err
	}
	l := &listener{port: port, uid: c.Uid, ln: ln, rc: rc, users: 1}
	l.intr.setDeadline = ln.SetDeadline
	f.listeners[port] = l
	f.log.Debug("listening", "port", port, "uid", c.Uid)
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
	closing := l.users == 0 && f.listeners[l.port] == l
	if closing {
		delete(f.listeners, l.port)
	}
	f.mu.Unlock()
	if closing {
		l.ln.Close()
		f.log.Debug("listener closed", "port", l.port)
	}
}

// accept takes one connection; with nonblock, EAGAIN if none is waiting.
func (l *listener) accept(ctx context.Context, nonblock bool) (*sock, error) {
	var conn *net.TCPConn
	var err error
	if nonblock {
		conn, err = l.acceptNow()
	} else {
		// A listener's RawConn cannot wait (its Read is EINVAL), but
		// AcceptTCP waits in the poller and honours the deadline.
		err = l.intr.do(ctx, func() error {
			var aerr error
			conn, aerr = l.ln.AcceptTCP()
			return aerr
		})
	}
	if err != nil {
		return nil, err
	}
	conn.SetNoDelay(true) // as for connections made: each write(2) leaves at once
	return newSock(conn, true, false)
}

// acceptNow accepts a connection already queued, without waiting.
func (l *listener) acceptNow() (*net.TCPConn, error) {
	nfd := -1
	var aerr error
	err := l.rc.Control(func(fd uintptr) {
		for {
			nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			// ECONNABORTED: a queued connection was reset; take the next.
			if aerr != unix.EINTR && aerr != unix.ECONNABORTED {
				return
			}
		}
	})
	if err != nil {
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
	return conn.(*net.TCPConn), nil
}
