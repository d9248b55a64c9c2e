// SPDX-License-Identifier: BSD-3-Clause

package vxlan

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHeader(t *testing.T) {
	b := make([]byte, HeaderLen+ethHeaderLen)
	putHeader(b, 42)
	if want := []byte{0x08, 0, 0, 0, 0, 0, 0x2a, 0}; string(b[:HeaderLen]) != string(want) {
		t.Fatalf("header % x, want % x", b[:HeaderLen], want)
	}
	putHeader(b, MaxVNI)
	vni, frame, err := parseHeader(b)
	if err != nil || vni != MaxVNI || len(frame) != ethHeaderLen {
		t.Fatalf("parse: %d %d %v", vni, len(frame), err)
	}
	// Reserved bits are ignored on receipt (RFC 7348 section 5).
	b[0], b[1], b[3], b[7] = 0xff, 0xff, 0xff, 0xff
	if vni, _, err := parseHeader(b); err != nil || vni != MaxVNI {
		t.Fatalf("reserved bits set: %d %v", vni, err)
	}
	b[0] = 0xf7 // no I flag
	if _, _, err := parseHeader(b); !errors.Is(err, errNoVNI) {
		t.Fatalf("without the I flag: %v", err)
	}
	putHeader(b, 1)
	if _, _, err := parseHeader(b[:HeaderLen+ethHeaderLen-1]); err == nil {
		t.Fatal("a datagram without a whole Ethernet header was taken")
	}
	if _, _, err := parseHeader(b[:5]); err == nil {
		t.Fatal("a runt was taken")
	}
	if Overhead(false) != 50 || Overhead(true) != 70 {
		t.Fatalf("overhead %d/%d, want 50/70", Overhead(false), Overhead(true))
	}
}

// tcpFrame is an Ethernet/IPv4/TCP header with the given ports.
func tcpFrame(sport, dport uint16, payload byte) []byte {
	f := make([]byte, 14+20+20+1)
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[9] = 0x45, 6
	copy(ip[12:], []byte{198, 18, 1, 1, 198, 18, 1, 2})
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	f[len(f)-1] = payload
	return f
}

func TestFlowHash(t *testing.T) {
	perSocket := make([]int, senders)
	for p := range uint16(400) {
		h := flowHash(tcpFrame(30000+p, 5201, 0))
		// One flow, one socket, whatever the payload.
		if flowHash(tcpFrame(30000+p, 5201, 0xff)) != h {
			t.Fatal("the hash depends on more than the flow")
		}
		perSocket[h%senders]++
	}
	for i, n := range perSocket {
		if n < 400/senders/2 {
			t.Errorf("400 flows: socket %d got %d (%v)", i, n, perSocket)
		}
	}
	// Frames that are not IP hash their Ethernet header.
	arp := make([]byte, 60)
	copy(arp, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06})
	arp2 := append([]byte(nil), arp...)
	arp2[11] = 2
	if flowHash(arp) == flowHash(arp2) {
		t.Error("two hosts' ARP hash alike")
	}
}

func TestFDB(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newFDB(300*time.Second, 3)
	a, b := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	m := func(i byte) mac { return mac{2, 0, 0, 0, 0, i} }
	learned := func(m mac, v netip.Addr, now time.Time) bool { ok, _ := f.learn(m, v, now); return ok }
	if !learned(m(1), a, now) || !learned(m(2), b, now) {
		t.Fatal("not learned")
	}
	if v, ok := f.lookup(m(1), now); !ok || v != a {
		t.Fatalf("lookup 1: %v %v", v, ok)
	}
	if _, ok := f.lookup(m(9), now); ok {
		t.Fatal("an unknown address was found")
	}
	// Multicast and zero sources are never learned.
	if learned(mac{1, 0, 0x5e, 0, 0, 1}, a, now) || learned(mac{}, a, now) {
		t.Fatal("a multicast or zero source was learned")
	}
	// A MAC that moves to another VTEP follows it.
	f.learn(m(1), b, now.Add(time.Second))
	if v, _ := f.lookup(m(1), now.Add(time.Second)); v != b {
		t.Fatalf("moved MAC still at %v", v)
	}
	// The bound: a fourth live address is not learned, and counted.
	f.learn(m(3), a, now)
	if ok, full := f.learn(m(4), a, now); ok || !full || f.unlearnedCount() != 1 || f.len() != 3 {
		t.Fatalf("beyond the bound: len %d, unlearned %d", f.len(), f.unlearnedCount())
	}
	// Aging: after 300 s without a frame an entry is gone, and the
	// room it leaves is taken.
	later := now.Add(301 * time.Second)
	if _, ok := f.lookup(m(2), later); ok {
		t.Fatal("an aged entry was found")
	}
	if !learned(m(4), a, later) {
		t.Fatal("no room after aging")
	}
	// Refreshing keeps an entry alive.
	f.learn(m(4), a, later.Add(200*time.Second))
	if _, ok := f.lookup(m(4), later.Add(400*time.Second)); !ok {
		t.Fatal("a refreshed entry aged out")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, args, claim string }{
		{"42 198.18.0.2", "42 198.18.0.2", "vxlan:42:4789"},
		{"  7   198.18.0.2:4789  198.18.0.3:5000 ", "7 198.18.0.2 198.18.0.3:5000", "vxlan:7:4789"},
		{"0 [2001:db8::2]:4790", "0 [2001:db8::2]:4790", "vxlan:0:4790"},
		{"16777215 2001:db8::2", "16777215 2001:db8::2", "vxlan:16777215:4789"},
		{"1 ::ffff:198.18.0.2", "1 198.18.0.2", "vxlan:1:4789"},
		{"5 group 239.0.0.1:14789", "5 group 239.0.0.1:14789", "vxlan:5:14789"},
		{"3 198.18.0.2:4790 port 4791", "3 198.18.0.2:4790 port 4791", "vxlan:3:4791"},
		{"3 198.18.0.2 port 4789", "3 198.18.0.2", "vxlan:3:4789"},
		{"5 group ff05::42 dev eth0", "5 group ff05::42 dev eth0", "vxlan:5:4789"},
	} {
		s, err := Parse(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if s.Args() != tc.args || s.Claim() != tc.claim {
			t.Errorf("%q: args %q claim %q, want %q %q", tc.in, s.Args(), s.Claim(), tc.args, tc.claim)
		}
		// What reading ctl shows makes the same cable again.
		if s2, err := Parse(s.Args()); err != nil || s2.Args() != s.Args() {
			t.Errorf("%q does not parse back: %v", s.Args(), err)
		}
	}
	for _, in := range []string{"", "42", "x 198.18.0.2", "16777216 198.18.0.2", "+1 198.18.0.2", "01 198.18.0.2",
		"1 198.18.0.2:0", "1 198.18.0.2:x", "1 name.example", "1 0.0.0.0", "1 ::", "1 224.0.0.1",
		"1 198.18.0.2 2001:db8::1", "1 198.18.0.2 198.18.0.2:4789", "1 fe80::1%eth0",
		"1 group", "1 group 198.18.0.2", "1 group 239.0.0.1 dev", "1 group 239.0.0.1 dev a b",
		"1 group 239.0.0.1 via eth0", "1 group 239.0.0.1 dev a/b", "1 198.18.0.2 port 0", "1 198.18.0.2 port 65536",
		"1 198.18.0.2 port", "1 port 4789", "1 198.18.0.2 port 04789", "1 group 239.0.0.1 port 4789"} {
		if _, err := Parse(in); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v, want EINVAL", in, err)
		}
	}
	many := "1"
	for i := range maxRemotes + 1 {
		many += " " + netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}).String()
	}
	if _, err := Parse(many[:strings.LastIndexByte(many, ' ')]); err != nil {
		t.Errorf("%d remotes: %v", maxRemotes, err)
	}
	if _, err := Parse(many); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("%d remotes: %v, want EINVAL", maxRemotes+1, err)
	}
}
