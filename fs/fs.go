// SPDX-License-Identifier: BSD-3-Clause

// Package fs serves a netcore tree over FUSE. It knows nothing of any
// protocol family: it turns file operations into calls on netcore's Dir,
// File and Handle interfaces, and netcore's errors into errnos.
package fs

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mnet-project/mnet/netcore"
)

// node is one netcore node as a go-fuse inode.
type node struct {
	gofs.Inode
	nc  netcore.Node
	log *slog.Logger
}

var (
	_ gofs.NodeGetattrer = (*node)(nil)
	_ gofs.NodeSetattrer = (*node)(nil)
	_ gofs.NodeLookuper  = (*node)(nil)
	_ gofs.NodeReaddirer = (*node)(nil)
	_ gofs.NodeMkdirer   = (*node)(nil)
	_ gofs.NodeRmdirer   = (*node)(nil)
	_ gofs.NodeCreater   = (*node)(nil)
	_ gofs.NodeOpener    = (*node)(nil)
	_ gofs.NodeAccesser  = (*node)(nil)
	_ gofs.NodeUnlinker  = (*node)(nil)
	_ gofs.NodeRenamer   = (*node)(nil)
	_ gofs.NodeLinker    = (*node)(nil)
	_ gofs.NodeSymlinker = (*node)(nil)
	_ gofs.NodeMknoder   = (*node)(nil)
)

// errno maps a netcore error to the errno for the kernel. Errors that carry
// no errno are bugs worth a log line; the caller sees EIO.
func (n *node) errno(op string, err error) syscall.Errno { return toErrno(n.log, op, err) }

func fillAttr(nc netcore.Node, a netcore.Attr, out *fuse.Attr) {
	out.Ino = nc.ID()
	out.Mode = a.Mode
	out.Uid = a.Uid
	out.Gid = a.Gid
	out.Size = 0
	out.Nlink = 1
	if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		out.Nlink = 2
	}
	t := a.Mtime
	if t.IsZero() {
		t = time.Now()
	}
	out.SetTimes(&t, &t, &t)
}

func (n *node) Getattr(ctx context.Context, _ gofs.FileHandle, out *fuse.AttrOut) (errno syscall.Errno) {
	defer contain(n.log, "getattr", &errno)
	fillAttr(n.nc, n.nc.Attr(credOf(ctx)), &out.Attr)
	return 0
}

// Setattr handles chmod and chown on nodes that have an owner. Size changes
// (O_TRUNC, ftruncate, truncate) and time changes (touch) are accepted and
// ignored, these files have no stored content, but a truncate without an
// open file (truncate(2), and O_TRUNC, which the kernel sends alike) needs
// what opening for writing needs: a read-only file stays one.
func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) (errno syscall.Errno) {
	defer contain(n.log, "setattr", &errno)
	c := credOf(ctx)
	if _, sizeSet := in.GetSize(); sizeSet && fh == nil {
		if errno := n.mayWrite(c); errno != 0 {
			return errno
		}
	}
	_, modeSet := in.GetMode()
	uid, uidSet := in.GetUID()
	gid, gidSet := in.GetGID()
	if modeSet || uidSet || gidSet {
		owned, ok := n.nc.(netcore.Owned)
		if !ok {
			return syscall.EPERM
		}
		if uidSet || gidSet {
			u, g := int64(-1), int64(-1)
			if uidSet {
				u = int64(uid)
			}
			if gidSet {
				g = int64(gid)
			}
			if err := owned.Chown(c, u, g); err != nil {
				return n.errno("chown", err)
			}
		}
		if modeSet {
			if err := owned.Chmod(c, in.Mode&07777); err != nil {
				return n.errno("chmod", err)
			}
		}
	}
	fillAttr(n.nc, n.nc.Attr(c), &out.Attr)
	return 0
}

// mayWrite answers for a truncate whether c could open the node for
// writing: never a read-only file (README, ports: opening them for
// writing is EACCES to everyone), else as access(2) with W_OK. The kernel
// sends O_TRUNC of an open(2) the same way, after the open: what passes
// the open passes here.
func (n *node) mayWrite(c *netcore.Cred) syscall.Errno {
	a := n.nc.Attr(c)
	if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return syscall.EISDIR
	}
	if ro, ok := n.nc.(netcore.ReadOnlyFile); ok && ro.ReadOnly() {
		return syscall.EACCES
	}
	if acc, ok := n.nc.(netcore.Accesser); ok {
		return n.errno("truncate", acc.Access(c, 2))
	}
	return n.errno("truncate", netcore.ModeAccess(c, 2, a.Mode, a.Uid, a.Gid))
}

func (n *node) Access(ctx context.Context, mask uint32) (errno syscall.Errno) {
	defer contain(n.log, "access", &errno)
	c := credOf(ctx)
	if a, ok := n.nc.(netcore.Accesser); ok {
		return n.errno("access", a.Access(c, mask))
	}
	a := n.nc.Attr(c)
	return n.errno("access", netcore.ModeAccess(c, mask, a.Mode, a.Uid, a.Gid))
}

func (n *node) child(ctx context.Context, nc netcore.Node, out *fuse.EntryOut) *gofs.Inode {
	a := nc.Attr(credOf(ctx))
	fillAttr(nc, a, &out.Attr)
	return n.NewInode(ctx, &node{nc: nc, log: n.log},
		gofs.StableAttr{Mode: a.Mode & syscall.S_IFMT, Ino: nc.ID()})
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer contain(n.log, "lookup", &errno)
	netcore.TestHook("FUSE", []byte(name))
	d, ok := n.nc.(netcore.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	c, err := d.Lookup(credOf(ctx), name)
	if err != nil {
		return nil, n.errno("lookup", err)
	}
	return n.child(ctx, c, out), 0
}

func (n *node) Readdir(ctx context.Context) (_ gofs.DirStream, errno syscall.Errno) {
	defer contain(n.log, "readdir", &errno)
	d, ok := n.nc.(netcore.Dir)
	if !ok {
		return nil, syscall.ENOTDIR
	}
	c := credOf(ctx)
	var ents []fuse.DirEntry
	for _, e := range d.List(c) {
		ents = append(ents, fuse.DirEntry{Name: e.Name, Ino: e.Node.ID(), Mode: e.Node.Attr(c).Mode})
	}
	return gofs.NewListDirStream(ents), 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (_ *gofs.Inode, errno syscall.Errno) {
	defer contain(n.log, "mkdir", &errno)
	m, ok := n.nc.(netcore.Mkdirer)
	if !ok {
		return nil, syscall.EPERM
	}
	c, err := m.Mkdir(credOf(ctx), name, mode&07777)
	if err != nil {
		return nil, n.errno("mkdir", err)
	}
	return n.child(ctx, c, out), 0
}

func (n *node) Rmdir(ctx context.Context, name string) (errno syscall.Errno) {
	defer contain(n.log, "rmdir", &errno)
	r, ok := n.nc.(netcore.Rmdirer)
	if !ok {
		return syscall.EPERM
	}
	return n.errno("rmdir", r.Rmdir(credOf(ctx), name))
}

// Create is reached only for names that do not exist: nothing here is made
// by creating a file.
func (n *node) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EPERM
}

// Nothing under the mount is removed, renamed or linked as a file: every
// name is fixed or made by mkdir, and goes with rmdir. The kernel has
// looked the name up before any of these reach us, so it exists.

func (n *node) Unlink(context.Context, string) syscall.Errno { return syscall.EPERM }

func (n *node) Rename(context.Context, string, gofs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EPERM
}

func (n *node) Link(context.Context, gofs.InodeEmbedder, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (n *node) Symlink(context.Context, string, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

func (n *node) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

// Open returns direct I/O handles: every read and write reaches netcore, one
// system call to one request, and nothing is cached.
func (n *node) Open(ctx context.Context, flags uint32) (_ gofs.FileHandle, _ uint32, errno syscall.Errno) {
	defer contain(n.log, "open", &errno)
	f, ok := n.nc.(netcore.File)
	if !ok {
		return nil, 0, syscall.EISDIR
	}
	h, err := f.Open(ctx, credOf(ctx), int(flags))
	if err != nil {
		return nil, 0, n.errno("open", err)
	}
	flags = fuse.FOPEN_DIRECT_IO
	if s, ok := h.(netcore.Streamer); ok && s.Stream() {
		flags |= fuse.FOPEN_STREAM
	}
	return &handle{h: h, log: n.log}, flags, 0
}

// handle is one open file.
type handle struct {
	h   netcore.Handle
	log *slog.Logger

	// What poll cost this file: POLL requests answered and NOTIFY_POLL
	// sent, logged at debug level when it is released (fusebench
	// reports notifies per packet from it).
	polls, notifies atomic.Uint64
}

var (
	_ gofs.FileReader   = (*handle)(nil)
	_ gofs.FileWriter   = (*handle)(nil)
	_ gofs.FileReleaser = (*handle)(nil)
	_ gofs.FileFlusher  = (*handle)(nil)
	_ gofs.FilePoller   = (*handle)(nil)
)

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (_ fuse.ReadResult, errno syscall.Errno) {
	defer contain(h.log, "read", &errno)
	n, err := h.h.Read(ctx, dest, off, nonblocking(ctx))
	if err != nil {
		return nil, toErrno(h.log, "read", err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (_ uint32, errno syscall.Errno) {
	defer contain(h.log, "write", &errno)
	netcore.TestHook("FUSE", data)
	n, err := h.h.Write(ctx, data, off, nonblocking(ctx))
	if err != nil {
		return 0, toErrno(h.log, "write", err)
	}
	return uint32(n), 0
}

// Poll answers poll(2), select(2) and epoll. A handle that is not a
// netcore.Poller never blocks, so it is always ready. The kernel polls
// again after every wakeup, so the handle's wake, called once, is all a
// waiter needs. A wakeup that fails (the file was closed meanwhile, the
// mount is going away) has nobody left to wake.
func (h *handle) Poll(_ context.Context, events uint32, waker gofs.PollWaker) (_ uint32, errno syscall.Errno) {
	defer contain(h.log, "poll", &errno)
	h.polls.Add(1)
	p, ok := h.h.(netcore.Poller)
	if !ok {
		return netcore.PollAlways, 0
	}
	var wake func()
	if waker.Valid() {
		wake = func() {
			h.notifies.Add(1)
			waker.Wake()
		}
	}
	return p.Poll(events, wake), 0
}

func (h *handle) Flush(context.Context) syscall.Errno { return 0 }

func (h *handle) Release(context.Context) (errno syscall.Errno) {
	defer contain(h.log, "release", &errno)
	h.h.Close()
	if polls := h.polls.Load(); polls > 0 {
		h.log.Debug("polled file released", "polls", polls, "notifies", h.notifies.Load())
	}
	return 0
}

// contain answers a request whose handler panicked with EIO at once, so
// the caller never waits for an answer that would not come, and counts
// and logs the panic with its stack (netcore.Contained). Every handler
// defers it with its errno result.
func contain(log *slog.Logger, op string, errno *syscall.Errno) {
	if r := recover(); r != nil {
		netcore.Contained(log, r, "panic in a FUSE handler; answered EIO", "op", op)
		*errno = syscall.EIO
	}
}

func toErrno(log *slog.Logger, op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	log.Error("operation failed", "op", op, "err", err)
	return syscall.EIO
}
