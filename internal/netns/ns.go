// SPDX-License-Identifier: BSD-3-Clause

// Package netns makes sockets for a caller the way the caller would make
// them itself: in the caller's network namespace and owned by its uid.
//
// A socket keeps the network namespace it was created in, whatever thread
// uses it later; and the kernel takes a socket's owner (what `ss -e` shows
// and `iptables -m owner` matches) from the creating thread's fsuid. So
// only the socket(2) call (and accept(2), which gives the new socket an
// owner too) needs the right thread: a thread locked for the call, given
// the caller's fsuid (per thread on Linux, unlike setuid) and, for
// another namespace than the daemon's, moved into it with setns(2) and
// back. Everything after socket(2) (bind, connect, reads, writes) runs
// anywhere, in Go's poller, as for any socket. Namespaces are told apart
// by their inode.
package netns

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ID tells network namespaces apart: the device and inode of their nsfs
// file. A namespace keeps its inode while it lives (while a socket or a
// descriptor holds it).
type ID struct{ Dev, Ino uint64 }

// NS is a network namespace: the daemon's own, or one held open by a
// descriptor. Close it when done (a no-op for the daemon's own).
type NS struct {
	id ID
	fd int   // -1 for the daemon's own namespace
	h  *held // the cache entry whose descriptor fd is, if any
}

var self = func() *NS {
	// A /proc of another pid namespace than the daemon's would show other
	// processes under the callers' pids: then no caller's namespace can
	// be found, and none is taken for the daemon's.
	if pid, err := os.Readlink("/proc/self"); err != nil || pid != strconv.Itoa(os.Getpid()) {
		return &NS{fd: -1}
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		// No /proc: every caller is then refused its namespace (EACCES),
		// since none can be told apart from the daemon's.
		return &NS{fd: -1}
	}
	return &NS{id: ID{st.Dev, st.Ino}, fd: -1}
}()

// Self is the daemon's own network namespace.
func Self() *NS { return self }

// Self reports whether ns is the daemon's own namespace.
func (ns *NS) Self() bool { return ns.fd < 0 }

// ID is the namespace's identity, for maps.
func (ns *NS) ID() ID { return ns.id }

// Close lets the namespace go.
func (ns *NS) Close() {
	switch {
	case ns.h != nil:
		ns.h.release()
		ns.h = nil
	case ns.fd >= 0:
		unix.Close(ns.fd)
	default:
		return
	}
	ns.fd = -2 // neither open nor the daemon's
}

// A caller's namespace is kept open for a while after its last use, so
// that the next open from it costs one stat(2), as from the daemon's
// own, and not a walk of /proc to open it again. A descriptor held keeps
// the namespace alive, so its inode names it and no other meanwhile.
type held struct {
	id   ID
	fd   int
	refs int         // NS values using fd; guarded by cache.mu
	idle *time.Timer // running while refs == 0
}

// IdleTimeout is how long a namespace stays open after its last use.
var IdleTimeout = 10 * time.Second

var cache struct {
	mu   sync.Mutex
	byID map[ID]*held
}

// cached returns an NS for id from the cache, or nil.
func cached(id ID) *NS {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	h := cache.byID[id]
	if h == nil {
		return nil
	}
	h.use()
	return &NS{id: id, fd: h.fd, h: h}
}

// keep puts ns (just opened) in the cache, or, if another open of the same
// namespace got there first, uses that one.
func keep(ns *NS) *NS {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.byID == nil {
		cache.byID = make(map[ID]*held)
	}
	if h := cache.byID[ns.id]; h != nil {
		unix.Close(ns.fd)
		h.use()
		return &NS{id: ns.id, fd: h.fd, h: h}
	}
	h := &held{id: ns.id, fd: ns.fd, refs: 1}
	cache.byID[ns.id] = h
	return &NS{id: ns.id, fd: h.fd, h: h}
}

// use counts one more user; cache.mu is held.
func (h *held) use() {
	h.refs++
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
}

func (h *held) release() {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if h.refs--; h.refs > 0 {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(IdleTimeout, func() {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		if h.idle != t || h.refs > 0 {
			return // used again meanwhile
		}
		delete(cache.byID, h.id)
		unix.Close(h.fd)
	})
	h.idle = t
}

// Cached is how many namespaces other than the daemon's are held open.
func Cached() int {
	cache.mu.Lock()
	defer cache.mu.Unlock()
	return len(cache.byID)
}

// OfTask returns the network namespace of thread tid (a FUSE request's
// pid, in the daemon's pid namespace). A tid of 0 (a caller the daemon
// cannot see) or one whose /proc entry cannot be read is EACCES: such a
// caller never gets the daemon's namespace instead. The caller is
// blocked in its system call while the daemon serves it, so its tid
// names it and no other.
func OfTask(tid uint32) (*NS, error) {
	if tid == 0 || self.id.Ino == 0 {
		return nil, syscall.EACCES
	}
	t := strconv.FormatUint(uint64(tid), 10)
	path := "/proc/" + t + "/task/" + t + "/ns/net"
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, syscall.EACCES
	}
	id := ID{st.Dev, st.Ino}
	if id == self.id {
		return self, nil // the common case: one stat, nothing held
	}
	if ns := cached(id); ns != nil {
		return ns, nil
	}
	ns, err := Open(path)
	if err != nil {
		return nil, syscall.EACCES
	}
	if ns.Self() {
		return ns, nil
	}
	return keep(ns), nil
}

// Open opens the network namespace at path (/run/netns/NAME,
// /proc/PID/ns/net).
func Open(path string) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	id := ID{st.Dev, st.Ino}
	if id == self.id {
		unix.Close(fd)
		return self, nil
	}
	return &NS{id: id, fd: fd}, nil
}

// Do runs fn on a thread inside ns and returns when it has: on the
// calling goroutine for the daemon's own namespace, else on a goroutine
// of its own whose thread enters ns for the call (setns) and comes back.
// fn must not start goroutines that make sockets (they would run
// elsewhere); what it makes keeps the namespace.
//
// Entering on the spot costs two setns calls (about 10 µs), where handing
// the work to a thread parked inside the namespace costs a wake-up of
// that thread, which on a busy machine waits for the scheduler (100 µs
// and more were measured); and nothing is left running between calls.
func (ns *NS) Do(fn func()) error {
	if ns.Self() {
		fn()
		return nil
	}
	if ns.fd < 0 || selfFD < 0 {
		return syscall.EBADF
	}
	errc := make(chan error, 1)
	go func() {
		// Locked while outside the daemon's namespace. If the thread
		// cannot come back, the goroutine ends locked and Go ends the
		// thread with it, so no other goroutine ever runs there; and
		// Go never clones new threads from a locked one.
		runtime.LockOSThread()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- os.NewSyscallError("setns", err)
			return
		}
		fn()
		if err := unix.Setns(selfFD, unix.CLONE_NEWNET); err != nil {
			errc <- nil // fn's work is done; this thread is let go
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	return <-errc
}

// selfFD holds the daemon's own namespace open, for threads to return to.
var selfFD = func() int {
	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}()
