// SPDX-License-Identifier: BSD-3-Clause

package inet

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollConn is what a sock needs of a *net.UDPConn or *net.TCPConn: the
// descriptor, through Go's poller, and deadlines to wake blocked calls.
type pollConn interface {
	SyscallConn() (syscall.RawConn, error)
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	Close() error
}

// sock is one kernel socket behind one open file; it is the file's
// netcore.Handle. Reads and writes are system calls on the descriptor with
// MSG_DONTWAIT, waiting in Go's poller when there is nothing to do, so a
// blocked call costs no thread and a signal (the request's context) wakes it.
type sock struct {
	conn   pollConn
	rc     syscall.RawConn
	stream bool // TCP: a read returns what has arrived, a write sends all
	bound  bool // wildcard UDP: reads from anyone, writes to the last sender
	rd, wr interrupter

	peerMu sync.Mutex
	peer   unix.Sockaddr // bound UDP: the last sender; nil before the first datagram

	closeOnce sync.Once
	onClose   func() // the family's bookkeeping

	// Polls (poll.go).
	pollMu        sync.Mutex
	pollID        uint64   // in the daemon-wide epoll once polled; 0 before
	inArm, outArm *pollArm // the wakeups of polls waiting for each half
	hungUp        bool     // closed by the daemon stopping
}

func newSock(conn pollConn, stream, bound bool) (*sock, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &sock{conn: conn, rc: rc, stream: stream, bound: bound}
	s.rd.setDeadline = conn.SetReadDeadline
	s.wr.setDeadline = conn.SetWriteDeadline
	return s, nil
}

// Read receives one datagram (UDP; cut to p, the rest is discarded, as
// recv(2) does) or what the stream has (TCP; 0 at end of stream).
func (s *sock) Read(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil // a zero-length recv would consume a datagram
	}
	var (
		n    int
		from unix.Sockaddr
		rerr error
	)
	// recv returns false to wait in the poller when nothing is there
	// and wait is set.
	recv := func(fd uintptr, wait bool) bool {
		for {
			if s.bound {
				n, from, rerr = unix.Recvfrom(int(fd), p, unix.MSG_DONTWAIT)
			} else {
				n, rerr = unix.Read(int(fd), p)
			}
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN || !wait
			}
		}
	}
	// First one try without waiting: most reads of a busy socket find a
	// datagram, and skip the poller and the interrupter (whose
	// context.AfterFunc costs a goroutine on a FUSE request's context).
	// Control takes no read lock, so it never waits behind a blocked read.
	err := s.rc.Control(func(fd uintptr) { recv(fd, false) })
	if err == nil && rerr == unix.EAGAIN && !nonblock {
		err = s.rd.do(ctx, func() error { return s.rc.Read(func(fd uintptr) bool { return recv(fd, true) }) })
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return 0, nil // the daemon is stopping: end of file
		}
		return 0, errnoOf(err)
	}
	if rerr != nil {
		return 0, rerr
	}
	if s.bound && from != nil {
		s.peerMu.Lock()
		s.peer = from
		s.peerMu.Unlock()
	}
	return max(n, 0), nil
}

// Write sends p as one datagram (UDP; on a bound socket to the last
// sender) or all of p down the stream (TCP). A stream write cut short by a
// signal or an error reports what was sent, as write(2) does.
func (s *sock) Write(ctx context.Context, p []byte, _ int64, nonblock bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var to unix.Sockaddr
	if s.bound {
		s.peerMu.Lock()
		to = s.peer
		s.peerMu.Unlock()
		if to == nil {
			return 0, syscall.EDESTADDRREQ
		}
	}
	sent := 0
	var werr error
	// send returns false to wait in the poller for room when wait is set.
	send := func(fd uintptr, wait bool) bool {
		for {
			n, err := unix.SendmsgN(int(fd), p[sent:], nil, to, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN && wait:
				return false
			case err != nil:
				werr = err
				return true
			}
			sent += n
			if !s.stream || sent == len(p) {
				return true
			}
		}
	}
	// As in Read: one try without waiting first.
	err := s.rc.Control(func(fd uintptr) { send(fd, false) })
	if err == nil && werr == unix.EAGAIN && !nonblock {
		werr = nil
		err = s.wr.do(ctx, func() error { return s.rc.Write(func(fd uintptr) bool { return send(fd, true) }) })
	}
	if sent > 0 {
		return sent, nil
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return 0, syscall.EPIPE
		}
		return 0, errnoOf(err)
	}
	return 0, werr
}

// Stream tells the filesystem that the file has no position: reads and
// writes on one descriptor never wait for each other.
func (s *sock) Stream() bool { return true }

// Close closes the socket at once: the peer sees it go, ss no longer shows it.
func (s *sock) Close() {
	s.closeOnce.Do(func() {
		s.stopPolls()
		s.conn.Close()
		if s.onClose != nil {
			s.onClose()
		}
	})
}

// errnoOf turns an error from the net package or the poller into the errno
// it carries: the socket's own errno where there is one.
func errnoOf(err error) error {
	var e syscall.Errno
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, net.ErrClosed):
		return syscall.ECONNABORTED
	case errors.Is(err, os.ErrDeadlineExceeded):
		return syscall.ETIMEDOUT
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsTimeout {
			return syscall.ETIMEDOUT
		}
		return syscall.EHOSTUNREACH
	}
	return syscall.EIO
}
