// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// openVLAN opens ipn/NAME/vlan/VID/data.
func openVLAN(t *testing.T, nd *netDir, vid string, flags int) netcore.Handle {
	t.Helper()
	return openVLANFile(t, nd, vid, "data", flags)
}

// openVLANFile opens ipn/NAME/vlan/VID/NAME.
func openVLANFile(t *testing.T, nd *netDir, vid, name string, flags int) netcore.Handle {
	t.Helper()
	v, err := nd.Lookup(rootCred, "vlan")
	if err != nil {
		t.Fatalf("Lookup(vlan): %v", err)
	}
	d, err := v.(netcore.Dir).Lookup(rootCred, vid)
	if err != nil {
		t.Fatalf("Lookup(vlan/%s): %v", vid, err)
	}
	return openFile(t, d.(netcore.Dir), name, rootCred, flags)
}

// vlan/VID/stream is an access port of VID too: what it writes reaches
// VID's access ports untagged and a trunk tagged, in order, and it reads
// VID's frames framed.
func TestVLANStream(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	tr := attachMem(t, nd, memlink.Options{})
	mustCtl(t, nd, "trunk "+memlinkNameOf(t, nd, tr)+" 10\n")
	s := openVLANFile(t, nd, "10", "stream", syscall.O_RDWR)
	a10 := openVLAN(t, nd, "10", syscall.O_RDWR)
	one := openData(t, nd, rootCred, syscall.O_RDWR)
	f1, f2 := eth(macBcast, macA, "first"), eth(macBcast, macA, "second")
	send(t, s, framed(f1, f2))
	expectPkt(t, a10, f1, "access port of 10")
	expectPkt(t, a10, f2, "access port of 10")
	expectOut(t, tr, plain(tagged(f1, 10)), "trunk, first")
	expectOut(t, tr, plain(tagged(f2, 10)), "trunk, second")
	expectEmpty(t, one, "VLAN 1")
	if row := portRow(t, nd, s.(*streamHandle).p.id); row["VLAN"] != "10" {
		t.Errorf("VLAN column of a vlan/10/stream port: %q", row["VLAN"])
	}
	g := eth(macBcast, macB, "to the stream")
	tr.InjectFrame(tagged(g, 10))
	r := waitResult(t, goRead(t.Context(), s, 70000), "stream read")
	if !bytes.Equal(r.buf, framed(g)) {
		t.Fatalf("stream read %x, want %x", r.buf, framed(g))
	}
}

// tagged is f with an 802.1Q tag of tci after its MAC addresses.
func tagged(f []byte, tci uint16) []byte {
	out := append([]byte(nil), f[:12]...)
	out = binary.BigEndian.AppendUint16(out, etherTypeVLAN)
	out = binary.BigEndian.AppendUint16(out, tci)
	return append(out, f[12:]...)
}

// Two access ports of VLAN 10 reach each other, untagged; ports of VLAN
// 20 and of VLAN 1 see nothing of it, and the other way round.
func TestVLANAccessPortsIsolated(t *testing.T) {
	for _, policy := range []string{"hub", "switch"} {
		t.Run(policy, func(t *testing.T) {
			c := newTestCore(t, "")
			nd := mkNet(t, c, rootCred, "vl", 0700)
			mustCtl(t, nd, "policy "+policy)
			a := openVLAN(t, nd, "10", syscall.O_RDWR)
			b := openVLAN(t, nd, "10", syscall.O_RDWR)
			x := openVLAN(t, nd, "20", syscall.O_RDWR)
			one := openData(t, nd, rootCred, syscall.O_RDWR)

			f := eth(macBcast, macA, "on 10")
			send(t, a, f)
			expectPkt(t, b, f, "the other port of VLAN 10")
			expectEmpty(t, x, "VLAN 20")
			expectEmpty(t, one, "VLAN 1")
			// Unicast to a learned address stays in its VLAN too.
			g := eth(macA, macB, "reply")
			send(t, b, g)
			expectPkt(t, a, g, "a, the learned destination")
			expectEmpty(t, x, "VLAN 20 after the reply")
			send(t, x, eth(macBcast, macC, "on 20"))
			send(t, one, eth(macBcast, macC, "on 1"))
			expectEmpty(t, a, "a after VLANs 20 and 1 spoke")
			expectEmpty(t, b, "b after VLANs 20 and 1 spoke")
			if row := portRow(t, nd, portID(t, a)); row["VLAN"] != "10" {
				t.Errorf("VLAN column of a vlan/10/data port: %q", row["VLAN"])
			}
			if row := portRow(t, nd, portID(t, one)); row["VLAN"] != "1" {
				t.Errorf("VLAN column of a data port: %q", row["VLAN"])
			}
		})
	}
}

// A trunk gets the frames of the VLANs it carries tagged, and those of its
// access VLAN untagged; what it sends tagged reaches that VLAN's access
// ports untagged; a tag it does not carry is dropped and counted, a
// priority tag (VID 0) is its access VLAN.
func TestVLANTrunkTagging(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	tr := attachMem(t, nd, memlink.Options{})
	name := memlinkNameOf(t, nd, tr)
	mustCtl(t, nd, "trunk "+name+" 10,20\n")
	a10 := openVLAN(t, nd, "10", syscall.O_RDWR)
	a30 := openVLAN(t, nd, "30", syscall.O_RDWR)
	one := openData(t, nd, rootCred, syscall.O_RDWR)

	f := eth(macBcast, macA, "from 10")
	send(t, a10, f)
	expectOut(t, tr, plain(tagged(f, 10)), "trunk, a frame of VLAN 10")
	expectEmpty(t, one, "VLAN 1")

	g := eth(macBcast, macB, "from 1")
	send(t, one, g)
	expectOut(t, tr, plain(g), "trunk, a frame of its access VLAN")
	send(t, a30, eth(macBcast, macB, "from 30"))
	expectNoOut(t, tr, "a frame of VLAN 30")

	h := eth(macBcast, macC, "tagged 10")
	tr.InjectFrame(tagged(h, 0x2000|10)) // priority 1
	expectPktWait(t, a10, h, "access port of 10, untagged")
	expectEmpty(t, one, "VLAN 1 after a frame tagged 10")

	tr.InjectFrame(tagged(h, 30))
	tr.InjectFrame(tagged(h, 4095))
	pr := eth(macBcast, macC, "priority")
	tr.InjectFrame(tagged(pr, 0x6000))
	expectPktWait(t, one, pr, "priority-tagged frame, untagged on VLAN 1")
	expectEmpty(t, a30, "VLAN 30: the trunk does not carry it")
	if s := statsOf(t, nd); s["vlan-drops"] != 2 {
		t.Errorf("vlan-drops %d, want 2 (VID 30 and 4095)", s["vlan-drops"])
	}
	if row := linkRow(t, nd, name); row["VLAN"] != "1+10,20" {
		t.Errorf("VLAN column of the trunk: %q, want 1+10,20", row["VLAN"])
	}
	// A second trunk gets a frame tagged as it came, priority kept.
	tr2 := attachMem(t, nd, memlink.Options{})
	mustCtl(t, nd, "vlan "+memlinkNameOf(t, nd, tr2)+" 20\ntrunk "+memlinkNameOf(t, nd, tr2)+" all\n")
	tr.InjectFrame(tagged(h, 0x2000|10))
	expectOut(t, tr2, plain(tagged(h, 0x2000|10)), "second trunk")
	expectPktWait(t, a10, h, "access port of 10, again")
	// From its access VLAN 20 to the first trunk: tagged 20.
	k := eth(macBcast, macC, "from tr2")
	tr2.InjectFrame(k)
	expectOut(t, tr, plain(tagged(k, 20)), "first trunk, a frame of VLAN 20")
	expectNoOut(t, tr2, "the sender")
}

// expectPktWait waits for a packet that a link's pump delivers.
func expectPktWait(t *testing.T, h netcore.Handle, want []byte, who string) {
	t.Helper()
	r := waitResult(t, goRead(t.Context(), h, 70000), who)
	if r.err != nil || !bytes.Equal(r.buf, want) {
		t.Fatalf("%s: got %x (%v), want %x", who, r.buf, r.err, want)
	}
}

// A frame with offloads keeps them across a tag: the offsets of the
// virtio-net header move with the headers, for a link that takes
// offloads, and a link that does not gets tagged segments.
func TestVLANTagKeepsOffloads(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	from := attachMem(t, nd, memlink.Options{Caps: link.CapGSO, MTU: 1500})
	gso := attachMem(t, nd, memlink.Options{Caps: link.CapGSO, MTU: 1500})
	wire := attachMem(t, nd, memlink.Options{MTU: 1500})
	mustCtl(t, nd, "vlan "+memlinkNameOf(t, nd, from)+" 10\ntrunk "+memlinkNameOf(t, nd, gso)+" 10\ntrunk "+
		memlinkNameOf(t, nd, wire)+" 10\n")
	raw := superFrame(t, 4000, 1000)
	if !from.Inject(raw) {
		t.Fatal("inject refused")
	}
	got := expectOut(t, gso, nil, "GSO trunk")
	h, wantH := vnet.Decode(got), vnet.Decode(raw)
	wantH.CsumStart += vlanTagLen
	wantH.HdrLen += vlanTagLen
	if h != wantH || !bytes.Equal(got[vnet.HdrLen:], tagged(raw[vnet.HdrLen:], 10)) {
		t.Fatalf("GSO trunk got header %+v and a frame of %d bytes, want %+v and the frame tagged", h, len(got), wantH)
	}
	segs, err := vnet.Segment(h, got[vnet.HdrLen:])
	if err != nil || len(segs) != 4 {
		t.Fatalf("the tagged frame does not segment: %d, %v", len(segs), err)
	}
	for i, want := range segs {
		seg := expectOut(t, wire, nil, "trunk without GSO")
		if !bytes.Equal(seg[vnet.HdrLen:], want) {
			t.Fatalf("segment %d differs from the tagged frame's", i)
		}
		p := gopacket.NewPacket(seg[vnet.HdrLen:], layers.LayerTypeEthernet, gopacket.Default)
		if d := p.Layer(layers.LayerTypeDot1Q); d == nil || d.(*layers.Dot1Q).VLANIdentifier != 10 || p.Layer(layers.LayerTypeTCP) == nil {
			t.Fatalf("segment %d is not TCP in VLAN 10", i)
		}
	}
}

// The switch learns per (VLAN, MAC): one address on two VLANs is two
// entries, and a unicast never leaves its VLAN for the port that has the
// address in another.
func TestVLANSwitchLearnsPerVLAN(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	mustCtl(t, nd, "policy switch")
	a10 := openVLAN(t, nd, "10", syscall.O_RDWR)
	b10 := openVLAN(t, nd, "10", syscall.O_RDWR)
	a20 := openVLAN(t, nd, "20", syscall.O_RDWR)
	b20 := openVLAN(t, nd, "20", syscall.O_RDWR)
	// macA is at a10 in VLAN 10 and at a20 in VLAN 20.
	send(t, a10, eth(macBcast, macA, "hello 10"))
	expectPkt(t, b10, eth(macBcast, macA, "hello 10"), "b10")
	send(t, a20, eth(macBcast, macA, "hello 20"))
	expectPkt(t, b20, eth(macBcast, macA, "hello 20"), "b20")
	f := eth(macA, macB, "to A in 10")
	send(t, b10, f)
	expectPkt(t, a10, f, "A in VLAN 10")
	expectEmpty(t, a20, "A in VLAN 20")
	g := eth(macA, macB, "to A in 20")
	send(t, b20, g)
	expectPkt(t, a20, g, "A in VLAN 20")
	expectEmpty(t, a10, "A in VLAN 10")
}

// Untouched, a network carries tagged frames as they are, between ports
// that are all of VLAN 1, as before VLANs existed; pcap records them as
// they are.
func TestVLANUntouchedCarriesTags(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	a := openData(t, nd, rootCred, syscall.O_RDWR)
	b := openData(t, nd, rootCred, syscall.O_RDWR)
	f := tagged(eth(macBcast, macA, "tagged"), 10)
	send(t, a, f)
	expectPkt(t, b, f, "b")
	send(t, a, []byte("short"))
	expectPkt(t, b, []byte("short"), "b, a packet shorter than Ethernet's header")
	if s := statsOf(t, nd); s["vlan-drops"] != 0 {
		t.Errorf("vlan-drops %d", s["vlan-drops"])
	}
}

// A port joining a VLAN (vlan/VID/data needs only r or w) does not change
// what the other ports exchange: tagged frames still cross between
// ports without a VLAN setting as they are, and reach no port with one.
func TestVLANFilePortKeepsOthersTags(t *testing.T) {
	for _, policy := range []string{"hub", "switch"} {
		t.Run(policy, func(t *testing.T) {
			c := newTestCore(t, "")
			nd := mkNet(t, c, rootCred, "vl", 0700)
			mustCtl(t, nd, "policy "+policy)
			a := openData(t, nd, rootCred, syscall.O_RDWR)
			b := openData(t, nd, rootCred, syscall.O_RDWR)
			r5 := openVLAN(t, nd, "5", syscall.O_RDONLY)
			r10 := openVLAN(t, nd, "10", syscall.O_RDONLY)
			f := tagged(eth(macBcast, macA, "tagged"), 10)
			send(t, a, f)
			expectPkt(t, b, f, "b")
			expectEmpty(t, r10, "vlan/10 (a does not carry VLAN 10)")
			expectEmpty(t, r5, "vlan/5")
			g := tagged(eth(macA, macB, "back"), 10)
			send(t, b, g)
			expectPkt(t, a, g, "a")
			if s := statsOf(t, nd); s["vlan-drops"] != 0 {
				t.Errorf("vlan-drops %d", s["vlan-drops"])
			}
		})
	}
}

// ctl: vlan and trunk lines are checked whole before any is applied;
// reading ctl shows them in the form that sets them.
func TestVLANCtl(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	l := attachMem(t, nd, memlink.Options{})
	name := memlinkNameOf(t, nd, l)
	h := openData(t, nd, rootCred, syscall.O_RDWR)
	id := portID(t, h)
	for _, tc := range []struct {
		line  string
		errno syscall.Errno
	}{
		{"vlan " + name + " 0", syscall.EINVAL},
		{"vlan " + name + " 4095", syscall.EINVAL},
		{"vlan " + name + " 010", syscall.EINVAL},
		{"vlan " + name + " x", syscall.EINVAL},
		{"vlan " + name, syscall.EINVAL},
		{"vlan " + name + " 10 20", syscall.EINVAL},
		{"trunk " + name + " 10,,20", syscall.EINVAL},
		{"trunk " + name + " 20-10", syscall.EINVAL},
		{"trunk " + name + " 1-4095", syscall.EINVAL},
		{"trunk " + name + " some", syscall.EINVAL},
		{"vlan #0 10", syscall.EINVAL},
		{"vlan memsvc:0 10", syscall.EINVAL},
		{"vlan memsvc:x 10", syscall.EINVAL},
		{"vlan nokind:x 10", syscall.EINVAL},
		{"vlan #999 10", syscall.ENODEV},
		{"vlan nosuch 10", syscall.ENODEV},
		{"trunk mem:nosuch all", syscall.ENODEV},
		// Atomic: the good first line is not applied either.
		{"vlan " + name + " 10\nvlan nosuch 10", syscall.ENODEV},
		{"vlan " + name + " 10\ndetach " + name + "\nvlan " + name + " 20", syscall.ENODEV},
	} {
		if err := ctl(t, nd, rootCred, tc.line); !errors.Is(err, tc.errno) {
			t.Errorf("ctl %q: %v, want %v", tc.line, err, tc.errno)
		}
	}
	if text := readAll(t, nd, "ctl"); strings.Contains(text, "\nvlan ") || strings.Contains(text, "\ntrunk ") {
		t.Fatalf("refused writes left VLAN settings:\n%s", text)
	}
	nd.n.mu.Lock()
	on := nd.n.vlanOn
	nd.n.mu.Unlock()
	if on {
		t.Fatal("refused writes turned VLANs on")
	}
	// A line may name what an earlier line of the write attaches.
	memlink.Prepare("vlnew", memlink.Options{})
	mustCtl(t, nd, "mem vlnew\nvlan vlnew 30\ntrunk mem:vlnew 40-50,7\nvlan "+name+" 10\ntrunk "+name+
		" 20,30\nvlan memsvc:7 12\ntrunk memsvc:7 all\nvlan #"+strconv.Itoa(id)+" 5\n")
	t.Cleanup(func() { memlink.Far("vlnew").Vanish() })
	text := readAll(t, nd, "ctl")
	for _, want := range []string{"vlan " + name + " 10\ntrunk " + name + " 20,30\n", "vlan vlnew 30\ntrunk vlnew 7,40-50\n",
		"vlan #" + strconv.Itoa(id) + " 5\n", "vlan memsvc:7 12\ntrunk memsvc:7 all\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("ctl lacks %q:\n%s", want, text)
		}
	}
	if row := linkRow(t, nd, name); row["VLAN"] != "10+20,30" {
		t.Errorf("VLAN column %q, want 10+20,30", row["VLAN"])
	}
	// Back to the defaults: no lines, and the frame path as untouched.
	mustCtl(t, nd, "vlan "+name+" 1\ntrunk "+name+" none\nvlan vlnew 1\ntrunk vlnew none\nvlan #"+strconv.Itoa(id)+" 1\n")
	text = readAll(t, nd, "ctl")
	if strings.Contains(text, "\nvlan "+name) || strings.Contains(text, "\nvlan vlnew") || strings.Contains(text, "\ntrunk "+name) || strings.Contains(text, "\ntrunk vlnew") {
		t.Errorf("defaults still shown:\n%s", text)
	}
	nd.n.mu.Lock()
	on = nd.n.vlanOn
	nd.n.mu.Unlock()
	if on {
		t.Error("VLANs still on with every port at the default")
	}
}

// A persistent network keeps the VLAN settings of its attachments and of
// VDE port numbers across a restart.
func TestVLANPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c1 := newTestCore(t, path)
	nd := mkNet(t, c1, rootCred, "vlkeep", 0700)
	memlink.Prepare("vlp1", memlink.Options{})
	mustCtl(t, nd, "persist on\nmem vlp1\nvlan vlp1 10\ntrunk vlp1 20-22\nvlan memsvc:3 30\n")
	want := readAll(t, nd, "ctl")
	c1.Close() // the link is let go, kept: the next start takes it again

	c2 := newTestCore(t, path)
	n2, err := ipnRoot(t, c2).Lookup(rootCred, "vlkeep")
	if err != nil {
		t.Fatal(err)
	}
	nd2 := n2.(*netDir)
	if got := readAll(t, nd2, "ctl"); got != want {
		t.Fatalf("ctl after a restart:\n%s\nwant:\n%s", got, want)
	}
	if row := linkRow(t, nd2, "vlp1"); row["VLAN"] != "10+20-22" {
		t.Errorf("VLAN column after a restart: %q", row["VLAN"])
	}
	// The restored trunk carries VLAN 20 tagged at once.
	a := openVLAN(t, nd2, "20", syscall.O_WRONLY)
	f := eth(macBcast, macA, "after restart")
	send(t, a, f)
	expectOut(t, memlink.Far("vlp1"), plain(tagged(f, 20)), "restored trunk")
}

// pcap records a frame outside VLAN 1 with its tag, and one of VLAN 1
// untagged, whatever the form it came in.
func TestVLANPcap(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	tr := attachMem(t, nd, memlink.Options{})
	mustCtl(t, nd, "trunk "+memlinkNameOf(t, nd, tr)+" 1,10\n")
	cap := openFile(t, nd, "pcap", rootCred, syscall.O_RDONLY)
	a := openVLAN(t, nd, "10", syscall.O_RDWR)
	f := eth(macBcast, macA, "on 10")
	send(t, a, f)
	g := eth(macBcast, macB, "tagged 1")
	tr.InjectFrame(tagged(g, 1))
	expectOut(t, tr, nil, "trunk")

	var buf []byte
	for want := 24 + 2*16 + len(f) + 4 + len(g); len(buf) < want; {
		r := waitResult(t, goRead(context.Background(), cap, 65536), "pcap read")
		if r.err != nil {
			t.Fatal(r.err)
		}
		buf = append(buf, r.buf...)
	}
	rd, err := pcapgo.NewReader(bytes.NewReader(buf))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]byte{tagged(f, 10), g} {
		got, _, err := rd.ReadPacketData()
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pcap record %d: %x, want %x", i, got, want)
		}
	}
}

// ls vlan shows VLAN 1 and the VLANs in use; any VLAN can be looked up.
func TestVLANDirectory(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	openVLAN(t, nd, "10", syscall.O_RDONLY)
	mustCtl(t, nd, "vlan memsvc:2 30\ntrunk memsvc:2 4094\n")
	v, _ := nd.Lookup(rootCred, "vlan")
	var names []string
	for _, e := range v.(netcore.Dir).List(rootCred) {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, " "); got != "1 10 30 4094" {
		t.Errorf("ls vlan: %s", got)
	}
	for _, bad := range []string{"0", "4095", "01", "x", ""} {
		if _, err := v.(netcore.Dir).Lookup(rootCred, bad); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("lookup vlan/%s: %v", bad, err)
		}
	}
}

// A VID's directory and files keep their IDs from lookup to lookup (so
// their inodes), and no two VIDs or networks share one, while nothing is
// kept for a VID looked up.
func TestVLANDirectoryIDs(t *testing.T) {
	c := newTestCore(t, "")
	seen := map[uint64]string{}
	for _, name := range []string{"vlida", "vlidb"} {
		nd := mkNet(t, c, rootCred, name, 0700)
		v, _ := nd.Lookup(rootCred, "vlan")
		for _, vid := range []string{"1", "2", "4094"} {
			ids := func() []uint64 {
				n, err := v.(netcore.Dir).Lookup(rootCred, vid)
				if err != nil {
					t.Fatal(err)
				}
				out := []uint64{n.ID()}
				for _, e := range n.(netcore.Dir).List(rootCred) {
					out = append(out, e.Node.ID())
				}
				return out
			}
			first, again := ids(), ids()
			if !slices.Equal(first, again) {
				t.Fatalf("%s vlan/%s: IDs %v, then %v", name, vid, first, again)
			}
			for _, id := range first {
				if other, ok := seen[id]; ok {
					t.Fatalf("%s vlan/%s: ID %d is %s's too", name, vid, id, other)
				}
				seen[id] = name + " vlan/" + vid
			}
		}
	}
}

// Listing vlan walks the trunks' VIDs without the network's lock, which
// delivery needs.
func TestVLANDirectoryWalksUnlocked(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	mustCtl(t, nd, "trunk memsvc:2 7,4000\n")
	walked := false
	testHookVLANList = func(n *Network) {
		walked = true
		if !n.mu.TryLock() {
			t.Error("List walks the settings holding the network's lock")
			return
		}
		n.mu.Unlock()
	}
	t.Cleanup(func() { testHookVLANList = nil })
	v, _ := nd.Lookup(rootCred, "vlan")
	var names []string
	for _, e := range v.(netcore.Dir).List(rootCred) {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, " "); got != "1 7 4000" || !walked {
		t.Errorf("ls vlan: %s (walked %v)", got, walked)
	}
}

// A service's client with port number N (a VDE port number) has the
// setting kept for SERVICE:N, whether written before it joined or after.
func TestVLANServicePortNumbers(t *testing.T) {
	nd, s := servedNet(t, rootCred, "vlsvc", 0700)
	mustCtl(t, nd, "vlan memsvc:5 10\n")
	l5 := memLink(t, "vlsvc-5")
	leave5, err := s.net.Join(l5, link.Member{Name: "five", Recv: true, Send: true, Number: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer leave5()
	l6 := memLink(t, "vlsvc-6")
	leave6, err := s.net.Join(l6, link.Member{Name: "six", Recv: true, Send: true, Number: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer leave6()
	mustCtl(t, nd, "trunk memsvc:6 10\n")
	a10 := openVLAN(t, nd, "10", syscall.O_RDWR)
	f := eth(macBcast, macA, "to VLAN 10")
	send(t, a10, f)
	expectOut(t, l5, plain(f), "port number 5, access port of 10")
	expectOut(t, l6, plain(tagged(f, 10)), "port number 6, trunk of 10")
	if !strings.Contains(readAll(t, nd, "ports"), " five 10\n") {
		t.Errorf("ports:\n%s", readAll(t, nd, "ports"))
	}
}

// A frame an impairment holds leaves in the VLAN form of its port: a
// delayed trunk still gets it tagged.
func TestVLANImpairedTrunk(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vl", 0700)
	tr := attachMem(t, nd, memlink.Options{})
	name := memlinkNameOf(t, nd, tr)
	mustCtl(t, nd, "trunk "+name+" 10\nimpair "+name+" delay 1ms\n")
	a10 := openVLAN(t, nd, "10", syscall.O_RDWR)
	f := eth(macBcast, macA, "held, then tagged")
	send(t, a10, f)
	expectOut(t, tr, plain(tagged(f, 10)), "impaired trunk")
}

// A frame that its tag would make longer than 65535 bytes is a drop at a
// trunk file port, data or stream, counted; one tag shorter crosses.
func TestVLANTagBeyondMaxMTUDrops(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "vlbig", 0700)
	mustCtl(t, nd, "mtu 65535\nqlen 4\n")
	w := openVLAN(t, nd, "10", syscall.O_WRONLY)
	d := openData(t, nd, rootCred, syscall.O_RDONLY)
	s := openStream(t, nd, rootCred, syscall.O_RDONLY)
	dp, sp := d.(*dataHandle).p, s.(*streamHandle).p
	mustCtl(t, nd, fmt.Sprintf("trunk #%d 10\ntrunk #%d 10\n", dp.id, sp.id))
	big := eth(macBcast, macA, string(bytes.Repeat([]byte{'x'}, MaxMTU-ethHeaderLen)))
	send(t, w, big)
	expectEmpty(t, d, "data trunk")
	if k, err := s.Read(context.Background(), make([]byte, 1<<17), 0, true); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("stream trunk read %d, %v; want EAGAIN", k, err)
	}
	if dp.drops.Load() != 1 || sp.drops.Load() != 1 {
		t.Errorf("drops: data %d, stream %d; want 1 each", dp.drops.Load(), sp.drops.Load())
	}
	fits := big[:MaxMTU-vlanTagLen]
	send(t, w, fits)
	expectPkt(t, d, tagged(fits, 10), "data trunk")
	buf := make([]byte, 1<<17)
	if k, err := s.Read(context.Background(), buf, 0, true); err != nil || k != streamLenSize+MaxMTU {
		t.Errorf("stream trunk read %d, %v; want %d", k, err, streamLenSize+MaxMTU)
	}
}
