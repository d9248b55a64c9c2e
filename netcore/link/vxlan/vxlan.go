// SPDX-License-Identifier: BSD-3-Clause

// Package vxlan is the vxlan kind of link: a cable from a network to
// remote VXLAN tunnel endpoints (RFC 7348) over UDP. ctl's
//
//	vxlan VNI REMOTE[:PORT] [REMOTE[:PORT]...] [port LOCALPORT]
//	vxlan VNI group MCASTADDR[:PORT] [dev IFNAME]
//
// attach one (CAP_NET_ADMIN). Frames the network sends go to the remote
// VTEP learned for their destination MAC, or to every remote (head-end
// replication) or to the group when the destination is broadcast,
// multicast or unknown. Frames arriving with the cable's VNI are learned
// (inner source MAC behind the outer source address) and sent into the
// network. The peers are Linux vxlan devices, other mnet daemons and
// vdeplug4's vxvde.
//
// All cables on one UDP port share one socket, which demultiplexes by
// VNI, as the Linux driver's vxlan_sock does; frames leave through a raw
// socket so that the UDP source port can be a hash of the inner flow.
package vxlan

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/tap"
	"github.com/mnet-project/mnet/netcore/link"
)

// Kind is the name of the kind, and its ctl verb.
const Kind = "vxlan"

// maxRemotes bounds head-end replication: each flooded frame is sent
// once per remote.
const maxRemotes = 64

func init() {
	link.Register(&link.Kind{Name: Kind, Privilege: link.PrivNetAdmin, Parse: Parse, Restore: restore})
}

// spec is one parsed vxlan line.
type spec struct {
	vni uint32
	// remotes are the unicast VTEPs; group the multicast group instead.
	remotes []netip.AddrPort
	// local is the UDP port the cable listens on, if the line names one
	// ("port N"); else the first remote's.
	local uint16
	group netip.AddrPort
	dev   string // the group's interface; "" lets the routing table choose
	// ns is the caller's network namespace, where the cable's sockets
	// are (zero: the daemon's).
	ns netns.ID
}

var _ link.Binder = (*spec)(nil)

// Bind notes the namespace the cable is made in: a VNI on a port is
// claimed in it, so that two namespaces may each cable the same VNI.
func (s *spec) Bind(ns *netns.NS) error {
	if !ns.Self() {
		s.ns = ns.ID()
	}
	return nil
}

var _ link.Spec = (*spec)(nil)

// Parse reads the argument of the ctl line "vxlan ARGS". Its errors
// (EINVAL) name the line.
func Parse(args string) (link.Spec, error) {
	s, err := parse(args)
	if err != nil {
		return nil, link.Errorf(syscall.EINVAL, "vxlan %s: %v", strings.Join(strings.Fields(args), " "), err)
	}
	return s, nil
}

func invalid(format string, args ...any) error { return fmt.Errorf(format, args...) }

func parse(args string) (*spec, error) {
	words := strings.Fields(args)
	if len(words) < 2 {
		return nil, invalid("want VNI REMOTE[:PORT]... [port LOCALPORT] or VNI group MCASTADDR[:PORT] [dev IFNAME]")
	}
	s := &spec{}
	vni, err := strconv.ParseUint(words[0], 10, 32)
	if err != nil || vni > MaxVNI || (len(words[0]) > 1 && words[0][0] == '0') {
		return nil, invalid("VNI %q is not a decimal number 0..%d", words[0], MaxVNI)
	}
	s.vni = uint32(vni)
	if words[1] == "group" {
		rest := words[2:]
		if len(rest) != 1 && !(len(rest) == 3 && rest[1] == "dev") {
			return nil, invalid("want VNI group MCASTADDR[:PORT] [dev IFNAME]")
		}
		g, err := parseEndpoint(rest[0])
		if err != nil {
			return nil, err
		}
		if !g.Addr().IsMulticast() {
			return nil, invalid("group %s is not a multicast address", g.Addr())
		}
		s.group = g
		if len(rest) == 3 {
			if err := tap.CheckName(rest[2]); err != nil {
				return nil, invalid("dev: %v", err)
			}
			s.dev = rest[2]
		}
		return s, nil
	}
	if n := len(words); n >= 4 && words[n-2] == "port" {
		p, err := strconv.ParseUint(words[n-1], 10, 16)
		if err != nil || p == 0 || words[n-1][0] == '0' {
			return nil, invalid("port %q is not a decimal number 1..65535", words[n-1])
		}
		s.local = uint16(p)
		words = words[:n-2]
	}
	if len(words)-1 > maxRemotes {
		return nil, invalid("at most %d remotes", maxRemotes)
	}
	seen := map[netip.AddrPort]bool{}
	for _, w := range words[1:] {
		r, err := parseEndpoint(w)
		if err != nil {
			return nil, err
		}
		a := r.Addr()
		if a.IsMulticast() || a.IsUnspecified() {
			return nil, invalid("remote %s: not a unicast address (a group is written \"group ADDR\")", a)
		}
		if len(s.remotes) > 0 && a.Is4() != s.remotes[0].Addr().Is4() {
			return nil, invalid("remote %s: all remotes of a cable are of one address family", a)
		}
		if seen[r] {
			return nil, invalid("remote %s given twice", r)
		}
		seen[r] = true
		s.remotes = append(s.remotes, r)
	}
	return s, nil
}

// parseEndpoint reads ADDR, ADDR:PORT or [ADDR6]:PORT; the port defaults
// to 4789. Addresses are literals (no names: a ctl write never waits on
// a resolver) without IPv6 zones.
func parseEndpoint(w string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(w)
	if err != nil {
		a, aerr := netip.ParseAddr(w)
		if aerr != nil {
			return netip.AddrPort{}, invalid("%q is not ADDR, ADDR:PORT or [ADDR6]:PORT", w)
		}
		ap = netip.AddrPortFrom(a, DefaultPort)
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, invalid("%q: IPv6 zones are not supported", w)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, invalid("%q: port 0", w)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// endpointString is the canonical form of an endpoint: the port only
// when it is not the default.
func endpointString(ap netip.AddrPort) string {
	if ap.Port() == DefaultPort {
		return ap.Addr().String()
	}
	return ap.String()
}

// Name is the VNI: the NAME column of ports, and "detach vxlan VNI".
func (s *spec) Name() string { return strconv.FormatUint(uint64(s.vni), 10) }

// Args is the line in its canonical form.
func (s *spec) Args() string {
	var b strings.Builder
	b.WriteString(s.Name())
	if s.group.IsValid() {
		b.WriteString(" group ")
		b.WriteString(endpointString(s.group))
		if s.dev != "" {
			b.WriteString(" dev ")
			b.WriteString(s.dev)
		}
		return b.String()
	}
	for _, r := range s.remotes {
		b.WriteByte(' ')
		b.WriteString(endpointString(r))
	}
	if s.local != 0 && s.local != s.remotes[0].Port() {
		b.WriteString(" port ")
		b.WriteString(strconv.Itoa(int(s.local)))
	}
	return b.String()
}

// port is the local UDP port the cable listens on: its group's, the one
// its line names, or its first remote's (a Linux vxlan device's dstport
// is both, too).
func (s *spec) port() uint16 {
	switch {
	case s.group.IsValid():
		return s.group.Port()
	case s.local != 0:
		return s.local
	}
	return s.remotes[0].Port()
}

func (s *spec) v6() bool {
	if s.group.IsValid() {
		return s.group.Addr().Is6()
	}
	return s.remotes[0].Addr().Is6()
}

// Claim is the VNI on its local port: one socket receives a port's VXLAN,
// and its frames of one VNI can go to one network only.
func (s *spec) Claim() string {
	c := "vxlan:" + s.Name() + ":" + strconv.Itoa(int(s.port()))
	if k := nsKey(s.ns); k != "" {
		c += ":" + k
	}
	return c
}

// saved is what a persistent network keeps of a cable: its ctl line.
type saved struct {
	Args string `json:"args"`
}

func restore(raw json.RawMessage) (link.Spec, error) {
	var s saved
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return Parse(s.Args)
}
