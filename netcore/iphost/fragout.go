// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// What the host sends follows its MTU (h.mtu) as a kernel's IP output
// does: an IP packet that does not fit is sent as fragments, IPv4 ones
// with offsets and More Fragments in the header, IPv6 ones with a
// Fragment header (RFC 8200, 4.5). UDP datagrams, echo replies and ICMP
// errors all leave this way.

// ip6FragID numbers the IPv6 datagrams the hosts fragment; it starts at
// random, as the kernel's identifications are not predictable.
var ip6FragID atomic.Uint32

func init() { ip6FragID.Store(rand.Uint32()) }

// l4Bytes serializes the layers above IP (their checksums computed: an
// ICMPv6 or UDP layer must have its network layer set).
func l4Bytes(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serOpts, ls...); err != nil {
		return nil
	}
	return buf.Bytes()
}

// ipFrames makes the frames of one IP packet, ip4 or ip6 (the other nil)
// carrying l4: one frame if it fits h.mtu (IPv4 with Don't Fragment, as
// a kernel with path MTU discovery sends), else fragments of at most
// h.mtu. Their destination MAC is eth's. h.mu is held.
func (h *Host) ipFrames(eth *layers.Ethernet, ip4 *layers.IPv4, ip6 *layers.IPv6, l4 []byte) [][]byte {
	if l4 == nil {
		return nil
	}
	if ip6 != nil {
		return h.ip6Frames(eth, ip6, l4)
	}
	if ip4Len+len(l4) > 65535 {
		return nil
	}
	if ip4Len+len(l4) <= h.mtu {
		ip4.Flags = layers.IPv4DontFragment
		return [][]byte{frame(eth, ip4, gopacket.Payload(l4))}
	}
	piece := (h.mtu - ip4Len) &^ 7
	var out [][]byte
	for off := 0; off < len(l4); off += piece {
		end := min(off+piece, len(l4))
		f := *ip4
		f.Flags = 0
		f.FragOffset = uint16(off / 8)
		if end < len(l4) {
			f.Flags = layers.IPv4MoreFragments
		}
		out = append(out, frame(eth, &f, gopacket.Payload(l4[off:end])))
	}
	return out
}

// ip6Frames: see ipFrames. Fragments carry a Fragment header after the
// IPv6 header (the host sends no other extension header, so all of l4 is
// the fragmentable part). h.mu is held.
func (h *Host) ip6Frames(eth *layers.Ethernet, ip6 *layers.IPv6, l4 []byte) [][]byte {
	if len(l4) > 65535 {
		return nil
	}
	if ip6Len+len(l4) <= h.mtu {
		return [][]byte{frame(eth, ip6, gopacket.Payload(l4))}
	}
	next := ip6.NextHeader
	id := ip6FragID.Add(1)
	piece := (h.mtu - ip6Len - ip6FragLen) &^ 7
	var out [][]byte
	for off := 0; off < len(l4); off += piece {
		end := min(off+piece, len(l4))
		b := make([]byte, ip6FragLen+end-off)
		b[0] = byte(next)
		offM := uint16(off) // a multiple of 8: offset in 8-byte units, shifted by 3
		if end < len(l4) {
			offM |= 1 // More Fragments
		}
		binary.BigEndian.PutUint16(b[2:], offM)
		binary.BigEndian.PutUint32(b[4:], id)
		copy(b[ip6FragLen:], l4[off:end])
		f := *ip6
		f.NextHeader = layers.IPProtocolIPv6Fragment
		out = append(out, frame(eth, &f, gopacket.Payload(b)))
	}
	return out
}
