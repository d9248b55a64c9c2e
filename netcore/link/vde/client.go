// SPDX-License-Identifier: BSD-3-Clause

package vde

import (
	"errors"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/internal/tap"
	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore/link"
)

// clientLink is one VDE client's port: the switch's datagram socket
// connected to the client's. Frames cross it plain, one per datagram.
//
// The socket is a tap.FrameFile, out of Go's netpoller like a TAP's
// descriptor, so that the network's link waiter (link.FDPoller) waits for
// an idle client in its epoll set and forwards what it sends on the
// waiter's own thread: a guest's ping to a TAP and the reply cross mnet
// with one wake-up, not one per frame and goroutine.
//
// Frames to the client are sent without waiting. When the socket cannot
// take one (the client is slow to read and its buffer is full), it waits
// in a queue of at most qlen frames that a writer goroutine sends as the
// socket drains; past that a frame is a drop for this port. A client that
// stops reading never holds up the network.
type clientLink struct {
	f    *tap.FrameFile
	mtu  int
	qlen int

	mu      sync.Mutex
	queue   [][]byte // frames waiting for the socket; queue[0] is being sent
	wake    chan struct{}
	closing chan struct{}
	once    sync.Once
	done    chan struct{} // the writer has stopped
}

var _ link.FDPoller = (*clientLink)(nil)

// newClientLink takes over fd, a non-blocking connected datagram socket;
// on failure fd is closed.
func newClientLink(fd int, mtu, qlen int) (*clientLink, error) {
	f, err := tap.NewFrameFile(fd, "vde")
	if err != nil {
		return nil, err
	}
	l := &clientLink{f: f, mtu: mtu, qlen: qlen,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	go l.writer()
	return l, nil
}

// Read and TryRead take one datagram into p behind an empty virtio-net
// header: a plain frame.
func (l *clientLink) Read(p []byte) (int, error) {
	if len(p) <= vnet.HdrLen {
		return 0, syscall.EINVAL
	}
	k, err := l.f.Read(p[vnet.HdrLen:])
	return l.framed(p, k, err)
}

func (l *clientLink) TryRead(p []byte) (int, error) {
	if len(p) <= vnet.HdrLen {
		return 0, syscall.EINVAL
	}
	k, err := l.f.TryRead(p[vnet.HdrLen:])
	return l.framed(p, k, err)
}

// framed finishes a read of k bytes behind the header, mapping the frame
// file's errors to the link's.
func (l *clientLink) framed(p []byte, k int, err error) (int, error) {
	switch {
	case err == nil:
		clear(p[:vnet.HdrLen]) // a plain frame
		return vnet.HdrLen + k, nil
	case errors.Is(err, unix.EAGAIN):
		return 0, link.ErrNoFrame
	case errors.Is(err, os.ErrClosed):
		return 0, link.ErrClosed
	}
	return 0, err
}

func (l *clientLink) PollFD() int { return l.f.PollFD() }

func (l *clientLink) Write(p []byte) error {
	frame := p[vnet.HdrLen:]
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.closing:
		return link.ErrClosed
	default:
	}
	if len(l.queue) == 0 {
		_, err := l.f.TryWrite(frame)
		if !errors.Is(err, unix.EAGAIN) {
			return err
		}
	}
	if len(l.queue) >= l.qlen {
		return unix.ENOBUFS
	}
	l.queue = append(l.queue, append([]byte(nil), frame...))
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// writer sends the queued frames, waiting for the socket to take each.
// It takes a frame off the queue only once it is sent, so that Write never
// sends past it (and never waits for the socket while it waits).
func (l *clientLink) writer() {
	defer close(l.done)
	for {
		select {
		case <-l.wake:
		case <-l.closing:
			return
		}
		for {
			l.mu.Lock()
			if len(l.queue) == 0 {
				l.mu.Unlock()
				break
			}
			frame := l.queue[0]
			l.mu.Unlock()
			_, err := l.f.Write(frame)
			l.mu.Lock()
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.mu.Unlock()
			if errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}
}

func (l *clientLink) MTU() int        { return l.mtu }
func (l *clientLink) Caps() link.Caps { return 0 }

func (l *clientLink) Close(bool) error {
	l.once.Do(func() {
		close(l.closing)
		l.f.Close()
		<-l.done
	})
	return nil
}
