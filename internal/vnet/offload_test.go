// SPDX-License-Identifier: BSD-3-Clause

package vnet

import (
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// A TCP header whose data offset is under 5 words, and a GSO type that is
// none of those Segment does, are refused by Segment, AppendSegments,
// SuperFrame and PartialChecksum alike. (Segmentation wrote the TCP
// checksum past the segment for the first; AppendSegments, as a cable
// writes a frame with offloads, cut frames of any unknown type as TCP.)
func TestOffloadRefusesBadHeaders(t *testing.T) {
	short := superFrame(t, false, false, nil, layers.TCP{ACK: true})
	short[14+20+12] = 3 << 4 // a 12-byte TCP header, and no payload
	tcp4 := superFrame(t, false, false, payloadOf(3000), layers.TCP{ACK: true})
	for name, c := range map[string]struct {
		h     Hdr
		frame []byte
	}{
		"data offset 3": {Hdr{GSOType: GSOTCPv4, GSOSize: 1}, short},
		"unknown type":  {Hdr{GSOType: 0x30, GSOSize: 1000}, tcp4},
		"UFO":           {Hdr{GSOType: GSOUDP, GSOSize: 1000}, tcp4},
	} {
		if _, err := Segment(c.h, c.frame); err == nil {
			t.Errorf("%s: Segment took it", name)
		}
		if _, _, err := AppendSegments(nil, c.h, c.frame, []byte("prefix")); err == nil {
			t.Errorf("%s: AppendSegments took it", name)
		}
	}
	if _, ok := SuperFrame(short, 20); ok {
		t.Error("SuperFrame took a TCP header of 12 bytes")
	}
	if _, ok := PartialChecksum(short); ok {
		t.Error("PartialChecksum took a TCP header of 12 bytes")
	}
}
