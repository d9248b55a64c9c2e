// SPDX-License-Identifier: BSD-3-Clause

package iphost_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/iphost"
	_ "github.com/mnet-project/mnet/netcore/ipn"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// The host's frame handling, unit-tested through a real ipn network with
// an in-memory link (memlink) as the peer: the test injects the peer's
// frames and reads what the host sends.

var root = &netcore.Cred{Pid: 1, CapEff: ^uint64(0), CapsKnown: true, GroupsKnown: true}

var (
	peerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x22}
	hostV4  = netip.MustParseAddr("198.18.7.1")
	peerV4  = netip.MustParseAddr("198.18.7.2")
	hostV6  = netip.MustParseAddr("2001:db8:7::1")
	peerV6  = netip.MustParseAddr("2001:db8:7::2")
	hostMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
)

type env struct {
	t    *testing.T
	dir  netcore.Dir
	far  *memlink.Link
	host *iphost.Host
}

func walk(t *testing.T, d netcore.Dir, names ...string) netcore.Node {
	t.Helper()
	var n netcore.Node = d
	for _, name := range names {
		var err error
		n, err = n.(netcore.Dir).Lookup(root, name)
		if err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
	}
	return n
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e, _ := newEnvWith(t, netcore.Limits{})
	return e
}

// newEnvWith is newEnv with limits, returning the core too.
func newEnvWith(t *testing.T, limits netcore.Limits) (*env, *netcore.Core) {
	t.Helper()
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ipnDir := walk(t, c.Root(), "ipn").(netcore.Dir)
	name := "hu" + strings.ReplaceAll(t.Name(), "/", "-")
	node, err := ipnDir.(netcore.Mkdirer).Mkdir(root, name, 0o777)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: node.(netcore.Dir)}
	e.ctl("mem " + name + "\nmac " + hostMAC.String() + "\naddr 198.18.7.1/24\naddr 2001:db8:7::1/64")
	e.far = memlink.Far(name)
	e.host = iphost.Of(name)
	if e.far == nil || e.host == nil {
		t.Fatal("no memlink or host")
	}
	e.drain() // the host's announcements
	return e, c
}

func (e *env) ctl(text string) error {
	e.t.Helper()
	h, err := walk(e.t, e.dir, "ctl").(netcore.File).Open(context.Background(), root, syscall.O_WRONLY)
	if err != nil {
		e.t.Fatal(err)
	}
	defer h.Close()
	_, err = h.Write(context.Background(), []byte(text), 0, false)
	return err
}

func (e *env) drain() {
	for {
		select {
		case <-e.far.Out:
		case <-time.After(50 * time.Millisecond):
			return
		}
	}
}

func (e *env) inject(ls ...gopacket.SerializableLayer) {
	e.t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		e.t.Fatal(err)
	}
	if !e.far.InjectFrame(buf.Bytes()) {
		e.t.Fatal("inject failed")
	}
}

// next returns the next frame the host sends that match wants, decoded.
func (e *env) next(match func(gopacket.Packet) bool) gopacket.Packet {
	e.t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case raw := <-e.far.Out:
			p := gopacket.NewPacket(raw[vnet.HdrLen:], layers.LayerTypeEthernet, gopacket.Default)
			if match(p) {
				return p
			}
		case <-deadline:
			e.t.Fatal("the host sent no such frame")
			return nil
		}
	}
}

func eth(t layers.EthernetType, dst net.HardwareAddr) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: peerMAC, DstMAC: dst, EthernetType: t}
}

func TestARPReply(t *testing.T) {
	e := newEnv(t)
	e.inject(eth(layers.EthernetTypeARP, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: peerMAC, SourceProtAddress: peerV4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: hostV4.AsSlice()})
	p := e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeARP) != nil })
	arp := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp.Operation != layers.ARPReply || !bytes.Equal(arp.SourceHwAddress, hostMAC) ||
		!bytes.Equal(arp.SourceProtAddress, hostV4.AsSlice()) || !bytes.Equal(arp.DstHwAddress, peerMAC) {
		t.Errorf("ARP reply: %+v", arp)
	}
	if ethl := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !bytes.Equal(ethl.DstMAC, peerMAC) {
		t.Errorf("ARP reply to %s", ethl.DstMAC)
	}
	// Not for us: no answer.
	e.inject(eth(layers.EthernetTypeARP, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: peerMAC, SourceProtAddress: peerV4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: netip.MustParseAddr("198.18.7.3").AsSlice()})
	select {
	case raw := <-e.far.Out:
		t.Errorf("the host answered an ARP for another address: %x", raw)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestNeighbourSolicitation(t *testing.T) {
	e := newEnv(t)
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: peerV6.AsSlice(),
		DstIP: netip.MustParseAddr("ff02::1:ff00:1").AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	icmp.SetNetworkLayerForChecksum(ip6)
	e.inject(eth(layers.EthernetTypeIPv6, net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}), ip6, icmp,
		&layers.ICMPv6NeighborSolicitation{TargetAddress: hostV6.AsSlice(),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: peerMAC}}})
	p := e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement) != nil })
	na := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if !na.Solicited() || !na.Override() || !net.IP(na.TargetAddress).Equal(hostV6.AsSlice()) {
		t.Errorf("NA: %+v", na)
	}
	if len(na.Options) != 1 || !bytes.Equal(na.Options[0].Data, hostMAC) {
		t.Errorf("NA options: %+v", na.Options)
	}
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip.HopLimit != 255 || !ip.DstIP.Equal(peerV6.AsSlice()) {
		t.Errorf("NA IPv6 header: %+v", ip)
	}
	checkICMPv6Checksum(t, p)
}

func checkICMPv6Checksum(t *testing.T, p gopacket.Packet) {
	t.Helper()
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	var sum uint32
	for _, b := range [][]byte{ip.SrcIP, ip.DstIP} {
		for i := 0; i < 16; i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	body := ip.Payload
	sum += uint32(len(body)) + uint32(ip.NextHeader)
	for i := 0; i+1 < len(body); i += 2 {
		sum += uint32(body[i])<<8 | uint32(body[i+1])
	}
	if len(body)%2 == 1 {
		sum += uint32(body[len(body)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Errorf("checksum over the IPv6 payload does not verify: %#x", sum)
	}
}

func TestEchoV4AndV6(t *testing.T) {
	e := newEnv(t)
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: peerV4.AsSlice(), DstIP: hostV4.AsSlice()}
	e.inject(eth(layers.EthernetTypeIPv4, hostMAC), ip4,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 9},
		gopacket.Payload("ping data"))
	p := e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv4) != nil })
	icmp := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Id != 7 || icmp.Seq != 9 || string(icmp.Payload) != "ping data" {
		t.Errorf("echo reply: %+v %q", icmp, icmp.Payload)
	}
	if p.ErrorLayer() != nil {
		t.Errorf("reply does not decode: %v", p.ErrorLayer().Error())
	}

	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 64, SrcIP: peerV6.AsSlice(), DstIP: hostV6.AsSlice()}
	ic6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	ic6.SetNetworkLayerForChecksum(ip6)
	e.inject(eth(layers.EthernetTypeIPv6, hostMAC), ip6, ic6, &layers.ICMPv6Echo{Identifier: 3, SeqNumber: 4}, gopacket.Payload("six"))
	p = e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv6Echo) != nil })
	echo := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo)
	ic := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	// gopacket's ICMPv6Echo keeps no payload: it is after the 4 bytes of
	// identifier and sequence in the ICMPv6 layer's.
	if ic.TypeCode.Type() != layers.ICMPv6TypeEchoReply || echo.Identifier != 3 || echo.SeqNumber != 4 || string(ic.Payload[4:]) != "six" {
		t.Errorf("echo6 reply: %+v %q", echo, ic.Payload)
	}
	checkICMPv6Checksum(t, p)

	// A request with a bad checksum is not answered.
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth(layers.EthernetTypeIPv4, hostMAC), ip4,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 10},
		gopacket.Payload("ping data"))
	raw := buf.Bytes()
	raw[14+20+8] ^= 0xff // in the ICMP payload (the frame is padded to 60)
	e.far.InjectFrame(raw)
	select {
	case f := <-e.far.Out:
		t.Errorf("the host answered a request with a bad checksum: %x", f)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPortUnreachableAndResolution(t *testing.T) {
	e := newEnv(t)
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: peerV4.AsSlice(), DstIP: hostV4.AsSlice()}
	udp := &layers.UDP{SrcPort: 4000, DstPort: 5000}
	udp.SetNetworkLayerForChecksum(ip4)
	e.inject(eth(layers.EthernetTypeIPv4, hostMAC), ip4, udp, gopacket.Payload("closed?"))
	p := e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv4) != nil })
	icmp := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort) {
		t.Errorf("want port unreachable, got %v", icmp.TypeCode)
	}
	if !bytes.Contains(icmp.Payload, []byte("closed?")) {
		t.Errorf("the error does not quote the datagram: %x", icmp.Payload)
	}

	// A datagram to the peer: ARP request first, the datagram once the
	// peer answers.
	conn, err := e.host.Open(false, 0, netip.AddrPortFrom(peerV4, 6000), nopSink{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := make(chan error, 1)
	go func() {
		sent <- conn.Send(context.Background(), netip.AddrPortFrom(peerV4, 6000), []byte("hi"), iphost.Wait, false)
	}()
	p = e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeARP) != nil })
	arp := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp.Operation != layers.ARPRequest || !bytes.Equal(arp.DstProtAddress, peerV4.AsSlice()) {
		t.Fatalf("ARP request: %+v", arp)
	}
	e.inject(eth(layers.EthernetTypeARP, hostMAC),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: peerMAC, SourceProtAddress: peerV4.AsSlice(),
			DstHwAddress: hostMAC, DstProtAddress: hostV4.AsSlice()})
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	p = e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeUDP) != nil })
	if d := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet).DstMAC; !bytes.Equal(d, peerMAC) {
		t.Errorf("datagram to %s, want %s", d, peerMAC)
	}
	if string(p.ApplicationLayer().Payload()) != "hi" {
		t.Errorf("payload %q", p.ApplicationLayer().Payload())
	}

	// An absent neighbour: EHOSTUNREACH after MaxProbes unanswered.
	c2, _ := e.host.Open(false, 0, netip.AddrPortFrom(netip.MustParseAddr("198.18.7.99"), 1), nopSink{})
	defer c2.Close()
	start := time.Now()
	err = c2.Send(context.Background(), netip.AddrPortFrom(netip.MustParseAddr("198.18.7.99"), 1), []byte("x"), iphost.Wait, false)
	if err != syscall.EHOSTUNREACH {
		t.Errorf("send to an absent neighbour: %v", err)
	}
	if d := time.Since(start); d < time.Duration(iphost.MaxProbes-1)*iphost.RetransTime || d > 5*time.Second {
		t.Errorf("EHOSTUNREACH after %v", d)
	}
}

// Fragments reassemble; a fragment that never completes is counted when
// given up, and overlapping ones are dropped.
func TestReassembly(t *testing.T) {
	e := newEnv(t)
	got := make(chan string, 1)
	conn, err := e.host.Open(false, 7000, netip.AddrPort{}, chanSink(got))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := bytes.Repeat([]byte("abcdefgh"), 300) // 2400 bytes
	udp := &layers.UDP{SrcPort: 4000, DstPort: 7000}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: peerV4.AsSlice(), DstIP: hostV4.AsSlice()}
	udp.SetNetworkLayerForChecksum(ip4)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, udp, gopacket.Payload(payload))
	dgram := buf.Bytes()
	for _, part := range [][2]int{{1480, len(dgram)}, {0, 1480}} { // out of order
		f := *ip4
		f.Id = 77
		f.FragOffset = uint16(part[0] / 8)
		if part[1] < len(dgram) {
			f.Flags = layers.IPv4MoreFragments
		}
		e.inject(eth(layers.EthernetTypeIPv4, hostMAC), &f, gopacket.Payload(dgram[part[0]:part[1]]))
	}
	select {
	case s := <-got:
		if s != string(payload) {
			t.Errorf("reassembled %d bytes, want %d", len(s), len(payload))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("fragments not reassembled")
	}
	// Overlap: dropped and counted.
	for _, off := range []int{0, 8} {
		f := *ip4
		f.Id = 78
		f.FragOffset = uint16(off / 8)
		f.Flags = layers.IPv4MoreFragments
		e.inject(eth(layers.EthernetTypeIPv4, hostMAC), &f, gopacket.Payload(dgram[off:off+16]))
	}
	// The injected frames reach the host through the network's pump, in
	// their own time: wait for the second one to be counted.
	st := statusOf(t, e)
	for deadline := time.Now().Add(2 * time.Second); strings.Contains(st, "frag-in 3\n") && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		st = statusOf(t, e)
	}
	if !strings.Contains(st, "frag-in 4\n") || !strings.Contains(st, "frag-reassembled 1\n") || strings.Contains(st, "frag-drops 0\n") {
		t.Errorf("counters after a reassembly and an overlap:\n%s", st)
	}
}

func statusOf(t *testing.T, e *env) string {
	h, err := walk(t, e.dir, "host").(netcore.File).Open(context.Background(), root, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	b := make([]byte, 8192)
	n, _ := h.Read(context.Background(), b, 0, false)
	return string(b[:n])
}

type nopSink struct{}

func (nopSink) Deliver(netip.AddrPort, netip.AddrPort, []byte) func() { return nil }
func (nopSink) Error(netip.AddrPort, syscall.Errno) func()            { return nil }
func (nopSink) Closed()                                               {}

type chanSink chan string

func (c chanSink) Deliver(_, _ netip.AddrPort, b []byte) func() {
	select {
	case c <- string(b):
	default:
	}
	return nil
}
func (chanSink) Error(netip.AddrPort, syscall.Errno) func() { return nil }
func (chanSink) Closed()                                    {}

// A udp file's readiness (the Poll method netcore's Poller asks): not
// readable while empty, its waiter woken by an arriving datagram, then
// readable; writable where the opener may send.
func TestUDPFilePoll(t *testing.T) {
	e := newEnv(t)
	f := walk(t, e.dir, "udp", "0.0.0.0", "7100").(netcore.File)
	h, err := f.Open(context.Background(), root, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, ok := h.(interface {
		Poll(events uint32, wake func()) uint32
	})
	if !ok {
		t.Fatal("a udp file handle has no Poll")
	}
	const in, out = 0x1, 0x4
	woken := make(chan struct{}, 1)
	if got := p.Poll(in|out, func() { woken <- struct{}{} }); got != out {
		t.Errorf("empty: Poll = %#x, want POLLOUT", got)
	}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: peerV4.AsSlice(), DstIP: hostV4.AsSlice()}
	udp := &layers.UDP{SrcPort: 4000, DstPort: 7100}
	udp.SetNetworkLayerForChecksum(ip4)
	e.inject(eth(layers.EthernetTypeIPv4, hostMAC), ip4, udp, gopacket.Payload("wake up"))
	select {
	case <-woken:
	case <-time.After(2 * time.Second):
		t.Fatal("the waiter was not woken by a datagram")
	}
	if got := p.Poll(in, nil); got&in == 0 {
		t.Errorf("with a datagram: Poll = %#x, want POLLIN", got)
	}
	b := make([]byte, 100)
	if n, err := h.Read(context.Background(), b, 0, true); err != nil || string(b[:n]) != "wake up" {
		t.Errorf("read %q %v", b[:n], err)
	}
}

// The host sends IP packets that fit the network's mtu: a datagram
// larger than it leaves as IPv4 fragments that do; IPv6 is EMSGSIZE.
func TestNetworkMTU(t *testing.T) {
	e := newEnv(t)
	if err := e.ctl("mtu 600"); err != nil {
		t.Fatal(err)
	}
	// The peer asks for the host: it is then a known neighbour.
	e.inject(eth(layers.EthernetTypeARP, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: peerMAC, SourceProtAddress: peerV4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: hostV4.AsSlice()})
	e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeARP) != nil })
	time.Sleep(300 * time.Millisecond) // the host's clock reads the new mtu
	c, err := e.host.Open(false, 0, netip.AddrPortFrom(peerV4, 9), nopSink{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send(context.Background(), netip.AddrPortFrom(peerV4, 9), make([]byte, 1000), iphost.Wait, false); err != nil {
		t.Fatal(err)
	}
	frags := 0
	for frags < 2 {
		p := e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeIPv4) != nil })
		if n := len(p.Data()); n > 600 {
			t.Errorf("a frame of %d bytes on a network of mtu 600", n)
		}
		frags++
	}
	// IPv6 too, in fragments with a Fragment header.
	e.knowPeerV6()
	c6, err := e.host.Open(true, 0, netip.AddrPortFrom(peerV6, 9), nopSink{})
	if err != nil {
		t.Fatal(err)
	}
	defer c6.Close()
	payload := bytes.Repeat([]byte("0123456789"), 100)
	if err := c6.Send(context.Background(), netip.AddrPortFrom(peerV6, 9), payload, iphost.Wait, false); err != nil {
		t.Fatal(err)
	}
	l4, n := e.reassemble6(600)
	if n != 2 || len(l4) != udpHdrLen+len(payload) || !bytes.Equal(l4[udpHdrLen:], payload) {
		t.Fatalf("IPv6 datagram of %d bytes over mtu 600: %d fragments, %d bytes", len(payload), n, len(l4))
	}
	if sum := inetChecksum(l4, pseudoSum6(hostV6, peerV6, len(l4), 17)); sum != 0 {
		t.Errorf("reassembled UDP checksum does not verify: %#x", sum)
	}
}

const udpHdrLen = 8

// knowPeerV6 makes the peer's IPv6 address a known neighbour of the host:
// the peer solicits the host, with its link-layer address.
func (e *env) knowPeerV6() {
	e.t.Helper()
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: peerV6.AsSlice(), DstIP: hostV6.AsSlice()}
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	ic.SetNetworkLayerForChecksum(ip6)
	e.inject(eth(layers.EthernetTypeIPv6, hostMAC), ip6, ic, &layers.ICMPv6NeighborSolicitation{TargetAddress: hostV6.AsSlice(),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: peerMAC}}})
	e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement) != nil })
}

// reassemble4 collects the IPv4 fragments of the next packet the host
// sends (or the packet whole) and returns what it carries and in how many
// frames; each frame must fit mtu.
func (e *env) reassemble4(mtu int) (l4 []byte, frames int) {
	e.t.Helper()
	var buf []byte
	got, total := 0, -1
	for total < 0 || got < total {
		p := e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeIPv4) != nil })
		frames++
		ip4 := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if int(ip4.Length) > mtu {
			e.t.Errorf("an IPv4 packet of %d bytes, over the MTU %d", ip4.Length, mtu)
		}
		off := int(ip4.FragOffset) * 8
		data := p.NetworkLayer().LayerPayload()
		if ip4.Flags&layers.IPv4MoreFragments == 0 {
			total = off + len(data)
		} else if ip4.Flags&layers.IPv4DontFragment != 0 {
			e.t.Errorf("a fragment with Don't Fragment")
		}
		if off == 0 && total == len(data) && ip4.Flags&layers.IPv4DontFragment == 0 {
			e.t.Errorf("a whole packet without Don't Fragment")
		}
		if len(buf) < off+len(data) {
			buf = append(buf, make([]byte, off+len(data)-len(buf))...)
		}
		copy(buf[off:], data)
		got += len(data)
	}
	return buf, frames
}

// reassemble6 is reassemble4 for IPv6 and its Fragment header.
func (e *env) reassemble6(mtu int) (l4 []byte, frames int) {
	e.t.Helper()
	var buf []byte
	got, total := 0, -1
	for total < 0 || got < total {
		p := e.next(func(p gopacket.Packet) bool {
			ip6, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			return ok && (ip6.NextHeader == layers.IPProtocolIPv6Fragment || ip6.NextHeader == layers.IPProtocolUDP ||
				(ip6.NextHeader == layers.IPProtocolICMPv6 && len(ip6.Payload) > 32))
		})
		frames++
		raw := p.Data()[14:]
		if len(raw) > mtu {
			e.t.Errorf("an IPv6 packet of %d bytes, over the MTU %d", len(raw), mtu)
		}
		if raw[6] != byte(layers.IPProtocolIPv6Fragment) {
			return raw[40:], frames
		}
		fh := raw[40:48]
		off := int(fh[2])<<8 | int(fh[3]&0xf8)
		data := raw[48:]
		if fh[3]&1 == 0 {
			total = off + len(data)
		} else if len(data)%8 != 0 {
			e.t.Errorf("a fragment of %d bytes, not a multiple of 8", len(data))
		}
		if len(buf) < off+len(data) {
			buf = append(buf, make([]byte, off+len(data)-len(buf))...)
		}
		copy(buf[off:], data)
		got += len(data)
	}
	return buf, frames
}

func inetChecksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func pseudoSum6(src, dst netip.Addr, n int, proto byte) uint32 {
	var sum uint32
	for _, a := range []netip.Addr{src, dst} {
		b := a.As16()
		for i := 0; i < 16; i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	return sum + uint32(n>>16) + uint32(n&0xffff) + uint32(proto)
}

// Echo replies follow the host's MTU: a request larger than it is
// answered in fragments (IPv4: offsets, IPv6: a Fragment header), which
// reassemble to the reply, its checksum right. ping -s 1477 and above
// through a TAP of mtu 1500 needs it.
func TestEchoReplyFragments(t *testing.T) {
	e := newEnv(t)
	data := bytes.Repeat([]byte("mnet-frag"), 400) // 3600 bytes
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: peerV4.AsSlice(), DstIP: hostV4.AsSlice()}
	e.inject(eth(layers.EthernetTypeIPv4, hostMAC), ip4,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 9}, gopacket.Payload(data))
	l4, n := e.reassemble4(1500)
	if n != 3 || len(l4) != 8+len(data) {
		t.Fatalf("IPv4 echo reply of %d bytes in %d frames, want %d in 3", len(l4), n, 8+len(data))
	}
	if l4[0] != byte(layers.ICMPv4TypeEchoReply) || !bytes.Equal(l4[8:], data) || inetChecksum(l4, 0) != 0 {
		t.Errorf("IPv4 echo reply: type %d, data equal %v, checksum %#x", l4[0], bytes.Equal(l4[8:], data), inetChecksum(l4, 0))
	}

	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 64, SrcIP: peerV6.AsSlice(), DstIP: hostV6.AsSlice()}
	ic6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
	ic6.SetNetworkLayerForChecksum(ip6)
	e.inject(eth(layers.EthernetTypeIPv6, hostMAC), ip6, ic6, &layers.ICMPv6Echo{Identifier: 3, SeqNumber: 4}, gopacket.Payload(data))
	l4, n = e.reassemble6(1500)
	if n != 3 || len(l4) != 8+len(data) {
		t.Fatalf("IPv6 echo reply of %d bytes in %d frames, want %d in 3", len(l4), n, 8+len(data))
	}
	if l4[0] != byte(layers.ICMPv6TypeEchoReply) || !bytes.Equal(l4[8:], data) {
		t.Errorf("IPv6 echo reply: type %d, data equal %v", l4[0], bytes.Equal(l4[8:], data))
	}
	if sum := inetChecksum(l4, pseudoSum6(hostV6, peerV6, len(l4), 58)); sum != 0 {
		t.Errorf("IPv6 echo reply checksum does not verify: %#x", sum)
	}
	// A reply that fits is one packet, IPv4 with Don't Fragment.
	e.inject(eth(layers.EthernetTypeIPv4, hostMAC), ip4,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 10}, gopacket.Payload(data[:1472]))
	if _, n := e.reassemble4(1500); n != 1 {
		t.Errorf("a reply of 1500 bytes in %d frames", n)
	}
}

// arpFor asks for the host's IPv4 address and waits for the answer.
func (e *env) arpFor() {
	e.t.Helper()
	e.inject(eth(layers.EthernetTypeARP, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}),
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: peerMAC, SourceProtAddress: peerV4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: hostV4.AsSlice()})
	e.next(func(p gopacket.Packet) bool { return p.Layer(layers.LayerTypeARP) != nil })
}

// The crash of issue 24 through the network: a fragment at offset 1000
// with more to come, then the last one at offset 8, both 8 bytes. The
// host counts them dropped and goes on answering.
func TestReassemblyFragmentBeyondLast(t *testing.T) {
	e := newEnv(t)
	for _, f := range []struct {
		off   uint16
		flags layers.IPv4Flag
	}{{1000 / 8, layers.IPv4MoreFragments}, {1, 0}} { // offsets 1000 and 8
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 4242, Flags: f.flags, FragOffset: f.off,
			Protocol: layers.IPProtocolUDP, SrcIP: peerV4.AsSlice(), DstIP: hostV4.AsSlice()}
		e.inject(eth(layers.EthernetTypeIPv4, hostMAC), ip4, gopacket.Payload(make([]byte, 8)))
	}
	e.arpFor()
	if st := statusOf(t, e); !strings.Contains(st, "frag-in 2\n") || !strings.Contains(st, "frag-drops 2\n") {
		t.Errorf("counters after the fragments:\n%s", st)
	}
}

// IPv6 fragments reassemble (a UDP datagram larger than the MTU, as a
// Linux peer sends it); an atomic fragment is a datagram of its own; one
// beyond the last fragment's end is dropped.
func TestReassemblyIPv6(t *testing.T) {
	e := newEnv(t)
	got := make(chan string, 2)
	conn, err := e.host.Open(true, 7000, netip.AddrPort{}, chanSink(got))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	payload := bytes.Repeat([]byte("abcdefgh"), 300)
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: peerV6.AsSlice(), DstIP: hostV6.AsSlice()}
	udpOf := func(payload []byte) []byte {
		udp := &layers.UDP{SrcPort: 4000, DstPort: 7000}
		udp.SetNetworkLayerForChecksum(ip6)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, udp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	dgram := udpOf(payload)
	frag := func(id uint32, off int, more bool, data []byte) {
		hdr := make([]byte, 8)
		hdr[0] = byte(layers.IPProtocolUDP)
		v := uint16(off)
		if more {
			v |= 1
		}
		hdr[2], hdr[3] = byte(v>>8), byte(v)
		hdr[4], hdr[5], hdr[6], hdr[7] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
		f := *ip6
		f.NextHeader = layers.IPProtocolIPv6Fragment
		e.inject(eth(layers.EthernetTypeIPv6, hostMAC), &f, gopacket.Payload(append(hdr, data...)))
	}
	frag(9, 1448, false, dgram[1448:]) // out of order
	frag(9, 0, true, dgram[:1448])
	select {
	case s := <-got:
		if s != string(payload) {
			t.Errorf("reassembled %d bytes, want %d", len(s), len(payload))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("IPv6 fragments not reassembled")
	}
	frag(10, 0, false, udpOf([]byte("atomic")))
	select {
	case s := <-got:
		if s != "atomic" {
			t.Errorf("atomic fragment delivered %q", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("atomic fragment not delivered")
	}
	frag(11, 1000, true, make([]byte, 8))
	frag(11, 8, false, make([]byte, 8))
	e.arpFor()
	if st := statusOf(t, e); !strings.Contains(st, "frag-in 4\n") || !strings.Contains(st, "frag-drops 2\n") || !strings.Contains(st, "frag-reassembled 1\n") {
		t.Errorf("counters after the fragments:\n%s", st)
	}
}

// Datagrams waiting in a udp file are its opener's queued bytes: past the
// opener's budget they are dropped (and counted), and reading gives the
// bytes back.
func TestUDPFileQueuedBytes(t *testing.T) {
	e, c := newEnvWith(t, netcore.Limits{}.With(netcore.Queued, 64<<10, 0))
	user := &netcore.Cred{Uid: 1000, Gid: 1000, Pid: 1, CapsKnown: true}
	h, err := walk(t, e.dir, "udp", "0.0.0.0", "7200").(netcore.File).Open(context.Background(), user, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	payload := bytes.Repeat([]byte("q"), 1000)
	const sent = 100
	for i := range sent {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: uint16(i), Protocol: layers.IPProtocolUDP, SrcIP: peerV4.AsSlice(), DstIP: hostV4.AsSlice()}
		udp := &layers.UDP{SrcPort: 4000, DstPort: 7200}
		udp.SetNetworkLayerForChecksum(ip4)
		e.inject(eth(layers.EthernetTypeIPv4, hostMAC), ip4, udp, gopacket.Payload(payload))
	}
	fit := int64(64<<10) / int64(len(payload)+netcore.QueueEntryCost)
	deadline := time.Now().Add(3 * time.Second)
	for c.Quota().UsedBy(1000, netcore.Queued) < fit*int64(len(payload)+netcore.QueueEntryCost) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the rest arrives, and is dropped
	if got, want := c.Quota().UsedBy(1000, netcore.Queued), fit*int64(len(payload)+netcore.QueueEntryCost); got != want {
		t.Fatalf("uid 1000 has %d bytes queued, want %d (%d datagrams)", got, want, fit)
	}
	b := make([]byte, 2000)
	for range fit {
		if _, err := h.Read(context.Background(), b, 0, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Read(context.Background(), b, 0, true); err != syscall.EAGAIN {
		t.Fatalf("after %d datagrams: %v, want EAGAIN (the rest dropped)", fit, err)
	}
	if got := c.Quota().UsedBy(1000, netcore.Queued); got != 0 {
		t.Fatalf("after reading uid 1000 has %d bytes queued", got)
	}
}
