// SPDX-License-Identifier: BSD-3-Clause

package ipn

import "time"

const (
	ethHeaderLen = 14
	vlanTagLen   = 4
	// fdbAge is how long a learned address stays valid without traffic.
	fdbAge = 300 * time.Second
	// fdbMax bounds the table; when full, new addresses are not learned and
	// their packets are flooded, as on a switch whose CAM table is full.
	fdbMax = 4096
)

type mac [6]byte

// fdbKey is what the switch learns: a MAC address in a VLAN (802.1Q's
// independent learning; VLAN 1 on a network without VLAN settings).
type fdbKey struct {
	vid uint16
	mac mac
}

type fdbEntry struct {
	port *Port
	seen time.Time
}

// fdb is the switch policy's forwarding database: source MAC and VLAN to
// port.
// It is guarded by the network's mutex.
type fdb struct {
	table map[fdbKey]fdbEntry
	swept time.Time
}

func (f *fdb) init() { f.table = make(map[fdbKey]fdbEntry) }

// route learns the source of frame, of VLAN vid, as from's and returns
// the port that owns the destination in vid, or nil when the frame must
// be flooded (broadcast, multicast, unknown or aged out).
func (f *fdb) route(from *Port, frame []byte, vid uint16, now time.Time) *Port {
	dst, src := fdbKey{vid: vid}, fdbKey{vid: vid}
	copy(dst.mac[:], frame[0:6])
	copy(src.mac[:], frame[6:12])
	if src.mac[0]&1 == 0 { // never learn a group address as a source
		f.learn(src, from, now)
	}
	if dst.mac[0]&1 != 0 {
		return nil
	}
	e, ok := f.table[dst]
	if !ok {
		return nil
	}
	if now.Sub(e.seen) > fdbAge {
		delete(f.table, dst)
		return nil
	}
	return e.port
}

func (f *fdb) learn(src fdbKey, p *Port, now time.Time) {
	if e, ok := f.table[src]; ok {
		if e.port == p && now.Sub(e.seen) < time.Second {
			return // fresh enough: skip the map write on the hot path
		}
		f.table[src] = fdbEntry{p, now}
		return
	}
	if len(f.table) >= fdbMax {
		f.sweep(now)
		if len(f.table) >= fdbMax {
			return
		}
	}
	f.table[src] = fdbEntry{p, now}
}

// sweep drops aged entries; at most once a second so a full table of live
// entries does not cost a scan per frame.
func (f *fdb) sweep(now time.Time) {
	if now.Sub(f.swept) < time.Second {
		return
	}
	f.swept = now
	for k, e := range f.table {
		if now.Sub(e.seen) > fdbAge {
			delete(f.table, k)
		}
	}
}

// forget removes every address learned on p.
func (f *fdb) forget(p *Port) {
	for k, e := range f.table {
		if e.port == p {
			delete(f.table, k)
		}
	}
}
