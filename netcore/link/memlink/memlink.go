// SPDX-License-Identifier: BSD-3-Clause

// Package memlink is a link kind that lives in memory, for tests (as
// wireguard-go's tun/tuntest is for its devices): ctl's "mem NAME"
// attaches an in-memory link called NAME, and the test holds its far end
// (Far) to inject frames into the network and to see what the network
// sends it. It needs no privilege, no root and no kernel device.
//
// It is also the smallest complete example of a port kind: one package,
// one Register call in init, a Spec and a Link.
package memlink

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"syscall"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore/link"
	"golang.org/x/sys/unix"
)

// Kind is the name of the kind, and its ctl verb.
const Kind = "mem"

func init() {
	link.Register(&link.Kind{Name: Kind, Privilege: link.PrivNone, Parse: parse, Restore: restore})
}

// Options shape a link made with Prepare.
type Options struct {
	MTU  int       // default 1500
	Caps link.Caps // default none: the network segments offloads for it
	// Queue is how many frames the network may write before the test
	// takes them; beyond it writes fail (drops). Default 64.
	Queue int
	// FD makes the link a link.FDPoller, as TAPs are: Inject queues the
	// frame and returns at once, and an eventfd, readable while frames
	// are queued (or once the link vanished), reports its readiness, so
	// that the network's waiter watches it.
	FD bool
	// Reply, with FD, is called for each frame the network writes to the
	// link; a frame it returns is queued at once for the network to
	// read, as a kernel queues the reply to a ping during the TAP write.
	Reply func(raw []byte) []byte
}

var (
	mu       sync.Mutex
	prepared = map[string]Options{}
	open     = map[string]*Link{}
)

// Prepare sets the options of the link the next "mem NAME" opens.
func Prepare(name string, o Options) {
	mu.Lock()
	defer mu.Unlock()
	prepared[name] = o
}

// Far returns the open link called name, or nil.
func Far(name string) *Link {
	mu.Lock()
	defer mu.Unlock()
	return open[name]
}

type spec struct{ name string }

func parse(args string) (link.Spec, error) {
	if args == "" || strings.ContainsAny(args, " \t/") {
		return nil, link.Errorf(syscall.EINVAL, "mem: want one name, not %q", args)
	}
	return &spec{args}, nil
}

func restore(raw json.RawMessage) (link.Spec, error) {
	var s struct{ Name string }
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return parse(s.Name)
}

func (s *spec) Name() string  { return s.name }
func (s *spec) Args() string  { return s.name }
func (s *spec) Claim() string { return "mem:" + s.name }

func (s *spec) Open(link.Env) (link.Link, error) {
	mu.Lock()
	defer mu.Unlock()
	o := prepared[s.name]
	delete(prepared, s.name)
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Queue == 0 {
		o.Queue = 64
	}
	l := &Link{name: s.name, opts: o, in: make(chan []byte), Out: make(chan []byte, o.Queue),
		closed: make(chan struct{}), gone: make(chan struct{}), ready: make(chan struct{}, 1), evfd: -1}
	if o.FD {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return nil, err
		}
		l.evfd = fd
	}
	open[s.name] = l
	if l.evfd >= 0 {
		return fdLink{l}, nil
	}
	return l, nil
}

// Link is one in-memory link. The network reads what Inject gives it and
// writes to Out.
type Link struct {
	name string
	opts Options
	in   chan []byte
	// Out receives every frame the network writes, virtio-net header
	// first.
	Out chan []byte

	closeOnce, goneOnce sync.Once
	closed, gone        chan struct{}
	mu                  sync.Mutex
	kept                bool

	// FD links only: frames injected, not yet read (guarded by mu), a
	// token when one may be there, and the eventfd, readable while
	// pending is not empty or the link vanished; -1 once closed (guarded
	// by mu).
	pending [][]byte
	ready   chan struct{}
	evfd    int
}

var (
	_ link.Link  = (*Link)(nil)
	_ link.Saver = (*Link)(nil)
)

// ErrGone is what Read returns after Vanish.
var ErrGone = errors.New("memlink: gone")

// Inject hands the network one frame (a virtio-net header first) and
// returns once the network's pump has taken it (with FD, once it is
// queued); false if the link was closed or vanished first.
func (l *Link) Inject(raw []byte) bool {
	if l.opts.FD {
		select {
		case <-l.closed:
			return false
		case <-l.gone:
			return false
		default:
		}
		l.queue(raw)
		return true
	}
	select {
	case l.in <- raw:
		return true
	case <-l.closed:
	case <-l.gone:
	}
	return false
}

// InjectFrame hands the network a plain frame: a zero header in front.
func (l *Link) InjectFrame(frame []byte) bool {
	return l.Inject(append(make([]byte, vnet.HdrLen), frame...))
}

// Vanish makes the link disappear, as a deleted interface does: Read
// fails, and the network detaches the port.
func (l *Link) Vanish() {
	l.goneOnce.Do(func() {
		close(l.gone)
		l.mu.Lock()
		l.signal()
		l.mu.Unlock()
	})
}

// signal makes an FD link's eventfd readable. Called with l.mu held.
func (l *Link) signal() {
	if l.evfd >= 0 {
		var one [8]byte
		one[0] = 1 // any non-zero count
		unix.Write(l.evfd, one[:])
	}
}

// Closed is closed when the network has let the link go.
func (l *Link) Closed() <-chan struct{} { return l.closed }

// Kept reports whether the network let the link go with keep set.
func (l *Link) Kept() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kept
}

func (l *Link) Read(p []byte) (int, error) {
	select {
	case raw := <-l.in:
		return copy(p, raw), nil
	case <-l.closed:
		return 0, link.ErrClosed
	case <-l.gone:
		return 0, ErrGone
	}
}

func (l *Link) Write(p []byte) error {
	select {
	case <-l.closed:
		return link.ErrClosed
	default:
	}
	select {
	case l.Out <- append([]byte(nil), p...):
		return nil
	default:
		return syscall.ENOBUFS // the test is not taking frames: a drop
	}
}

func (l *Link) MTU() int        { return l.opts.MTU }
func (l *Link) Caps() link.Caps { return l.opts.Caps }

func (l *Link) Close(keep bool) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.kept = keep
		if l.evfd >= 0 {
			unix.Close(l.evfd)
			l.evfd = -1
		}
		l.mu.Unlock()
		close(l.closed)
		mu.Lock()
		if open[l.name] == l {
			delete(open, l.name)
		}
		mu.Unlock()
	})
	return nil
}

// Save keeps nothing but the name: a restored mem link is a new one.
func (l *Link) Save() (json.RawMessage, error) { return json.RawMessage(`{}`), nil }

// queue adds a frame for an FD link to give the network, and wakes
// its reader.
func (l *Link) queue(raw []byte) {
	l.enqueue(raw)
	select {
	case l.ready <- struct{}{}:
	default:
	}
}

func (l *Link) enqueue(raw []byte) {
	l.mu.Lock()
	l.pending = append(l.pending, append([]byte(nil), raw...))
	l.signal()
	l.mu.Unlock()
}

func (l *Link) isGone() bool {
	select {
	case <-l.gone:
		return true
	default:
		return false
	}
}

// EventFD is an FD link's eventfd; -1 for other links and once closed.
func (l *Link) EventFD() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.evfd
}

// fdLink is a Link with Options.FD: a link.FDPoller.
type fdLink struct{ *Link }

var _ link.FDPoller = fdLink{}

// PollFD is the eventfd.
func (l fdLink) PollFD() int { return l.EventFD() }

func (l fdLink) TryRead(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) > 0 {
		n := copy(p, l.pending[0])
		l.pending = l.pending[1:]
		if len(l.pending) == 0 && l.evfd >= 0 && !l.isGone() {
			var count [8]byte
			unix.Read(l.evfd, count[:]) // not readable until the next frame
		}
		return n, nil
	}
	select {
	case <-l.closed:
		return 0, link.ErrClosed
	case <-l.gone:
		return 0, ErrGone
	default:
	}
	return 0, link.ErrNoFrame
}

func (l fdLink) Read(p []byte) (int, error) {
	for {
		n, err := l.TryRead(p)
		if err != link.ErrNoFrame {
			return n, err
		}
		select {
		case <-l.ready:
		case <-l.closed:
		case <-l.gone:
		}
	}
}

func (l fdLink) Write(p []byte) error {
	if err := l.Link.Write(p); err != nil {
		return err
	}
	if l.opts.Reply != nil {
		if r := l.opts.Reply(p); r != nil {
			l.enqueue(r)
		}
	}
	return nil
}
