// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"bytes"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// Per uid, in all, and the root reserve: users filling a global limit
// together leave its reserve to a caller with CAP_SYS_ADMIN; every
// refusal is logged with the uid, once a second at most.
func TestQuotaLimitsAndReserve(t *testing.T) {
	var logged bytes.Buffer
	q := NewQuota(Limits{RootReserve: 20}.With(Sockets, 3, 10), slog.New(slog.NewTextHandler(&logged, nil)))
	users := []*Payer{q.Payer(1000, false), q.Payer(1001, false), q.Payer(1002, false)}
	for i := range 3 {
		if err := users[0].Take(Sockets, 1); err != nil {
			t.Fatalf("uid 1000's socket %d: %v", i+1, err)
		}
	}
	if err := users[0].Take(Sockets, 1); err != syscall.EMFILE {
		t.Fatalf("uid 1000's fourth socket: %v, want EMFILE", err)
	}
	if err := users[0].Take(Sockets, 1); err != syscall.EMFILE {
		t.Fatalf("uid 1000's fourth socket again: %v, want EMFILE", err)
	}
	// 10 in all, 2 of them for root: 5 more for the others.
	for _, u := range []*Payer{users[1], users[1], users[2], users[2], users[2]} {
		if err := u.Take(Sockets, 1); err != nil {
			t.Fatalf("uid %d: %v", u.Uid(), err)
		}
	}
	if err := users[1].Take(Sockets, 1); err != syscall.ENFILE {
		t.Fatalf("past the global limit less the reserve: %v, want ENFILE", err)
	}
	root := q.Payer(0, true)
	for i := range 2 {
		if err := root.Take(Sockets, 1); err != nil {
			t.Fatalf("root's socket %d in the reserve: %v", i+1, err)
		}
	}
	if err := root.Take(Sockets, 1); err != syscall.ENFILE {
		t.Fatalf("root past the global limit: %v, want ENFILE", err)
	}
	if got := q.Used(Sockets); got != 10 {
		t.Fatalf("used %d, want 10", got)
	}
	users[0].Release(Sockets, 1)
	if got := q.UsedBy(1000, Sockets); got != 2 {
		t.Fatalf("uid 1000 holds %d after a release, want 2", got)
	}
	if err := users[1].Take(Sockets, 1); err != syscall.ENFILE {
		t.Fatalf("a user while root holds the reserve: %v, want ENFILE", err)
	}
	if err := root.Take(Sockets, 1); err != nil {
		t.Fatalf("root after a release: %v", err)
	}
	log := logged.String()
	if n := strings.Count(log, "resource=sockets uid=1000 scope=per-uid"); n != 1 {
		t.Errorf("uid 1000's two refusals logged %d times, want once:\n%s", n, log)
	}
	for _, want := range []string{"uid=1001 scope=global", "uid=0 scope=global"} {
		if !strings.Contains(log, want) {
			t.Errorf("no log line with %q:\n%s", want, log)
		}
	}
}

// Queued bytes: a release wakes a waiting writer and an armed poll once.
func TestQuotaQueuedWakeups(t *testing.T) {
	q := NewQuota(Limits{}.With(Queued, 100, 1000), slog.New(slog.DiscardHandler))
	p := q.Payer(1000, false)
	if !p.TryTake(Queued, 100) || p.Fits(Queued, 1) || p.TryTake(Queued, 1) {
		t.Fatal("the budget of 100 bytes does not hold")
	}
	freed, done := q.WaitQueued()
	defer done()
	woken := 0
	q.ArmQueued("poll", func() { woken++ })
	p.Release(Queued, 10)
	select {
	case <-freed:
	default:
		t.Fatal("a release did not wake the waiting writer")
	}
	p.Release(Queued, 10)
	if woken != 1 {
		t.Fatalf("an armed poll woken %d times, want 1", woken)
	}
	if !p.Fits(Queued, 20) || p.Fits(Queued, 21) {
		t.Fatal("Fits after releases is wrong")
	}
}

// A charge and release of queued bytes, as every queued packet makes.
func BenchmarkQueuedTakeRelease(b *testing.B) {
	p := NewQuota(Limits{}, slog.New(slog.DiscardHandler)).Payer(1000, false)
	for b.Loop() {
		if p.Take(Queued, 1500) != nil {
			b.Fatal("refused")
		}
		p.Release(Queued, 1500)
	}
}
