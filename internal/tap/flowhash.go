// SPDX-License-Identifier: BSD-3-Clause

package tap

import "encoding/binary"

// FlowHash is a hash of the flow an Ethernet frame belongs to (addresses,
// protocol and ports of IPv4 and IPv6 TCP or UDP; addresses only for other
// IP traffic; the ether type for the rest), the same for both directions
// of the flow. It picks the queue a frame is written to on a multi-queue
// TAP.
func FlowHash(frame []byte) uint32 {
	if len(frame) < 14 {
		return 0
	}
	et := binary.BigEndian.Uint16(frame[12:])
	ip := frame[14:]
	if et == 0x8100 && len(frame) >= 18 { // one VLAN tag
		et = binary.BigEndian.Uint16(frame[16:])
		ip = frame[18:]
	}
	var h uint32
	var proto byte
	var l4 []byte
	switch {
	case et == 0x0800 && len(ip) >= 20:
		h = binary.BigEndian.Uint32(ip[12:]) ^ binary.BigEndian.Uint32(ip[16:])
		proto = ip[9]
		ihl := int(ip[0]&0x0f) * 4
		frag := binary.BigEndian.Uint16(ip[6:]) & 0x3fff
		if frag == 0 && ihl >= 20 && len(ip) >= ihl+4 {
			l4 = ip[ihl:]
		}
	case et == 0x86dd && len(ip) >= 40:
		for i := 8; i < 24; i += 4 {
			h ^= binary.BigEndian.Uint32(ip[i:]) ^ binary.BigEndian.Uint32(ip[i+16:])
		}
		proto = ip[6]
		if len(ip) >= 44 {
			l4 = ip[40:]
		}
	default:
		return uint32(et)
	}
	if proto == 6 || proto == 17 {
		if l4 != nil {
			h ^= uint32(binary.BigEndian.Uint16(l4) ^ binary.BigEndian.Uint16(l4[2:]))
		}
	}
	h ^= uint32(proto) << 16
	// Mix (murmur3's finalizer), so that queue = hash % n uses every bit.
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
