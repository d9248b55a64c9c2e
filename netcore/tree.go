// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The namespace a family exposes is a small tree of Dirs and Files, the way
// Plan 9 devices expose themselves: the filesystem layer walks it and turns
// file operations into these calls, knowing nothing of any family.

// Attr describes a node as one caller sees it.
type Attr struct {
	Mode  uint32 // syscall.S_IFDIR or S_IFREG plus permission bits
	Uid   uint32
	Gid   uint32
	Mtime time.Time
}

// Node is anything in the tree. ID is stable for the node's lifetime and
// never reused, so the filesystem can use it as an inode number.
type Node interface {
	ID() uint64
	Attr(c *Cred) Attr
}

// DirEntry names one child of a directory.
type DirEntry struct {
	Name string
	Node Node
}

// Dir is a directory.
type Dir interface {
	Node
	Lookup(c *Cred, name string) (Node, error)
	List(c *Cred) []DirEntry
}

// LookupListed is Lookup for a directory whose List names all it holds:
// the entry called name in d's listing for c, else ENOENT.
func LookupListed(d Dir, c *Cred, name string) (Node, error) {
	for _, e := range d.List(c) {
		if e.Name == name {
			return e.Node, nil
		}
	}
	return nil, syscall.ENOENT
}

// Mkdirer is a Dir whose children may be created by mkdir(2).
type Mkdirer interface {
	Mkdir(c *Cred, name string, mode uint32) (Node, error)
}

// Rmdirer is a Dir whose children may be removed by rmdir(2).
type Rmdirer interface {
	Rmdir(c *Cred, name string) error
}

// Owned is a node whose mode and owner may be changed (chmod, chown).
// A negative uid or gid leaves that one unchanged.
type Owned interface {
	Chmod(c *Cred, mode uint32) error
	Chown(c *Cred, uid, gid int64) error
}

// Accesser answers access(2) for a node. Nodes that do not implement it are
// judged by their Attr mode bits as on any Unix file.
type Accesser interface {
	Access(c *Cred, mask uint32) error
}

// ReadOnlyFile is a File that nobody opens for writing, whatever its mode
// would let CAP_DAC_OVERRIDE do (README, a network's ports): truncate(2)
// of it is EACCES, as such an open is.
type ReadOnlyFile interface {
	ReadOnly() bool
}

// File is a regular file; every Open returns an independent Handle.
type File interface {
	Node
	Open(ctx context.Context, c *Cred, flags int) (Handle, error)
}

// Handle is one open file. Read and Write block until done, ctx is
// cancelled (the caller got a signal: return EINTR) or, with nonblock, return
// EAGAIN at once instead of blocking. Offsets mean something only to files
// with content at fixed offsets (ctl, stats); streams ignore them.
type Handle interface {
	Read(ctx context.Context, p []byte, off int64, nonblock bool) (int, error)
	Write(ctx context.Context, p []byte, off int64, nonblock bool) (int, error)
	Close()
}

// Streamer is a Handle that is a stream with no file position, such as a
// socket. The filesystem opens it as one (FUSE's FOPEN_STREAM): lseek and
// pread are ESPIPE, and the kernel no longer serializes reads and writes of
// a shared descriptor on its position, so a read blocked on the handle
// never holds up a write on the same descriptor from another thread or
// process.
type Streamer interface {
	Stream() bool
}

// Poll events, in poll(2)'s bits as the kernel's generic headers number
// them (x86, arm, riscv...; mips and sparc number POLLWRNORM differently),
// which is how FUSE passes them.
const (
	PollIn     = 0x1    // POLLIN: a read would not block
	PollOut    = 0x4    // POLLOUT: a write would not block
	PollErr    = 0x8    // POLLERR: an error is pending
	PollHup    = 0x10   // POLLHUP: hung up; reads return end of file
	PollRdNorm = 0x40   // POLLRDNORM: as PollIn
	PollWrNorm = 0x100  // POLLWRNORM: as PollOut
	PollRdHup  = 0x2000 // POLLRDHUP: the peer shut down its writing side

	// PollAlways is what a Handle without Poll reports: always readable and
	// writable, as the kernel reports a file that cannot be polled.
	PollAlways = PollIn | PollOut | PollRdNorm | PollWrNorm
)

// Poller is a Handle whose readiness changes: poll(2), select(2) and epoll
// ask it. Poll returns the events that are ready now (events says what the
// caller waits for; PollErr and PollHup may be reported unasked) and never
// blocks. When wake is not nil somebody waits: the handle calls wake once,
// from any goroutine but holding none of its locks, when an event of
// events may have become ready; even when some event is ready now, since
// an edge-triggered epoll waits for the next one. The waiter then polls
// again, with a new wake if it still waits. To miss nothing, the handle
// arms wake before it looks at its state, under the lock its producers
// take. Handles that are not Pollers are reported PollAlways: their reads
// and writes never block.
type Poller interface {
	Poll(events uint32, wake func()) uint32
}

var lastID atomic.Uint64

func init() { lastID.Store(1) } // 1 is the root of the mount

// NewID returns a fresh node ID.
func NewID() uint64 { return lastID.Add(1) }

// NewIDs reserves n consecutive IDs and returns the first: a directory
// whose entries are made on demand names them by computation, the same
// every time, without keeping them.
func NewIDs(n int) uint64 { return lastID.Add(uint64(n)) - uint64(n) + 1 }

// TextFile is a read-only file whose content is made at open time, so one
// open reads one consistent snapshot (README, families, a table).
type TextFile struct {
	id      uint64
	attr    func(c *Cred) Attr
	content func(c *Cred) []byte
}

// NewTextFile returns a read-only file with attributes attr whose every
// open reads content's result.
func NewTextFile(attr func(c *Cred) Attr, content func(c *Cred) []byte) *TextFile {
	return &TextFile{id: NewID(), attr: attr, content: content}
}

var _ File = (*TextFile)(nil)

func (f *TextFile) ID() uint64        { return f.id }
func (f *TextFile) Attr(c *Cred) Attr { return f.attr(c) }

func (f *TextFile) ReadOnly() bool { return true }

// Open reads the content for a caller whose class may read the file, as
// its mode says (a host's status follows its network's rights).
func (f *TextFile) Open(ctx context.Context, c *Cred, flags int) (Handle, error) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, syscall.EACCES
	}
	if a := f.attr(c); ModeAccess(c, 4, a.Mode, a.Uid, a.Gid) != nil {
		return nil, syscall.EACCES
	}
	return &TextHandle{Data: f.content(c)}, nil
}

// TextHandle reads Data at file offsets, like a file with that content; it
// is read-only.
type TextHandle struct{ Data []byte }

var _ Handle = (*TextHandle)(nil)

func (h *TextHandle) Read(_ context.Context, p []byte, off int64, _ bool) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if off >= int64(len(h.Data)) {
		return 0, nil
	}
	return copy(p, h.Data[off:]), nil
}

func (h *TextHandle) Write(context.Context, []byte, int64, bool) (int, error) {
	return 0, syscall.EBADF
}

func (h *TextHandle) Close() {}

// Snapshot reads text made afresh whenever a read starts at offset 0, so
// that a ctl file read, written and read again on one descriptor (after
// lseek 0) shows the settings as they are now, while a read in pieces
// sees one consistent text. The zero value with Make set is ready.
type Snapshot struct {
	Make func() []byte
	mu   sync.Mutex
	text TextHandle
}

func (s *Snapshot) Read(ctx context.Context, p []byte, off int64, nonblock bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off == 0 || s.text.Data == nil {
		s.text.Data = s.Make()
	}
	return s.text.Read(ctx, p, off, nonblock)
}

// MaxCtlWrite is the most one write to a ctl file may carry. A ctl
// write is atomic: all its lines are checked before any is applied. The
// filesystem layer hands a write(2) of at most this many bytes to Write in
// one call, and the first call of a longer one is longer than this (see
// fs.Mount), so a ctl handle whose Write is CtlWrite applies
// every write(2) whole or not at all, and a longer one fails whole.
const MaxCtlWrite = 64 << 10

// CtlWrite is the Write of a ctl file's handle, opened for writing or not
// (EBADF). A write past MaxCtlWrite is EFBIG and nothing of it is applied;
// refuse is told why, for last-error and the log. Otherwise apply gets
// its whole text, and its error is the write's.
func CtlWrite(p []byte, writable bool, refuse func(reason string, errno error), apply func(text string) error) (int, error) {
	if !writable {
		return 0, syscall.EBADF
	}
	if len(p) > MaxCtlWrite {
		refuse("write too long: at most "+strconv.Itoa(MaxCtlWrite)+" bytes in one write", syscall.EFBIG)
		return 0, syscall.EFBIG
	}
	if err := apply(string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ParsePort reads a PORT path element (inet/udp/HOST/PORT, an ipn
// network's udp/HOST/PORT, mhost/NAME/udp/PORT): decimal 1..65535
// without sign or leading zeros, so that every port has exactly one name.
// Anything else is EINVAL.
func ParsePort(name string) (uint16, error) {
	if len(name) == 0 || len(name) > 5 || name[0] == '0' {
		return 0, syscall.EINVAL
	}
	n := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < '0' || c > '9' {
			return 0, syscall.EINVAL
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, syscall.EINVAL
	}
	return uint16(n), nil
}

// ValidName reports whether name may name something users create with
// mkdir (an ipn network, an mhost host): 1–64 of [A-Za-z0-9._-], not
// starting with a dot.
func ValidName(name string) bool {
	if len(name) < 1 || len(name) > 64 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
