// SPDX-License-Identifier: BSD-3-Clause

// Package pktq is the daemon's bounded packet queue with readiness: a
// ring of packets that writers put and readers get (blocking with a
// context, or not), a poll that arms one wakeup taken by the next change,
// and a close that wakes blocked readers with the end. Every receive
// queue of the daemon (ipn ports, pcap readers, the UDP files of an ipn
// host, mhost endpoints) is one, so that they drop, charge and wake alike.
//
// What the queue holds may be charged to someone: the take hook charges
// an item as it is put (under the queue's lock, after the bounds pass)
// and the release hook gives it back once it leaves (outside the lock).
package pktq

import (
	"context"
	"io"
	"sync"
	"syscall"
)

// keptRing is the largest ring a drained queue keeps; a larger one (a
// burst filled it) is let go, for the memory to return to the system.
const keptRing = 64

// Queue is a bounded FIFO of T. The zero value is not ready: call Init.
type Queue[T any] struct {
	take        func(T) bool // charges an item; false drops it
	release     func(T)      // gives an item's charge back
	releaseMany func([]T)    // gives the charges of many back at once; nil: release each

	mu     sync.Mutex
	ring   []T
	head   int
	count  int
	closed bool
	err    syscall.Errno // pending error, read once the queue is empty
	// ready holds one token: the queue may have changed for a blocked
	// reader.
	ready chan struct{}
	// inWake wakes a poll waiting for a packet, an error or the end; the
	// next of them takes it, so one arrival costs one wakeup per poll,
	// not one per packet.
	inWake func()
}

// Init readies q. take and release may be nil: nothing is charged, or
// what is was charged before Put.
func (q *Queue[T]) Init(take func(T) bool, release func(T)) {
	q.take, q.release = take, release
	q.ready = make(chan struct{}, 1)
}

func (q *Queue[T]) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// SetReleaseMany gives GetMany a release hook for all the items it took
// at once, for charges that are cheaper to give back together.
func (q *Queue[T]) SetReleaseMany(f func([]T)) { q.releaseMany = f }

// Put appends v unless the queue is closed, already holds limit items or
// take refuses it. It returns the wakeup of a poll armed on the queue, if
// any, for the caller to call once it holds no lock.
func (q *Queue[T]) Put(v T, limit int) (ok bool, pollWake func()) {
	if ok, pollWake = q.push(v, limit); ok {
		q.wake()
	}
	return ok, pollWake
}

// PutQuiet is Put without waking a blocked reader: a writer putting many
// items calls Signal once they are all in, so that the reader takes them
// in one go rather than waking for the first.
func (q *Queue[T]) PutQuiet(v T, limit int) (ok bool, pollWake func()) {
	return q.push(v, limit)
}

// PutMany appends vs, in order, under one lock, as far as the bound and
// the take hook let it, without waking a blocked reader (see PutQuiet);
// it returns how many it appended and the wakeup of a poll armed on the
// queue, if any, for the caller to call once it holds no lock.
func (q *Queue[T]) PutMany(vs []T, limit int) (n int, pollWake func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, v := range vs {
		if q.closed || q.count >= limit || q.take != nil && !q.take(v) {
			break
		}
		if q.count == len(q.ring) {
			q.grow(limit)
		}
		q.ring[(q.head+q.count)%len(q.ring)] = v
		q.count++
		n++
	}
	if n > 0 {
		pollWake, q.inWake = q.inWake, nil
	}
	return n, pollWake
}

// Len is the number of items queued.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count
}

// Signal wakes a reader blocked on the queue, after PutQuiet.
func (q *Queue[T]) Signal() { q.wake() }

func (q *Queue[T]) push(v T, limit int) (ok bool, pollWake func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.count >= limit || q.take != nil && !q.take(v) {
		return false, nil
	}
	if q.count == len(q.ring) {
		q.grow(limit)
	}
	q.ring[(q.head+q.count)%len(q.ring)] = v
	q.count++
	pollWake, q.inWake = q.inWake, nil
	return true, pollWake
}

// grow doubles the ring, up to limit: idle queues cost little memory.
func (q *Queue[T]) grow(limit int) {
	size := min(max(2*len(q.ring), 8), limit)
	ring := make([]T, size)
	for i := 0; i < q.count; i++ {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// Room reports whether one more item fits under limit, or the queue is
// closed (a put fails at once, nothing to wait for).
func (q *Queue[T]) Room(limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed || q.count < limit
}

// Get returns the next item. When the queue is empty it returns the
// pending error (once), then io.EOF if the queue is closed, EAGAIN if
// nonblock, else it waits: EINTR when ctx is done, nothing taken.
func (q *Queue[T]) Get(ctx context.Context, nonblock bool) (T, error) {
	var zero T
	for {
		q.mu.Lock()
		if q.count > 0 {
			v := q.ring[q.head]
			q.ring[q.head] = zero
			q.head = (q.head + 1) % len(q.ring)
			q.count--
			more := q.count > 0
			if !more && len(q.ring) > keptRing {
				q.ring, q.head = nil, 0
			}
			q.mu.Unlock()
			if more {
				q.wake() // another reader of this same queue may be waiting
			}
			if q.release != nil {
				q.release(v)
			}
			return v, nil
		}
		if e := q.err; e != 0 {
			q.err = 0
			q.mu.Unlock()
			return zero, e
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			q.wake() // pass the news on to the next blocked reader
			return zero, io.EOF
		}
		if nonblock {
			return zero, syscall.EAGAIN
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return zero, syscall.EINTR
		}
	}
}

// GetMany is Get for many items under one lock: it takes the items at
// the head, in order, for as long as take says yes to them, appends them
// to dst and returns it; take runs under the queue's lock, so it must be
// quick and must not call back into the queue. An item take refuses stays
// queued, and so does everything after it. When nothing is queued it
// never waits: it returns the pending error (once), then io.EOF if the
// queue is closed, else EAGAIN (see Wait).
func (q *Queue[T]) GetMany(dst []T, take func(T) bool) ([]T, error) {
	var zero T
	start := len(dst)
	q.mu.Lock()
	if q.count == 0 {
		err := q.emptyErr()
		q.mu.Unlock()
		if err == io.EOF {
			q.wake() // pass the news on to the next blocked reader
		}
		return dst, err
	}
	for q.count > 0 && take(q.ring[q.head]) {
		dst = append(dst, q.ring[q.head])
		q.ring[q.head] = zero
		q.head = (q.head + 1) % len(q.ring)
		q.count--
	}
	more := q.count > 0
	if !more && len(q.ring) > keptRing {
		q.ring, q.head = nil, 0
	}
	q.mu.Unlock()
	if more {
		q.wake() // another reader of this same queue may be waiting
	}
	switch {
	case q.releaseMany != nil:
		q.releaseMany(dst[start:])
	case q.release != nil:
		for _, v := range dst[start:] {
			q.release(v)
		}
	}
	return dst, nil
}

// emptyErr is what a get from an empty queue returns without waiting:
// the pending error (taken), io.EOF once closed, else EAGAIN. Called
// with q.mu held.
func (q *Queue[T]) emptyErr() error {
	if e := q.err; e != 0 {
		q.err = 0
		return e
	}
	if q.closed {
		return io.EOF
	}
	return syscall.EAGAIN
}

// Wait blocks until something is there to get (an item, the pending
// error or the end) or ctx is done (EINTR). It takes nothing: the caller
// gets it with GetMany, and waits again if another reader was first.
func (q *Queue[T]) Wait(ctx context.Context) error {
	for {
		q.mu.Lock()
		ready := q.count > 0 || q.err != 0 || q.closed
		closed := q.closed
		q.mu.Unlock()
		if ready {
			if closed {
				q.wake() // every blocked reader sees the end
			}
			return nil
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return syscall.EINTR
		}
	}
}

// State is what a poll sees of a queue.
type State struct {
	Len    int           // items queued
	Err    syscall.Errno // the pending error; 0 if none
	Closed bool
}

// Poll arms wake, if not nil, in place of any wakeup armed before, for
// the next put, error or close to take; then it returns the state. Armed
// before looking, so nothing in between is missed.
func (q *Queue[T]) Poll(wake func()) State {
	q.mu.Lock()
	defer q.mu.Unlock()
	if wake != nil {
		q.inWake = wake
	}
	return State{Len: q.count, Err: q.err, Closed: q.closed}
}

// Fail sets the pending error, which a reader gets once the queue is
// empty (a connected socket's error). It returns a poll's wakeup as Put.
func (q *Queue[T]) Fail(e syscall.Errno) (pollWake func()) {
	q.mu.Lock()
	q.err = e
	pollWake, q.inWake = q.inWake, nil
	q.mu.Unlock()
	q.wake()
	return pollWake
}

// TakeErr returns and clears the pending error (a write reports it).
func (q *Queue[T]) TakeErr() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == 0 {
		return nil
	}
	e := q.err
	q.err = 0
	return e
}

// Closed reports whether Close was called.
func (q *Queue[T]) Closed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// Close ends the queue: puts fail, blocked readers are woken. With
// discard, what is queued is dropped (released) at once and readers get
// io.EOF; else they get what is left first. It returns the wakeup of a
// poll armed on the queue, if any, for the caller to call (or drop, when
// nobody can poll any more) once it holds no lock.
func (q *Queue[T]) Close(discard bool) (pollWake func()) {
	q.mu.Lock()
	q.closed = true
	pollWake, q.inWake = q.inWake, nil
	ring, count, head := q.ring, q.count, q.head
	if discard {
		q.ring, q.count, q.head = nil, 0, 0
	}
	q.mu.Unlock()
	if discard {
		q.releaseAll(ring, head, count)
	}
	q.wake()
	return pollWake
}

// Drain drops what is queued, releasing each item.
func (q *Queue[T]) Drain() {
	q.mu.Lock()
	ring, count, head := q.ring, q.count, q.head
	q.ring, q.count, q.head = nil, 0, 0
	q.mu.Unlock()
	q.releaseAll(ring, head, count)
}

func (q *Queue[T]) releaseAll(ring []T, head, count int) {
	if q.release == nil {
		return
	}
	for i := range count {
		q.release(ring[(head+i)%len(ring)])
	}
}

// TakeWake takes the wakeup of a poll armed on the queue, if any: the
// owner saw a change of its own (bytes it buffered past the queue).
func (q *Queue[T]) TakeWake() (pollWake func()) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pollWake, q.inWake = q.inWake, nil
	return pollWake
}
