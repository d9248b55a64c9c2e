// SPDX-License-Identifier: BSD-3-Clause

// Package vnet is the frame format of mnet's networks: an Ethernet frame
// behind a virtio-net header (struct virtio_net_hdr), the way Linux TAP
// devices and packet sockets carry frames with offloads, so that a TCP
// segment of up to 64 KiB (TSO/GSO) or a frame whose checksum is left to
// the receiver crosses a network as one frame. It also does what a
// receiver that takes no offloads needs: software segmentation and
// checksum completion (Segment). Every port kind and package tap use it;
// it imports nothing of ours.
package vnet

import (
	"encoding/binary"
	"errors"
)

// HdrLen is the size of struct virtio_net_hdr, which precedes every
// frame read from or written to a Device.
const HdrLen = 10

// Flags and GSO types of struct virtio_net_hdr (linux/virtio_net.h).
const (
	FlagNeedsCsum = 1 // checksum from CsumStart to the end goes at CsumStart+CsumOffset
	FlagDataValid = 2 // the checksum was checked already

	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3 // UFO: IP fragmentation, never enabled here
	GSOTCPv6 = 4
	GSOUDPL4 = 5
	GSOECN   = 0x80
)

// Hdr is struct virtio_net_hdr. TAP devices and packet sockets use it
// in the host's byte order (legacy virtio).
type Hdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// Decode reads the header at the front of b (at least HdrLen bytes).
func Decode(b []byte) Hdr {
	_ = b[HdrLen-1]
	e := binary.NativeEndian
	return Hdr{Flags: b[0], GSOType: b[1], HdrLen: e.Uint16(b[2:]), GSOSize: e.Uint16(b[4:]),
		CsumStart: e.Uint16(b[6:]), CsumOffset: e.Uint16(b[8:])}
}

// Encode writes h at the front of b.
func (h Hdr) Encode(b []byte) {
	_ = b[HdrLen-1]
	e := binary.NativeEndian
	b[0], b[1] = h.Flags, h.GSOType
	e.PutUint16(b[2:], h.HdrLen)
	e.PutUint16(b[4:], h.GSOSize)
	e.PutUint16(b[6:], h.CsumStart)
	e.PutUint16(b[8:], h.CsumOffset)
}

// Plain reports whether the frame is already what a wire would carry: no
// segment to cut and no checksum to fill in.
func (h Hdr) Plain() bool {
	return h.GSOType&^GSOECN == GSONone && h.Flags&FlagNeedsCsum == 0
}

// ErrBadOffload is returned by Segment for a frame whose offload request it
// cannot carry out (unknown GSO type, headers that do not parse).
var ErrBadOffload = errors.New("frame with an offload that cannot be done in software")

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	protoTCP      = 6
	protoUDP      = 17
)

// Segment returns frame as frames a plain Ethernet receiver can take: the
// checksum the sender left to us filled in and a GSO segment cut into
// frames of at most GSOSize payload bytes each, as the kernel's software
// GSO would. The frames returned are new; frame is not changed.
func Segment(h Hdr, frame []byte) ([][]byte, error) {
	switch h.GSOType &^ GSOECN {
	case GSONone:
		out := append([]byte(nil), frame...)
		if h.Flags&FlagNeedsCsum != 0 {
			if err := finishChecksum(out, int(h.CsumStart), int(h.CsumOffset)); err != nil {
				return nil, err
			}
		}
		return [][]byte{out}, nil
	case GSOTCPv4, GSOTCPv6, GSOUDPL4:
		return segment(h, frame)
	}
	return nil, ErrBadOffload
}

// finishChecksum completes a partial checksum: the field holds the
// pseudo-header sum, and the ones' complement sum from start covers it.
func finishChecksum(b []byte, start, offset int) error {
	field := start + offset
	if start >= len(b) || field+2 > len(b) {
		return ErrBadOffload
	}
	sum := checksum(b[start:], 0)
	binary.BigEndian.PutUint16(b[field:], ^fold(sum))
	return nil
}

// layout locates the network and transport headers of an Ethernet frame.
type layout struct {
	l3, l4, payload int
	v6              bool
	proto           byte
}

func parseLayout(frame []byte) (layout, error) {
	var lo layout
	if len(frame) < 14 {
		return lo, ErrBadOffload
	}
	et := binary.BigEndian.Uint16(frame[12:])
	lo.l3 = 14
	if et == etherTypeVLAN {
		if len(frame) < 18 {
			return lo, ErrBadOffload
		}
		et = binary.BigEndian.Uint16(frame[16:])
		lo.l3 = 18
	}
	switch et {
	case etherTypeIPv4:
		if len(frame) < lo.l3+20 {
			return lo, ErrBadOffload
		}
		ihl := int(frame[lo.l3]&0x0f) * 4
		if ihl < 20 || len(frame) < lo.l3+ihl {
			return lo, ErrBadOffload
		}
		lo.l4, lo.proto = lo.l3+ihl, frame[lo.l3+9]
	case etherTypeIPv6:
		// Extension headers are not walked: the kernel's TSO does not emit
		// them, and a frame with one fails the protocol check below.
		if len(frame) < lo.l3+40 {
			return lo, ErrBadOffload
		}
		lo.v6, lo.l4, lo.proto = true, lo.l3+40, frame[lo.l3+6]
	default:
		return lo, ErrBadOffload
	}
	switch lo.proto {
	case protoTCP:
		if len(frame) < lo.l4+20 {
			return lo, ErrBadOffload
		}
		// A data offset under 5 words would put the payload inside
		// the fixed header, over the checksum that segments get.
		off := int(frame[lo.l4+12]>>4) * 4
		if off < 20 {
			return lo, ErrBadOffload
		}
		lo.payload = lo.l4 + off
	case protoUDP:
		lo.payload = lo.l4 + 8
	default:
		return lo, ErrBadOffload
	}
	if lo.payload > len(frame) || lo.payload < lo.l4+8 {
		return lo, ErrBadOffload
	}
	return lo, nil
}

func segment(h Hdr, frame []byte) ([][]byte, error) {
	var out [][]byte
	err := segmentEach(h, frame, func(n int) []byte {
		seg := make([]byte, n)
		out = append(out, seg)
		return seg
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendSegments is Segment for a GSO frame that leaves in one buffer:
// it appends to dst each segment behind a copy of prefix (an
// encapsulation header), and returns the buffer and the length of one
// prefix and segment, which every one but the last has. It allocates
// nothing beyond dst's growth.
func AppendSegments(dst []byte, h Hdr, frame, prefix []byte) ([]byte, int, error) {
	if h.GSOType&^GSOECN == GSONone {
		start := len(dst) + len(prefix)
		dst = append(append(dst, prefix...), frame...)
		if h.Flags&FlagNeedsCsum != 0 {
			if err := finishChecksum(dst[start:], int(h.CsumStart), int(h.CsumOffset)); err != nil {
				return dst[:start-len(prefix)], 0, err
			}
		}
		return dst, len(dst), nil
	}
	first := 0
	err := segmentEach(h, frame, func(n int) []byte {
		if first == 0 {
			first = len(prefix) + n
		}
		dst = append(dst, prefix...)
		dst = append(dst, make([]byte, n)...) // no allocation: append grows dst and zeroes
		return dst[len(dst)-n:]
	})
	return dst, first, err
}

// segmentEach cuts a GSO frame into segments, each written into the n
// bytes alloc(n) gives.
func segmentEach(h Hdr, frame []byte, alloc func(n int) []byte) error {
	lo, err := parseLayout(frame)
	if err != nil {
		return err
	}
	gso := h.GSOType &^ GSOECN
	if gso != GSOTCPv4 && gso != GSOTCPv6 && gso != GSOUDPL4 {
		return ErrBadOffload // AppendSegments comes here with any type but none
	}
	wantProto := byte(protoTCP)
	if gso == GSOUDPL4 {
		wantProto = protoUDP
	}
	if lo.proto != wantProto || (gso == GSOTCPv4 && lo.v6) || (gso == GSOTCPv6 && !lo.v6) || h.GSOSize == 0 {
		return ErrBadOffload
	}
	mss := int(h.GSOSize)
	payload := frame[lo.payload:]
	count := max(1, (len(payload)+mss-1)/mss)
	var seq uint32
	var ipID uint16
	if lo.proto == protoTCP {
		seq = binary.BigEndian.Uint32(frame[lo.l4+4:])
	}
	if !lo.v6 {
		ipID = binary.BigEndian.Uint16(frame[lo.l3+4:])
	}
	for i := 0; i < count; i++ {
		start := i * mss
		end := min(start+mss, len(payload))
		seg := alloc(lo.payload + end - start)
		copy(seg, frame[:lo.payload])
		copy(seg[lo.payload:], payload[start:end])
		l3len := len(seg) - lo.l3
		if lo.v6 {
			binary.BigEndian.PutUint16(seg[lo.l3+4:], uint16(l3len-40))
		} else {
			binary.BigEndian.PutUint16(seg[lo.l3+2:], uint16(l3len))
			binary.BigEndian.PutUint16(seg[lo.l3+4:], ipID+uint16(i))
			seg[lo.l3+10], seg[lo.l3+11] = 0, 0
			binary.BigEndian.PutUint16(seg[lo.l3+10:], ^fold(checksum(seg[lo.l3:lo.l4], 0)))
		}
		l4len := len(seg) - lo.l4
		var csumAt int
		if lo.proto == protoTCP {
			binary.BigEndian.PutUint32(seg[lo.l4+4:], seq+uint32(start))
			const fin, psh, cwr = 0x01, 0x08, 0x80
			if i != count-1 {
				seg[lo.l4+13] &^= fin | psh
			}
			if i != 0 {
				seg[lo.l4+13] &^= cwr
			}
			csumAt = lo.l4 + 16
		} else {
			binary.BigEndian.PutUint16(seg[lo.l4+4:], uint16(l4len))
			csumAt = lo.l4 + 6
		}
		seg[csumAt], seg[csumAt+1] = 0, 0
		sum := checksum(seg[lo.l4:], pseudoHeaderSum(seg, lo, l4len))
		c := ^fold(sum)
		if c == 0 && lo.proto == protoUDP {
			c = 0xffff // 0 means "no checksum" in UDP
		}
		binary.BigEndian.PutUint16(seg[csumAt:], c)
	}
	return nil
}

func pseudoHeaderSum(frame []byte, lo layout, l4len int) uint64 {
	var sum uint64
	if lo.v6 {
		sum = checksum(frame[lo.l3+8:lo.l3+40], 0) // source and destination
	} else {
		sum = checksum(frame[lo.l3+12:lo.l3+20], 0)
	}
	return sum + uint64(lo.proto) + uint64(l4len)
}

// checksum adds b to the ones' complement sum as big-endian 16-bit words.
func checksum(b []byte, sum uint64) uint64 {
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v>>48 + v>>32&0xffff + v>>16&0xffff + v&0xffff
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

func fold(sum uint64) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// SegmentLen is the length of the longest frame Segment would make of
// frame: for a GSO frame its headers plus GSOSize, otherwise the frame's
// own length.
func SegmentLen(h Hdr, frame []byte) int {
	if h.GSOType&^GSOECN == GSONone || h.GSOSize == 0 {
		return len(frame)
	}
	lo, err := parseLayout(frame)
	if err != nil {
		return len(frame)
	}
	return min(len(frame), lo.payload+int(h.GSOSize))
}

// PartialChecksum tells whether a plain frame's TCP or UDP checksum is
// only partial: the field holds the pseudo-header sum and the rest is
// left to an offload, as the kernel leaves it (CHECKSUM_PARTIAL) for
// frames that cross virtual devices only (a veth, a Linux vxlan device
// sending over one) and reach a userspace socket unfinished. It then
// returns the header that asks the receiver to complete it; a frame whose
// checksum is complete, absent or wrong otherwise, or that is not TCP or
// UDP, is left alone (false). Only a frame whose field equals its
// pseudo-header sum is summed, so complete frames cost no pass over their
// bytes.
func PartialChecksum(frame []byte) (Hdr, bool) {
	lo, err := parseLayout(frame)
	if err != nil {
		return Hdr{}, false
	}
	var l4len int
	if lo.v6 {
		l4len = int(binary.BigEndian.Uint16(frame[lo.l3+4:])) // no extension headers: see parseLayout
	} else {
		if binary.BigEndian.Uint16(frame[lo.l3+6:])&0x3fff != 0 {
			return Hdr{}, false // a fragment: its checksum spans other frames
		}
		l4len = int(binary.BigEndian.Uint16(frame[lo.l3+2:])) - (lo.l4 - lo.l3)
	}
	if l4len < lo.payload-lo.l4 || lo.l4+l4len > len(frame) {
		return Hdr{}, false
	}
	csumOffset := 16
	if lo.proto == protoUDP {
		csumOffset = 6
	}
	field := binary.BigEndian.Uint16(frame[lo.l4+csumOffset:])
	pseudo := pseudoHeaderSum(frame, lo, l4len)
	if field == 0 && lo.proto == protoUDP || field != fold(pseudo) {
		return Hdr{}, false
	}
	if fold(checksum(frame[lo.l4:lo.l4+l4len], pseudo)) == 0xffff {
		return Hdr{}, false // complete after all, by chance equal to the partial sum
	}
	return Hdr{Flags: FlagNeedsCsum, CsumStart: uint16(lo.l4), CsumOffset: uint16(csumOffset)}, true
}

// SuperFrame makes a plain frame longer than a wire's (more than mtu bytes
// after the Ethernet header) that is one TCP segment, as a kernel hands a
// socket a segment it never cut (a Linux VTEP sending over a veth keeps
// it whole), into an offloaded one: it returns the header that has it cut
// into segments whose IP packets fit mtu, and turns its checksum into the
// partial one such a header goes with. Other frames are left alone
// (false).
func SuperFrame(frame []byte, mtu int) (Hdr, bool) {
	lo, err := parseLayout(frame)
	if err != nil || lo.proto != protoTCP {
		return Hdr{}, false
	}
	var l4len, l3len int
	if lo.v6 {
		l4len = int(binary.BigEndian.Uint16(frame[lo.l3+4:]))
		l3len = ipv6HdrLen + l4len
	} else {
		if binary.BigEndian.Uint16(frame[lo.l3+6:])&0x3fff != 0 {
			return Hdr{}, false
		}
		l3len = int(binary.BigEndian.Uint16(frame[lo.l3+2:]))
		l4len = l3len - (lo.l4 - lo.l3)
	}
	mss := mtu - (lo.payload - lo.l3)
	if l3len <= mtu || mss <= 0 || lo.l4+l4len > len(frame) || lo.l4+l4len <= lo.payload {
		return Hdr{}, false
	}
	gso := uint8(GSOTCPv4)
	if lo.v6 {
		gso = GSOTCPv6
	}
	binary.BigEndian.PutUint16(frame[lo.l4+16:], fold(pseudoHeaderSum(frame, lo, l4len)))
	return Hdr{Flags: FlagNeedsCsum, GSOType: gso, HdrLen: uint16(lo.payload), GSOSize: uint16(mss),
		CsumStart: uint16(lo.l4), CsumOffset: 16}, true
}

const ipv6HdrLen = 40
