// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Quota counts what each uid holds of every Resource, and all together,
// against Limits. One Quota serves every family of a Core (Env.Quota), so
// that a uid's sockets of all families, say, share one budget. Counting
// is lock-free: queued bytes are charged per packet.
type Quota struct {
	log     *slog.Logger
	limits  Limits
	perUid  [maxResources]int64
	global  [maxResources]int64 // what a caller without CAP_SYS_ADMIN may reach
	all     [maxResources]int64 // what anyone may reach
	refusal [maxResources][2]syscall.Errno
	used    [maxResources]atomic.Int64
	mu      sync.Mutex
	uids    map[uint32]*usage // one record per uid that ever held something
	refused refusalLog

	// freed is broadcast when queued bytes are released while a lossless
	// writer or a poll waits for room (waiting > 0).
	waiting atomic.Int32
	freed   Notifier
}

// usage is what one uid holds.
type usage struct {
	uid  uint32
	used [maxResources]atomic.Int64
}

// NewQuota makes a Quota of l (defaults for limits not set) for the
// resources registered so far, that logs refusals to log.
func NewQuota(l Limits, log *slog.Logger) *Quota {
	if log == nil {
		log = slog.Default()
	}
	l = l.WithDefaults()
	q := &Quota{log: log, limits: l, uids: map[uint32]*usage{}, perUid: l.perUid, all: l.global}
	for r, s := range registeredResources() {
		q.refusal[r] = [2]syscall.Errno{s.Refusal, s.GlobalRefusal}
	}
	for r, all := range q.all {
		reserve := int64(0)
		if l.RootReserve > 0 && all > 0 {
			reserve = max(1, all*int64(l.RootReserve)/100)
		}
		q.global[r] = all - reserve
	}
	return q
}

// Limits returns the limits in force.
func (q *Quota) Limits() Limits { return q.limits }

// Used returns what all hold of r.
func (q *Quota) Used(r Resource) int64 { return q.used[r].Load() }

// UsedBy returns what uid holds of r.
func (q *Quota) UsedBy(uid uint32, r Resource) int64 {
	q.mu.Lock()
	u := q.uids[uid]
	q.mu.Unlock()
	if u == nil {
		return 0
	}
	return u.used[r].Load()
}

// QueueEntryCost is what one entry of a queue costs beyond its packet's
// bytes (its slot, its bookkeeping, allocation slack), charged as queued
// bytes with the packet: it bounds what a flood of tiny packets holds.
const QueueEntryCost = 64

// Payer is who a charge is counted for: a uid, and whether it acts with
// CAP_SYS_ADMIN (then no per-uid limit holds it back, and the root
// reserve of each global limit is open to it). Files keep the Payer of
// their opener, decided at open.
type Payer struct {
	q          *Quota
	u          *usage
	privileged bool
}

// Payer returns the payer for uid.
func (q *Quota) Payer(uid uint32, privileged bool) *Payer {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.uids[uid]
	if u == nil {
		u = &usage{uid: uid}
		q.uids[uid] = u
	}
	return &Payer{q: q, u: u, privileged: privileged}
}

// PayerOf returns the payer for caller c: its uid, privileged with
// CAP_SYS_ADMIN (read from /proc unless known).
func (q *Quota) PayerOf(c *Cred) *Payer {
	return q.Payer(c.Uid, c.HasCap(CapSysAdmin))
}

// PayerOfCheap is PayerOf for an open that must not cost a look at the
// caller's process (a data file's): the capabilities of uid 0 are read,
// those of another uid only used if already known, so a uid other than 0
// holding CAP_SYS_ADMIN is counted there as any user.
func (q *Quota) PayerOfCheap(c *Cred) *Payer {
	return q.Payer(c.Uid, (c.Uid == 0 || c.CapsKnown) && c.HasCap(CapSysAdmin))
}

// Uid is the payer's uid.
func (p *Payer) Uid() uint32 { return p.u.uid }

// Privileged reports whether the payer acts with CAP_SYS_ADMIN.
func (p *Payer) Privileged() bool { return p.privileged }

// Take charges n of r to p. Past p's per-uid limit or the global one it
// charges nothing, logs the refusal (at most once a second per uid and
// resource) and returns the errno of that limit.
func (p *Payer) Take(r Resource, n int64) error {
	scope := p.take(r, n)
	if scope == fits {
		return nil
	}
	limit := p.q.perUid[r]
	if scope == pastGlobal {
		limit = p.q.all[r]
	}
	p.q.refused.note(p.q.log, r, p.u.uid, scope == pastGlobal, limit)
	return p.q.refusal[r][scope-1]
}

// Refused logs a refusal of r to uid that its owner counted itself
// (ipn's persistent networks), as Take logs its own.
func (q *Quota) Refused(r Resource, uid uint32) {
	q.refused.note(q.log, r, uid, false, q.perUid[r])
}

// TryTake is Take without the log line, for a writer trying again while
// it waits for room.
func (p *Payer) TryTake(r Resource, n int64) bool { return p.take(r, n) == fits }

// TakeWaiting is Take of queued bytes that waits while the budget is
// spent, until a release makes room or ctx is done (EINTR).
func (p *Payer) TakeWaiting(ctx context.Context, n int64) error {
	for attempt := 0; ; attempt++ {
		freed, done := p.q.WaitQueued()
		var ok bool
		if attempt == 0 {
			ok = p.Take(Queued, n) == nil
		} else {
			ok = p.TryTake(Queued, n)
		}
		if ok {
			done()
			return nil
		}
		select {
		case <-freed:
			done()
		case <-ctx.Done():
			done()
			return syscall.EINTR
		}
	}
}

// What take found.
const (
	fits = iota
	pastUid
	pastGlobal
)

func (p *Payer) take(r Resource, n int64) int {
	q := p.q
	if !p.privileged && q.perUid[r] > 0 {
		if p.u.used[r].Add(n) > q.perUid[r] {
			p.u.used[r].Add(-n)
			return pastUid
		}
	} else {
		p.u.used[r].Add(n)
	}
	if q.all[r] == 0 {
		q.used[r].Add(n)
		return fits
	}
	bound := q.global[r]
	if p.privileged {
		bound = q.all[r]
	}
	if q.used[r].Add(n) > bound {
		q.used[r].Add(-n)
		p.u.used[r].Add(-n)
		return pastGlobal
	}
	return fits
}

// Force charges n of r to p whatever the limits: what already exists when
// the daemon starts (restored networks), or what root hands a uid (chown).
func (p *Payer) Force(r Resource, n int64) {
	p.u.used[r].Add(n)
	p.q.used[r].Add(n)
}

// Release gives back n of r charged to p.
func (p *Payer) Release(r Resource, n int64) {
	p.u.used[r].Add(-n)
	p.q.used[r].Add(-n)
	if r == Queued && p.q.waiting.Load() > 0 {
		p.q.freed.Broadcast()
	}
}

// Fits reports whether n more of r would be charged to p now.
func (p *Payer) Fits(r Resource, n int64) bool {
	q := p.q
	if !p.privileged && q.perUid[r] > 0 && p.u.used[r].Load()+n > q.perUid[r] {
		return false
	}
	bound := q.global[r]
	if p.privileged {
		bound = q.all[r]
	}
	return q.all[r] == 0 || q.used[r].Load()+n <= bound
}

// WaitQueued returns a channel closed when queued bytes are next
// released, and a func to call once done waiting. Take the channel
// before checking for room, so that a release in between is not missed.
func (q *Quota) WaitQueued() (freed <-chan struct{}, done func()) {
	q.waiting.Add(1)
	return q.freed.Wait(), func() { q.waiting.Add(-1) }
}

// ArmQueued has the next release of queued bytes call wake once (a poll
// waiting for room); key replaces an earlier wakeup of the same key.
// Arm before checking for room.
func (q *Quota) ArmQueued(key any, wake func()) {
	q.waiting.Add(1)
	q.freed.Arm(key, func() {
		q.waiting.Add(-1)
		wake()
	}, func() { q.waiting.Add(-1) })
}

// DisarmQueued forgets key's wakeup (its file is being released).
func (q *Quota) DisarmQueued(key any) { q.freed.Disarm(key) }

// Notifier lets any number of goroutines wait for the next broadcast,
// and polls be woken by it, one wakeup per key.
type Notifier struct {
	mu    sync.Mutex
	ch    chan struct{}
	armed map[any]armed
}

type armed struct{ wake, drop func() }

// Arm has the next Broadcast call wake, once, in place of a wakeup armed
// before under key (whose drop, if any, is called instead).
func (w *Notifier) Arm(key any, wake, drop func()) {
	w.mu.Lock()
	if w.armed == nil {
		w.armed = map[any]armed{}
	}
	old, had := w.armed[key]
	w.armed[key] = armed{wake, drop}
	w.mu.Unlock()
	if had && old.drop != nil {
		old.drop()
	}
}

// Disarm forgets key's wakeup.
func (w *Notifier) Disarm(key any) {
	w.mu.Lock()
	old, had := w.armed[key]
	delete(w.armed, key)
	w.mu.Unlock()
	if had && old.drop != nil {
		old.drop()
	}
}

// Wait returns a channel closed by the next Broadcast.
func (w *Notifier) Wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// Broadcast wakes every waiter and every armed wakeup. Call it holding
// no lock that a wakeup takes.
func (w *Notifier) Broadcast() {
	w.mu.Lock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
	armed := w.armed
	w.armed = nil
	w.mu.Unlock()
	for _, a := range armed {
		a.wake()
	}
}

// refusalLog logs refusals at most once a second per resource and uid, so
// that a flood cannot flood the log; each line counts the refusals since
// the last line for that uid.
type refusalLog struct {
	mu   sync.Mutex
	last map[refusalKey]*refusalState
}

type refusalKey struct {
	r   Resource
	uid uint32
}

type refusalState struct {
	at      time.Time
	refused int
}

// maxRefusalKeys bounds the log's memory: past it, keys not logged for a
// second are forgotten.
const maxRefusalKeys = 1024

func (l *refusalLog) note(log *slog.Logger, r Resource, uid uint32, global bool, limit int64) {
	l.mu.Lock()
	if l.last == nil {
		l.last = map[refusalKey]*refusalState{}
	}
	now := time.Now()
	k := refusalKey{r, uid}
	st := l.last[k]
	if st == nil {
		if len(l.last) >= maxRefusalKeys {
			for key, s := range l.last {
				if now.Sub(s.at) >= time.Second {
					delete(l.last, key)
				}
			}
			if len(l.last) >= maxRefusalKeys {
				l.mu.Unlock()
				return // a flood of uids: those already counted speak for it
			}
		}
		st = &refusalState{}
		l.last[k] = st
	}
	st.refused++
	if !st.at.IsZero() && now.Sub(st.at) < time.Second {
		l.mu.Unlock()
		return
	}
	refused := st.refused
	st.at, st.refused = now, 0
	l.mu.Unlock()
	scope := "per-uid"
	if global {
		scope = "global"
	}
	log.Warn("limit reached", "resource", r.String(), "uid", uid, "scope", scope, "limit", limit,
		"refused", refused)
}
