// SPDX-License-Identifier: BSD-3-Clause

package vxlan

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/tap"
	"github.com/mnet-project/mnet/netcore/link"
)

// where is where a cable's sockets are made. Every socket of a cable (its
// share of the receiving socket, its sending sockets, the probes that ask
// for a path's MTU or an interface) is made by where.socket, so where the
// underlay is gets decided in this one place: in the network namespace the
// cable is made in (the caller's, pinned when it opened ctl, or the one a
// restored cable was made in), owned by the caller's uid (root for a
// restored cable).
type where struct {
	ns  *netns.NS
	uid uint32
}

// whereFor is where env's cable makes its sockets.
func whereFor(env link.Env) where {
	w := where{ns: env.NS}
	if env.Cred != nil {
		w.uid = env.Cred.Uid
	}
	return w
}

// socket makes a close-on-exec socket there.
func (w where) socket(domain, typ, proto int) (int, error) {
	return w.ns.Socket(w.uid, domain, typ, proto)
}

// key names the namespace, so that cables share a receiving socket only
// within one.
func (w where) key() string { return nsKey(w.ns.ID()) }

func nsKey(id netns.ID) string {
	if id == (netns.ID{}) || id == netns.Self().ID() {
		return ""
	}
	return fmt.Sprintf("%d:%d", id.Dev, id.Ino)
}

// socketBuffer is the receive and send buffer asked for each socket: a
// burst of a TCP window at 10 Gbit/s must not overflow it.
const socketBuffer = 4 << 20

// underlayKey names one receiving socket: a UDP port of one address
// family in one network namespace.
type underlayKey struct {
	netns string
	v6    bool
	port  uint16
}

// underlay is one UDP socket receiving VXLAN for every cable on its port,
// demultiplexed by VNI. It has no goroutine of its own: the cable whose
// Read holds the token reads the socket, keeps the frames of its VNI and
// queues the others' for them, so a port with one cable (the usual case)
// hands each frame from the socket to the network without a goroutine in
// between.
type underlay struct {
	key  underlayKey
	conn *net.UDPConn
	log  *slog.Logger
	// token is held by the one reader of the socket.
	token chan struct{}

	refs   int              // cables holding it; guarded by underlaysMu
	groups map[groupKey]int // memberships, by cables holding them; guarded by underlaysMu
	mu     sync.RWMutex     // guards cables
	cables map[uint32]*cable

	bad, unknown atomic.Uint64 // datagrams refused: not VXLAN, or no cable for the VNI
	badLog       rateLog
}

type groupKey struct {
	group   netip.Addr
	ifindex int
}

var (
	underlaysMu sync.Mutex
	underlays   = map[underlayKey]*underlay{}
)

// acquireUnderlay returns the receiving socket for key, made if needed;
// release gives it back.
func acquireUnderlay(env link.Env, w where, key underlayKey) (*underlay, error) {
	underlaysMu.Lock()
	defer underlaysMu.Unlock()
	if u := underlays[key]; u != nil {
		u.refs++
		return u, nil
	}
	conn, err := listenUDP(w, key)
	if err != nil {
		return nil, err
	}
	u := &underlay{key: key, conn: conn, log: env.Log, token: make(chan struct{}, 1), refs: 1,
		groups: map[groupKey]int{}, cables: map[uint32]*cable{}}
	u.token <- struct{}{}
	underlays[key] = u
	return u, nil
}

// listenUDP binds the UDP port of key on every address of its family.
func listenUDP(w where, key underlayKey) (*net.UDPConn, error) {
	domain := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(key.port)}
	if key.v6 {
		domain = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(key.port)}
	}
	fd, err := w.socket(domain, unix.SOCK_DGRAM, 0)
	if err != nil {
		return nil, link.Errorf(link.ErrnoOf(err), "vxlan: UDP socket: %v", err)
	}
	if key.v6 {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	growBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF)
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, link.Errorf(unix.EADDRINUSE, "vxlan: UDP port %d is in use (by a Linux vxlan device?)", key.port)
		}
		return nil, link.Errorf(link.ErrnoOf(err), "vxlan: bind UDP port %d: %v", key.port, err)
	}
	f := os.NewFile(uintptr(fd), "vxlan-udp")
	pc, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		return nil, link.Errorf(link.ErrnoOf(err), "vxlan: UDP socket: %v", err)
	}
	return pc.(*net.UDPConn), nil
}

// growBuffer asks for socketBuffer bytes, beyond the sysctl limit when
// the daemon may (force).
func growBuffer(fd, force, plain int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, socketBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, socketBuffer)
	}
}

// add makes c the cable of its VNI on u.
func (u *underlay) add(c *cable) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.cables[c.spec.vni] != nil {
		return link.Errorf(syscall.EEXIST, "vxlan: VNI %d on UDP port %d is taken", c.spec.vni, u.key.port)
	}
	u.cables[c.spec.vni] = c
	return nil
}

// remove takes c off u, and wakes the reader of the socket, which may be
// c's Read, now to return.
func (u *underlay) remove(c *cable) {
	u.mu.Lock()
	if u.cables[c.spec.vni] == c {
		delete(u.cables, c.spec.vni)
	}
	u.mu.Unlock()
	u.conn.SetReadDeadline(time.Unix(1, 0))
}

// cable returns the cable of vni, or nil.
func (u *underlay) cable(vni uint32) *cable {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.cables[vni]
}

// release gives back what acquireUnderlay returned: the last cable to
// let go closes the socket, which ends its goroutine.
func (u *underlay) release() {
	underlaysMu.Lock()
	defer underlaysMu.Unlock()
	u.refs--
	if u.refs > 0 {
		return
	}
	delete(underlays, u.key)
	u.conn.Close()
}

// join makes u a member of g on ifindex (0: the routing table's choice);
// memberships are counted, as cables on one port may share a group. The
// socket then also sends to the group: one hop, as Linux sends to a group,
// not looped back (the cable would hear its own frames), out of the
// group's interface (the last joined, if cables on one port name several).
func (u *underlay) join(g groupKey, v6 bool) error {
	underlaysMu.Lock()
	defer underlaysMu.Unlock()
	if u.groups[g] > 0 {
		u.groups[g]++
		return nil
	}
	if err := u.membership(g, true); err != nil {
		return link.Errorf(link.ErrnoOf(err), "vxlan: joining group %s: %v", g.group, err)
	}
	if err := u.control(func(fd int) error { return multicastOptions(fd, v6, g.ifindex) }); err != nil {
		u.membership(g, false)
		return link.Errorf(link.ErrnoOf(err), "vxlan: multicast options: %v", err)
	}
	u.groups[g] = 1
	return nil
}

func multicastOptions(fd int, v6 bool, ifindex int) error {
	var errs []error
	if v6 {
		errs = append(errs, unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 1),
			unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0))
		if ifindex != 0 {
			errs = append(errs, unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex))
		}
	} else {
		errs = append(errs, unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1),
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0))
		if ifindex != 0 {
			errs = append(errs, unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF,
				&unix.IPMreqn{Ifindex: int32(ifindex)}))
		}
	}
	return errors.Join(errs...)
}

// control runs fn on the socket's descriptor.
func (u *underlay) control(fn func(fd int) error) error {
	rc, err := u.conn.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// sendmsg sends one buffer from the socket without waiting.
func (u *underlay) sendmsg(b, oob []byte, sa unix.Sockaddr) error {
	return u.control(func(fd int) error { return sendmsg(fd, b, oob, sa) })
}

func (u *underlay) leave(g groupKey) {
	underlaysMu.Lock()
	defer underlaysMu.Unlock()
	u.groups[g]--
	if u.groups[g] > 0 {
		return
	}
	delete(u.groups, g)
	u.membership(g, false)
}

func (u *underlay) membership(g groupKey, join bool) error {
	return u.control(func(fd int) error {
		if g.group.Is4() {
			opt := unix.IP_ADD_MEMBERSHIP
			if !join {
				opt = unix.IP_DROP_MEMBERSHIP
			}
			return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, opt,
				&unix.IPMreqn{Multiaddr: g.group.As4(), Ifindex: int32(g.ifindex)})
		}
		opt := unix.IPV6_JOIN_GROUP
		if !join {
			opt = unix.IPV6_LEAVE_GROUP
		}
		return unix.SetsockoptIPv6Mreq(fd, unix.IPPROTO_IPV6, opt,
			&unix.IPv6Mreq{Multiaddr: g.group.As16(), Interface: uint32(g.ifindex)})
	})
}

// read reads one datagram into b; the caller holds u.token. It returns
// the VNI, the inner frame (within b) and the sending VTEP; ok is false
// for a datagram that is not for a cable (counted and logged) and for a
// read that a closing cable interrupted.
func (u *underlay) read(b []byte) (vni uint32, frame []byte, from netip.Addr, ok bool, err error) {
	n, ap, err := u.conn.ReadFromUDPAddrPort(b)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// A cable's Close woke the reader: it reads on, unless
			// it was its own (its caller checks).
			u.conn.SetReadDeadline(time.Time{})
			return 0, nil, netip.Addr{}, false, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return 0, nil, netip.Addr{}, false, err
		}
		// ICMP errors reported on the socket and other transient
		// errors: read on.
		return 0, nil, netip.Addr{}, false, nil
	}
	vni, frame, err = parseHeader(b[:n])
	if err != nil {
		u.bad.Add(1)
		u.badLog.log(u.log, "vxlan: datagram refused", "port", u.key.port, "from", ap, "why", err, "refused", u.bad.Load())
		return 0, nil, netip.Addr{}, false, nil
	}
	return vni, frame, ap.Addr().Unmap(), true, nil
}

// unknownVNI counts and logs a datagram for a VNI without a cable.
func (u *underlay) unknownVNI(vni uint32, from netip.Addr) {
	u.unknown.Add(1)
	u.badLog.log(u.log, "vxlan: datagram for a VNI with no cable", "port", u.key.port, "from", from, "vni", vni,
		"refused", u.unknown.Load()+u.bad.Load())
}

// rateLog logs at most one line a second, so that a flood of bad
// datagrams cannot flood the log.
type rateLog struct {
	mu   sync.Mutex
	last time.Time
}

func (r *rateLog) log(l *slog.Logger, msg string, args ...any) {
	if l == nil {
		return
	}
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.last) < time.Second {
		r.mu.Unlock()
		return
	}
	r.last = now
	r.mu.Unlock()
	l.Warn(msg, args...)
}

// ifIndex is the index of the interface called name where w is; ENODEV
// if there is none.
func ifIndex(w where, name string) (int, error) {
	return w.ifIoctl(func(fd int) (int, error) {
		idx, err := tap.IndexOn(fd, name)
		switch {
		case err == unix.EINVAL:
			return 0, link.Errorf(syscall.EINVAL, "vxlan: dev %q: %v", name, err)
		case err != nil:
			return 0, link.Errorf(syscall.ENODEV, "vxlan: dev %s: no such interface", name)
		}
		return idx, nil
	})
}

// devMTU is the MTU of interface name where w is.
func devMTU(w where, name string) (int, error) {
	return w.ifIoctl(func(fd int) (int, error) { return tap.MTUOn(fd, name) })
}

// ifIoctl runs fn, an interface ioctl, on a socket made where w is, so
// that it asks about that namespace's interfaces.
func (w where) ifIoctl(fn func(fd int) (int, error)) (int, error) {
	fd, err := w.socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// routeMTU asks the routing table for the MTU of the path to dst: the
// MTU a UDP socket connected to it reports (IP_MTU), which is the route's
// or its device's, lowered by what path MTU discovery learned.
func routeMTU(w where, dst netip.AddrPort) (int, error) {
	domain, level, opt := unix.AF_INET, unix.IPPROTO_IP, unix.IP_MTU
	if dst.Addr().Is6() {
		domain, level, opt = unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_MTU
	}
	sa := sockaddr(dst.Addr(), dst.Port())
	fd, err := w.socket(domain, unix.SOCK_DGRAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return 0, fmt.Errorf("no route to %s: %w", dst.Addr(), err)
	}
	return unix.GetsockoptInt(fd, level, opt)
}
