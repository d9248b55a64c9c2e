// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// The fuzz targets drive the host's whole input path: each input becomes
// frames written to the host's port (hostLink.Write, where the network's
// pump hands it what any member sent), on a fresh host with a v4 and a v6
// address and UDP endpoints, so that a crash reproduces from its input
// alone. Every frame the host sends back is checked (well-formed, correct
// checksums, from the host's own addresses, at most the MTU), and so are
// the bounds of its tables. The structured targets (fragments, ARP, NDP,
// ICMP, UDP) build the headers and checksums around the fuzzed bytes, so
// that the fuzzer spends its time past the checks a random frame fails.

var (
	fzHostMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	fzPeerMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x22}
	fzHostV4   = netip.MustParseAddr("198.18.7.1")
	fzPeerV4   = netip.MustParseAddr("198.18.7.2")
	fzOtherV4  = netip.MustParseAddr("198.18.7.3")
	fzHostV6   = netip.MustParseAddr("2001:db8:7::1")
	fzPeerV6   = netip.MustParseAddr("2001:db8:7::2")
	fzOtherV6  = netip.MustParseAddr("2001:db8:7::3")
	fzBcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// The host's UDP endpoints in every fuzzed host: bound to fzBoundPort in
// both families, and connected from fzConnPort to the peer's fzPeerPort.
const (
	fzBoundPort = 7
	fzConnPort  = 5000
	fzPeerPort  = 9
	fzClosed    = 33434 // no endpoint: port unreachable
)

// fuzzNet is the network a fuzzed host is on: it reads nothing from the
// host's link itself, so that the target sees every frame the host sends,
// and keeps the first panic the host's goroutines contained.
type fuzzNet struct {
	name     string
	quota    *netcore.Quota
	panicked atomic.Pointer[string]
}

func (n *fuzzNet) Recovered(r any, msg string, _ ...any) {
	s := fmt.Sprintf("%s: %v", msg, r)
	n.panicked.CompareAndSwap(nil, &s)
}

func (n *fuzzNet) Name() string                      { return n.name }
func (n *fuzzNet) Quota() *netcore.Quota             { return n.quota }
func (n *fuzzNet) Log() *slog.Logger                 { return slog.New(slog.DiscardHandler) }
func (n *fuzzNet) Access() (uint32, uint32, uint32)  { return 0, 0, 0o777 }
func (n *fuzzNet) Rights(*netcore.Cred) (bool, bool) { return true, true }
func (n *fuzzNet) Limits() (int, int)                { return 1514, 256 }
func (n *fuzzNet) Join(l link.Link, _ link.Member) (func(), error) {
	return func() { l.Close(false) }, nil
}

// recordSink keeps what a UDP endpoint was given.
type recordSink struct {
	datagrams [][]byte
	errs      []syscall.Errno
}

func (s *recordSink) Deliver(_, _ netip.AddrPort, b []byte) func() {
	s.datagrams = append(s.datagrams, bytes.Clone(b))
	return nil
}
func (s *recordSink) Error(_ netip.AddrPort, errno syscall.Errno) func() {
	s.errs = append(s.errs, errno)
	return nil
}
func (s *recordSink) Closed() {}

type fuzzHost struct {
	t     *testing.T
	net   *fuzzNet
	h     *Host
	lk    *hostLink
	bound [2]*recordSink // by family
	conn  *recordSink
	sent  int // frames the host sent
	// inBytes counts the bytes of every frame input so far.
	inBytes int
}

func newFuzzHost(t *testing.T) *fuzzHost {
	t.Helper()
	n := &fuzzNet{name: "fuzz", quota: netcore.NewQuota(netcore.Limits{}.WithDefaults(), slog.New(slog.DiscardHandler))}
	h := newHost(n)
	for _, line := range [][2]string{{"mac", fzHostMAC.String()}, {"addr", "198.18.7.1/24"}, {"addr", "2001:db8:7::1/64"}} {
		apply, err := h.Parse(nil, line[0], line[1])
		if err == nil {
			err = apply()
		}
		if err != nil {
			t.Fatalf("%s %s: %v", line[0], line[1], err)
		}
	}
	fh := &fuzzHost{t: t, net: n, h: h, conn: &recordSink{}}
	h.mu.Lock()
	fh.lk = h.lk
	h.unlock()
	for fam := range 2 {
		fh.bound[fam] = &recordSink{}
		if _, err := h.Open(fam == 1, fzBoundPort, netip.AddrPort{}, fh.bound[fam]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Open(false, fzConnPort, netip.AddrPortFrom(fzPeerV4, fzPeerPort), fh.conn); err != nil {
		t.Fatal(err)
	}
	fh.drain() // the announcements
	fh.sent = 0
	t.Cleanup(h.Close)
	return fh
}

// input hands the host one frame, as the network does, and checks what it
// sent in answer.
func (fh *fuzzHost) input(frame []byte) {
	fh.t.Helper()
	fh.lk.Write(append(make([]byte, vnet.HdrLen), frame...))
	fh.inBytes += len(frame)
	// A few answers per frame, and the fragments of an answer as large as
	// what came in (an echo of a datagram reassembled from earlier
	// frames): each fragment carries at least 1000 bytes of it.
	if n := fh.drain(); n > 4+fh.inBytes/1000 {
		fh.t.Fatalf("one frame of %d bytes (%d in all) made the host send %d frames", len(frame), fh.inBytes, n)
	}
}

// drain checks and counts the frames the host has sent.
func (fh *fuzzHost) drain() int {
	fh.t.Helper()
	n := 0
	for {
		select {
		case f := <-fh.lk.out:
			f.release()
			fh.checkSent(f.raw)
			n++
			fh.sent++
		default:
			return n
		}
	}
}

// minFrame is the shortest Ethernet frame (without its FCS): shorter
// ones are padded.
const minFrame = 60

// checkSent fails unless raw is a frame the host may send: a plain
// virtio-net header, then a well-formed Ethernet frame from the host's MAC
// of at most its MTU, ARP from its own addresses, IPv4 or IPv6 from its
// own addresses with correct lengths and checksums.
func (fh *fuzzHost) checkSent(raw []byte) {
	t := fh.t
	t.Helper()
	if len(raw) < vnet.HdrLen+ethLen || !vnet.Decode(raw).Plain() {
		t.Fatalf("sent %x: no plain header and Ethernet frame", raw)
	}
	f := raw[vnet.HdrLen:]
	if len(f) > ethLen+ipMTU {
		t.Fatalf("sent a frame of %d bytes, above the MTU", len(f))
	}
	if !bytes.Equal(f[6:12], fzHostMAC) {
		t.Fatalf("sent a frame from %x, not the host's MAC", f[6:12])
	}
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if e := p.ErrorLayer(); e != nil {
		t.Fatalf("sent a frame that does not decode: %v\n%x", e.Error(), f)
	}
	l3 := f[ethLen:]
	switch layers.EthernetType(binary.BigEndian.Uint16(f[12:])) {
	case layers.EthernetTypeARP:
		arp, _ := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		spa, _ := netip.AddrFromSlice(arp.SourceProtAddress)
		if arp == nil || !bytes.Equal(arp.SourceHwAddress, fzHostMAC) || spa != fzHostV4 ||
			(arp.Operation != layers.ARPRequest && arp.Operation != layers.ARPReply) {
			t.Fatalf("sent a bad ARP: %+v", arp)
		}
	case layers.EthernetTypeIPv4:
		if len(l3) < ip4Len || l3[0] != 0x45 || checksum(l3[:ip4Len], 0) != 0 {
			t.Fatalf("sent a bad IPv4 header: %x", l3)
		}
		total := int(binary.BigEndian.Uint16(l3[2:]))
		if total != len(l3) && !(total < len(l3) && len(f) == minFrame) {
			t.Fatalf("sent IPv4 total length %d in %d bytes", total, len(l3))
		}
		l3 = l3[:total]
		if src := netip.AddrFrom4([4]byte(l3[12:16])); src != fzHostV4 {
			t.Fatalf("sent IPv4 from %s", src)
		}
		mf := binary.BigEndian.Uint16(l3[6:])&0x3fff != 0
		if l3[9] == byte(layers.IPProtocolICMPv4) && !mf && checksum(l3[ip4Len:], 0) != 0 {
			t.Fatalf("sent ICMP with a bad checksum: %x", l3)
		}
	case layers.EthernetTypeIPv6:
		if len(l3) < ip6Len || l3[0]>>4 != 6 {
			t.Fatalf("sent a bad IPv6 header: %x", l3)
		}
		total := ip6Len + int(binary.BigEndian.Uint16(l3[4:]))
		if total != len(l3) && !(total < len(l3) && len(f) == minFrame) {
			t.Fatalf("sent IPv6 payload length %d in %d bytes", total-ip6Len, len(l3))
		}
		l3 = l3[:total]
		src, dst := netip.AddrFrom16([16]byte(l3[8:24])), netip.AddrFrom16([16]byte(l3[24:40]))
		if src != fzHostV6 {
			t.Fatalf("sent IPv6 from %s", src)
		}
		if proto := layers.IPProtocol(l3[6]); proto == layers.IPProtocolICMPv6 {
			if checksum(l3[ip6Len:], pseudo6(src, dst, len(l3)-ip6Len, proto)) != 0 {
				t.Fatalf("sent ICMPv6 with a bad checksum: %x", l3)
			}
		}
	default:
		t.Fatalf("sent EtherType %#x", f[12:14])
	}
}

// checkBounds fails if a table of the host passed its bound, the
// endpoints were touched, or a goroutine of the host panicked.
func (fh *fuzzHost) checkBounds() {
	fh.t.Helper()
	if p := fh.net.panicked.Load(); p != nil {
		fh.t.Fatal(*p)
	}
	h := fh.h
	h.mu.Lock()
	defer h.unlock()
	if len(h.frags.m) > maxReassemblies || h.frags.bytes < 0 || h.frags.bytes > maxReassemblyBytes {
		fh.t.Fatalf("reassembly holds %d datagrams, %d bytes", len(h.frags.m), h.frags.bytes)
	}
	if len(h.neigh.m) > MaxNeighbours {
		fh.t.Fatalf("neighbour cache holds %d", len(h.neigh.m))
	}
	if h.nconns != 3 {
		fh.t.Fatalf("%d UDP endpoints, want 3", h.nconns)
	}
	for _, s := range append(fh.bound[:], fh.conn) {
		for _, d := range s.datagrams {
			if len(d) > 65535-udpLen {
				fh.t.Fatalf("delivered a datagram of %d bytes", len(d))
			}
		}
	}
}

// frames splits b as VDE's stream format does: a 2-byte big-endian
// length, then that many bytes (fewer at the end).
func frames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

func joinFrames(fs ...[]byte) []byte {
	var b []byte
	for _, f := range fs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

func ethHdr(dst net.HardwareAddr, typ layers.EthernetType) []byte {
	b := append(append(bytes.Clone(dst), fzPeerMAC...), 0, 0)
	binary.BigEndian.PutUint16(b[12:], uint16(typ))
	return b
}

// ipv4Hdr is a 20-byte IPv4 header with its checksum; frag holds the
// flags and fragment offset field.
func ipv4Hdr(src, dst netip.Addr, proto layers.IPProtocol, id, frag uint16, payloadLen int) []byte {
	b := make([]byte, ip4Len)
	b[0], b[8], b[9] = 0x45, 64, byte(proto)
	binary.BigEndian.PutUint16(b[2:], uint16(ip4Len+payloadLen))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], frag)
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b, 0))
	return b
}

func ipv6Hdr(src, dst netip.Addr, next layers.IPProtocol, hop uint8, payloadLen int) []byte {
	b := make([]byte, ip6Len)
	b[0], b[6], b[7] = 0x60, byte(next), hop
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

// fixChecksums makes a frame's IPv4 header checksum and its ICMP, ICMPv6
// and UDP checksums right, where the frame holds enough of them to find.
func fixChecksums(f []byte) {
	if len(f) < ethLen {
		return
	}
	l3 := f[ethLen:]
	switch layers.EthernetType(binary.BigEndian.Uint16(f[12:])) {
	case layers.EthernetTypeIPv4:
		if len(l3) < ip4Len {
			return
		}
		hl := int(l3[0]&0xf) * 4
		if hl < ip4Len || hl > len(l3) {
			return
		}
		l3[10], l3[11] = 0, 0
		binary.BigEndian.PutUint16(l3[10:], checksum(l3[:hl], 0))
		end := min(max(int(binary.BigEndian.Uint16(l3[2:])), hl), len(l3))
		if binary.BigEndian.Uint16(l3[6:])&0x3fff != 0 {
			return // a fragment: its checksum covers the whole datagram
		}
		src, dst := netip.AddrFrom4([4]byte(l3[12:16])), netip.AddrFrom4([4]byte(l3[16:20]))
		fixL4(layers.IPProtocol(l3[9]), l3[hl:end], src, dst)
	case layers.EthernetTypeIPv6:
		if len(l3) < ip6Len {
			return
		}
		src, dst := netip.AddrFrom16([16]byte(l3[8:24])), netip.AddrFrom16([16]byte(l3[24:40]))
		end := min(ip6Len+int(binary.BigEndian.Uint16(l3[4:])), len(l3))
		fixL4(layers.IPProtocol(l3[6]), l3[ip6Len:end], src, dst)
	}
}

func fixL4(proto layers.IPProtocol, b []byte, src, dst netip.Addr) {
	var at int
	var initial uint32
	switch {
	case proto == layers.IPProtocolICMPv4 && src.Is4():
		at = 2
	case proto == layers.IPProtocolICMPv6 && src.Is6():
		at, initial = 2, pseudo6(src, dst, len(b), proto)
	case proto == layers.IPProtocolUDP:
		at = 6
		if len(b) >= udpLen {
			initial = pseudoFor(src, dst, int(binary.BigEndian.Uint16(b[4:])))
			b = b[:min(len(b), max(int(binary.BigEndian.Uint16(b[4:])), udpLen))]
		}
	default:
		return
	}
	if len(b) < at+2 {
		return
	}
	b[at], b[at+1] = 0, 0
	sum := checksum(b, initial)
	if proto == layers.IPProtocolUDP && sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(b[at:], sum)
}

// FuzzHostInput: any sequence of frames, from any member of the network.
// With fix, the harness corrects the checksums the fuzzer would rarely
// get right, so that it reaches what lies behind them.
func FuzzHostInput(f *testing.F) {
	arpReq := append(ethHdr(fzBcastMAC, layers.EthernetTypeARP), arpBody(layers.ARPRequest, fzPeerMAC, fzPeerV4, nil, fzHostV4)...)
	echo4 := icmpFrame(false, fzPeerV4, fzHostV4, 8, 0, []byte{0, 1, 0, 1, 'p', 'i', 'n', 'g'})
	echo6 := icmpFrame(true, fzPeerV6, fzHostV6, 128, 0, []byte{0, 1, 0, 1, 'p', 'i', 'n', 'g'})
	udpClosed := udpFrame(false, fzPeerV4, fzHostV4, 40000, fzClosed, []byte("hello"))
	udp6Bound := udpFrame(true, fzPeerV6, fzHostV6, 40000, fzBoundPort, []byte("hello"))
	ns := ndpFrame(fzPeerV6, solicited(fzHostV6), 255, nsBody(fzHostV6, fzPeerMAC))
	frag1 := fragFrame(fuzzFrag{id: 1, mf: true, data: udpDatagram(fzPeerV4, fzHostV4, 1, fzBoundPort, make([]byte, 16))[:16]})
	frag2 := fragFrame(fuzzFrag{id: 1, off: 2, data: udpDatagram(fzPeerV4, fzHostV4, 1, fzBoundPort, make([]byte, 16))[16:]})
	for _, seed := range [][]byte{
		joinFrames(arpReq), joinFrames(echo4, echo6), joinFrames(udpClosed, udp6Bound),
		joinFrames(ns), joinFrames(frag1, frag2), joinFrames(frag2, frag1, frag1),
		// Issue 24's reproduction: a fragment beyond the last one's end.
		joinFrames(fragFrame(fuzzFrag{id: 2, mf: true, off: 125, data: make([]byte, 8)}),
			fragFrame(fuzzFrag{id: 2, off: 1, data: make([]byte, 8)})),
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		fh := newFuzzHost(t)
		for _, fr := range frames(b) {
			if fix {
				fixChecksums(fr)
			}
			fh.input(fr)
		}
		fh.checkBounds()
	})
}

// fuzzFrag is one IPv4 fragment, or IPv6 one (with a Fragment header).
type fuzzFrag struct {
	v6    bool
	proto layers.IPProtocol // of the datagram; UDP when zero
	id    uint32
	off   uint16 // in 8-byte units
	mf    bool
	other bool // from a second peer
	data  []byte
}

func fragFrame(fr fuzzFrag) []byte {
	proto := fr.proto
	if proto == 0 {
		proto = layers.IPProtocolUDP
	}
	field := fr.off & 0x1fff
	if fr.v6 {
		src := fzPeerV6
		if fr.other {
			src = fzOtherV6
		}
		fh := make([]byte, 8)
		fh[0] = byte(proto)
		binary.BigEndian.PutUint16(fh[2:], field<<3|uint16(btoi(fr.mf)))
		binary.BigEndian.PutUint32(fh[4:], fr.id)
		ip := ipv6Hdr(src, fzHostV6, layers.IPProtocolIPv6Fragment, 64, len(fh)+len(fr.data))
		return append(append(append(ethHdr(fzHostMAC, layers.EthernetTypeIPv6), ip...), fh...), fr.data...)
	}
	src := fzPeerV4
	if fr.other {
		src = fzOtherV4
	}
	if fr.mf {
		field |= 0x2000
	}
	ip := ipv4Hdr(src, fzHostV4, proto, uint16(fr.id), field, len(fr.data))
	return append(append(ethHdr(fzHostMAC, layers.EthernetTypeIPv4), ip...), fr.data...)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzFragments: IPv4 and IPv6 fragments of datagrams to the host, with
// correct headers, in any order, overlapping or not. The input is a list
// of records: a control byte (bit 0 IPv6, bit 1 more fragments, bit 2 from
// a second peer, bits 3-4 the protocol: UDP, ICMP, TCP, UDP), an id byte,
// the 13-bit offset in two bytes, a length byte, then the data.
func FuzzFragments(f *testing.F) {
	udp := udpDatagram(fzPeerV4, fzHostV4, 1, fzBoundPort, []byte("0123456789abcdef"))
	rec := func(ctl, id byte, off uint16, data []byte) []byte {
		return append([]byte{ctl, id, byte(off >> 8), byte(off), byte(len(data))}, data...)
	}
	whole := append(rec(2, 1, 0, udp[:16]), rec(0, 1, 2, udp[16:])...)
	f.Add(whole)
	f.Add(append(rec(0, 1, 2, udp[16:]), rec(2, 1, 0, udp[:16])...))
	f.Add(append(rec(2, 1, 125, make([]byte, 8)), rec(0, 1, 1, make([]byte, 8))...)) // issue 24
	f.Add(append(rec(2, 1, 0, make([]byte, 16)), rec(2, 1, 1, make([]byte, 16))...)) // overlap
	f.Add(append(rec(3, 1, 0, make([]byte, 16)), rec(1, 1, 2, make([]byte, 8))...))  // IPv6
	f.Add(append(rec(3, 1, 125, make([]byte, 8)), rec(1, 1, 1, make([]byte, 8))...))
	f.Add(append(rec(2, 1, 8191, make([]byte, 8)), rec(0, 1, 0, make([]byte, 1))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		fh := newFuzzHost(t)
		for len(b) >= 5 {
			ctl, n := b[0], int(b[4])
			fr := fuzzFrag{v6: ctl&1 != 0, mf: ctl&2 != 0, other: ctl&4 != 0, id: uint32(b[1]),
				off: binary.BigEndian.Uint16(b[2:]),
				proto: [4]layers.IPProtocol{layers.IPProtocolUDP, layers.IPProtocolICMPv4,
					layers.IPProtocolTCP, layers.IPProtocolUDP}[ctl>>3&3]}
			if fr.v6 && fr.proto == layers.IPProtocolICMPv4 {
				fr.proto = layers.IPProtocolICMPv6
			}
			b = b[5:]
			fr.data = b[:min(n, len(b))]
			b = b[len(fr.data):]
			fh.input(fragFrame(fr))
		}
		fh.checkBounds()
	})
}

func arpBody(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := []byte{0, 1, 8, 0, 6, 4, 0, 0}
	binary.BigEndian.PutUint16(b[6:], op)
	if tha == nil {
		tha = make(net.HardwareAddr, 6)
	}
	s, d := spa.As4(), tpa.As4()
	b = append(append(b, sha...), s[:]...)
	return append(append(b, tha...), d[:]...)
}

// FuzzARP: any ARP payload, broadcast or to the host's MAC, a few times.
func FuzzARP(f *testing.F) {
	f.Add(arpBody(layers.ARPRequest, fzPeerMAC, fzPeerV4, nil, fzHostV4), true, uint8(1))
	f.Add(arpBody(layers.ARPReply, fzPeerMAC, fzPeerV4, fzHostMAC, fzHostV4), false, uint8(1))
	f.Add(arpBody(layers.ARPRequest, fzPeerMAC, fzPeerV4, nil, fzPeerV4), true, uint8(1)) // gratuitous
	f.Add(arpBody(layers.ARPRequest, fzBcastMAC, netip.IPv4Unspecified(), nil, fzHostV4), true, uint8(2))
	f.Add(arpBody(layers.ARPRequest, fzPeerMAC, fzPeerV4, nil, fzHostV4)[:20], true, uint8(1))
	f.Add(append([]byte{0, 1, 8, 0, 16, 16, 0, 1}, make([]byte, 64)...), true, uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, bcast bool, times uint8) {
		fh := newFuzzHost(t)
		dst := fzHostMAC
		if bcast {
			dst = fzBcastMAC
		}
		frame := append(ethHdr(dst, layers.EthernetTypeARP), body...)
		for range times % 4 {
			fh.input(frame)
		}
		fh.checkBounds()
	})
}

func solicited(a netip.Addr) netip.Addr {
	g, _ := solicitedNode(a)
	return g
}

func nsBody(target netip.Addr, sll net.HardwareAddr) []byte {
	b := make([]byte, 4, 28)
	t := target.As16()
	b = append(b, t[:]...)
	if sll != nil {
		b = append(append(b, 1, 1), sll...)
	}
	return b
}

// ndpFrame is an ICMPv6 message of the NDP body (type, code, checksum
// and what follows; the checksum is computed here).
func ndpFrame(src, dst netip.Addr, hop uint8, body []byte) []byte {
	mac := fzHostMAC
	if dst.IsMulticast() {
		mac = multicastMAC(dst)
	}
	icmp := bytes.Clone(body)
	if len(icmp) >= 4 {
		icmp[2], icmp[3] = 0, 0
		binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, pseudo6(src, dst, len(icmp), layers.IPProtocolICMPv6)))
	}
	ip := ipv6Hdr(src, dst, layers.IPProtocolICMPv6, hop, len(icmp))
	return append(append(ethHdr(mac, layers.EthernetTypeIPv6), ip...), icmp...)
}

// FuzzNDP: neighbour discovery messages (router and neighbour
// solicitations and advertisements, redirects) of any body, from the
// peer or the unspecified address (duplicate address detection), to the
// host, its solicited-node group or all nodes.
func FuzzNDP(f *testing.F) {
	ns := append([]byte{135, 0, 0, 0}, nsBody(fzHostV6, fzPeerMAC)[4:]...)
	na := append([]byte{136, 0, 0, 0, 0x60, 0, 0, 0}, nsBody(fzPeerV6, nil)[8:]...)
	na = append(na, 2, 1)
	na = append(na, fzPeerMAC...)
	f.Add(uint8(0), uint8(0), uint8(255), ns)
	f.Add(uint8(1), uint8(1), uint8(255), ns)
	f.Add(uint8(0), uint8(2), uint8(255), na)
	f.Add(uint8(0), uint8(0), uint8(64), ns)
	f.Add(uint8(0), uint8(0), uint8(255), append(ns[:24:24], 1, 0))    // option of length 0
	f.Add(uint8(0), uint8(0), uint8(255), append(ns[:24:24], 1, 9, 1)) // option past the end
	f.Add(uint8(0), uint8(2), uint8(255), []byte{133, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, srcSel, dstSel, hop uint8, body []byte) {
		fh := newFuzzHost(t)
		src := [3]netip.Addr{fzPeerV6, netip.IPv6Unspecified(), fzOtherV6}[srcSel%3]
		dst := [3]netip.Addr{fzHostV6, solicited(fzHostV6), netip.MustParseAddr("ff02::1")}[dstSel%3]
		if len(body) > 0 {
			body = bytes.Clone(body)
			body[0] = 133 + body[0]%5 // router solicitation .. redirect
		}
		fh.input(ndpFrame(src, dst, hop, body))
		fh.checkBounds()
	})
}

func icmpFrame(v6 bool, src, dst netip.Addr, typ, code uint8, rest []byte) []byte {
	icmp := append([]byte{typ, code, 0, 0}, rest...)
	if v6 {
		binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, pseudo6(src, dst, len(icmp), layers.IPProtocolICMPv6)))
		ip := ipv6Hdr(src, dst, layers.IPProtocolICMPv6, 64, len(icmp))
		return append(append(ethHdr(fzHostMAC, layers.EthernetTypeIPv6), ip...), icmp...)
	}
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp, 0))
	ip := ipv4Hdr(src, dst, layers.IPProtocolICMPv4, 1, 0, len(icmp))
	return append(append(ethHdr(fzHostMAC, layers.EthernetTypeIPv4), ip...), icmp...)
}

// FuzzICMP: ICMP and ICMPv6 messages of any type, code and body, with
// their checksum right, to the host. Errors quote a datagram of the
// host's (the endpoints' ports are in the seeds), so they reach its
// endpoints.
func FuzzICMP(f *testing.F) {
	echo := []byte{0, 1, 0, 1, 'p', 'i', 'n', 'g'}
	quote4 := append(append([]byte{0, 0, 0, 0}, ipv4Hdr(fzHostV4, fzPeerV4, layers.IPProtocolUDP, 1, 0, 8)...),
		0x13, 0x88, 0, fzPeerPort, 0, 8, 0, 0)
	quote6 := append(append([]byte{0, 0, 0, 0}, ipv6Hdr(fzHostV6, fzPeerV6, layers.IPProtocolUDP, 64, 8)...),
		0x13, 0x88, 0, fzPeerPort, 0, 8, 0, 0)
	f.Add(false, uint8(8), uint8(0), echo)
	f.Add(true, uint8(128), uint8(0), echo)
	f.Add(false, uint8(3), uint8(3), quote4)
	f.Add(true, uint8(1), uint8(4), quote6)
	f.Add(false, uint8(3), uint8(4), quote4[:24])
	f.Add(true, uint8(1), uint8(0), quote6[:10])
	f.Add(false, uint8(8), uint8(0), []byte{})
	f.Add(true, uint8(128), uint8(0), []byte{0})
	f.Fuzz(func(t *testing.T, v6 bool, typ, code uint8, rest []byte) {
		fh := newFuzzHost(t)
		src, dst := fzPeerV4, fzHostV4
		if v6 {
			src, dst = fzPeerV6, fzHostV6
		}
		fh.input(icmpFrame(v6, src, dst, typ, code, rest))
		fh.checkBounds()
	})
}

func udpDatagram(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, udpLen, udpLen+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(udpLen+len(payload)))
	b = append(b, payload...)
	fixL4(layers.IPProtocolUDP, b, src, dst)
	return b
}

func udpFrame(v6 bool, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	udp := udpDatagram(src, dst, sport, dport, payload)
	if v6 {
		ip := ipv6Hdr(src, dst, layers.IPProtocolUDP, 64, len(udp))
		return append(append(ethHdr(fzHostMAC, layers.EthernetTypeIPv6), ip...), udp...)
	}
	ip := ipv4Hdr(src, dst, layers.IPProtocolUDP, 1, 0, len(udp))
	return append(append(ethHdr(fzHostMAC, layers.EthernetTypeIPv4), ip...), udp...)
}

// FuzzUDP: UDP datagrams to the host, to a bound port, to the connected
// endpoint or to a closed port; lenDelta and sumXor spoil the length and
// checksum fields when not zero. A datagram that is valid (RFC 768: a
// length within what arrived, a checksum that adds up, or none over IPv4)
// reaches its endpoint exactly, or gets a port unreachable; any other
// reaches none.
func FuzzUDP(f *testing.F) {
	f.Add(false, uint8(0), []byte("hello"), int8(0), uint16(0))
	f.Add(true, uint8(0), []byte("hello"), int8(0), uint16(0))
	f.Add(false, uint8(1), []byte("reply"), int8(0), uint16(0))
	f.Add(false, uint8(2), []byte("closed"), int8(0), uint16(0))
	f.Add(true, uint8(2), []byte("closed"), int8(0), uint16(0))
	f.Add(false, uint8(0), []byte("long"), int8(4), uint16(0))
	f.Add(false, uint8(0), []byte("short"), int8(-3), uint16(0))
	f.Add(true, uint8(0), []byte("bad sum"), int8(0), uint16(1))
	f.Add(false, uint8(0), []byte{}, int8(0), uint16(0))
	f.Fuzz(func(t *testing.T, v6 bool, to uint8, payload []byte, lenDelta int8, sumXor uint16) {
		fh := newFuzzHost(t)
		src, dst := fzPeerV4, fzHostV4
		if v6 {
			src, dst = fzPeerV6, fzHostV6
		}
		sport, dport := uint16(40000), [3]uint16{fzBoundPort, fzConnPort, fzClosed}[to%3]
		sink := fh.bound[btoi(v6)]
		switch {
		case dport == fzClosed || dport == fzConnPort && v6:
			sink = nil
		case dport == fzConnPort:
			sport, sink = fzPeerPort, fh.conn
		}
		if len(payload) > 1400 {
			payload = payload[:1400]
		}
		frame := udpFrame(v6, src, dst, sport, dport, payload)
		udp := frame[len(frame)-udpLen-len(payload):]
		length := int(binary.BigEndian.Uint16(udp[4:])) + int(lenDelta)
		binary.BigEndian.PutUint16(udp[4:], uint16(length))
		udp[6] ^= byte(sumXor >> 8)
		udp[7] ^= byte(sumXor)
		valid := length >= udpLen && length <= len(udp) &&
			(!v6 && binary.BigEndian.Uint16(udp[6:]) == 0 || checksum(udp[:length], pseudoFor(src, dst, length)) == 0)
		fh.input(frame)
		fh.checkBounds()
		got := 0
		for _, s := range append(fh.bound[:], fh.conn) {
			got += len(s.datagrams)
		}
		switch {
		case valid && sink != nil:
			if got != 1 || len(sink.datagrams) != 1 || !bytes.Equal(sink.datagrams[0], udp[udpLen:length]) {
				t.Fatalf("a valid datagram to port %d: %d delivered, want its payload once", dport, got)
			}
		case valid:
			if got != 0 || fh.sent != 1 {
				t.Fatalf("a valid datagram to closed port %d: %d delivered, %d frames sent, want a port unreachable", dport, got, fh.sent)
			}
		case got != 0:
			t.Fatalf("an invalid datagram (length %+d, checksum ^%#x) was delivered", lenDelta, sumXor)
		}
	})
}
