// SPDX-License-Identifier: BSD-3-Clause

// Package iphost is mnet's userspace IP host on an IPN network: "addr CIDR"
// in a network's ctl gives mnet itself that address on the network, with a
// MAC of its own ("mac"), as a port of KIND host. It answers ARP and IPv6
// neighbour solicitation for its addresses and ICMP / ICMPv6 echo, sends
// ICMP port unreachable for datagrams to closed UDP ports, resolves its
// neighbours (a bounded cache whose entries age, as the kernel's neighbour
// state machine) and serves ipn/NAME/udp/HOST/PORT with the inet family's
// UDP semantics. Frames are parsed and built with gopacket's layers, which
// compute every checksum. It is pure Go: no kernel stack, no device.
//
// It is an Extension of package link (it owns the ctl words addr and mac
// and adds udp/ and host to the network's directory); package mhost sends
// through it with Of and Conn.
package iphost

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Kind is the KIND of the host's port in the ports table.
const Kind = "host"

// MaxAddrs bounds the addresses of one host.
const MaxAddrs = 64

func init() {
	link.RegisterExtension(&link.Extension{Name: Kind, Words: []string{"addr", "mac"},
		New: func(n link.Network) link.Instance { return newHost(n) }})
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Host{}
)

// Of returns the host of the network called name, or nil. A daemon has one
// ipn family, so the network's name names its host.
func Of(network string) *Host {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[network]
}

// Hosts returns the hosts of every network.
func Hosts() []*Host {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := make([]*Host, 0, len(registry))
	for _, h := range registry {
		out = append(out, h)
	}
	return out
}

// Host is the userspace host of one network.
type Host struct {
	net link.Network
	udp *udpDir
	st  *netcore.TextFile

	// joinMu orders joining and leaving the network; it is never held
	// by the frame path.
	joinMu sync.Mutex
	leave  func()

	// mu guards what follows and the neighbour cache, the UDP table and
	// the reassembly buffers.
	mu       sync.Mutex
	lk       *hostLink // the port's link while joined; set with joinMu held too
	mac      net.HardwareAddr
	macSet   bool // set by ctl, not derived from the name
	addrs    []netip.Prefix
	closed   bool
	neigh    neighbours
	conns    [2]map[uint16][]*Conn // by family (0 v4, 1 v6) and local port
	nconns   int
	frags    reassembly
	ipID     uint16
	icmpRate netcore.TokenBucket
	stats    counters
	wakes    []func() // of sinks, run by unlock
	mtu      int      // largest IP packet sent (ipMTUOf the network's mtu)
}

// counters are what the host file shows.
type counters struct {
	rxFrames, txFrames          uint64
	rxDrops, txDrops            uint64 // unparsable or not for us / no room out
	badChecksum                 uint64
	udpIn, udpOut, udpNoPort    uint64
	udpQueueDrops               uint64
	echoIn, unreachIn           uint64
	fragIn, fragDrops, fragOK   uint64
	neighFailed, neighEvicted   uint64
	icmpLimited, ip6Unsupported uint64
}

func newHost(n link.Network) *Host {
	h := &Host{net: n, mac: defaultMAC(n.Name()), mtu: ipMTU,
		icmpRate: netcore.TokenBucket{Rate: icmpRate, Burst: icmpBurst}}
	h.conns[0] = map[uint16][]*Conn{}
	h.conns[1] = map[uint16][]*Conn{}
	h.neigh.init()
	h.frags.init()
	h.udp = newUDPDir(h)
	h.st = netcore.NewTextFile(h.statusAttr, func(*netcore.Cred) []byte { return h.statusText() })
	registryMu.Lock()
	registry[n.Name()] = h
	registryMu.Unlock()
	return h
}

// defaultMAC is a stable, locally administered unicast MAC made from the
// network's name.
func defaultMAC(name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("mnet host " + name))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^1 | 2
	return mac
}

// Network is the name of the host's network.
func (h *Host) Network() string { return h.net.Name() }

// Rights reports what c may do through the host: the network's rights.
func (h *Host) Rights(c *netcore.Cred) (recv, send bool) {
	return h.net.Rights(c)
}

// MAC returns the host's MAC.
func (h *Host) MAC() net.HardwareAddr {
	h.mu.Lock()
	defer h.unlock()
	return slices.Clone(h.mac)
}

// Addrs returns the host's addresses.
func (h *Host) Addrs() []netip.Prefix {
	h.mu.Lock()
	defer h.unlock()
	return slices.Clone(h.addrs)
}

// hasAddr reports whether a is one of the host's addresses; h.mu is held.
func (h *Host) hasAddr(a netip.Addr) bool {
	for _, p := range h.addrs {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// Parse reads the ctl lines "addr CIDR", "addr -CIDR" and "mac MAC".
func (h *Host) Parse(c *netcore.Cred, word, arg string) (func() error, error) {
	switch word {
	case "mac":
		mac, err := net.ParseMAC(arg)
		if err != nil || len(mac) != 6 {
			return nil, link.Errorf(syscall.EINVAL, "mac: %q is not a MAC (XX:XX:XX:XX:XX:XX)", arg)
		}
		if mac[0]&1 != 0 || string(mac) == string(make([]byte, 6)) {
			return nil, link.Errorf(syscall.EINVAL, "mac: %s is not a unicast MAC", mac)
		}
		return func() error {
			h.mu.Lock()
			h.mac, h.macSet = mac, true
			h.unlock()
			return nil
		}, nil
	case "addr":
		remove := strings.HasPrefix(arg, "-")
		p, err := parseCIDR(strings.TrimPrefix(arg, "-"))
		if err != nil {
			return nil, err
		}
		if remove {
			return func() error { return h.removeAddr(p) }, nil
		}
		return func() error { return h.addAddr(p) }, nil
	}
	return nil, link.Errorf(syscall.EINVAL, "host: no ctl word %q", word)
}

// parseCIDR reads an address with its prefix length, v4 or v6. The
// address must be one a host may have: not unspecified, multicast,
// loopback, a v4 broadcast or a v4-mapped v6 address.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, link.Errorf(syscall.EINVAL, "addr: %q is not ADDRESS/PREFIXLEN", s)
	}
	a := p.Addr()
	if a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Prefix{}, link.Errorf(syscall.EINVAL, "addr: %s is not a host address", s)
	}
	if a.Is4() && p.Bits() < 31 && p.Bits() > 0 {
		// The network's own address and its broadcast are no host's.
		if a == p.Masked().Addr() || a == lastAddr(p) {
			return netip.Prefix{}, link.Errorf(syscall.EINVAL, "addr: %s is the network or broadcast address", s)
		}
	}
	return p, nil
}

// lastAddr is the highest address of an IPv4 prefix (its broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (h *Host) addAddr(p netip.Prefix) error {
	h.joinMu.Lock()
	defer h.joinMu.Unlock()
	h.mu.Lock()
	if h.closed {
		h.unlock()
		return link.Errorf(syscall.ENOENT, "addr %s: the network is gone", p)
	}
	if h.hasAddr(p.Addr()) {
		h.unlock()
		return link.Errorf(syscall.EEXIST, "addr %s: the host has this address already", p)
	}
	if len(h.addrs) >= MaxAddrs {
		h.unlock()
		return link.Errorf(syscall.ENOSPC, "addr %s: the host has %d addresses, the most it may", p, MaxAddrs)
	}
	h.addrs = append(h.addrs, p)
	h.unlock()
	if err := h.joinLocked(); err != nil {
		h.mu.Lock()
		h.addrs = slices.DeleteFunc(h.addrs, func(q netip.Prefix) bool { return q == p })
		h.unlock()
		return link.Errorf(link.ErrnoOf(err), "addr %s: cannot join the network: %v", p, err)
	}
	h.announce(p.Addr())
	return nil
}

func (h *Host) removeAddr(p netip.Prefix) error {
	h.joinMu.Lock()
	defer h.joinMu.Unlock()
	h.mu.Lock()
	i := slices.Index(h.addrs, p)
	if i < 0 {
		h.unlock()
		return link.Errorf(syscall.EADDRNOTAVAIL, "addr -%s: the host has no such address", p)
	}
	h.addrs = slices.Delete(h.addrs, i, i+1)
	empty := len(h.addrs) == 0
	h.unlock()
	if empty {
		h.leaveLocked()
	}
	return nil
}

// joinLocked makes the host a port of the network, if it is not one yet.
// h.joinMu is held.
func (h *Host) joinLocked() error {
	if h.leave != nil {
		return nil
	}
	lk := newHostLink(h)
	netMTU, _ := h.net.Limits()
	leave, err := h.net.Join(lk, link.Member{Recv: true, Send: true})
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.lk = lk
	h.mtu = ipMTUOf(netMTU)
	h.unlock()
	h.leave = leave
	go h.timers(lk)
	return nil
}

// leaveLocked takes the host's port out of the network. h.joinMu is held.
func (h *Host) leaveLocked() {
	if h.leave == nil {
		return
	}
	h.mu.Lock()
	h.lk = nil
	h.unlock()
	h.leave()
	h.leave = nil
	h.mu.Lock()
	h.neigh.clear()
	h.frags.clear()
	h.unlock()
}

// CtlLines: mac with the settings, one addr line per address.
func (h *Host) CtlLines() (settings, items []string) {
	h.mu.Lock()
	defer h.unlock()
	settings = []string{"mac " + h.mac.String()}
	for _, p := range h.addrs {
		items = append(items, "addr "+p.String())
	}
	return settings, items
}

// Entries: udp/ and the host's status file.
func (h *Host) Entries() []netcore.DirEntry {
	return []netcore.DirEntry{{Name: "udp", Node: h.udp}, {Name: "host", Node: h.st}}
}

// Busy: udp files are open.
func (h *Host) Busy() bool {
	h.udp.mu.Lock()
	defer h.udp.mu.Unlock()
	return h.udp.names.AnyOpen()
}

type saved struct {
	MAC   string   `json:"mac,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
}

// Save keeps a MAC set by ctl and the addresses.
func (h *Host) Save() json.RawMessage {
	h.mu.Lock()
	var s saved
	if h.macSet {
		s.MAC = h.mac.String()
	}
	for _, p := range h.addrs {
		s.Addrs = append(s.Addrs, p.String())
	}
	h.unlock()
	if s.MAC == "" && len(s.Addrs) == 0 {
		return nil
	}
	b, _ := json.Marshal(s)
	return b
}

// Restore applies what Save kept, as ctl lines would.
func (h *Host) Restore(raw json.RawMessage) error {
	var s saved
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	var errs []string
	if s.MAC != "" {
		if apply, err := h.Parse(nil, "mac", s.MAC); err == nil {
			apply()
		} else {
			errs = append(errs, err.Error())
		}
	}
	for _, a := range s.Addrs {
		apply, err := h.Parse(nil, "addr", a)
		if err == nil {
			err = apply()
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Close ends the host with its network: its port leaves, every UDP
// endpoint sees the end (files read end of file, writes fail).
func (h *Host) Close() {
	h.joinMu.Lock()
	h.mu.Lock()
	h.closed = true
	var conns []*Conn
	for _, m := range h.conns {
		for _, cs := range m {
			conns = append(conns, cs...)
		}
	}
	h.unlock()
	h.leaveLocked()
	h.joinMu.Unlock()
	for _, c := range conns {
		c.sink.Closed()
	}
	registryMu.Lock()
	if registry[h.net.Name()] == h {
		delete(registry, h.net.Name())
	}
	registryMu.Unlock()
}

// statusAttr: readable by whoever holds any right on the network.
func (h *Host) statusAttr(*netcore.Cred) netcore.Attr {
	uid, gid, mode := h.net.Access()
	var perm uint32
	for shift := 0; shift <= 6; shift += 3 {
		if mode>>shift&7 != 0 {
			perm |= 4 << shift
		}
	}
	return netcore.Attr{Mode: syscall.S_IFREG | perm, Uid: uid, Gid: gid}
}

// statusText is the host file: its MAC and addresses, the neighbour
// cache and counters.
func (h *Host) statusText() []byte {
	h.mu.Lock()
	defer h.unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "mac %s\n", h.mac)
	for _, p := range h.addrs {
		fmt.Fprintf(&b, "addr %s\n", p)
	}
	h.neigh.write(&b)
	s := &h.stats
	fmt.Fprintf(&b, "rx-frames %d\ntx-frames %d\nrx-drops %d\ntx-drops %d\nbad-checksum %d\n",
		s.rxFrames, s.txFrames, s.rxDrops, s.txDrops, s.badChecksum)
	fmt.Fprintf(&b, "udp-in %d\nudp-out %d\nudp-no-port %d\nudp-queue-drops %d\n",
		s.udpIn, s.udpOut, s.udpNoPort, s.udpQueueDrops)
	fmt.Fprintf(&b, "echo-in %d\nunreach-in %d\nicmp-limited %d\n", s.echoIn, s.unreachIn, s.icmpLimited)
	fmt.Fprintf(&b, "frag-in %d\nfrag-reassembled %d\nfrag-drops %d\nip6-unsupported %d\n",
		s.fragIn, s.fragOK, s.fragDrops, s.ip6Unsupported)
	fmt.Fprintf(&b, "neigh-failed %d\nneigh-evicted %d\nudp-endpoints %d\n", s.neighFailed, s.neighEvicted, h.nconns)
	return []byte(b.String())
}

var _ link.Instance = (*Host)(nil)
