package tap

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawFile moves frames through a non-blocking descriptor with raw
// read(2)/write(2) calls, waiting in Go's netpoller only when the kernel
// says EAGAIN. On a descriptor that never blocks, a raw call skips the
// runtime's syscall bookkeeping, and the runtime's monitor thread no longer
// hands the processor away in the middle of a 64 KiB copy: measured with
// bench/ifbench, 10–15% more throughput and 20 µs less RTT than os.File's
// Read and Write.
type rawFile struct{ rc syscall.RawConn }

func (f rawFile) read(p []byte) (int, error)  { return f.io(p, unix.SYS_READ, f.rc.Read) }
func (f rawFile) write(p []byte) (int, error) { return f.io(p, unix.SYS_WRITE, f.rc.Write) }

func (f rawFile) io(p []byte, call uintptr, wait func(func(uintptr) bool) error) (int, error) {
	var n int
	var errno syscall.Errno
	err := wait(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall(call, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		if e == unix.EAGAIN {
			return false
		}
		n, errno = int(r), e
		return true
	})
	if err != nil {
		// The only way the wait ends without a call is Close (no
		// deadlines are set); say so the way os.File does.
		return 0, os.ErrClosed
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}
