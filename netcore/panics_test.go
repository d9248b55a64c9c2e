// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A contained panic is counted and logged at error level with the stack
// of the goroutine that panicked and the daemon's count.
func TestContainedLogsStack(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	before := Panics()
	func() {
		defer func() {
			if r := recover(); r != nil {
				Contained(log, r, "lost", "what", "frame")
			}
		}()
		panicHere()
	}()
	if Panics() != before+1 {
		t.Errorf("Panics %d, want %d", Panics(), before+1)
	}
	line := buf.String()
	for _, want := range []string{"level=ERROR", "msg=lost", "what=frame", "panic=here", "panicHere", "panics="} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}
}

func panicHere() { panic("here") }

// The hook panics only when enabled and only on its marker.
func TestTestHook(t *testing.T) {
	defer SetTestHooks(TestHooksEnabled())
	SetTestHooks(false)
	TestHook("PUMP", []byte("xx MNET-TEST-PANIC-PUMP xx")) // no panic
	SetTestHooks(true)
	TestHook("PUMP", []byte("MNET-TEST-PANIC-FUSE")) // another marker: no panic
	defer func() {
		if recover() == nil {
			t.Error("no panic on the marker with hooks enabled")
		}
	}()
	TestHook("PUMP", []byte("xx MNET-TEST-PANIC-PUMP xx"))
}

// A TokenBucket passes Burst at once, then Rate a second.
func TestTokenBucket(t *testing.T) {
	b := TokenBucket{Rate: 10, Burst: 3}
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if !b.Allow(now) {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	if b.Allow(now) {
		t.Fatal("an event past the burst passed")
	}
	if !b.Allow(now.Add(100 * time.Millisecond)) {
		t.Fatal("a token refilled after 1/Rate was refused")
	}
	if b.Allow(now.Add(100 * time.Millisecond)) {
		t.Fatal("two events passed on one refilled token")
	}
}
