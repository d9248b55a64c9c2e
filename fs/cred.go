// SPDX-License-Identifier: BSD-3-Clause

package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mnet-project/mnet/netcore"
)

// credOf returns the caller of the request behind ctx: FUSE passes uid,
// gid and pid; supplementary groups and capabilities are read from /proc
// by the check that needs them (netcore.Cred), so an owner's open reads
// nothing there.
func credOf(ctx context.Context) *netcore.Cred {
	c := &netcore.Cred{}
	if fc, ok := ctx.(*fuse.Context); ok {
		c.Uid, c.Gid, c.Pid = fc.Uid, fc.Gid, fc.Pid
	}
	return c
}

// The file handle API of go-fuse does not pass a READ or WRITE request's
// file flags, which is where O_NONBLOCK set by fcntl(2) after open shows up.
// rawFS records the flags of non-blocking requests, keyed by the request's
// cancel channel, which the handle finds again in its fuse.Context. Blocking
// requests, the common case, cost one atomic load. Every other request,
// POLL included, goes straight to the embedded file system.
type rawFS struct {
	fuse.RawFileSystem
}

var (
	nonblockRequests sync.Map // <-chan struct{} -> struct{}
	nonblockInflight atomic.Int64
)

func markNonblock(cancel <-chan struct{}, flags uint32) (done func()) {
	if flags&syscall.O_NONBLOCK == 0 {
		return func() {}
	}
	nonblockInflight.Add(1)
	nonblockRequests.Store(cancel, struct{}{})
	return func() {
		nonblockRequests.Delete(cancel)
		nonblockInflight.Add(-1)
	}
}

func (r rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	defer markNonblock(cancel, in.Flags)()
	return r.RawFileSystem.Read(cancel, in, buf)
}

func (r rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	defer markNonblock(cancel, in.Flags)()
	return r.RawFileSystem.Write(cancel, in, data)
}

func (r rawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	defer markNonblock(cancel, in.Flags)()
	return r.RawFileSystem.Writev(cancel, in, data)
}

// nonblocking reports whether the READ or WRITE behind ctx has O_NONBLOCK.
func nonblocking(ctx context.Context) bool {
	if nonblockInflight.Load() == 0 {
		return false
	}
	fc, ok := ctx.(*fuse.Context)
	if !ok {
		return false
	}
	_, ok = nonblockRequests.Load(fc.Cancel)
	return ok
}
