package vde

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/netcore/link"
	"github.com/mnet-project/mnet/vnet"
)

// clientLink is one VDE client's port: the switch's datagram socket
// connected to the client's. Frames cross it plain, one per datagram.
//
// Frames to the client are sent without waiting. When the socket cannot
// take one (the client is slow to read and its buffer is full), it waits
// in a queue of at most qlen frames that a writer goroutine sends as the
// socket drains; past that a frame is a drop for this port. A client that
// stops reading never holds up the network.
type clientLink struct {
	conn *net.UnixConn
	rc   syscall.RawConn
	mtu  int
	qlen int

	mu      sync.Mutex
	queue   [][]byte // frames waiting for the socket; queue[0] is being sent
	wake    chan struct{}
	closing chan struct{}
	once    sync.Once
	done    chan struct{} // the writer has stopped
}

var _ link.Link = (*clientLink)(nil)

func newClientLink(fd int, mtu, qlen int) (*clientLink, error) {
	f := os.NewFile(uintptr(fd), "vde")
	c, err := net.FileConn(f) // a dup of fd, in the runtime's poller
	f.Close()
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UnixConn)
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	l := &clientLink{conn: conn, rc: rc, mtu: mtu, qlen: qlen,
		wake: make(chan struct{}, 1), closing: make(chan struct{}), done: make(chan struct{})}
	go l.writer()
	return l, nil
}

func (l *clientLink) Read(p []byte) (int, error) {
	if len(p) <= vnet.HdrLen {
		return 0, syscall.EINVAL
	}
	k, err := l.conn.Read(p[vnet.HdrLen:])
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return 0, link.ErrClosed
		}
		return 0, err
	}
	clear(p[:vnet.HdrLen]) // a plain frame
	return vnet.HdrLen + k, nil
}

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
		err := l.send(frame, false)
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

// send sends one frame; with wait it waits for room, until Close.
func (l *clientLink) send(frame []byte, wait bool) error {
	var err error
	cerr := l.rc.Write(func(fd uintptr) bool {
		_, err = unix.Write(int(fd), frame)
		return !wait || !errors.Is(err, unix.EAGAIN)
	})
	if cerr != nil {
		return cerr
	}
	return err
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
			err := l.send(frame, true)
			l.mu.Lock()
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.mu.Unlock()
			if err != nil && errors.Is(err, net.ErrClosed) {
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
		l.conn.Close()
		<-l.done
	})
	return nil
}
