// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"net/netip"
	"time"
)

// Reassembly of IPv4 and IPv6 fragments, whatever arrives: fragments come
// from anyone on the network (or beyond a VXLAN cable), so add must never
// fail on their fields, and what they hold is bounded: at most
// maxReassemblies datagrams in progress, each with at most maxFragments
// fragments and at most the largest payload its family allows, all
// together at most maxReassemblyBytes, each given up after
// reassemblyTimeout. A fragment past a bound, one that cannot belong to a
// well-formed datagram and a datagram given up are dropped and counted
// (frag-drops in the host file).
const (
	maxReassemblies    = 64
	maxReassemblyBytes = 1 << 20
	reassemblyTimeout  = 30 * time.Second
	maxFragments       = 64
)

// fragKey names one datagram being reassembled: RFC 791's (source,
// destination, protocol, identification) for IPv4, RFC 8200's (source,
// destination, identification) for IPv6, whose fragments all carry the
// same next header.
type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

// fragment is one fragment's share of its datagram's payload.
type fragment struct {
	off  int    // where data goes in the payload
	data []byte // not kept: add copies it
	last bool   // no more fragments (MF clear): data ends the payload
}

// end is the payload offset just past the fragment.
func (f fragment) end() int { return f.off + len(f.data) }

type fragBuf struct {
	pieces []fragment // copies; never two overlapping, none past total
	bytes  int        // of pieces' data
	total  int        // the payload's length, known once the last fragment came; -1 before
	start  time.Time
}

type reassembly struct {
	m     map[fragKey]*fragBuf
	bytes int // of every datagram's pieces
}

func (r *reassembly) init()  { r.m = map[fragKey]*fragBuf{}; r.bytes = 0 }
func (r *reassembly) clear() { r.init() }

// add takes one fragment of datagram k, whose payload may be at most
// maxLen bytes long; it returns the whole payload once every byte of it
// is there. A fragment that cannot be part of a well-formed datagram
// gives the whole datagram up (as RFC 5722 has it for IPv6, and Linux
// does for both): one reaching past maxLen or past the end that the last
// fragment set, a second last fragment with another end, an empty one
// or one not a multiple of 8 bytes long that is not the last, one that
// overlaps another. An exact copy of a fragment already held (a
// duplicated packet) is dropped alone.
//
// It is safe by construction: the pieces held never overlap and, once
// the total is known, all lie within it, so when their bytes add up to
// the total they tile the payload exactly.
func (r *reassembly) add(k fragKey, f fragment, maxLen int, now time.Time, st *counters) ([]byte, bool) {
	if f.off < 0 || f.end() > maxLen || !f.last && (len(f.data) == 0 || len(f.data)%8 != 0) {
		st.fragDrops++
		if fb := r.m[k]; fb != nil {
			r.drop(k, fb, st)
		}
		return nil, false
	}
	fb := r.m[k]
	if fb == nil {
		if len(r.m) >= maxReassemblies {
			st.fragDrops++
			return nil, false
		}
		fb = &fragBuf{total: -1, start: now}
		r.m[k] = fb
	}
	for _, p := range fb.pieces {
		if p.off == f.off && len(p.data) == len(f.data) && p.last == f.last {
			st.fragDrops++ // a duplicate
			return nil, false
		}
	}
	if !fb.fits(f) || len(fb.pieces) >= maxFragments || r.bytes+len(f.data) > maxReassemblyBytes {
		st.fragDrops++
		r.drop(k, fb, st)
		return nil, false
	}
	fb.pieces = append(fb.pieces, fragment{f.off, append([]byte(nil), f.data...), f.last})
	fb.bytes += len(f.data)
	r.bytes += len(f.data)
	if f.last {
		fb.total = f.end()
	}
	if fb.total < 0 || fb.bytes != fb.total {
		return nil, false
	}
	out := make([]byte, fb.total)
	for _, p := range fb.pieces {
		copy(out[p.off:p.end()], p.data)
	}
	r.bytes -= fb.bytes
	delete(r.m, k)
	return out, true
}

// fits reports whether f can join the pieces of fb: it overlaps none, it
// lies within the total if that is known, and, if it is the last, every
// piece lies within the total it sets (and it agrees with an earlier
// last one, which it would otherwise overlap or leave out).
func (fb *fragBuf) fits(f fragment) bool {
	if fb.total >= 0 && f.end() > fb.total || f.last && fb.total >= 0 && f.end() != fb.total {
		return false
	}
	for _, p := range fb.pieces {
		if f.off < p.end() && p.off < f.end() {
			return false // overlaps
		}
		if f.last && p.end() > f.end() {
			return false // p lies past the end f sets
		}
	}
	return true
}

// drop gives datagram k up: each fragment it held is counted.
func (r *reassembly) drop(k fragKey, fb *fragBuf, st *counters) {
	st.fragDrops += uint64(len(fb.pieces))
	r.bytes -= fb.bytes
	delete(r.m, k)
}

// expire gives up datagrams older than reassemblyTimeout.
func (r *reassembly) expire(now time.Time, st *counters) {
	for k, fb := range r.m {
		if now.Sub(fb.start) > reassemblyTimeout {
			r.drop(k, fb, st)
		}
	}
}
