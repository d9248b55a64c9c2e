// SPDX-License-Identifier: BSD-3-Clause

package iphost

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mnet-project/mnet/netcore"
)

// MaxConns bounds the UDP endpoints of one host; past it, ENFILE.
const MaxConns = 4096

// Ephemeral ports, as the kernel's default ip_local_port_range.
const (
	ephemeralLow  = 32768
	ephemeralHigh = 60999
)

// Sink is what a Conn delivers to: a file's receive queue, or an mhost
// endpoint. Deliver and Error are called with the host's lock held: they
// must not block, nor call back into the host; what they return (the
// wakeup of a poll waiting on the sink, which writes to /dev/fuse) the
// host calls once it holds no lock.
type Sink interface {
	// Deliver hands over one datagram; payload is only valid during the
	// call.
	Deliver(from, to netip.AddrPort, payload []byte) (wake func())
	// Error reports that peer is unreachable: an ICMP error about a
	// datagram sent to it (ECONNREFUSED, EHOSTUNREACH, ...) or its
	// neighbour failing to answer (EHOSTUNREACH, peer's port 0 then).
	Error(peer netip.AddrPort, errno syscall.Errno) (wake func())
	// Closed tells that the host is gone; called without the host's lock.
	Closed()
}

// later keeps a sink's wakeup for unlock. h.mu is held.
func (h *Host) later(wake func()) {
	if wake != nil {
		h.wakes = append(h.wakes, wake)
	}
}

// unlock releases h.mu and then runs the wakeups the sinks returned.
func (h *Host) unlock() {
	wakes := h.wakes
	h.wakes = nil
	h.mu.Unlock()
	for _, w := range wakes {
		w()
	}
}

// Conn is one UDP endpoint of a host: bound to a local port of one family
// and, when connected, to one peer.
type Conn struct {
	h      *Host
	v6     bool
	local  netip.AddrPort // its address is unspecified: any of the host's
	remote netip.AddrPort // valid when connected
	sink   Sink
	closed bool
}

// Open makes an endpoint of family v6 on local port (0: an ephemeral
// one), connected to remote if it is valid. A port taken is EADDRINUSE; a
// remote not on the network of one of the host's addresses ENETUNREACH.
func (h *Host) Open(v6 bool, port uint16, remote netip.AddrPort, sink Sink) (*Conn, error) {
	h.mu.Lock()
	defer h.unlock()
	if h.closed {
		return nil, syscall.ENETDOWN
	}
	if remote.IsValid() {
		if _, ok := h.sourceFor(remote.Addr()); !ok {
			return nil, syscall.ENETUNREACH
		}
	}
	if h.nconns >= MaxConns {
		return nil, syscall.ENFILE
	}
	m := h.conns[famIdx(v6)]
	if port == 0 {
		n := ephemeralHigh - ephemeralLow + 1
		start := rand.IntN(n)
		for i := range n {
			p := uint16(ephemeralLow + (start+i)%n)
			if len(m[p]) == 0 {
				port = p
				break
			}
		}
		if port == 0 {
			return nil, syscall.EADDRNOTAVAIL
		}
	} else if len(m[port]) > 0 {
		return nil, syscall.EADDRINUSE
	}
	unspec := netip.IPv4Unspecified()
	if v6 {
		unspec = netip.IPv6Unspecified()
	}
	c := &Conn{h: h, v6: v6, local: netip.AddrPortFrom(unspec, port), remote: remote, sink: sink}
	m[port] = append(m[port], c)
	h.nconns++
	return c, nil
}

// Payer is a Sink that says who pays for what its endpoint sends while
// it waits to enter the network (a udp file's or an mhost endpoint's
// opener).
type Payer interface {
	Payer() *netcore.Payer
}

func (c *Conn) payer() *netcore.Payer {
	if p, ok := c.sink.(Payer); ok {
		return p.Payer()
	}
	return nil
}

// LocalPort is the endpoint's port.
func (c *Conn) LocalPort() uint16 { return c.local.Port() }

// Close frees the endpoint's port.
func (c *Conn) Close() {
	h := c.h
	h.mu.Lock()
	defer h.unlock()
	if c.closed {
		return
	}
	c.closed = true
	m := h.conns[famIdx(c.v6)]
	cs := m[c.local.Port()]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(m, c.local.Port())
	} else {
		m[c.local.Port()] = cs
	}
	h.nconns--
}

// demux finds the endpoint for a datagram: one connected to its sender,
// else one bound to the port. h.mu is held.
func (h *Host) demux(from, to netip.AddrPort) *Conn {
	var bound *Conn
	for _, c := range h.conns[famIdx(to.Addr().Is6())][to.Port()] {
		switch {
		case c.remote == from:
			return c
		case !c.remote.IsValid():
			bound = c
		}
	}
	return bound
}

// maxPayload is the largest UDP payload of one datagram: 64 KiB of IPv4
// packet or of IPv6 payload, fragmented as the MTU needs.
func (h *Host) maxPayload(v6 bool) int {
	if v6 {
		return 65535 - udpLen
	}
	return 65535 - ip4Len - udpLen
}

// Send sends payload as one datagram to to (the peer of a connected
// endpoint must be given). The neighbour is resolved as mode says; a
// full queue toward the network waits (EAGAIN with nonblock).
func (c *Conn) Send(ctx context.Context, to netip.AddrPort, payload []byte, mode SendMode, nonblock bool) error {
	h := c.h
	if to.Addr().Is6() != c.v6 || to.Addr().Is4In6() {
		return syscall.EAFNOSUPPORT
	}
	if to.Port() == 0 {
		return syscall.EINVAL
	}
	if to.Addr().IsMulticast() || to.Addr().IsUnspecified() {
		return syscall.EACCES // no SO_BROADCAST or multicast here
	}
	frames, mac, lk, err := c.prepare(ctx, to, payload, mode, nonblock)
	if err != nil || frames == nil {
		return err
	}
	for _, f := range frames {
		copy(f[ethDstOff:], mac)
		if err := lk.send(ctx, f, !nonblock, c.payer()); err != nil {
			if err == syscall.ENOBUFS {
				err = syscall.EAGAIN
			}
			return err
		}
	}
	h.mu.Lock()
	h.stats.txFrames += uint64(len(frames))
	h.unlock()
	return nil
}

// prepare is Send's part under h.mu: the frames of the datagram and the
// neighbour's MAC, or no frames (and no error) when the datagram needs no
// more (delivered to the host itself, or held until the neighbour
// answers). h.mu is released by defer, so that a panic leaves it free.
func (c *Conn) prepare(ctx context.Context, to netip.AddrPort, payload []byte, mode SendMode, nonblock bool) (
	[][]byte, net.HardwareAddr, *hostLink, error) {
	h := c.h
	h.mu.Lock()
	defer h.unlock()
	if c.closed || h.closed {
		return nil, nil, nil, syscall.EBADF
	}
	if len(payload) > h.maxPayload(c.v6) {
		return nil, nil, nil, syscall.EMSGSIZE
	}
	src, ok := h.sourceFor(to.Addr())
	if !ok {
		return nil, nil, nil, syscall.ENETUNREACH
	}
	if h.hasAddr(to.Addr()) {
		// To the host itself: delivered at once, as over loopback.
		from := netip.AddrPortFrom(src, c.local.Port())
		h.stats.udpOut++
		if d := h.demux(from, to); d != nil {
			h.later(d.sink.Deliver(from, to, payload))
		} else {
			h.later(c.sink.Error(to, syscall.ECONNREFUSED))
		}
		return nil, nil, nil, nil
	}
	frames := h.buildUDP(src, c.local.Port(), to, payload)
	if frames == nil {
		return nil, nil, nil, syscall.EMSGSIZE
	}
	var held *heldFrame
	if mode == NoWait || nonblock {
		mode = NoWait
		held = &heldFrame{raw: frames[0], from: c, to: to}
		if len(frames) > 1 {
			held = nil // fragments are not held: the datagram waits or fails
			mode = Wait
		}
	}
	mac, err := h.resolve(ctx, to.Addr(), mode, held)
	if err == errHeld {
		h.stats.udpOut++
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	h.stats.udpOut++
	return frames, mac, h.lk, nil
}

// buildUDP makes the frames of one datagram, their destination MAC left
// to fill in: one frame, or fragments of the MTU (ipFrames). h.mu is
// held.
func (h *Host) buildUDP(src netip.Addr, sport uint16, to netip.AddrPort, payload []byte) [][]byte {
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(to.Port())}
	eth := &layers.Ethernet{SrcMAC: h.mac, DstMAC: broadcastMAC}
	var ip4 *layers.IPv4
	var ip6 *layers.IPv6
	if to.Addr().Is6() {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 = &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 64, SrcIP: ip(src), DstIP: ip(to.Addr())}
		udp.SetNetworkLayerForChecksum(ip6)
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		h.ipID++
		ip4 = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: h.ipID, Protocol: layers.IPProtocolUDP, SrcIP: ip(src), DstIP: ip(to.Addr())}
		udp.SetNetworkLayerForChecksum(ip4)
	}
	// The whole UDP datagram, its checksum computed over all of it.
	dgram := l4Bytes(udp, gopacket.Payload(payload))
	fixZeroChecksum(dgram, 6)
	return h.ipFrames(eth, ip4, ip6, dgram)
}

// fixZeroChecksum writes 0xffff for a computed UDP checksum of 0, which
// on the wire would mean "no checksum" (RFC 768; forbidden for IPv6).
func fixZeroChecksum(b []byte, at int) {
	if len(b) >= at+2 && binary.BigEndian.Uint16(b[at:]) == 0 {
		binary.BigEndian.PutUint16(b[at:], 0xffff)
	}
}
