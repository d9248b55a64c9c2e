// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mnet-project/mnet/internal/vnet"
)

// ipMTU is the largest IP packet the host sends, as a NIC's: the kernel
// peers behind TAPs have this MTU. A network whose mtu is smaller makes it
// smaller (ipMTUOf). Larger packets are sent in fragments (fragout.go).
const ipMTU = 1500

// ipMTUOf is the host's IP MTU on a network whose frames are at most
// netMTU bytes, at least IPv4's minimum of 68.
func ipMTUOf(netMTU int) int {
	return max(min(ipMTU, netMTU-ethLen), 68)
}

const (
	ethLen = 14
	ip4Len = 20
	ip6Len = 40
	udpLen = 8
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	serOpts      = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
)

// frame serializes ls into a new buffer with a zeroed virtio-net header in
// front: what the host's link hands the network.
func frame(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBufferExpectedSize(vnet.HdrLen+ethLen+ip6Len+udpLen, 0)
	if err := gopacket.SerializeLayers(buf, serOpts, ls...); err != nil {
		return nil
	}
	hdr, err := buf.PrependBytes(vnet.HdrLen)
	if err != nil {
		return nil
	}
	clear(hdr)
	return buf.Bytes()
}

func ip(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

// buildARP makes an ARP request (op 1, to dst or broadcast) or reply
// (op 2). h.mu is held.
func (h *Host) buildARP(op uint16, dst net.HardwareAddr, src netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	if dst == nil {
		dst = broadcastMAC
	}
	if tha == nil {
		tha = make(net.HardwareAddr, 6)
	}
	eth := &layers.Ethernet{SrcMAC: h.mac, DstMAC: dst, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
		SourceHwAddress: h.mac, SourceProtAddress: ip(src), DstHwAddress: tha, DstProtAddress: ip(tpa)}
	return frame(eth, arp)
}

// solicitedNode is the solicited-node multicast group of a and its MAC.
func solicitedNode(a netip.Addr) (netip.Addr, net.HardwareAddr) {
	b := a.As16()
	g := netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
	return g, multicastMAC(g)
}

func multicastMAC(g netip.Addr) net.HardwareAddr {
	b := g.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// buildNS makes a neighbour solicitation for target, to its
// solicited-node group, or unicast to dst when probing. h.mu is held.
func (h *Host) buildNS(src, target netip.Addr, dst net.HardwareAddr) []byte {
	to, mac := solicitedNode(target)
	if dst != nil {
		to, mac = target, dst
	}
	eth := &layers.Ethernet{SrcMAC: h.mac, DstMAC: mac, EthernetType: layers.EthernetTypeIPv6}
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: ip(src), DstIP: ip(to)}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	icmp.SetNetworkLayerForChecksum(ip6)
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: ip(target),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: h.mac}}}
	return frame(eth, ip6, icmp, ns)
}

// announce tells the network of a new address: a gratuitous ARP, or an
// unsolicited NA to all nodes, so that neighbours with a stale entry for
// it (the address moved) learn the host's MAC.
func (h *Host) announce(a netip.Addr) {
	h.mu.Lock()
	defer h.unlock()
	lk := h.lkLocked()
	if a.Is4() {
		h.emit(lk, h.buildARP(1, nil, a, nil, a))
		return
	}
	all := netip.MustParseAddr("ff02::1")
	h.emit(lk, h.buildNA(a, all, multicastMAC(all), 0x20))
}

// lkLocked is the host's link, nil while it has no address. Only joinMu
// changes it; the frame path reads it under h.mu through this.
func (h *Host) lkLocked() *hostLink {
	return h.lk
}

// buildNA makes a neighbour advertisement for target. h.mu is held.
func (h *Host) buildNA(target, to netip.Addr, mac net.HardwareAddr, flags uint8) []byte {
	eth := &layers.Ethernet{SrcMAC: h.mac, DstMAC: mac, EthernetType: layers.EthernetTypeIPv6}
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: ip(target), DstIP: ip(to)}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborAdvertisement, 0)}
	icmp.SetNetworkLayerForChecksum(ip6)
	na := &layers.ICMPv6NeighborAdvertisement{Flags: flags, TargetAddress: ip(target),
		Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: h.mac}}}
	return frame(eth, ip6, icmp, na)
}

// input handles one frame the network delivered to the host.
func (h *Host) input(f []byte) {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(f, gopacket.NilDecodeFeedback); err != nil {
		h.mu.Lock()
		h.stats.rxDrops++
		h.unlock()
		return
	}
	h.mu.Lock()
	defer h.unlock()
	lk := h.lkLocked()
	if lk == nil || h.closed {
		return
	}
	dst := eth.DstMAC
	if string(dst) != string(h.mac) && dst[0]&1 == 0 {
		return // unicast to someone else: a hub shows every frame
	}
	h.stats.rxFrames++
	now := time.Now()
	switch eth.EthernetType {
	case layers.EthernetTypeARP:
		h.inputARP(lk, eth.Payload, now)
	case layers.EthernetTypeIPv4:
		h.inputIPv4(lk, &eth, eth.Payload, now)
	case layers.EthernetTypeIPv6:
		h.inputIPv6(lk, &eth, now)
	}
}

func (h *Host) inputARP(lk *hostLink, b []byte, now time.Time) {
	var arp layers.ARP
	if err := arp.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil ||
		arp.AddrType != layers.LinkTypeEthernet || arp.Protocol != layers.EthernetTypeIPv4 ||
		arp.HwAddressSize != 6 || arp.ProtAddressSize != 4 {
		h.stats.rxDrops++
		return
	}
	spa, _ := netip.AddrFromSlice(arp.SourceProtAddress)
	tpa, _ := netip.AddrFromSlice(arp.DstProtAddress)
	sha := net.HardwareAddr(arp.SourceHwAddress)
	forUs := h.hasAddr(tpa)
	if spa.IsValid() && !spa.IsUnspecified() && sha[0]&1 == 0 {
		// The kernel learns from any ARP of a neighbour it knows, and
		// makes an entry for one asking for it.
		h.confirm(lk, spa, sha, forUs && arp.Operation == layers.ARPRequest, now)
	}
	if arp.Operation == layers.ARPRequest && forUs {
		h.emit(lk, h.buildARP(layers.ARPReply, sha, tpa, sha, spa))
	}
}

func (h *Host) inputIPv4(lk *hostLink, eth *layers.Ethernet, b []byte, now time.Time) {
	var ip4 layers.IPv4
	if err := ip4.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || ip4.Version != 4 {
		h.stats.rxDrops++
		return
	}
	hl := int(ip4.IHL) * 4
	if checksum(b[:hl], 0) != 0 {
		h.stats.badChecksum++
		return
	}
	dst, _ := netip.AddrFromSlice(ip4.DstIP)
	src, _ := netip.AddrFromSlice(ip4.SrcIP)
	if !h.hasAddr(dst) {
		return // not ours (broadcasts and multicasts included: nothing here listens)
	}
	h.seen(src, eth.SrcMAC, now)
	payload := ip4.Payload
	if ip4.Flags&layers.IPv4MoreFragments != 0 || ip4.FragOffset != 0 {
		h.stats.fragIn++
		k := fragKey{src, dst, uint32(ip4.Id), uint8(ip4.Protocol)}
		f := fragment{off: int(ip4.FragOffset) * 8, data: ip4.Payload, last: ip4.Flags&layers.IPv4MoreFragments == 0}
		var ok bool
		if payload, ok = h.frags.add(k, f, 0xffff-hl, now, &h.stats); !ok {
			return
		}
		h.stats.fragOK++
	}
	switch ip4.Protocol {
	case layers.IPProtocolICMPv4:
		h.inputICMPv4(lk, eth, &ip4, src, dst, payload)
	case layers.IPProtocolUDP:
		h.inputUDP(lk, eth, src, dst, b[:hl], payload)
	default:
		h.stats.rxDrops++
	}
}

func (h *Host) inputICMPv4(lk *hostLink, eth *layers.Ethernet, ip4 *layers.IPv4, src, dst netip.Addr, b []byte) {
	var icmp layers.ICMPv4
	if err := icmp.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || checksum(b, 0) != 0 {
		h.stats.badChecksum++
		return
	}
	switch icmp.TypeCode.Type() {
	case layers.ICMPv4TypeEchoRequest:
		h.stats.echoIn++
		reply := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: icmp.Id, Seq: icmp.Seq}
		h.sendIPv4Reply(lk, eth.SrcMAC, dst, src, layers.IPProtocolICMPv4, reply, gopacket.Payload(icmp.Payload))
	case layers.ICMPv4TypeDestinationUnreachable:
		h.stats.unreachIn++
		var errno syscall.Errno
		switch icmp.TypeCode.Code() {
		case layers.ICMPv4CodePort:
			errno = syscall.ECONNREFUSED
		case layers.ICMPv4CodeNet:
			errno = syscall.ENETUNREACH
		case layers.ICMPv4CodeFragmentationNeeded:
			errno = syscall.EMSGSIZE
		default:
			errno = syscall.EHOSTUNREACH
		}
		h.icmpError(icmp.Payload, false, errno)
	}
}

// sendIPv4Reply sends an IPv4 packet to a neighbour whose MAC the frame
// being answered told, in fragments if it does not fit the MTU. h.mu is
// held.
func (h *Host) sendIPv4Reply(lk *hostLink, mac net.HardwareAddr, src, dst netip.Addr, proto layers.IPProtocol, ls ...gopacket.SerializableLayer) {
	h.ipID++
	eth := &layers.Ethernet{SrcMAC: h.mac, DstMAC: mac, EthernetType: layers.EthernetTypeIPv4}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: h.ipID, Protocol: proto, SrcIP: ip(src), DstIP: ip(dst)}
	h.emitAll(lk, h.ipFrames(eth, ip4, nil, l4Bytes(ls...)))
}

// sendIPv6Reply: as sendIPv4Reply, for an ICMPv6 message (ls[0]).
func (h *Host) sendIPv6Reply(lk *hostLink, mac net.HardwareAddr, src, dst netip.Addr, ls ...gopacket.SerializableLayer) {
	eth := &layers.Ethernet{SrcMAC: h.mac, DstMAC: mac, EthernetType: layers.EthernetTypeIPv6}
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 64, SrcIP: ip(src), DstIP: ip(dst)}
	icmp := ls[0].(*layers.ICMPv6)
	icmp.SetNetworkLayerForChecksum(ip6)
	h.emitAll(lk, h.ipFrames(eth, nil, ip6, l4Bytes(ls...)))
}

// emitAll emits the frames of one packet. h.mu is held.
func (h *Host) emitAll(lk *hostLink, frames [][]byte) {
	for _, f := range frames {
		h.emit(lk, f)
	}
}

// icmpError tells the endpoint a datagram of ours was about: the quoted
// IP header and UDP header in b. h.mu is held.
func (h *Host) icmpError(b []byte, v6 bool, errno syscall.Errno) {
	var src, dst netip.Addr
	var l4 []byte
	if v6 {
		if len(b) < ip6Len+udpLen || b[6] != byte(layers.IPProtocolUDP) {
			return
		}
		src, _ = netip.AddrFromSlice(b[8:24])
		dst, _ = netip.AddrFromSlice(b[24:40])
		l4 = b[ip6Len:]
	} else {
		if len(b) < ip4Len || b[9] != byte(layers.IPProtocolUDP) {
			return
		}
		hl := int(b[0]&0xf) * 4
		if len(b) < hl+udpLen {
			return
		}
		src, _ = netip.AddrFromSlice(b[12:16])
		dst, _ = netip.AddrFromSlice(b[16:20])
		l4 = b[hl:]
	}
	if !h.hasAddr(src) {
		return
	}
	sport := binary.BigEndian.Uint16(l4[0:])
	to := netip.AddrPortFrom(dst, binary.BigEndian.Uint16(l4[2:]))
	for _, c := range h.conns[famIdx(v6)][sport] {
		if !c.remote.IsValid() || c.remote == to {
			h.later(c.sink.Error(to, errno))
		}
	}
}

func famIdx(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

func (h *Host) inputIPv6(lk *hostLink, eth *layers.Ethernet, now time.Time) {
	var ip6 layers.IPv6
	if err := ip6.DecodeFromBytes(eth.Payload, gopacket.NilDecodeFeedback); err != nil || ip6.Version != 6 {
		h.stats.rxDrops++
		return
	}
	dst, _ := netip.AddrFromSlice(ip6.DstIP)
	src, _ := netip.AddrFromSlice(ip6.SrcIP)
	ours := h.hasAddr(dst)
	if !ours && !(dst.IsMulticast() && h.inGroup(dst)) {
		return
	}
	if ours {
		h.seen(src, eth.SrcMAC, now)
	}
	iph := eth.Payload[:ip6Len]
	if ip6.NextHeader == layers.IPProtocolIPv6Fragment {
		if !ours {
			return
		}
		next, payload, ok := h.reassemble6(&ip6, src, dst, now)
		if !ok {
			return
		}
		// Neighbour discovery never comes fragmented (RFC 6980).
		if next == layers.IPProtocolICMPv6 && len(payload) > 0 &&
			payload[0] >= byte(layers.ICMPv6TypeRouterSolicitation) && payload[0] <= byte(layers.ICMPv6TypeRedirect) {
			h.stats.rxDrops++
			return
		}
		// The datagram as if it had come whole: what an ICMP error
		// quotes of it names its transport, not the fragment header.
		iph = append([]byte(nil), iph...)
		iph[6] = byte(next)
		binary.BigEndian.PutUint16(iph[4:], uint16(len(payload)))
		ip6.NextHeader, ip6.Payload = next, payload
	}
	switch ip6.NextHeader {
	case layers.IPProtocolICMPv6:
		h.inputICMPv6(lk, eth, &ip6, src, dst, ours, now)
	case layers.IPProtocolUDP:
		if ours {
			h.inputUDP(lk, eth, src, dst, iph, ip6.Payload)
		}
	default:
		// Other extension headers are not handled: dropped and
		// counted.
		if ours {
			h.stats.ip6Unsupported++
		}
	}
}

// ip6FragLen is the length of IPv6's fragment header.
const ip6FragLen = 8

// reassemble6 takes an IPv6 packet whose next header is a fragment
// header (one directly after the IPv6 header: the host sends no other
// extension headers and takes none) and returns the next header and the
// payload of the whole datagram once every fragment is there. An atomic
// fragment (offset 0, no more fragments) is its own datagram (RFC 6946).
// h.mu is held.
func (h *Host) reassemble6(ip6 *layers.IPv6, src, dst netip.Addr, now time.Time) (layers.IPProtocol, []byte, bool) {
	b := ip6.Payload
	if len(b) < ip6FragLen {
		h.stats.rxDrops++
		return 0, nil, false
	}
	next := layers.IPProtocol(b[0])
	offFlags := binary.BigEndian.Uint16(b[2:])
	f := fragment{off: int(offFlags &^ 7), data: b[ip6FragLen:], last: offFlags&1 == 0}
	if f.off == 0 && f.last {
		return next, f.data, true
	}
	h.stats.fragIn++
	k := fragKey{src, dst, binary.BigEndian.Uint32(b[4:]), uint8(next)}
	payload, ok := h.frags.add(k, f, 0xffff, now, &h.stats)
	if ok {
		h.stats.fragOK++
	}
	return next, payload, ok
}

// inGroup reports whether the host listens to multicast group g: all
// nodes, and the solicited-node group of each of its addresses.
func (h *Host) inGroup(g netip.Addr) bool {
	if g == netip.MustParseAddr("ff02::1") {
		return true
	}
	for _, p := range h.addrs {
		if p.Addr().Is6() {
			if sn, _ := solicitedNode(p.Addr()); sn == g {
				return true
			}
		}
	}
	return false
}

func (h *Host) inputICMPv6(lk *hostLink, eth *layers.Ethernet, ip6 *layers.IPv6, src, dst netip.Addr, ours bool, now time.Time) {
	b := ip6.Payload
	if len(b) < 4 || checksum(b, pseudo6(src, dst, len(b), layers.IPProtocolICMPv6)) != 0 {
		h.stats.badChecksum++
		return
	}
	var icmp layers.ICMPv6
	if err := icmp.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
		h.stats.rxDrops++
		return
	}
	switch icmp.TypeCode.Type() {
	case layers.ICMPv6TypeNeighborSolicitation:
		var ns layers.ICMPv6NeighborSolicitation
		if ip6.HopLimit != 255 || ns.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback) != nil {
			h.stats.rxDrops++
			return
		}
		target, _ := netip.AddrFromSlice(ns.TargetAddress)
		if !h.hasAddr(target) {
			return
		}
		var sll net.HardwareAddr
		for _, o := range ns.Options {
			if o.Type == layers.ICMPv6OptSourceAddress && len(o.Data) == 6 {
				sll = o.Data
			}
		}
		if src.IsUnspecified() {
			// Duplicate address detection: defend the address to all nodes.
			all := netip.MustParseAddr("ff02::1")
			h.emit(lk, h.buildNA(target, all, multicastMAC(all), 0x20))
			return
		}
		if sll == nil {
			sll = eth.SrcMAC
		} else {
			h.confirm(lk, src, sll, true, now)
		}
		h.emit(lk, h.buildNA(target, src, sll, 0x60)) // solicited, override
	case layers.ICMPv6TypeNeighborAdvertisement:
		var na layers.ICMPv6NeighborAdvertisement
		if ip6.HopLimit != 255 || na.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback) != nil {
			h.stats.rxDrops++
			return
		}
		target, _ := netip.AddrFromSlice(na.TargetAddress)
		tll := eth.SrcMAC
		for _, o := range na.Options {
			if o.Type == layers.ICMPv6OptTargetAddress && len(o.Data) == 6 {
				tll = o.Data
			}
		}
		h.confirm(lk, target, tll, false, now)
	case layers.ICMPv6TypeEchoRequest:
		if !ours {
			return
		}
		var echo layers.ICMPv6Echo
		if echo.DecodeFromBytes(icmp.Payload, gopacket.NilDecodeFeedback) != nil {
			h.stats.rxDrops++
			return
		}
		h.stats.echoIn++
		// gopacket's ICMPv6Echo keeps no payload: the data follows its
		// 4 bytes in the ICMPv6 layer's payload.
		reply := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0)}
		h.sendIPv6Reply(lk, eth.SrcMAC, dst, src, reply,
			&layers.ICMPv6Echo{Identifier: echo.Identifier, SeqNumber: echo.SeqNumber}, gopacket.Payload(icmp.Payload[4:]))
	case layers.ICMPv6TypeDestinationUnreachable:
		if !ours || len(icmp.Payload) < 4 {
			return
		}
		h.stats.unreachIn++
		errno := syscall.EHOSTUNREACH
		switch icmp.TypeCode.Code() {
		case layers.ICMPv6CodePortUnreachable:
			errno = syscall.ECONNREFUSED
		case layers.ICMPv6CodeNoRouteToDst:
			errno = syscall.ENETUNREACH
		case layers.ICMPv6CodeAdminProhibited:
			errno = syscall.EACCES
		}
		h.icmpError(icmp.Payload[4:], true, errno)
	}
}

// inputUDP delivers a datagram to the endpoint bound to its port, or
// answers port unreachable. iph is the IP header as received (quoted in
// the ICMP error). h.mu is held.
func (h *Host) inputUDP(lk *hostLink, eth *layers.Ethernet, src, dst netip.Addr, iph, b []byte) {
	if len(b) < udpLen {
		h.stats.rxDrops++
		return
	}
	length := int(binary.BigEndian.Uint16(b[4:]))
	if length < udpLen || length > len(b) {
		h.stats.rxDrops++
		return
	}
	b = b[:length]
	if sum := binary.BigEndian.Uint16(b[6:]); sum != 0 || dst.Is6() {
		if checksum(b, pseudoFor(src, dst, len(b))) != 0 {
			h.stats.badChecksum++
			return
		}
	}
	h.stats.udpIn++
	from := netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:]))
	to := netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:]))
	if c := h.demux(from, to); c != nil {
		h.later(c.sink.Deliver(from, to, b[udpLen:]))
		return
	}
	h.stats.udpNoPort++
	if !h.icmpRate.Allow(time.Now()) {
		h.stats.icmpLimited++
		return
	}
	// Port unreachable quotes the datagram: the IP header and as much as
	// keeps the error within the minimum MTU (576 / 1280).
	if dst.Is4() {
		quote := append(append([]byte(nil), iph...), b[:min(len(b), 576-ip4Len-8-len(iph))]...)
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)}
		h.sendIPv4Reply(lk, eth.SrcMAC, dst, src, layers.IPProtocolICMPv4, icmp, gopacket.Payload(quote))
		return
	}
	quote := append(append(make([]byte, 4), iph...), b[:min(len(b), 1280-ip6Len-8-len(iph))]...)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeDestinationUnreachable, layers.ICMPv6CodePortUnreachable)}
	h.sendIPv6Reply(lk, eth.SrcMAC, dst, src, icmp, gopacket.Payload(quote))
}

// The ICMP errors the host sends are bounded as by the kernel's
// icmp_ratelimit: icmpBurst at once, then icmpRate a second.
const (
	icmpRate  = 100
	icmpBurst = 50
)

// checksum is the Internet checksum of b plus the partial sum initial;
// 0 when b holds a correct checksum.
func checksum(b []byte, initial uint32) uint16 {
	sum := initial
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

func sumBytes(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return s
}

func pseudo6(src, dst netip.Addr, n int, proto layers.IPProtocol) uint32 {
	s, d := src.As16(), dst.As16()
	return sumBytes(s[:]) + sumBytes(d[:]) + uint32(n>>16) + uint32(n&0xffff) + uint32(proto)
}

func pseudoFor(src, dst netip.Addr, n int) uint32 {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		return sumBytes(s[:]) + sumBytes(d[:]) + uint32(n) + uint32(layers.IPProtocolUDP)
	}
	return pseudo6(src, dst, n, layers.IPProtocolUDP)
}
