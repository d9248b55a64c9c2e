package host

import (
	"net/netip"
	"time"

	"github.com/google/gopacket/layers"
)

// IPv4 reassembly is bounded: at most maxReassemblies datagrams in
// progress, each at most 65535 bytes, all together at most
// maxReassemblyBytes, each given up after reassemblyTimeout. A fragment
// past a bound, an overlapping one and a datagram given up are dropped
// and counted (frag-drops in the host file).
const (
	maxReassemblies    = 64
	maxReassemblyBytes = 1 << 20
	reassemblyTimeout  = 30 * time.Second
	maxFragments       = 64 // per datagram
)

type fragKey struct {
	src, dst netip.Addr
	id       uint16
	proto    layers.IPProtocol
}

type fragPiece struct {
	off  int
	data []byte
}

type fragBuf struct {
	pieces []fragPiece
	bytes  int
	total  int // known once the last fragment came; -1 before
	start  time.Time
}

type reassembly struct {
	m     map[fragKey]*fragBuf
	bytes int
}

func (r *reassembly) init()  { r.m = map[fragKey]*fragBuf{}; r.bytes = 0 }
func (r *reassembly) clear() { r.init() }

// add takes one fragment; it returns the whole payload once every piece
// is there.
func (r *reassembly) add(ip4 *layers.IPv4, src, dst netip.Addr, now time.Time, st *counters) ([]byte, bool) {
	k := fragKey{src, dst, ip4.Id, ip4.Protocol}
	off := int(ip4.FragOffset) * 8
	data := ip4.Payload
	last := ip4.Flags&layers.IPv4MoreFragments == 0
	if off+len(data) > 65535-ip4Len || (!last && len(data)%8 != 0) {
		st.fragDrops++
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
	if r.bytes+len(data) > maxReassemblyBytes || len(fb.pieces) >= maxFragments {
		r.drop(k, fb, st)
		return nil, false
	}
	for _, p := range fb.pieces {
		if off < p.off+len(p.data) && p.off < off+len(data) {
			r.drop(k, fb, st) // overlaps: given up, as RFC 5722 says for IPv6
			return nil, false
		}
	}
	fb.pieces = append(fb.pieces, fragPiece{off, append([]byte(nil), data...)})
	fb.bytes += len(data)
	r.bytes += len(data)
	if last {
		fb.total = off + len(data)
	}
	if fb.total < 0 || fb.bytes != fb.total {
		return nil, false
	}
	out := make([]byte, fb.total)
	for _, p := range fb.pieces {
		copy(out[p.off:], p.data)
	}
	r.bytes -= fb.bytes
	delete(r.m, k)
	return out, true
}

func (r *reassembly) drop(k fragKey, fb *fragBuf, st *counters) {
	st.fragDrops += uint64(max(len(fb.pieces), 1))
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
