// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var (
	fragSrc = netip.MustParseAddr("198.18.7.2")
	fragDst = netip.MustParseAddr("198.18.7.1")
)

func fragKeyOf(id uint32) fragKey { return fragKey{fragSrc, fragDst, id, 17} }

// checkReassembly verifies the bounds and the byte count of r.
func checkReassembly(t *testing.T, r *reassembly, maxLen int) {
	t.Helper()
	if len(r.m) > maxReassemblies {
		t.Fatalf("%d datagrams in progress, more than %d", len(r.m), maxReassemblies)
	}
	sum := 0
	for k, fb := range r.m {
		b := 0
		for _, p := range fb.pieces {
			b += len(p.data)
			if p.off < 0 || p.end() > maxLen || fb.total >= 0 && p.end() > fb.total {
				t.Fatalf("%v: piece [%d,%d) out of bounds (total %d)", k, p.off, p.end(), fb.total)
			}
		}
		if b != fb.bytes || len(fb.pieces) > maxFragments || b > maxLen {
			t.Fatalf("%v: %d pieces, %d bytes, counted %d", k, len(fb.pieces), b, fb.bytes)
		}
		sum += b
	}
	if sum != r.bytes || sum > maxReassemblyBytes {
		t.Fatalf("%d bytes held, counted %d", sum, r.bytes)
	}
}

// The reproduction of the crash: a fragment beyond the end that the last
// one sets, whose bytes add up to that end, made add slice past its
// buffer. Now the datagram is given up, both fragments counted.
func TestReassemblyFragmentBeyondEnd(t *testing.T) {
	var r reassembly
	r.init()
	var st counters
	now := time.Now()
	if _, ok := r.add(fragKeyOf(1), fragment{off: 1000, data: make([]byte, 8)}, 0xffff-20, now, &st); ok {
		t.Fatal("one fragment completed a datagram")
	}
	if out, ok := r.add(fragKeyOf(1), fragment{off: 8, data: make([]byte, 8), last: true}, 0xffff-20, now, &st); ok {
		t.Fatalf("completed with %d bytes", len(out))
	}
	if len(r.m) != 0 || r.bytes != 0 || st.fragDrops != 2 {
		t.Errorf("after the bad datagram: %d in progress, %d bytes, %d drops", len(r.m), r.bytes, st.fragDrops)
	}
	checkReassembly(t, &r, 0xffff-20)
}

// Adversarial sequences: each ends with the datagram given up (or
// waiting), never complete with wrong bytes, never a panic.
func TestReassemblyAdversarial(t *testing.T) {
	const maxLen = 0xffff - 20
	f := func(off, n int, last bool) fragment {
		return fragment{off: off, data: bytes.Repeat([]byte{byte(off / 8)}, n), last: last}
	}
	for _, c := range []struct {
		name     string
		frags    []fragment
		complete bool // the last add completes the datagram
		pending  bool // the datagram is still in progress at the end
	}{
		{"last then beyond its end", []fragment{f(8, 8, true), f(1000, 8, false)}, false, false},
		{"beyond then last", []fragment{f(1000, 8, false), f(8, 8, true)}, false, false},
		{"two lasts, other ends", []fragment{f(0, 8, false), f(16, 8, true), f(24, 8, true)}, false, false},
		{"last ending inside a piece", []fragment{f(0, 24, false), f(8, 8, true)}, false, false},
		{"overlap", []fragment{f(0, 16, false), f(8, 16, true)}, false, false},
		{"contained overlap", []fragment{f(0, 32, false), f(8, 8, false)}, false, false},
		{"past the largest payload", []fragment{f(maxLen-8, 16, true)}, false, false},
		{"past the largest payload, in progress", []fragment{f(0, 8, false), f(maxLen&^7, 16, false)}, false, false},
		{"empty, not last", []fragment{f(0, 8, false), f(8, 0, false)}, false, false},
		{"odd length, not last", []fragment{f(0, 8, false), f(8, 7, false)}, false, false},
		{"negative offset", []fragment{{off: -8, data: make([]byte, 8)}}, false, false},
		{"duplicate kept alone", []fragment{f(0, 8, false), f(0, 8, false), f(8, 3, true)}, true, false},
		{"duplicate last kept alone", []fragment{f(8, 3, true), f(8, 3, true), f(16, 8, false)}, false, false},
		{"gap waits", []fragment{f(0, 8, false), f(16, 8, true)}, false, true},
		{"empty last", []fragment{f(0, 8, false), f(8, 0, true)}, true, false},
		{"in order", []fragment{f(0, 8, false), f(8, 8, false), f(16, 5, true)}, true, false},
		{"reverse", []fragment{f(16, 5, true), f(8, 8, false), f(0, 8, false)}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r reassembly
			r.init()
			var st counters
			var out []byte
			var ok bool
			for i, fr := range c.frags {
				out, ok = r.add(fragKeyOf(7), fr, maxLen, time.Now(), &st)
				if ok && i != len(c.frags)-1 {
					t.Fatalf("complete after fragment %d of %d", i+1, len(c.frags))
				}
				checkReassembly(t, &r, maxLen)
			}
			if ok != c.complete {
				t.Fatalf("complete %v, want %v", ok, c.complete)
			}
			if ok {
				want := map[int]fragment{}
				for _, fr := range c.frags {
					want[fr.off] = fr
				}
				for off, fr := range want {
					if !bytes.Equal(out[off:fr.end()], fr.data) {
						t.Errorf("bytes at %d differ", off)
					}
				}
			}
			if pending := len(r.m) == 1; pending != c.pending {
				t.Errorf("in progress %v, want %v", pending, c.pending)
			}
			if !ok && !c.pending && st.fragDrops == 0 {
				t.Error("nothing counted as dropped")
			}
		})
	}
}

// The bounds: datagrams in progress, fragments per datagram, bytes held,
// and the timeout.
func TestReassemblyBounds(t *testing.T) {
	var r reassembly
	r.init()
	var st counters
	now := time.Now()
	for id := range uint32(maxReassemblies + 10) {
		r.add(fragKeyOf(id), fragment{off: 0, data: make([]byte, 8)}, 0xffff, now, &st)
	}
	if len(r.m) != maxReassemblies || st.fragDrops != 10 {
		t.Errorf("%d in progress, %d drops", len(r.m), st.fragDrops)
	}
	r.expire(now.Add(reassemblyTimeout+time.Second), &st)
	if len(r.m) != 0 || r.bytes != 0 {
		t.Errorf("after the timeout: %d in progress, %d bytes", len(r.m), r.bytes)
	}

	// One datagram of many small fragments is given up past maxFragments.
	for i := range maxFragments + 1 {
		r.add(fragKeyOf(1), fragment{off: 16 * i, data: make([]byte, 8)}, 0xffff, now, &st)
	}
	if len(r.m) != 0 {
		t.Errorf("a datagram of %d fragments is kept", maxFragments+1)
	}

	// The bytes of all datagrams together are bounded.
	big := make([]byte, 8*1024)
	for id := range uint32(maxReassemblies) {
		for i := range 7 {
			r.add(fragKeyOf(id), fragment{off: i * 2 * len(big), data: big}, 0xffff, now, &st)
		}
		checkReassembly(t, &r, 0xffff)
	}
	if r.bytes > maxReassemblyBytes {
		t.Errorf("%d bytes held", r.bytes)
	}
}

// Random traffic: datagrams cut into fragments sent in any order, with
// duplicates, mixed with random fragments of the same datagrams and of
// others. Every datagram that completes has exactly its bytes unless a
// random fragment took part in it, nothing panics, the bounds hold.
func TestReassemblyRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const maxLen = 0xffff - 20
	var r reassembly
	r.init()
	var st counters
	now := time.Now()
	complete := 0
	for round := range 3000 {
		id := uint32(round)
		size := rng.IntN(4000)
		dgram := make([]byte, size)
		for i := range dgram {
			dgram[i] = byte(rng.Uint32())
		}
		var frags []fragment
		for off := 0; ; {
			n := (1 + rng.IntN(64)) * 8
			if off+n >= size {
				frags = append(frags, fragment{off: off, data: dgram[off:], last: true})
				break
			}
			frags = append(frags, fragment{off: off, data: dgram[off : off+n]})
			off += n
		}
		rng.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
		if rng.IntN(4) == 0 {
			frags = append(frags, frags[rng.IntN(len(frags))]) // a duplicate
		}
		tainted := false
		if rng.IntN(3) == 0 {
			junk := fragment{off: rng.IntN(maxLen + 100), data: make([]byte, rng.IntN(2000)), last: rng.IntN(2) == 0}
			frags = append(frags[:len(frags)/2], append([]fragment{junk}, frags[len(frags)/2:]...)...)
			tainted = true
		}
		for _, f := range frags {
			out, ok := r.add(fragKeyOf(id), f, maxLen, now, &st)
			checkReassembly(t, &r, maxLen)
			if ok {
				complete++
			}
			if ok && !tainted && !bytes.Equal(out, dgram) {
				t.Fatalf("round %d: reassembled %d bytes differ from the %d sent", round, len(out), size)
			}
		}
		if round%20 == 19 {
			now = now.Add(reassemblyTimeout + time.Second)
			r.expire(now, &st)
		}
	}
	if complete < 1500 {
		t.Errorf("only %d of 3000 datagrams reassembled", complete)
	}
}
