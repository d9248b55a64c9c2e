// SPDX-License-Identifier: BSD-3-Clause

// Package fdpoll lets one goroutine wait for many file descriptors at
// once, the way vde_switch's poll loop does, and wait "hot" while traffic
// is recent.
//
// A Set is an epoll set of descriptors, each armed for one report at a
// time (EPOLLONESHOT) and named by a token. Wait returns the tokens of the
// descriptors that became readable. While the set has seen a report in
// the last HotWindow, Wait sleeps in epoll_wait(2) made as a raw system
// call: its goroutine keeps its processor (P) and its thread, so the
// thread that wakes when a frame comes is the one that forwards it, with
// no hand-off through Go's netpoller and none of the runtime's bookkeeping
// of a blocking system call (after a wait of more than a few milliseconds
// the runtime's monitor takes the P away, and getting one back costs a
// wake-up of that monitor). Measured with bench/ifbench on the 2-CPU
// development machine: a bare TAP-to-TAP relay answers a ping in 112 µs
// this way, 152 µs waiting in the netpoller, 150 µs in a plain blocking
// epoll_wait, 130 µs with one hot thread per direction (two wake-ups per
// round trip instead of one), and vde_switch in 112 µs.
//
// Held processors are bounded three ways: at most HotWaiters sets wait hot
// at once (the others wait cold: a blocking epoll_wait as the runtime
// knows it, which gives up the processor); GOMAXPROCS is raised by
// HotWaiters when the first set is made, so that the rest of the program
// keeps the processors it had; and a hot wait ends after HotWindow
// without a report, so an idle set costs nothing and only the first frame
// after it pays for a cold wake-up.
//
// A raw system call cannot be preempted, so each hot epoll_wait lasts at
// most hotSlice: the runtime's preemption signal (a garbage collection's
// stop, the monitor's 10 ms time slice) interrupts it with EINTR, and the
// goroutine yields before it waits again; a signal that lands just before
// the call begins delays the stop by at most one slice. A goroutine the
// waiter makes runnable (a reader of a data file) is queued on the
// waiter's P, where an idle P's thread, which the runtime wakes for it,
// steals it within microseconds.
package fdpoll

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// HotWaiters is how many sets may wait hot at once.
	HotWaiters = 2
	// HotWindow is how long a set waits hot after its last report.
	HotWindow = time.Second
	hotSlice  = 10 * time.Millisecond
)

// ErrClosed is what Wait returns once Close was called.
var ErrClosed = errors.New("fdpoll: set closed")

var (
	hotBusy atomic.Int32 // sets waiting hot now

	// baseProcs is GOMAXPROCS as the program started with it.
	baseProcs   = runtime.GOMAXPROCS(0)
	reserveOnce sync.Once
)

// reserveProcs raises GOMAXPROCS once by the processors hot waiters may
// hold.
func reserveProcs() {
	reserveOnce.Do(func() { runtime.GOMAXPROCS(baseProcs + HotWaiters) })
}

// Procs is GOMAXPROCS as it was before this package raised it: the
// number of CPUs the program may use.
func Procs() int { return baseProcs }

func takeHot() bool {
	for {
		n := hotBusy.Load()
		if n >= HotWaiters {
			return false
		}
		if hotBusy.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Set is an epoll set. Add, Arm and Remove may be called from any
// goroutine; Wait from one at a time.
type Set struct {
	ep      int
	closeFD int // an eventfd in the set, readable once Close began

	// refs counts Waits and control calls in progress; closingBit is set
	// by Close, which then waits for drained before it closes ep.
	refs    atomic.Int64
	drained chan struct{}

	events []unix.EpollEvent // Wait's

	closeOnce sync.Once
}

const (
	closingBit = 1 << 62
	closeToken = ^uint64(0) // closeFD's token
)

// New makes an empty set.
//
// The set is not in Go's netpoller, and neither should its descriptors
// be: a descriptor in the netpoller's edge-triggered set wakes the thread
// that sleeps there on each event, whenever any goroutine waits for any
// descriptor, which is a second wake-up per frame. A cold Wait is a
// blocking epoll_wait as the runtime knows it.
func New() (*Set, error) {
	reserveProcs()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	cfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	s := &Set{ep: ep, closeFD: cfd, drained: make(chan struct{}), events: make([]unix.EpollEvent, 32)}
	if err := s.ctl(unix.EPOLL_CTL_ADD, cfd, unix.EPOLLIN, closeToken); err != nil {
		unix.Close(cfd)
		unix.Close(ep)
		return nil, err
	}
	return s, nil
}

func (s *Set) acquire() bool {
	for {
		r := s.refs.Load()
		if r&closingBit != 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (s *Set) release() {
	if s.refs.Add(-1) == closingBit {
		close(s.drained)
	}
}

func (s *Set) ctl(op, fd int, events uint32, token uint64) error {
	ev := unix.EpollEvent{Events: events}
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = token // the 64-bit data field
	return unix.EpollCtl(s.ep, op, fd, &ev)
}

func (s *Set) ctlRef(op, fd int, events uint32, token uint64) error {
	if !s.acquire() {
		return ErrClosed
	}
	defer s.release()
	return s.ctl(op, fd, events, token)
}

// Add puts fd in the set as token, armed: its next readiness is
// reported once.
func (s *Set) Add(fd int, token uint64) error {
	if token == closeToken {
		return unix.EINVAL
	}
	return s.ctlRef(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN|unix.EPOLLONESHOT, token)
}

// Arm arms fd again after a report: if it is readable now, it is
// reported at once.
func (s *Set) Arm(fd int, token uint64) error {
	return s.ctlRef(unix.EPOLL_CTL_MOD, fd, unix.EPOLLIN|unix.EPOLLONESHOT, token)
}

// Remove takes fd out of the set. Closing fd does that too, but only once
// every duplicate of it is closed.
func (s *Set) Remove(fd int) error {
	return s.ctlRef(unix.EPOLL_CTL_DEL, fd, 0, 0)
}

// Event is one report: the token of a descriptor and whether it is in
// error or hung up (EPOLLERR, EPOLLHUP) rather than just readable.
type Event struct {
	Token uint64
	Error bool
}

// Wait waits until at least one armed descriptor is ready and appends
// their reports to evs: hot for HotWindow, then cold. It returns
// ErrClosed once Close was called.
func (s *Set) Wait(evs []Event) ([]Event, error) {
	if !s.acquire() {
		return evs, ErrClosed
	}
	defer s.release()
	n, errno := s.wait()
	return s.append(evs, n, errno)
}

// Poll is Wait without waiting: it appends the reports there are now.
func (s *Set) Poll(evs []Event) ([]Event, error) {
	if !s.acquire() {
		return evs, ErrClosed
	}
	defer s.release()
	n, errno := s.rawWait(0)
	if errno == unix.EINTR {
		n, errno = 0, 0
	}
	return s.append(evs, n, errno)
}

func (s *Set) append(evs []Event, n int, errno syscall.Errno) ([]Event, error) {
	if errno != 0 {
		return evs, errno
	}
	for _, ev := range s.events[:n] {
		token := *(*uint64)(unsafe.Pointer(&ev.Fd))
		if token == closeToken {
			return evs, ErrClosed
		}
		evs = append(evs, Event{Token: token, Error: ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0})
	}
	return evs, nil
}

// rawWait is epoll_wait(2) as a raw system call: timeout in ms.
func (s *Set) rawWait(timeout int) (int, syscall.Errno) {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(s.ep), uintptr(unsafe.Pointer(&s.events[0])),
		uintptr(len(s.events)), uintptr(timeout), 0, 0)
	return int(r), errno
}

// wait returns when reports are in s.events: at once if some are ready,
// else after a hot wait if one may be had, else after a cold one.
func (s *Set) wait() (int, syscall.Errno) {
	if n, errno := s.rawWait(0); n > 0 || errno != 0 && errno != unix.EINTR {
		return n, errno
	}
	if takeHot() {
		n, errno := s.waitHot()
		hotBusy.Add(-1)
		if n > 0 || errno != 0 {
			return n, errno
		}
	}
	for {
		r, _, errno := syscall.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(s.ep), uintptr(unsafe.Pointer(&s.events[0])),
			uintptr(len(s.events)), ^uintptr(0), 0, 0) // timeout -1: until a report
		if errno != unix.EINTR {
			return int(r), errno
		}
	}
}

// waitHot waits hot for at most HotWindow: (0, 0) when it passed with no
// report.
func (s *Set) waitHot() (int, syscall.Errno) {
	for deadline := time.Now().Add(HotWindow); ; {
		n, errno := s.rawWait(int(hotSlice / time.Millisecond))
		if n > 0 || errno != 0 && errno != unix.EINTR {
			return n, errno
		}
		if time.Now().After(deadline) {
			return 0, 0
		}
		// A slice ended or a signal came: let the runtime in (a
		// garbage collection's stop, the goroutines this one made
		// runnable that wait on its processor).
		runtime.Gosched()
	}
}

// Close closes the set; a Wait in progress returns ErrClosed (a hot one
// within a slice of 10 ms).
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		refs := s.refs.Add(closingBit)
		var one [8]byte
		one[0] = 1 // any non-zero count makes the eventfd readable
		unix.Write(s.closeFD, one[:])
		if refs != closingBit {
			<-s.drained
		}
		unix.Close(s.closeFD)
		unix.Close(s.ep)
	})
	return nil
}
