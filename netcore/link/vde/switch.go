// SPDX-License-Identifier: BSD-3-Clause

package vde

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// handshakeTimeout bounds how long a connection may take to send its
// request.
const handshakeTimeout = 5 * time.Second

// switchDir is one network's switch directory and its clients.
type switchDir struct {
	net     link.Network
	path    string
	ln      *net.UnixListener
	portsFD int // the ports directory, where the switch's sockets are
	wg      sync.WaitGroup

	mu         sync.Mutex
	conns      map[*clientConn]bool
	closed     bool
	seq        int // names the switch's datagram sockets
	handshakes int // connections that have not finished their handshake
	// numbers are the VDE port numbers the clients have, with how many
	// clients have each: as with vde_switch, clients that ask for one
	// number share it.
	numbers map[int]int
}

// takeNumber gives a client the VDE port number it asked for, or, if it
// asked for none (0), the lowest one no client has.
func (sw *switchDir) takeNumber(asked int) int {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.numbers == nil {
		sw.numbers = map[int]int{}
	}
	num := asked
	if num == 0 {
		for num = 1; sw.numbers[num] > 0; num++ {
		}
	}
	sw.numbers[num]++
	return num
}

// dropNumber is a client with number num leaving.
func (sw *switchDir) dropNumber(num int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.numbers[num]--; sw.numbers[num] <= 0 {
		delete(sw.numbers, num)
	}
}

// maxHandshakes bounds the connections of one switch still in their
// handshake (each for at most handshakeTimeout).
const maxHandshakes = 64

// handshakeDone counts one connection out of its handshake.
func (sw *switchDir) handshakeDone() {
	sw.mu.Lock()
	sw.handshakes--
	sw.mu.Unlock()
}

// clientConn is one control connection.
type clientConn struct {
	conn *net.UnixConn
}

func (sw *switchDir) listen() error {
	ctl := filepath.Join(sw.path, "ctl")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl, Net: "unix"})
	if err != nil {
		return err
	}
	// Anyone who reaches it through the directory may connect; the
	// daemon then checks the network's rights.
	if err := os.Chmod(ctl, 0o666); err != nil {
		ln.Close()
		return err
	}
	sw.ln = ln
	return nil
}

// close releases the listener and the ports directory.
func (sw *switchDir) close() {
	if sw.ln != nil {
		sw.ln.Close()
	}
	if sw.portsFD >= 0 {
		unix.Close(sw.portsFD)
		sw.portsFD = -1
	}
}

func (sw *switchDir) accept() {
	defer sw.wg.Done()
	for {
		conn, err := sw.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			sw.net.Log().Warn("VDE accept", "network", sw.net.Name(), "err", err)
			time.Sleep(100 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		c := &clientConn{conn: conn}
		sw.mu.Lock()
		if sw.closed {
			sw.mu.Unlock()
			conn.Close()
			return
		}
		if sw.handshakes >= maxHandshakes {
			// Connections that say nothing must not use up the
			// daemon's descriptors: past the bound, new ones are
			// closed at once until handshakes end.
			sw.mu.Unlock()
			conn.Close()
			continue
		}
		sw.handshakes++
		sw.conns[c] = true
		sw.wg.Add(1)
		sw.mu.Unlock()
		go func() {
			defer sw.wg.Done()
			defer func() {
				sw.mu.Lock()
				delete(sw.conns, c)
				sw.mu.Unlock()
				conn.Close()
			}()
			defer func() {
				// What a client sends is parsed here: a panic ends
				// its connection (and port), not the daemon.
				if r := recover(); r != nil {
					sw.net.Recovered(r, "panic serving a VDE client; connection closed", "kind", "vde")
				}
			}()
			sw.serve(c)
		}()
	}
}

// Stop disconnects every client and removes the directory.
func (sw *switchDir) Stop() {
	sw.mu.Lock()
	sw.closed = true
	conns := make([]*clientConn, 0, len(sw.conns))
	for c := range sw.conns {
		conns = append(conns, c)
	}
	sw.mu.Unlock()
	sw.ln.Close()
	for _, c := range conns {
		c.conn.Close()
	}
	sw.wg.Wait()
	sw.close()
	if err := os.RemoveAll(sw.path); err != nil {
		sw.net.Log().Error("VDE switch directory not removed", "path", sw.path, "err", err)
	}
	sw.net.Log().Info("VDE switch stopped", "network", sw.net.Name(), "path", sw.path)
}

// clientSockets are the daemon's sockets for one VDE client: its control
// connection and its data socket.
const clientSockets = 2

// serve runs one control connection: the handshake, then the port until
// the connection closes.
func (sw *switchDir) serve(c *clientConn) {
	inHandshake := true
	defer func() {
		if inHandshake {
			sw.handshakeDone()
		}
	}()
	log := sw.net.Log().With("network", sw.net.Name())
	cred, err := peerCred(c.conn)
	if err != nil {
		log.Warn("VDE client refused: no peer credentials", "err", err)
		return
	}
	log = log.With("uid", cred.Uid, "pid", cred.Pid)
	req, err := readRequest(c.conn)
	if err != nil {
		log.Info("VDE client refused: bad request", "err", err)
		return
	}
	recv, send := sw.net.Rights(cred)
	if !recv && !send {
		log.Info("VDE client refused: no right to receive or send")
		return
	}
	// The client's control connection and data socket count in its
	// uid's quota of sockets, with every family's.
	payer := sw.net.Quota().PayerOf(cred)
	if err := payer.Take(netcore.Sockets, clientSockets); err != nil {
		log.Info("VDE client refused: its uid's sockets", "err", err)
		return
	}
	defer payer.Release(netcore.Sockets, clientSockets)
	name := portName(req.descr)
	mtu, qlen := sw.net.Limits()
	l, sock, err := sw.dial(cred, req.path, mtu, qlen)
	if err != nil {
		log.Info("VDE client refused: its data socket", "path", req.path, "err", err)
		return
	}
	defer unix.Unlinkat(sw.portsFD, sock, 0) // after leave, below
	num := sw.takeNumber(req.port)
	defer sw.dropNumber(num)
	log = log.With("port", num)
	leave, err := sw.net.Join(l, link.Member{UID: cred.Uid, PID: cred.Pid, Name: name, Recv: recv, Send: send, Number: num})
	if err != nil {
		l.Close(false)
		log.Info("VDE client refused", "name", name, "err", err)
		return
	}
	defer leave()
	local := filepath.Join(sw.path, portsDir, sock)
	reply, err := sockaddr(local)
	if err == nil {
		c.conn.SetDeadline(time.Now().Add(handshakeTimeout))
		_, err = c.conn.Write(reply)
		c.conn.SetDeadline(time.Time{})
	}
	if err != nil {
		log.Info("VDE client gone during the handshake", "name", name, "err", err)
		return
	}
	inHandshake = false
	sw.handshakeDone()
	log.Info("VDE client joined", "name", name, "recv", recv, "send", send)
	// The port lives as long as the connection; anything the client
	// says on it from now on means nothing to a switch.
	buf := make([]byte, 256)
	for {
		if _, err := c.conn.Read(buf); err != nil {
			break
		}
	}
	log.Info("VDE client left", "name", name)
}

// readRequest reads the client's request_v3.
func readRequest(conn *net.UnixConn) (request, error) {
	conn.SetReadDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, maxReqLen)
	n := 0
	for {
		k, err := conn.Read(buf[n:])
		n += k
		req, perr := parseRequest(buf[:n])
		if perr == nil || !errors.Is(perr, errShort) {
			return req, perr
		}
		if err != nil {
			return req, fmt.Errorf("%d bytes, then %w", n, err)
		}
	}
}

// peerCred is who is at the other end of conn: SO_PEERCRED and the
// supplementary groups from SO_PEERGROUPS, both as of connect(2), and
// the effective capabilities of its process, read from /proc at once.
func peerCred(conn *net.UnixConn) (*netcore.Cred, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *netcore.Cred
	var cerr error
	err = rc.Control(func(fd uintptr) {
		uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			cerr = err
			return
		}
		cred = &netcore.Cred{Uid: uc.Uid, Gid: uc.Gid, Pid: uint32(uc.Pid), GroupsKnown: true}
		cred.Groups, cerr = peerGroups(int(fd))
		if cerr != nil {
			return
		}
		// Capabilities are read from /proc of the pid, at once. With
		// the peer's pidfd (Linux 6.5 and later) they count only if the
		// process still lives after the read, so that a client gone
		// meanwhile cannot lend its pid, reused, to another process.
		pidfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
		cred.LoadCaps()
		if err == nil {
			if unix.PidfdSendSignal(pidfd, 0, nil, 0) == unix.ESRCH {
				cred.CapEff = 0
			}
			unix.Close(pidfd)
		}
	})
	if err != nil {
		return nil, err
	}
	return cred, cerr
}

// peerGroups reads SO_PEERGROUPS.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch errno {
		case 0:
			return buf[:size/4], nil
		case unix.ERANGE:
			buf = make([]uint32, size/4+1)
		default:
			return nil, errno
		}
	}
}

// dial makes the switch's datagram socket for one client, bound in the
// ports directory and connected to the client's socket at path, and
// returns it as a link with the name it is bound to there.
//
// The client names its socket in the request, and the daemon is root: it
// must not become a way to send frames to a socket the client could not
// write to itself. So the client's socket must be a socket the client
// owns (a holder of CAP_DAC_OVERRIDE may name any), checked on the very file that is connected to
// (opened with O_PATH and connected through /proc/self/fd).
func (sw *switchDir) dial(cred *netcore.Cred, path string, mtu, qlen int) (*clientLink, string, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, "", err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, "", errors.New("not a socket")
	}
	if st.Uid != cred.Uid && !cred.HasCap(netcore.CapDacOverride) {
		return nil, "", fmt.Errorf("owned by uid %d, not by the client", st.Uid)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, "", err
	}
	ok := false
	defer func() {
		if !ok && fd >= 0 {
			unix.Close(fd)
		}
	}()
	sock, err := sw.bind(fd)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		if !ok {
			unix.Unlinkat(sw.portsFD, sock, 0)
		}
	}()
	// Only the client may connect to it (it does, to send).
	if err := unix.Fchownat(sw.portsFD, sock, int(cred.Uid), int(cred.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, "", err
	}
	if err := unix.Fchmodat(sw.portsFD, sock, 0o600, 0); err != nil {
		return nil, "", err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d", pfd)}); err != nil {
		return nil, "", fmt.Errorf("connect: %w", err)
	}
	// Room for bursts: frames in flight to the client are charged to
	// this socket's send buffer (a connected pair is not bounded by
	// max_dgram_qlen), and what it sends waits in the receive buffer.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuf)
	l, err := newClientLink(fd, mtu, qlen)
	if err != nil {
		fd = -1 // closed by newClientLink
		return nil, "", err
	}
	ok = true
	return l, sock, nil
}

// sockBuf is the send and receive buffer of a client's datagram socket.
const sockBuf = 1 << 20

// bind binds fd to a fresh name in the ports directory, through its
// descriptor, and returns the name.
func (sw *switchDir) bind(fd int) (string, error) {
	for range 100 {
		sw.mu.Lock()
		sw.seq++
		name := fmt.Sprintf("%03d.mnet", sw.seq)
		sw.mu.Unlock()
		err := unix.Bind(fd, &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", sw.portsFD, name)})
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) { // one left by a client that was never answered
			return "", err
		}
	}
	return "", errors.New("no free socket name in the ports directory")
}
