// SPDX-License-Identifier: BSD-3-Clause

package inet

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// aLongTimeAgo is a deadline that has always passed.
var aLongTimeAgo = time.Unix(1, 0)

// interrupter lets one blocked call on a socket be interrupted by its
// request's context without failing the others blocked on the same socket.
//
// Go's poller wakes a blocked call only through a deadline, and a deadline
// is shared by every call on the socket. So an interruption sets the
// deadline in the past and keeps it there until every interrupted call has
// seen it; a call woken by a deadline that is not its own waits for the
// deadline to be cleared and tries again.
type interrupter struct {
	setDeadline func(time.Time) error

	mu      sync.Mutex
	pending int           // interrupted calls that have not returned yet
	cleared chan struct{} // closed when pending drops to 0
}

// call is one blocking call under an interrupter.
type call struct {
	interrupted bool // the deadline was set for this call
	finished    bool // the call returned; a late interruption does nothing
}

// do runs op, which blocks in the poller, until it returns something other
// than a deadline error, or ctx is done: then it returns EINTR. op runs again
// after a wake-up meant for another call, so it must keep its own progress.
func (w *interrupter) do(ctx context.Context, op func() error) error {
	for {
		c := &call{}
		stop := context.AfterFunc(ctx, func() { w.interrupt(c) })
		err := op()
		stop()
		w.finish(c)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if ctx.Err() != nil {
			return syscall.EINTR
		}
		if !w.waitCleared(ctx) {
			return syscall.EINTR
		}
	}
}

func (w *interrupter) interrupt(c *call) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.finished {
		return
	}
	c.interrupted = true
	w.pending++
	w.setDeadline(aLongTimeAgo)
}

func (w *interrupter) finish(c *call) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c.finished = true
	if !c.interrupted {
		return
	}
	w.pending--
	if w.pending == 0 {
		w.setDeadline(time.Time{})
		if w.cleared != nil {
			close(w.cleared)
			w.cleared = nil
		}
	}
}

// waitCleared waits until no interrupted call is pending; false if ctx
// ends first.
func (w *interrupter) waitCleared(ctx context.Context) bool {
	w.mu.Lock()
	if w.pending == 0 {
		w.mu.Unlock()
		return true
	}
	if w.cleared == nil {
		w.cleared = make(chan struct{})
	}
	ch := w.cleared
	w.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
