// SPDX-License-Identifier: BSD-3-Clause

package vxlan

import (
	"encoding/binary"
	"errors"
)

// RFC 7348 section 5: the VXLAN header, 8 bytes after the UDP header.
const (
	// HeaderLen is the size of the VXLAN header.
	HeaderLen = 8
	// flagVNI is the I flag: the VNI field is valid. It is the only flag
	// RFC 7348 defines; the others are reserved.
	flagVNI = 0x08
	// MaxVNI is the largest VXLAN network identifier (24 bits).
	MaxVNI = 1<<24 - 1
	// DefaultPort is the IANA port of VXLAN.
	DefaultPort = 4789

	udpHeaderLen  = 8
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
)

// Overhead is what VXLAN adds to an inner Ethernet frame on the
// underlay, counted against the underlay's IP MTU as an inner MTU: the
// outer IP, UDP and VXLAN headers and the inner Ethernet header (50 bytes
// over IPv4, 70 over IPv6).
func Overhead(v6 bool) int {
	if v6 {
		return ipv6HeaderLen + udpHeaderLen + HeaderLen + ethHeaderLen
	}
	return ipv4HeaderLen + udpHeaderLen + HeaderLen + ethHeaderLen
}

// putHeader writes the VXLAN header for vni at the front of b.
func putHeader(b []byte, vni uint32) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], flagVNI<<24)
	binary.BigEndian.PutUint32(b[4:], vni<<8)
}

var (
	errShort   = errors.New("shorter than a VXLAN header and an Ethernet header")
	errNoVNI   = errors.New("flag I (valid VNI) not set")
	errNoFrame = errors.New("no inner Ethernet frame")
)

// parseHeader checks the VXLAN header of a UDP payload and returns its
// VNI and the inner frame. Reserved bits are ignored, as RFC 7348 asks of
// receivers; a datagram without the I flag is refused.
func parseHeader(b []byte) (uint32, []byte, error) {
	if len(b) < HeaderLen {
		return 0, nil, errShort
	}
	if b[0]&flagVNI == 0 {
		return 0, nil, errNoVNI
	}
	frame := b[HeaderLen:]
	if len(frame) < ethHeaderLen {
		return 0, nil, errNoFrame
	}
	return binary.BigEndian.Uint32(b[4:]) >> 8, frame, nil
}

// flowHash is what picks a frame's sending socket (and so its UDP source
// port): a hash of the inner flow (addresses, protocol and ports when the
// frame is IPv4 or IPv6, else the Ethernet addresses and type), as Linux
// hashes it (udp_flow_src_port) into its source port. Frames of one flow
// leave from one port, so routers that spread by port keep them in order.
func flowHash(frame []byte) uint32 {
	const offset, prime = 2166136261, 16777619 // FNV-1a
	h := uint32(offset)
	mix := func(b []byte) {
		for _, c := range b {
			h ^= uint32(c)
			h *= prime
		}
	}
	if len(frame) < ethHeaderLen {
		mix(frame)
		return h
	}
	typ := binary.BigEndian.Uint16(frame[12:])
	l3 := frame[ethHeaderLen:]
	if typ == 0x8100 && len(frame) >= ethHeaderLen+4 { // one VLAN tag
		typ = binary.BigEndian.Uint16(frame[16:])
		l3 = frame[ethHeaderLen+4:]
	}
	var proto byte
	var l4 []byte
	switch {
	case typ == 0x0800 && len(l3) >= ipv4HeaderLen && l3[0]>>4 == 4:
		ihl := int(l3[0]&0x0f) * 4
		proto = l3[9]
		mix(l3[12:20])
		fragmented := binary.BigEndian.Uint16(l3[6:])&0x3fff != 0
		if !fragmented && ihl >= ipv4HeaderLen && len(l3) >= ihl+4 {
			l4 = l3[ihl:]
		}
	case typ == 0x86dd && len(l3) >= ipv6HeaderLen && l3[0]>>4 == 6:
		proto = l3[6]
		mix(l3[8:40])
		l4 = l3[ipv6HeaderLen:]
	default:
		mix(frame[:ethHeaderLen])
		return h
	}
	h ^= uint32(proto)
	h *= prime
	if (proto == 6 || proto == 17) && len(l4) >= 4 {
		mix(l4[:4])
	}
	return h
}
