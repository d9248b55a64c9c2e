// SPDX-License-Identifier: BSD-3-Clause

package pktq

import (
	"context"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func newQ(take func(int) bool, release func(int)) *Queue[int] {
	q := &Queue[int]{}
	q.Init(take, release)
	return q
}

func TestPutGetOrderAndBound(t *testing.T) {
	q := newQ(nil, nil)
	for i := range 20 {
		if ok, _ := q.Put(i, 20); !ok {
			t.Fatalf("put %d refused under the bound", i)
		}
	}
	if ok, _ := q.Put(99, 20); ok {
		t.Fatal("put past the bound accepted")
	}
	if q.Room(20) || !q.Room(21) {
		t.Fatal("Room disagrees with the bound")
	}
	for i := range 20 {
		v, err := q.Get(context.Background(), true)
		if err != nil || v != i {
			t.Fatalf("get: %d, %v; want %d", v, err, i)
		}
	}
	if _, err := q.Get(context.Background(), true); err != syscall.EAGAIN {
		t.Fatalf("empty nonblocking get: %v, want EAGAIN", err)
	}
}

// A burst grows the ring; draining it lets a ring larger than keptRing go.
func TestRingGrowsAndShrinks(t *testing.T) {
	q := newQ(nil, nil)
	if len(q.ring) != 0 {
		t.Fatal("an idle queue holds a ring")
	}
	q.Put(1, 1000)
	if len(q.ring) != 8 {
		t.Fatalf("first ring %d, want 8", len(q.ring))
	}
	for i := range 199 {
		q.Put(i, 1000)
	}
	if len(q.ring) <= keptRing {
		t.Fatalf("ring %d after a burst of 200", len(q.ring))
	}
	for range 200 {
		q.Get(context.Background(), true)
	}
	if q.ring != nil {
		t.Fatalf("drained large ring kept (%d)", len(q.ring))
	}
	q.Put(1, 5)
	for range 10 {
		q.Put(1, 5)
	}
	if len(q.ring) != 5 {
		t.Fatalf("ring %d, want the bound 5", len(q.ring))
	}
}

func TestGetBlocksUntilPut(t *testing.T) {
	q := newQ(nil, nil)
	got := make(chan int)
	go func() {
		v, _ := q.Get(context.Background(), false)
		got <- v
	}()
	time.Sleep(10 * time.Millisecond)
	q.Put(7, 8)
	select {
	case v := <-got:
		if v != 7 {
			t.Fatalf("got %d", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked get not woken by a put")
	}
}

func TestGetCancelled(t *testing.T) {
	q := newQ(nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := q.Get(ctx, false)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-done; err != syscall.EINTR {
		t.Fatalf("cancelled get: %v, want EINTR", err)
	}
	q.Put(1, 8)
	if v, err := q.Get(context.Background(), true); err != nil || v != 1 {
		t.Fatalf("after cancel: %d, %v (nothing may be taken)", v, err)
	}
}

// A poll's wakeup is taken by the next change, once; later puts wake
// nobody until it is armed again.
func TestPollWakesOnce(t *testing.T) {
	q := newQ(nil, nil)
	var n atomic.Int32
	wake := func() { n.Add(1) }
	if st := q.Poll(wake); st.Len != 0 || st.Closed || st.Err != 0 {
		t.Fatalf("idle state %+v", st)
	}
	for i := range 3 {
		if _, w := q.Put(i, 8); w != nil {
			w()
		}
	}
	if n.Load() != 1 {
		t.Fatalf("%d wakeups for three puts after one poll, want 1", n.Load())
	}
	if st := q.Poll(wake); st.Len != 3 {
		t.Fatalf("state %+v, want 3 queued", st)
	}
	if w := q.Fail(syscall.ECONNREFUSED); w != nil {
		w()
	}
	if n.Load() != 2 {
		t.Fatalf("an error did not wake the armed poll")
	}
	q.Poll(wake)
	if w := q.Close(false); w != nil {
		w()
	}
	if n.Load() != 3 {
		t.Fatalf("close did not wake the armed poll")
	}
	if st := q.Poll(nil); !st.Closed || st.Len != 3 {
		t.Fatalf("closed state %+v", st)
	}
}

// Items come first, then the pending error once, then the end.
func TestErrorAndEnd(t *testing.T) {
	q := newQ(nil, nil)
	q.Put(1, 8)
	q.Fail(syscall.EHOSTUNREACH)
	q.Close(false)
	if ok, _ := q.Put(2, 8); ok {
		t.Fatal("put after close accepted")
	}
	if v, err := q.Get(context.Background(), true); v != 1 || err != nil {
		t.Fatalf("first get: %d, %v", v, err)
	}
	if _, err := q.Get(context.Background(), true); err != syscall.EHOSTUNREACH {
		t.Fatalf("second get: %v, want the pending error", err)
	}
	for range 2 {
		if _, err := q.Get(context.Background(), false); err != io.EOF {
			t.Fatalf("get at the end: %v, want io.EOF", err)
		}
	}
	q2 := newQ(nil, nil)
	q2.Fail(syscall.ECONNREFUSED)
	if err := q2.TakeErr(); err != syscall.ECONNREFUSED {
		t.Fatalf("TakeErr: %v", err)
	}
	if err := q2.TakeErr(); err != nil {
		t.Fatalf("TakeErr twice: %v", err)
	}
}

// Close wakes every blocked reader with the end.
func TestCloseWakesReaders(t *testing.T) {
	q := newQ(nil, nil)
	done := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := q.Get(context.Background(), false)
			done <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	q.Close(true)
	for range 3 {
		select {
		case err := <-done:
			if err != io.EOF {
				t.Fatalf("woken reader: %v, want io.EOF", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a blocked reader was not woken by close")
		}
	}
}

// take charges as items are put, after the bound; release gives back as
// they are got, discarded or drained.
func TestCharging(t *testing.T) {
	var held, budget int64 = 0, 10
	take := func(v int) bool {
		if held+int64(v) > budget {
			return false
		}
		held += int64(v)
		return true
	}
	release := func(v int) { held -= int64(v) }
	q := newQ(take, release)
	q.Put(4, 2)
	q.Put(4, 2)
	if ok, _ := q.Put(1, 2); ok || held != 8 {
		t.Fatalf("put past the bound: ok %v, held %d (must not be charged)", ok, held)
	}
	q.Get(context.Background(), true)
	if held != 4 {
		t.Fatalf("after get held %d, want 4", held)
	}
	if ok, _ := q.Put(7, 2); ok || held != 4 {
		t.Fatalf("put past the budget: ok %v, held %d", ok, held)
	}
	q.Put(6, 2)
	q.Close(false)
	if held != 10 {
		t.Fatalf("close without discard released: held %d", held)
	}
	q.Drain()
	if held != 0 {
		t.Fatalf("after drain held %d", held)
	}
	q2 := newQ(take, release)
	q2.Put(3, 8)
	q2.Put(3, 8)
	q2.Close(true)
	if held != 0 {
		t.Fatalf("close with discard: held %d", held)
	}
	if _, err := q2.Get(context.Background(), true); err != io.EOF {
		t.Fatalf("get after discard: %v, want io.EOF", err)
	}
}

// GetMany takes, under one lock, the items take says yes to, in order,
// leaves the first it refuses and what follows, releases what it took,
// and never waits: EAGAIN, the pending error, then io.EOF once closed.
func TestGetMany(t *testing.T) {
	var released atomic.Int32
	q := newQ(nil, func(int) { released.Add(1) })
	if _, err := q.GetMany(nil, func(int) bool { return true }); err != syscall.EAGAIN {
		t.Fatalf("GetMany of an empty queue: %v, want EAGAIN", err)
	}
	for i := range 10 {
		q.Put(i, 100)
	}
	got, err := q.GetMany(nil, func(v int) bool { return v < 4 })
	if err != nil || len(got) != 4 || got[0] != 0 || got[3] != 3 {
		t.Fatalf("GetMany while < 4: %v, %v", got, err)
	}
	if released.Load() != 4 {
		t.Fatalf("%d released, want 4", released.Load())
	}
	got, err = q.GetMany(got[:0], func(int) bool { return false })
	if err != nil || len(got) != 0 || q.Poll(nil).Len != 6 {
		t.Fatalf("GetMany refusing all: %v, %v, %d left", got, err, q.Poll(nil).Len)
	}
	got, _ = q.GetMany(got[:0], func(int) bool { return true })
	if len(got) != 6 || got[0] != 4 || got[5] != 9 {
		t.Fatalf("GetMany of the rest: %v", got)
	}
	q.Fail(syscall.ECONNREFUSED)
	if _, err := q.GetMany(nil, func(int) bool { return true }); err != syscall.ECONNREFUSED {
		t.Fatalf("GetMany with a pending error: %v", err)
	}
	q.Close(false)
	if _, err := q.GetMany(nil, func(int) bool { return true }); err != io.EOF {
		t.Fatalf("GetMany of a closed queue: %v, want EOF", err)
	}
}

// Wait returns once there is something to get, takes nothing, and ends
// with EINTR when its context is done.
func TestWait(t *testing.T) {
	q := newQ(nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.Wait(ctx); err != syscall.EINTR {
		t.Fatalf("Wait on an empty queue: %v, want EINTR", err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Wait(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	q.Put(1, 10)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a put did not end Wait")
	}
	if q.Poll(nil).Len != 1 {
		t.Fatal("Wait took an item")
	}
}

// PutQuiet queues without waking a blocked reader (no token for it);
// Signal wakes it.
func TestPutQuietAndSignal(t *testing.T) {
	q := newQ(nil, nil)
	q.PutQuiet(1, 10)
	q.PutQuiet(2, 10)
	if len(q.ready) != 0 {
		t.Fatal("PutQuiet left a wakeup for a blocked reader")
	}
	q.Signal()
	if len(q.ready) != 1 {
		t.Fatal("Signal left no wakeup for a blocked reader")
	}
	if got, _ := q.GetMany(nil, func(int) bool { return true }); len(got) != 2 {
		t.Fatalf("after Signal: %v, want both items", got)
	}
}

// PutMany appends in order up to the bound, without a wakeup for a
// blocked reader, and hands back an armed poll's wakeup once.
func TestPutMany(t *testing.T) {
	q := newQ(nil, nil)
	var woken atomic.Int32
	q.Poll(func() { woken.Add(1) })
	n, wake := q.PutMany([]int{1, 2, 3, 4, 5}, 3)
	if n != 3 || wake == nil || len(q.ready) != 0 {
		t.Fatalf("PutMany of 5 under a bound of 3: %d put, wakeup %v, reader token %d", n, wake != nil, len(q.ready))
	}
	wake()
	if n, wake := q.PutMany([]int{6}, 3); n != 0 || wake != nil {
		t.Fatalf("PutMany into a full queue: %d, wakeup %v", n, wake != nil)
	}
	got, _ := q.GetMany(nil, func(int) bool { return true })
	if len(got) != 3 || got[0] != 1 || got[2] != 3 || woken.Load() != 1 {
		t.Fatalf("after PutMany: %v, woken %d", got, woken.Load())
	}
}
