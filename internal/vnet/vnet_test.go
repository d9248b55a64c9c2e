// SPDX-License-Identifier: BSD-3-Clause

package vnet

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

// superFrame builds what the kernel hands a TAP with TSO on: one frame
// whose payload spans several segments, its checksum left to the receiver
// (the field holds only the pseudo-header sum, as the kernel leaves it).
func superFrame(t *testing.T, v6, udp bool, payload []byte, flags layers.TCP) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	var netLayer gopacket.NetworkLayer
	ls := []gopacket.SerializableLayer{eth}
	proto := layers.IPProtocolTCP
	if udp {
		proto = layers.IPProtocolUDP
	}
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
		netLayer = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: 100, Protocol: proto, Flags: layers.IPv4DontFragment,
			SrcIP: net.IPv4(198, 18, 0, 1), DstIP: net.IPv4(198, 18, 0, 2)}
		netLayer = ip
		ls = append(ls, ip)
	}
	if udp {
		u := &layers.UDP{SrcPort: 4000, DstPort: 5000}
		u.SetNetworkLayerForChecksum(netLayer)
		ls = append(ls, u)
	} else {
		tcp := flags
		tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Ack, tcp.Window = 4000, 5000, 0xfffff000, 7, 512
		tcp.SetNetworkLayerForChecksum(netLayer)
		ls = append(ls, &tcp)
	}
	ls = append(ls, gopacket.Payload(payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// verify decodes seg and checks that its checksums are right by making
// gopacket compute them afresh.
func verify(t *testing.T, seg []byte) gopacket.Packet {
	t.Helper()
	pkt := gopacket.NewPacket(seg, layers.LayerTypeEthernet, gopacket.Default)
	if e := pkt.ErrorLayer(); e != nil {
		t.Fatalf("segment does not decode: %v", e.Error())
	}
	var ls []gopacket.SerializableLayer
	for _, l := range pkt.Layers() {
		sl, ok := l.(gopacket.SerializableLayer)
		if !ok {
			continue
		}
		switch x := l.(type) {
		case *layers.TCP:
			x.SetNetworkLayerForChecksum(pkt.NetworkLayer())
		case *layers.UDP:
			x.SetNetworkLayerForChecksum(pkt.NetworkLayer())
		}
		ls = append(ls, sl)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), seg) {
		t.Fatalf("segment checksums or lengths wrong:\n got %x\nwant %x", seg[:64], buf.Bytes()[:64])
	}
	return pkt
}

func payloadOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestSegmentTCP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		payload := payloadOf(10000)
		frame := superFrame(t, v6, false, payload, layers.TCP{ACK: true, PSH: true, FIN: true, CWR: true})
		gso := uint8(GSOTCPv4)
		if v6 {
			gso = GSOTCPv6
		}
		segs, err := Segment(Hdr{Flags: FlagNeedsCsum, GSOType: gso, GSOSize: 1448}, frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != 7 { // 6 × 1448 + 1312
			t.Fatalf("v6=%v: %d segments, want 7", v6, len(segs))
		}
		var got []byte
		for i, seg := range segs {
			pkt := verify(t, seg)
			tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if want := uint32(0xfffff000) + uint32(i*1448); tcp.Seq != want {
				t.Errorf("segment %d: seq %#x, want %#x (wrapping)", i, tcp.Seq, want)
			}
			last := i == len(segs)-1
			if tcp.FIN != last || tcp.PSH != last || tcp.CWR != (i == 0) || !tcp.ACK {
				t.Errorf("segment %d: flags FIN=%v PSH=%v CWR=%v ACK=%v", i, tcp.FIN, tcp.PSH, tcp.CWR, tcp.ACK)
			}
			if !v6 {
				ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				if ip.Id != uint16(100+i) {
					t.Errorf("segment %d: IP id %d", i, ip.Id)
				}
			}
			if !last && len(tcp.Payload) != 1448 {
				t.Errorf("segment %d: %d payload bytes, want 1448", i, len(tcp.Payload))
			}
			got = append(got, tcp.Payload...)
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("v6=%v: the segments do not carry the payload", v6)
		}
		if l := SegmentLen(Hdr{GSOType: gso, GSOSize: 1448}, frame); l != len(segs[0]) {
			t.Errorf("SegmentLen %d, first segment %d", l, len(segs[0]))
		}
	}
}

func TestSegmentUDPL4(t *testing.T) {
	payload := payloadOf(3000)
	frame := superFrame(t, false, true, payload, layers.TCP{})
	segs, err := Segment(Hdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1000}, frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	for i, seg := range segs {
		pkt := verify(t, seg)
		if u := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); !bytes.Equal(u.Payload, payload[i*1000:(i+1)*1000]) {
			t.Errorf("segment %d payload differs", i)
		}
	}
}

// A frame whose checksum was left to us gets it filled in; the pseudo
// header sum the kernel puts in the field is part of the sum.
func TestSegmentChecksumOnly(t *testing.T) {
	frame := superFrame(t, false, false, payloadOf(500), layers.TCP{ACK: true})
	want := append([]byte(nil), frame...)
	l4 := 14 + 20
	// Replace the full checksum by what the kernel leaves: the folded
	// pseudo-header sum, not complemented.
	pseudo := checksum(frame[14+12:14+20], 0) + protoTCP + uint64(len(frame)-l4)
	frame[l4+16], frame[l4+17] = byte(fold(pseudo)>>8), byte(fold(pseudo))
	segs, err := Segment(Hdr{Flags: FlagNeedsCsum, CsumStart: uint16(l4), CsumOffset: 16}, frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || !bytes.Equal(segs[0], want) {
		t.Fatalf("checksum not completed:\n got %x\nwant %x", segs[0][l4:l4+20], want[l4:l4+20])
	}
	if &segs[0][0] == &frame[0] {
		t.Error("Segment must not hand back the caller's buffer")
	}
}

func TestSegmentRefusesWhatItCannotDo(t *testing.T) {
	tcp4 := superFrame(t, false, false, payloadOf(3000), layers.TCP{ACK: true})
	for name, c := range map[string]struct {
		h     Hdr
		frame []byte
	}{
		"UFO":             {Hdr{GSOType: GSOUDP, GSOSize: 1000}, tcp4},
		"v6 type on v4":   {Hdr{GSOType: GSOTCPv6, GSOSize: 1000}, tcp4},
		"zero gso size":   {Hdr{GSOType: GSOTCPv4}, tcp4},
		"short":           {Hdr{GSOType: GSOTCPv4, GSOSize: 100}, tcp4[:30]},
		"csum past frame": {Hdr{Flags: FlagNeedsCsum, CsumStart: 60, CsumOffset: 9999}, tcp4[:80]},
		"not IP":          {Hdr{GSOType: GSOTCPv4, GSOSize: 100}, append([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x88, 0xcc}, make([]byte, 100)...)},
	} {
		if _, err := Segment(c.h, c.frame); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestVnetHdrRoundTrip(t *testing.T) {
	h := Hdr{Flags: 1, GSOType: GSOTCPv6 | GSOECN, HdrLen: 66, GSOSize: 1428, CsumStart: 54, CsumOffset: 16}
	b := make([]byte, HdrLen)
	h.Encode(b)
	if Decode(b) != h {
		t.Fatalf("round trip: %+v", Decode(b))
	}
	if h.Plain() || !(Hdr{Flags: FlagDataValid}).Plain() {
		t.Error("Plain")
	}
}

func FuzzSegment(f *testing.F) {
	f.Add([]byte{1, 1, 0, 0, 100, 0, 34, 0, 16, 0}, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45})
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		if len(hdr) < HdrLen {
			return
		}
		h := Decode(hdr)
		segs, err := Segment(h, frame)
		if err == nil && h.GSOSize > 0 && h.GSOType&^GSOECN != GSONone {
			for _, s := range segs {
				if len(s) > SegmentLen(h, frame) {
					t.Fatalf("segment of %d bytes, SegmentLen %d", len(s), SegmentLen(h, frame))
				}
			}
		}
	})
}

// A frame whose TCP or UDP checksum a kernel left partial (the field holds
// the pseudo-header sum) is found and completed; complete frames, padded
// or not, are left alone.
func TestPartialChecksum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v6, udp bool
		size    int
	}{{"tcp4", false, false, 1000}, {"tcp6", true, false, 1000}, {"udp4", false, true, 300},
		{"udp6", true, true, 300}, {"tcp4-ack-padded", false, false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			full := superFrame(t, tc.v6, tc.udp, payloadOf(tc.size), layers.TCP{ACK: true})
			for len(full) < 60 {
				full = append(full, 0) // Ethernet padding
			}
			if _, ok := PartialChecksum(full); ok {
				t.Fatal("a complete frame was taken for a partial one")
			}
			lo, err := parseLayout(full)
			if err != nil {
				t.Fatal(err)
			}
			at := lo.l4 + 16
			if tc.udp {
				at = lo.l4 + 6
			}
			l4len := len(full) - lo.l4
			if !tc.v6 {
				l4len = int(full[lo.l3+2])<<8 | int(full[lo.l3+3]) - (lo.l4 - lo.l3)
			}
			partial := append([]byte(nil), full...)
			pseudo := fold(pseudoHeaderSum(partial, lo, l4len))
			partial[at], partial[at+1] = byte(pseudo>>8), byte(pseudo)
			h, ok := PartialChecksum(partial)
			if !ok || h.Flags != FlagNeedsCsum || int(h.CsumStart) != lo.l4 || int(h.CsumStart+h.CsumOffset) != at {
				t.Fatalf("partial checksum not found: %+v %v", h, ok)
			}
			segs, err := Segment(h, partial)
			if err != nil || len(segs) != 1 || !bytes.Equal(segs[0], full) {
				t.Fatalf("completing it: %v\n got %x\nwant %x", err, segs, full)
			}
			// A corrupt checksum is not "repaired".
			partial[at] ^= 0x40
			if _, ok := PartialChecksum(partial); ok {
				t.Fatal("a wrong checksum was taken for a partial one")
			}
		})
	}
	if _, ok := PartialChecksum([]byte{1, 2, 3}); ok {
		t.Fatal("a runt was taken for a partial frame")
	}
}

// AppendSegments lays out what Segment returns, each segment behind the
// prefix, in one buffer.
func TestAppendSegments(t *testing.T) {
	prefix := []byte("VXLANHDR")
	for _, v6 := range []bool{false, true} {
		frame := superFrame(t, v6, false, payloadOf(5000), layers.TCP{ACK: true, PSH: true})
		gso := uint8(GSOTCPv4)
		if v6 {
			gso = GSOTCPv6
		}
		lo, _ := parseLayout(frame)
		h := Hdr{Flags: FlagNeedsCsum, GSOType: gso, HdrLen: uint16(lo.payload), GSOSize: 1400,
			CsumStart: uint16(lo.l4), CsumOffset: 16}
		want, err := Segment(h, frame)
		if err != nil {
			t.Fatal(err)
		}
		got, size, err := AppendSegments([]byte("x"), h, frame, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if size != len(prefix)+len(want[0]) {
			t.Fatalf("size %d, want %d", size, len(prefix)+len(want[0]))
		}
		var exp []byte
		exp = append(exp, 'x')
		for _, w := range want {
			exp = append(append(exp, prefix...), w...)
		}
		if !bytes.Equal(got, exp) {
			t.Fatalf("v6 %v: the buffer differs from Segment's segments", v6)
		}
	}
	// A checksum-only offload: one frame, its checksum completed.
	full := superFrame(t, false, true, payloadOf(100), layers.TCP{})
	lo, _ := parseLayout(full)
	partial := append([]byte(nil), full...)
	pseudo := fold(pseudoHeaderSum(partial, lo, len(full)-lo.l4))
	partial[lo.l4+6], partial[lo.l4+7] = byte(pseudo>>8), byte(pseudo)
	got, size, err := AppendSegments(nil, Hdr{Flags: FlagNeedsCsum, CsumStart: uint16(lo.l4), CsumOffset: 6}, partial, prefix)
	if err != nil || size != len(got) || !bytes.Equal(got, append(append([]byte(nil), prefix...), full...)) {
		t.Fatalf("checksum only: %v, size %d", err, size)
	}
}
