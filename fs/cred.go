package fs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mnet-project/mnet/netcore"
)

// credOf returns the caller of the request behind ctx. FUSE passes uid, gid
// and pid but not supplementary groups; when they matter (rights checks),
// they are read from /proc the way libfuse's fuse_getgroups does.
func credOf(ctx context.Context, withGroups bool) *netcore.Cred {
	c := &netcore.Cred{}
	if fc, ok := ctx.(*fuse.Context); ok {
		c.Uid, c.Gid, c.Pid = fc.Uid, fc.Gid, fc.Pid
	}
	if withGroups && c.Uid != 0 && c.Pid != 0 && netcore.ProcMatches() {
		c.Groups = groupsOf(c.Pid)
	}
	return c
}

// groupsOf reads the "Groups:" line of /proc/PID/task/PID/status (the
// request's pid is the calling thread's id). A process that is gone has no
// supplementary groups.
func groupsOf(pid uint32) []uint32 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, pid))
	if err != nil {
		return nil
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Groups:"))
		if !ok {
			continue
		}
		var gs []uint32
		for _, f := range bytes.Fields(rest) {
			if g, err := strconv.ParseUint(string(f), 10, 32); err == nil {
				gs = append(gs, uint32(g))
			}
		}
		return gs
	}
	return nil
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
