// SPDX-License-Identifier: BSD-3-Clause

package fdpoll

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func pipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
	return p[0], p[1]
}

func newSet(t *testing.T) *Set {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitOne waits for one report within a second.
func waitOne(t *testing.T, s *Set) []Event {
	t.Helper()
	done := make(chan []Event, 1)
	errc := make(chan error, 1)
	go func() {
		evs, err := s.Wait(nil)
		if err != nil {
			errc <- err
			return
		}
		done <- evs
	}()
	select {
	case evs := <-done:
		return evs
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(time.Second):
		t.Fatal("no report")
	}
	return nil
}

// A descriptor is reported once per arming, with its token.
func TestOneShot(t *testing.T) {
	s := newSet(t)
	r, w := pipe(t)
	if err := s.Add(r, 7); err != nil {
		t.Fatal(err)
	}
	unix.Write(w, []byte("x"))
	if evs := waitOne(t, s); len(evs) != 1 || evs[0].Token != 7 || evs[0].Error {
		t.Fatalf("got %+v, want one report of token 7", evs)
	}
	// Still readable, but not armed: no report.
	if evs, err := s.Poll(nil); err != nil || len(evs) != 0 {
		t.Fatalf("Poll after a report, not armed again: %+v, %v", evs, err)
	}
	// Armed while readable: reported at once.
	if err := s.Arm(r, 7); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Poll(nil); err != nil || len(evs) != 1 || evs[0].Token != 7 {
		t.Fatalf("Poll after Arm of a readable descriptor: %+v, %v", evs, err)
	}
	// Removed: never reported.
	s.Arm(r, 7)
	if err := s.Remove(r); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.Poll(nil); err != nil || len(evs) != 0 {
		t.Fatalf("Poll after Remove: %+v, %v", evs, err)
	}
}

// A hang-up is reported as an error.
func TestHangUp(t *testing.T) {
	s := newSet(t)
	r, w := pipe(t)
	if err := s.Add(r, 1); err != nil {
		t.Fatal(err)
	}
	unix.Close(w)
	if evs := waitOne(t, s); len(evs) != 1 || !evs[0].Error {
		t.Fatalf("got %+v, want one error report", evs)
	}
}

// Close ends a Wait in progress, hot (just after a report) or cold (past
// the hot window), with ErrClosed.
func TestCloseEndsWait(t *testing.T) {
	for _, cold := range []bool{false, true} {
		s, err := New()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.Wait(nil)
			done <- err
		}()
		if cold {
			time.Sleep(HotWindow + 200*time.Millisecond)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
		s.Close()
		select {
		case err := <-done:
			if err != ErrClosed {
				t.Errorf("cold=%v: Wait returned %v, want ErrClosed", cold, err)
			}
		case <-time.After(time.Second):
			t.Fatalf("cold=%v: Close did not end the Wait", cold)
		}
		if _, err := s.Wait(nil); err != ErrClosed {
			t.Errorf("Wait after Close: %v, want ErrClosed", err)
		}
		if err := s.Add(0, 1); err != ErrClosed {
			t.Errorf("Add after Close: %v, want ErrClosed", err)
		}
	}
}

// At most HotWaiters sets wait hot at once; a hot wait gives its place
// back.
func TestHotPlacesBounded(t *testing.T) {
	for range HotWaiters {
		if !takeHot() {
			t.Fatal("a hot place was refused below the bound")
		}
	}
	if takeHot() {
		t.Error("more than HotWaiters hot places")
	}
	hotBusy.Add(-HotWaiters)
	s := newSet(t)
	r, w := pipe(t)
	s.Add(r, 1)
	go func() { time.Sleep(50 * time.Millisecond); unix.Write(w, []byte("x")) }()
	waitOne(t, s)
	if n := hotBusy.Load(); n != 0 {
		t.Errorf("%d hot places held after a Wait returned", n)
	}
}
