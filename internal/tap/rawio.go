// SPDX-License-Identifier: BSD-3-Clause

package tap

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FrameFile is a descriptor that moves one frame per read(2) and write(2)
// (a TAP queue, a packet socket, a connected datagram socket such as a VDE
// client's): non-blocking, with frames moved by raw system calls. On a
// descriptor that never blocks, a raw call skips the runtime's syscall
// bookkeeping, and the runtime's monitor thread no longer hands the
// processor away in the middle of a 64 KiB copy: measured with
// bench/ifbench, 10–15% more throughput and 20 µs less RTT than os.File's
// Read and Write.
//
// The descriptor is not in Go's netpoller. A network waits for it in an
// epoll set of its own (PollFD, internal/fdpoll); were it also in the
// netpoller's edge-triggered set, every frame would wake the thread that
// sleeps there whenever any goroutine of the daemon waits for any
// descriptor (a VDE control socket's accept, an inet socket): a second
// wake-up per frame, measured at 30 µs of a ping's round trip. A read or
// write that must wait sleeps in ppoll(2) instead, on the descriptor and
// on an eventfd that Close signals.
//
// Moving a frame allocates nothing. Every call holds a reference that
// Close waits out before it closes the descriptor, so that its number is
// never reused under a call in progress.
type FrameFile struct {
	fd      int
	closeFD int // an eventfd, readable once Close began

	// refs counts calls in progress; closingBit is set by Close, which
	// then waits for drained.
	refs    atomic.Int64
	drained chan struct{}

	rmu sync.Mutex // readers that wait take turns

	closeOnce sync.Once
	closeErr  error
}

const closingBit = 1 << 62

// NewFrameFile takes over fd, which must be non-blocking and carry one
// frame per read and write; on failure fd is closed. name is for errors.
func NewFrameFile(fd int, name string) (*FrameFile, error) {
	cfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd for %s: %w", name, err)
	}
	return &FrameFile{fd: fd, closeFD: cfd, drained: make(chan struct{})}, nil
}

// acquire takes a reference for a call; false once Close began.
func (f *FrameFile) acquire() bool {
	for {
		r := f.refs.Load()
		if r&closingBit != 0 {
			return false
		}
		if f.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (f *FrameFile) release() {
	if f.refs.Add(-1) == closingBit {
		close(f.drained)
	}
}

// closing reports that Close has begun.
func (f *FrameFile) closing() bool { return f.refs.Load()&closingBit != 0 }

// rawIO makes one read(2) or write(2) on the descriptor.
func rawIO(call uintptr, fd int, p []byte) (int, syscall.Errno) {
	r, _, errno := unix.RawSyscall(call, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	return int(r), errno
}

// wait sleeps until the descriptor has events (POLLIN or POLLOUT; errors
// and hang-ups count) or Close begins (os.ErrClosed). Called holding a
// reference. A blocking system call as the runtime knows it: the thread's
// processor serves other goroutines meanwhile.
func (f *FrameFile) wait(events int16) error {
	for {
		fds := [2]unix.PollFd{{Fd: int32(f.fd), Events: events}, {Fd: int32(f.closeFD), Events: unix.POLLIN}}
		_, _, errno := syscall.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 2, 0, 0, 0, 0)
		switch {
		case f.closing():
			return os.ErrClosed
		case errno == 0 && fds[0].Revents != 0:
			return nil
		case errno != 0 && errno != unix.EINTR:
			return errno
		}
	}
}

// Read reads one frame, waiting while there is none; os.ErrClosed after
// Close.
func (f *FrameFile) Read(p []byte) (int, error) {
	f.rmu.Lock()
	defer f.rmu.Unlock()
	if !f.acquire() {
		return 0, os.ErrClosed
	}
	defer f.release()
	for {
		n, errno := rawIO(unix.SYS_READ, f.fd, p)
		if errno != unix.EAGAIN {
			if errno != 0 {
				return 0, errno
			}
			return n, nil
		}
		if err := f.wait(unix.POLLIN); err != nil {
			return 0, err
		}
	}
}

// TryRead reads one frame if one is there now; EAGAIN if not. It may run
// while another goroutine waits in Read.
func (f *FrameFile) TryRead(p []byte) (int, error) { return f.once(unix.SYS_READ, p) }

// Write writes one frame; on EAGAIN (a socket's full buffer) it waits
// for room, until Close (os.ErrClosed).
func (f *FrameFile) Write(p []byte) (int, error) {
	if !f.acquire() {
		return 0, os.ErrClosed
	}
	defer f.release()
	for {
		n, errno := rawIO(unix.SYS_WRITE, f.fd, p)
		switch errno {
		case 0:
			return n, nil
		case unix.EAGAIN:
			if err := f.wait(unix.POLLOUT); err != nil {
				return 0, err
			}
			continue
		}
		return 0, errno
	}
}

// TryWrite writes one frame if the descriptor takes it now; EAGAIN if
// not.
func (f *FrameFile) TryWrite(p []byte) (int, error) { return f.once(unix.SYS_WRITE, p) }

// once makes one read(2) or write(2) (call), unless Close began.
func (f *FrameFile) once(call uintptr, p []byte) (int, error) {
	if !f.acquire() {
		return 0, os.ErrClosed
	}
	n, errno := rawIO(call, f.fd, p)
	f.release()
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// PollFD is the descriptor, for a caller that waits for its readiness
// itself (in an epoll set) and then reads with TryRead. It stays valid
// until Close.
func (f *FrameFile) PollFD() int { return f.fd }

// ioctl runs fn on the descriptor, unless it is closed.
func (f *FrameFile) ioctl(fn func(fd int) error) error {
	if !f.acquire() {
		return os.ErrClosed
	}
	defer f.release()
	return fn(f.fd)
}

// Close closes the descriptor once, after the calls in progress have
// returned; calls that wait are woken. Later calls return nil.
func (f *FrameFile) Close() error {
	f.closeOnce.Do(func() {
		refs := f.refs.Add(closingBit)
		var one [8]byte
		one[0] = 1 // any non-zero count makes the eventfd readable
		unix.Write(f.closeFD, one[:])
		if refs != closingBit {
			<-f.drained
		}
		f.closeErr = unix.Close(f.fd)
		unix.Close(f.closeFD)
	})
	return f.closeErr
}
