// SPDX-License-Identifier: BSD-3-Clause

package inet

import (
	"net/netip"
	"strings"
	"syscall"
)

// version is what differs between inet and inet6.
type version struct {
	family   string // directory name: inet or inet6
	ip       string // resolver network: ip4 or ip6
	udp, tcp string // Go network names: udp4 or udp6, tcp4 or tcp6
	descr    string
	readme   string // its lines in the README at the root of the mount
}

var (
	v4 = &version{family: "inet", ip: "ip4", udp: "udp4", tcp: "tcp4",
		descr: "IPv4 through kernel sockets: udp/HOST/PORT and tcp/HOST/PORT", readme: readme4}
	v6 = &version{family: "inet6", ip: "ip6", udp: "udp6", tcp: "tcp6",
		descr: "IPv6 through kernel sockets: udp/HOST/PORT and tcp/HOST/PORT", readme: readme6}
)

// peer is a parsed HOST name, the other end of an open: an address literal
// of the family, or a name peer resolve in it at open time; the wildcard
// stands for any peer.
type peer struct {
	name string
	addr netip.Addr // valid for a literal
}

// literal reports whether the peer is an address, not a name.
func (p peer) literal() bool { return p.addr.IsValid() }

// wildcard reports whether the peer is the local wildcard (0.0.0.0, ::):
// opening it binds (UDP) or listens (TCP) instead of connecting.
func (p peer) wildcard() bool { return p.addr.IsValid() && p.addr.IsUnspecified() }

// parsePeer checks name as a HOST of family v without resolving it: an
// address literal of v, or a host name. An address of the other family, a
// numeric name that is no address (1.2.3, 127.0.0.01) and anything that is
// not a host name is EINVAL.
func (v *version) parsePeer(name string) (peer, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		if v == v4 && !a.Is4() || v == v6 && (!a.Is6() || a.Is4In6()) {
			return peer{}, syscall.EINVAL
		}
		return peer{name: name, addr: a}, nil
	}
	if !validHostName(name) {
		return peer{}, syscall.EINVAL
	}
	return peer{name: name}, nil
}

// validHostName: dot-separated labels of letters, digits, '-' and '_', none
// empty, starting or ending with '-', at most 63 bytes each and 253 in all;
// an optional final dot. The last label may not be all digits, and the
// name may not be any other number inet_aton(3) reads as an address
// (0x7f000001, 017700000001, 127.0x1), so that every numeric name is a
// canonical address literal or refused, never sent to a resolver that
// reads "1.2.3" as 1.2.0.3.
func validHostName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	if len(name) == 0 || len(name) > 253 || atonNumeric(name) {
		return false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

// atonNumeric reports whether inet_aton(3), which resolvers try before
// anything else, reads name as an IPv4 address: one to four parts
// separated by dots, each a C integer constant (decimal, octal with a
// leading 0, hexadecimal after 0x or 0X, whose digits may be none).
func atonNumeric(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		digits := "0123456789"
		if len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') {
			p, digits = p[2:], "0123456789abcdefABCDEF"
		} else if p == "" {
			return false
		}
		if strings.Trim(p, digits) != "" {
			return false
		}
	}
	return true
}
