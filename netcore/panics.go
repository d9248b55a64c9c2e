// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Every goroutine that handles input from outside (a link's pump, a
// network's link waiter, a FUSE request, a socket's reader) recovers a
// panic where it handles one frame, datagram or request: that one is
// lost (a drop, an EIO), the panic is counted and logged, and the
// goroutine goes on. A bug in a parser then costs a frame, not every
// user's mount.

var panics atomic.Uint64

// Panics is how many panics the daemon has contained since it started.
func Panics() uint64 { return panics.Load() }

// Contained counts the panic r, recovered by the caller, and logs it at
// error level with the stack of the goroutine that panicked (call it from
// the deferred function that recovered) and the daemon's count. msg says
// what was lost. A flood of panics is logged at most panicLogBurst times
// a second; the count goes on.
func Contained(log *slog.Logger, r any, msg string, args ...any) {
	n := panics.Add(1)
	if !allowPanicLog(time.Now()) {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	log.Error(msg, append(args, "panic", fmt.Sprint(r), "panics", n, "stack", string(debug.Stack()))...)
}

const panicLogBurst = 10

// panicLog passes panicLogBurst lines at once and as many a second.
var panicLog = struct {
	sync.Mutex
	TokenBucket
}{TokenBucket: TokenBucket{Rate: panicLogBurst, Burst: panicLogBurst}}

func allowPanicLog(now time.Time) bool {
	panicLog.Lock()
	defer panicLog.Unlock()
	return panicLog.Allow(now)
}

// testHooks enables TestHook. The daemon sets it only from the
// environment it starts with (MNET_TEST_HOOKS=1), for the tests of panic
// containment; nothing a user does through the mount can set it.
var testHooks atomic.Bool

func init() { testHooks.Store(os.Getenv("MNET_TEST_HOOKS") == "1") }

// TestHooksEnabled reports whether test hooks are enabled.
func TestHooksEnabled() bool { return testHooks.Load() }

// SetTestHooks enables or disables test hooks, for unit tests.
func SetTestHooks(on bool) { testHooks.Store(on) }

// TestHook panics when test hooks are enabled and data holds the marker
// MNET-TEST-PANIC-<where>: the way tests make a link pump ("PUMP") or a
// FUSE handler ("FUSE") panic. Without the hooks it does nothing.
func TestHook(where string, data []byte) {
	if testHooks.Load() && bytes.Contains(data, []byte("MNET-TEST-PANIC-"+where)) {
		panic("test hook: MNET-TEST-PANIC-" + where)
	}
}
