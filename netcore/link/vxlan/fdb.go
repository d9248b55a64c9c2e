// SPDX-License-Identifier: BSD-3-Clause

package vxlan

import (
	"net/netip"
	"sync"
	"time"
)

// The learning table's defaults, those of the network's switch policy.
const (
	fdbAge = 300 * time.Second
	fdbMax = 4096
)

// mac is an Ethernet address.
type mac [6]byte

// fdb is a cable's learning table: which remote VTEP each inner source
// MAC came from, as a Linux vxlan device learns it. Entries age out after
// age without a frame from that address; at most max are kept, and what
// cannot be learned (the table is full of live entries) is counted and
// flooded instead.
type fdb struct {
	mu      sync.Mutex
	age     time.Duration
	max     int
	entries map[mac]fdbEntry
	// unlearned counts frames whose source could not be learned because
	// the table was full.
	unlearned uint64
}

type fdbEntry struct {
	vtep netip.Addr
	seen time.Time
}

func newFDB(age time.Duration, max int) *fdb {
	return &fdb{age: age, max: max, entries: map[mac]fdbEntry{}}
}

// learn records that src was seen behind vtep at now. Multicast and zero
// source addresses are not learned. It reports whether src is in the
// table afterwards, and full when it is not because the table is full.
func (f *fdb) learn(src mac, vtep netip.Addr, now time.Time) (ok, full bool) {
	if src[0]&1 != 0 || src == (mac{}) {
		return false, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[src]; ok {
		// Refreshing is cheap, but not writing is cheaper: a busy
		// flow refreshes its entry once a second.
		if e.vtep != vtep || now.Sub(e.seen) > time.Second {
			f.entries[src] = fdbEntry{vtep, now}
		}
		return true, false
	}
	if len(f.entries) >= f.max {
		f.sweepLocked(now)
		if len(f.entries) >= f.max {
			f.unlearned++
			return false, true
		}
	}
	f.entries[src] = fdbEntry{vtep, now}
	return true, false
}

// lookup returns the VTEP dst was learned behind, if it is known and has
// not aged out.
func (f *fdb) lookup(dst mac, now time.Time) (netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[dst]
	if !ok {
		return netip.Addr{}, false
	}
	if now.Sub(e.seen) > f.age {
		delete(f.entries, dst)
		return netip.Addr{}, false
	}
	return e.vtep, true
}

// sweepLocked drops the entries that have aged out.
func (f *fdb) sweepLocked(now time.Time) {
	for k, e := range f.entries {
		if now.Sub(e.seen) > f.age {
			delete(f.entries, k)
		}
	}
}

// len is the number of entries, aged or not.
func (f *fdb) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// unlearnedCount is how many frames' sources the full table could not take.
func (f *fdb) unlearnedCount() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unlearned
}
