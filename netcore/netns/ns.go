// Package netns makes sockets for a caller the way the caller would make
// them itself: in the caller's network namespace and owned by its uid.
//
// A socket keeps the network namespace it was created in, whatever thread
// uses it later; and the kernel takes a socket's owner (what `ss -e` shows
// and `iptables -m owner` matches) from the creating thread's fsuid. So
// only the socket(2) call (and accept(2), which gives the new socket an
// owner too) needs the right thread: for the daemon's own namespace, the
// calling goroutine's thread, locked for the call and given the caller's
// fsuid (per thread on Linux, unlike setuid); for another namespace, one
// locked OS thread per namespace in use, which has entered it with
// setns(2), found by the namespace's inode and ended after a while
// unused. Everything after socket(2) (bind, connect, reads, writes) runs
// anywhere, in Go's poller, as for any socket.
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
// file. A namespace keeps its inode while it lives; a namespace with a
// thread in it (a worker) lives.
type ID struct{ Dev, Ino uint64 }

// NS is a network namespace: the daemon's own, or one held open by a
// descriptor. Close it when done (a no-op for the daemon's own).
type NS struct {
	id ID
	fd int // -1 for the daemon's own namespace
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
	if ns.fd >= 0 {
		unix.Close(ns.fd)
		ns.fd = -2 // neither open nor the daemon's
	}
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
	if (ID{st.Dev, st.Ino}) == self.id {
		return self, nil // the common case: one stat, nothing held
	}
	ns, err := Open(path)
	if err != nil {
		return nil, syscall.EACCES
	}
	return ns, nil
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
// calling goroutine for the daemon's own namespace, else on the
// namespace's worker thread. fn must not start goroutines that make
// sockets (they would run elsewhere); what it makes keeps the namespace.
func (ns *NS) Do(fn func()) error {
	if ns.Self() {
		fn()
		return nil
	}
	if ns.fd < 0 {
		return syscall.EBADF
	}
	w, err := acquire(ns)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	w.jobs <- func() { fn(); close(done) }
	<-done
	release(w)
	return nil
}

// IdleTimeout is how long a namespace's worker thread outlives its last
// job.
var IdleTimeout = 10 * time.Second

// worker is the locked OS thread that runs jobs inside one namespace.
type worker struct {
	id    ID
	jobs  chan func()
	users int         // jobs in flight; guarded by pool.mu
	idle  *time.Timer // running while users == 0
}

var pool struct {
	mu      sync.Mutex
	workers map[ID]*worker
}

// Workers is how many namespace threads are running, for tests and logs.
func Workers() int {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return len(pool.workers)
}

func acquire(ns *NS) (*worker, error) {
	pool.mu.Lock()
	if w := pool.workers[ns.id]; w != nil {
		w.users++
		if w.idle != nil {
			w.idle.Stop()
			w.idle = nil
		}
		pool.mu.Unlock()
		return w, nil
	}
	pool.mu.Unlock()

	// Start one outside the lock (setns takes a while); if another
	// started meanwhile, ours is let go.
	w := &worker{id: ns.id, jobs: make(chan func())}
	started := make(chan error, 1)
	go w.run(ns.fd, started)
	if err := <-started; err != nil {
		return nil, err
	}
	pool.mu.Lock()
	defer pool.mu.Unlock()
	if pool.workers == nil {
		pool.workers = make(map[ID]*worker)
	}
	if other := pool.workers[ns.id]; other != nil {
		close(w.jobs)
		other.users++
		if other.idle != nil {
			other.idle.Stop()
			other.idle = nil
		}
		return other, nil
	}
	w.users = 1
	pool.workers[ns.id] = w
	return w, nil
}

func release(w *worker) {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	w.users--
	if w.users > 0 {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(IdleTimeout, func() {
		pool.mu.Lock()
		defer pool.mu.Unlock()
		if w.idle != t || w.users > 0 {
			return // used again meanwhile
		}
		delete(pool.workers, w.id)
		close(w.jobs)
	})
	w.idle = t
}

// run enters the namespace and runs jobs until jobs is closed. The thread
// stays locked to the end: when the goroutine returns, Go ends the thread
// rather than let it serve other goroutines from inside another namespace
// (and Go never clones new threads from a locked one).
func (w *worker) run(fd int, started chan<- error) {
	runtime.LockOSThread()
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		started <- os.NewSyscallError("setns", err)
		return
	}
	started <- nil
	for job := range w.jobs {
		job()
	}
}
