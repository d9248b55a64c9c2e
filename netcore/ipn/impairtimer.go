// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// impairTimer is the one timer of a network's impair scheduler: armed to
// the earliest waiting frame, waited for by the scheduler's goroutine.
// Go's timers wake through the runtime's poller, whose timeout is in
// whole milliseconds, up to a millisecond late; a timerfd wakes the
// poller when it fires, within the kernel's timer slack, which is what
// a delay accurate to the millisecond needs.
type impairTimer interface {
	arm(d time.Duration) // fire in d (at once if d <= 0), in place of any earlier arming
	disarm()
	wait() // until it fires
	close()
}

// newImpairTimer is a timerfd, or a Go timer where there is none. The
// timerfd is non-blocking and read through Go's poller, which wakes at
// once when it becomes readable: no thread is held blocked for it.
func newImpairTimer() impairTimer {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		t := time.NewTimer(time.Hour)
		t.Stop()
		return goTimer{t}
	}
	return &timerFD{fd: fd, f: os.NewFile(uintptr(fd), "impair-timer")}
}

type timerFD struct {
	fd int
	f  *os.File
}

func (t *timerFD) arm(d time.Duration) {
	d = max(d, 1) // zero would disarm
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	unix.TimerfdSettime(t.fd, 0, &spec, nil)
}

func (t *timerFD) disarm() { unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{}, nil) }

func (t *timerFD) wait() {
	var b [8]byte
	t.f.Read(b[:]) // an error (closed) ends the wait too
}

func (t *timerFD) close() { t.f.Close() }

type goTimer struct{ t *time.Timer }

func (t goTimer) arm(d time.Duration) { t.t.Reset(d) }
func (t goTimer) disarm()             { t.t.Stop() }
func (t goTimer) wait()               { <-t.t.C }
func (t goTimer) close()              { t.t.Stop() }
