// SPDX-License-Identifier: BSD-3-Clause

package netns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// daemonFsuid is the daemon's own fsuid, to which a thread returns after
// making a socket for a caller. Setting one's fsuid back to one's euid
// needs no privilege, so the return cannot fail.
var daemonFsuid = uint32(os.Geteuid())

// setfsuid sets the calling thread's fsuid (and only that thread's: the
// raw system call, not Go's process-wide syscall.Setfsuid wrappers).
func setfsuid(uid uint32) {
	unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
}

// as runs fn, which makes a socket, as uid: on this goroutine's thread,
// locked, with its fsuid set to uid for the call.
func as(uid uint32, fn func()) {
	if uid == daemonFsuid {
		fn()
		return
	}
	runtime.LockOSThread()
	setfsuid(uid)
	fn()
	setfsuid(daemonFsuid)
	runtime.UnlockOSThread()
}

// Socket returns a new non-blocking, close-on-exec socket made inside ns
// and owned by uid.
func (ns *NS) Socket(uid uint32, domain, typ, proto int) (int, error) {
	fd, err := -1, error(nil)
	mk := func() {
		as(uid, func() {
			fd, err = unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		})
	}
	if derr := ns.Do(mk); derr != nil {
		return -1, derr
	}
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// Accept takes a connection queued on the listening socket fd, without
// waiting (EAGAIN when none is), as uid: the kernel gives an accepted
// socket the owner of the accepting thread.
func Accept(uid uint32, fd int) (int, error) {
	nfd, err := -1, error(nil)
	as(uid, func() {
		for {
			nfd, _, err = unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			// ECONNABORTED: a queued connection was reset; take the next.
			if err != unix.EINTR && err != unix.ECONNABORTED {
				return
			}
		}
	})
	return nfd, err
}

// fileConn turns socket fd into a net.Conn in Go's poller; fd is closed.
func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "socket")
	c, err := net.FileConn(f)
	f.Close()
	return c, err
}

func sockaddr(a netip.AddrPort) (unix.Sockaddr, int) {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}, unix.AF_INET
	}
	sa := &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
	if z := a.Addr().Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.Atoi(z); err == nil {
			sa.ZoneId = uint32(n)
		}
	}
	return sa, unix.AF_INET6
}

// socketFor makes a socket of network ("udp" or "tcp") for addresses of
// domain; IPv6 sockets are IPv6 only, as Go makes them for "udp6"/"tcp6".
func (ns *NS) socketFor(uid uint32, network string, domain int) (int, error) {
	typ := unix.SOCK_DGRAM
	if network == "tcp" {
		typ = unix.SOCK_STREAM
	}
	fd, err := ns.Socket(uid, domain, typ, 0)
	if err != nil {
		return -1, err
	}
	if domain == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	return fd, nil
}

// aLongTimeAgo is a deadline that has always passed.
var aLongTimeAgo = time.Unix(1, 0)

// Dial makes a socket in ns owned by uid and connects it to addr: network
// is "udp" or "tcp". A TCP connect waits for the handshake, in Go's
// poller, until it completes or ctx is done (then ctx's error). A zone
// in addr is an interface name or index in ns.
func (ns *NS) Dial(ctx context.Context, network string, addr netip.AddrPort, uid uint32) (net.Conn, error) {
	var sa unix.Sockaddr
	var domain int
	if addr.Addr().Zone() != "" && !ns.Self() {
		// The zone names an interface of the caller's namespace.
		if err := ns.Do(func() { sa, domain = sockaddr(addr) }); err != nil {
			return nil, err
		}
	} else {
		sa, domain = sockaddr(addr)
	}
	fd, err := ns.socketFor(uid, network, domain)
	if err != nil {
		return nil, err
	}
	cerr := unix.Connect(fd, sa)
	if cerr != nil && cerr != unix.EINPROGRESS && cerr != unix.EINTR {
		unix.Close(fd)
		return nil, os.NewSyscallError("connect", cerr)
	}
	conn, err := fileConn(fd)
	if err != nil || cerr == nil {
		return conn, err
	}
	// In progress: wait until writable, then SO_ERROR says how it went
	// (as Go's own connect does).
	rc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(aLongTimeAgo) })
	var serr error
	werr := rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			serr = err
			return true
		}
		switch e := syscall.Errno(v); e {
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		case 0, unix.EISCONN:
			if _, err := unix.Getpeername(int(fd)); err != nil {
				return false // not yet: a wake-up before the handshake
			}
			return true
		default:
			serr = e
			return true
		}
	})
	if !stop() || ctx.Err() != nil {
		conn.Close()
		return nil, ctx.Err()
	}
	if werr == nil {
		werr = serr
	}
	if werr != nil {
		conn.Close()
		return nil, os.NewSyscallError("connect", werr)
	}
	return conn, nil
}

// ListenUDP makes a UDP socket in ns owned by uid, bound to port on the
// unspecified address (v6: "::", IPv6 only). No SO_REUSEADDR, no
// SO_BROADCAST: a port already bound is EADDRINUSE.
func (ns *NS) ListenUDP(v6 bool, port uint16, uid uint32) (*net.UDPConn, error) {
	fd, err := ns.bound(uid, "udp", v6, port)
	if err != nil {
		return nil, err
	}
	conn, err := fileConn(fd)
	if err != nil {
		return nil, err
	}
	return conn.(*net.UDPConn), nil
}

// ListenTCP makes a TCP socket in ns owned by uid, listening on port of
// the unspecified address (SO_REUSEADDR, as Go's listeners). It is
// returned as a file in Go's poller (readable: a connection is queued);
// take connections with Accept inside the file's RawConn.
func (ns *NS) ListenTCP(v6 bool, port uint16, uid uint32) (*os.File, error) {
	fd, err := ns.bound(uid, "tcp", v6, port)
	if err != nil {
		return nil, err
	}
	if err := unix.Listen(fd, 4096); err != nil { // the kernel caps it at somaxconn
		unix.Close(fd)
		return nil, os.NewSyscallError("listen", err)
	}
	return os.NewFile(uintptr(fd), "tcp-listener"), nil
}

func (ns *NS) bound(uid uint32, network string, v6 bool, port uint16) (int, error) {
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(port)}
	domain := unix.AF_INET
	if v6 {
		sa, domain = &unix.SockaddrInet6{Port: int(port)}, unix.AF_INET6
	}
	fd, err := ns.socketFor(uid, network, domain)
	if err != nil {
		return -1, err
	}
	if network == "tcp" {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	return fd, nil
}

// Resolver returns a resolver whose queries leave from ns, on sockets
// owned by uid: net.DefaultResolver for the daemon's own namespace, else
// Go's resolver dialing through Dial. Both read the daemon's
// /etc/resolv.conf and /etc/hosts.
func (ns *NS) Resolver(uid uint32) *net.Resolver {
	if ns.Self() {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return nil, err
		}
		return ns.Dial(ctx, strings.TrimRight(network, "46"), ap, uid)
	}}
}

// ReadFile reads the file at path as a thread inside ns does: for files
// under /proc/sys/net, the namespace's own settings.
func (ns *NS) ReadFile(path string) ([]byte, error) {
	var b []byte
	var err error
	if derr := ns.Do(func() { b, err = os.ReadFile(path) }); derr != nil {
		return nil, derr
	}
	return b, err
}

// UnprivilegedPortStart is the lowest port a socket in ns binds without
// CAP_NET_BIND_SERVICE: net.ipv4.ip_unprivileged_port_start of ns (it
// governs IPv6 too), read at every call as the kernel reads it at every
// bind; 1024, the kernel's default, if it cannot be read.
func (ns *NS) UnprivilegedPortStart() int {
	b, err := ns.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// IsClosed reports whether err is what a socket's RawConn returns once
// the socket was closed.
func IsClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) ||
		err != nil && strings.Contains(err.Error(), "use of closed file")
}
