// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// These tests drive the link seam with in-memory links (package memlink):
// the pump, the sender's segmentation, drops, detach-when-gone and
// lossless waits, without root or kernel devices.

var memSeq atomic.Int32

// attachMem attaches an in-memory link with options o and returns its far
// end.
func attachMem(t *testing.T, nd *netDir, o memlink.Options) *memlink.Link {
	t.Helper()
	name := fmt.Sprintf("m%d", memSeq.Add(1)) // memlink's names are global to the test binary
	memlink.Prepare(name, o)
	mustCtl(t, nd, "mem "+name+"\n")
	l := memlink.Far(name)
	if l == nil {
		t.Fatalf("mem %s: no far end after attach", name)
	}
	t.Cleanup(func() { l.Vanish() })
	return l
}

// linkRow returns the ports row of the link port called name.
func linkRow(t *testing.T, nd *netDir, name string) map[string]string {
	t.Helper()
	nd.n.mu.Lock()
	p := nd.n.linkPort(nil, name)
	nd.n.mu.Unlock()
	if p == nil {
		t.Fatalf("no link port %s:\n%s", name, readAll(t, nd, "ports"))
	}
	return portRow(t, nd, p.id)
}

func expectOut(t *testing.T, l *memlink.Link, want []byte, what string) []byte {
	t.Helper()
	select {
	case got := <-l.Out:
		if want != nil && !bytes.Equal(got, want) {
			t.Fatalf("%s: link got %x, want %x", what, got, want)
		}
		return got
	case <-time.After(waitLimit):
		t.Fatalf("%s: nothing reached the link within %v", what, waitLimit)
		return nil
	}
}

func expectNoOut(t *testing.T, l *memlink.Link, what string) {
	t.Helper()
	select {
	case got := <-l.Out:
		t.Fatalf("%s: link got %x, want nothing", what, got)
	case <-time.After(quiet):
	}
}

func plain(frame []byte) []byte { return append(make([]byte, vnet.HdrLen), frame...) }

// The pump reads frames from a link into the network; a file port's
// packets reach the link with a plain header; the ports table and ctl
// show the link, and its counters count.
func TestLinkPumpAndSend(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "lk", 0700)
	l := attachMem(t, nd, memlink.Options{})
	h := openData(t, nd, rootCred, syscall.O_RDWR)

	frame := eth(mac{2, 0, 0, 0, 0, 2}, mac{2, 0, 0, 0, 0, 1}, "from the link")
	if !l.InjectFrame(frame) {
		t.Fatal("inject refused")
	}
	got := waitResult(t, goRead(t.Context(), h, 1500), "file read")
	if !bytes.Equal(got.buf, frame) {
		t.Fatalf("file port got %q, want %q", got.buf, frame)
	}
	send(t, h, []byte("to the link"))
	expectOut(t, l, plain([]byte("to the link")), "file port's packet")

	row := linkRow(t, nd, memlinkName(t, nd))
	if row["KIND"] != "mem" || row["UID"] != "0" || row["PID"] != "0" || row["MODE"] != "rw" ||
		row["RXPKTS"] != "1" || row["TXPKTS"] != "1" {
		t.Errorf("link row %v", row)
	}
	if !strings.Contains(readAll(t, nd, "ctl"), "\nmem "+memlinkName(t, nd)+"\n") {
		t.Errorf("ctl does not list the link:\n%s", readAll(t, nd, "ctl"))
	}
}

// memlinkName is the name of the (only) link port of nd.
func memlinkName(t *testing.T, nd *netDir) string {
	t.Helper()
	nd.n.mu.Lock()
	defer nd.n.mu.Unlock()
	for _, p := range nd.n.portList {
		if p.link != nil {
			return p.name
		}
	}
	t.Fatal("no link port")
	return ""
}

// superFrame is a TCP segment of several MSS with its checksum left to
// the receiver, as a TAP with TSO hands it over, behind its virtio-net
// header.
func superFrame(t *testing.T, payload int, mss uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.IPv4(198, 18, 0, 1), DstIP: net.IPv4(198, 18, 0, 2)}
	tcp := &layers.TCP{SrcPort: 4000, DstPort: 5000, Seq: 1, Ack: 1, ACK: true, Window: 512}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(bytes.Repeat([]byte{0x5a}, payload)))
	if err != nil {
		t.Fatal(err)
	}
	frame := buf.Bytes()
	// Leave the checksum to the receiver: the field holds the pseudo-header
	// sum only. Segment recomputes it from scratch over the data anyway,
	// so any value works here; zero keeps it simple.
	frame[14+20+16], frame[14+20+17] = 0, 0
	hdr := vnet.Hdr{Flags: vnet.FlagNeedsCsum, GSOType: vnet.GSOTCPv4, HdrLen: 14 + 20 + 20, GSOSize: mss,
		CsumStart: 14 + 20, CsumOffset: 16}
	raw := make([]byte, vnet.HdrLen+len(frame))
	hdr.Encode(raw)
	copy(raw[vnet.HdrLen:], frame)
	return raw
}

// A frame with offloads crosses as it came to a link that takes them
// (CapGSO), and is cut into plain frames for a link that does not and for
// file ports; each of those frames fits the MSS.
func TestLinkSegmentsForLinksWithoutGSO(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "gso", 0700)
	from := attachMem(t, nd, memlink.Options{Caps: link.CapGSO, MTU: 1500})
	gso := attachMem(t, nd, memlink.Options{Caps: link.CapGSO, MTU: 1500})
	wire := attachMem(t, nd, memlink.Options{MTU: 1500})
	h := openData(t, nd, rootCred, syscall.O_RDONLY)

	raw := superFrame(t, 4000, 1000)
	if !from.Inject(raw) {
		t.Fatal("inject refused")
	}
	expectOut(t, gso, raw, "GSO link")
	for i := 0; i < 4; i++ {
		seg := expectOut(t, wire, nil, "link without GSO")
		if !bytes.Equal(seg[:vnet.HdrLen], make([]byte, vnet.HdrLen)) {
			t.Fatalf("segment %d has header %x, want a plain (zero) one", i, seg[:vnet.HdrLen])
		}
		if len(seg)-vnet.HdrLen != 14+20+20+1000 {
			t.Fatalf("segment %d is %d bytes", i, len(seg)-vnet.HdrLen)
		}
		pkt := gopacket.NewPacket(seg[vnet.HdrLen:], layers.LayerTypeEthernet, gopacket.Default)
		if pkt.ErrorLayer() != nil || pkt.Layer(layers.LayerTypeTCP) == nil {
			t.Fatalf("segment %d does not decode as TCP", i)
		}
		file := waitResult(t, goRead(t.Context(), h, 65536), "file read")
		if !bytes.Equal(file.buf, seg[vnet.HdrLen:]) {
			t.Fatalf("file port's segment %d differs from the link's", i)
		}
	}
	expectNoOut(t, wire, "after the 4 segments")
	if row := linkRow(t, nd, memlinkNameOf(t, nd, wire)); row["RXPKTS"] != "4" {
		t.Errorf("link without GSO: RXPKTS %s, want 4 (the segments)", row["RXPKTS"])
	}
}

// memlinkNameOf finds the port name of far end l.
func memlinkNameOf(t *testing.T, nd *netDir, l *memlink.Link) string {
	t.Helper()
	nd.n.mu.Lock()
	defer nd.n.mu.Unlock()
	for _, p := range nd.n.portList {
		if p.link == l {
			return p.name
		}
	}
	t.Fatal("far end not attached")
	return ""
}

// A link that does not take a frame (its peer is slow, or the frame is
// longer than its MTU allows) counts a drop; the network goes on and
// other ports still get the frame.
func TestLinkDrops(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "drops", 0700)
	slow := attachMem(t, nd, memlink.Options{Queue: 2, MTU: 100})
	h := openData(t, nd, rootCred, syscall.O_RDWR)
	other := openData(t, nd, rootCred, syscall.O_RDONLY)
	for i := 0; i < 5; i++ {
		send(t, h, []byte{byte(i)})
	}
	send(t, h, make([]byte, 100+ethHeaderLen+vlanTagLen+1)) // over the link's MTU
	name := memlinkNameOf(t, nd, slow)
	if row := linkRow(t, nd, name); row["RXPKTS"] != "2" || row["DROPS"] != "4" {
		t.Errorf("slow link: %v, want RXPKTS 2 and DROPS 4 (3 full, 1 too long)", row)
	}
	if st := statsOf(t, nd); st["drops"] != 4 {
		t.Errorf("network drops %d, want 4", st["drops"])
	}
	for i := 0; i < 5; i++ {
		expectPkt(t, other, []byte{byte(i)}, "file port beside the slow link")
	}
}

// A link that goes away (its Read fails) is detached by itself: its port
// and ctl line go, its claim is free again, and the network serves on.
func TestLinkGoneIsDetached(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "gone", 0700)
	l := attachMem(t, nd, memlink.Options{})
	name := memlinkNameOf(t, nd, l)
	l.Vanish()
	deadline := time.Now().Add(waitLimit)
	for strings.Contains(readAll(t, nd, "ports"), " mem ") {
		if time.Now().After(deadline) {
			t.Fatalf("vanished link still a port:\n%s", readAll(t, nd, "ports"))
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case <-l.Closed():
	case <-time.After(waitLimit):
		t.Fatal("vanished link not closed")
	}
	if strings.Contains(readAll(t, nd, "ctl"), "mem "+name) {
		t.Error("ctl still lists the vanished link")
	}
	// The name is free again once the link is closed and its claim let
	// go, which release does after the port has left.
	for err := ctl(t, nd, rootCred, "mem "+name+"\n"); err != nil; err = ctl(t, nd, rootCred, "mem "+name+"\n") {
		if !errors.Is(err, syscall.EEXIST) || time.Now().After(deadline) {
			t.Fatalf("mem %s after it vanished: %v", name, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// Under lossless on, a link's frame waits (the pump blocks) until every
// file receiver has room: none is dropped, none is sent twice.
func TestLinkWaitsForLosslessReceivers(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "lossless", 0700)
	mustCtl(t, nd, "qlen 1\nlossless on\n")
	l := attachMem(t, nd, memlink.Options{})
	h := openData(t, nd, rootCred, syscall.O_RDONLY)
	if !l.InjectFrame([]byte("first")) {
		t.Fatal("inject refused")
	}
	// The pump takes the second frame and then waits in the network, so
	// a third inject blocks until the reader makes room twice.
	if !l.InjectFrame([]byte("second")) {
		t.Fatal("inject refused")
	}
	third := make(chan bool, 1)
	go func() { third <- l.InjectFrame([]byte("third")) }()
	select {
	case <-third:
		t.Fatal("third frame taken while the receiver is full: the pump did not wait")
	case <-time.After(quiet):
	}
	for _, want := range []string{"first", "second", "third"} {
		got := waitResult(t, goRead(t.Context(), h, 100), "read")
		if string(got.buf) != want {
			t.Fatalf("read %q, want %q", got.buf, want)
		}
	}
	if st := statsOf(t, nd); st["drops"] != 0 {
		t.Errorf("drops %d under lossless", st["drops"])
	}
}

// Detach closes the link (not kept), rmdir closes every link, and the
// daemon's exit keeps the links of a persistent network.
func TestLinkDetachRmdirAndKeep(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "det", 0700)
	a := attachMem(t, nd, memlink.Options{})
	b := attachMem(t, nd, memlink.Options{})
	mustCtl(t, nd, "detach mem "+memlinkNameOf(t, nd, a)+"\n")
	select {
	case <-a.Closed():
	default:
		t.Fatal("detach did not close the link")
	}
	if a.Kept() {
		t.Error("detach kept the link")
	}
	if err := ctl(t, nd, rootCred, "detach tap "+memlinkNameOf(t, nd, b)+"\n"); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("detach of a mem link as a tap: %v, want ENODEV", err)
	}
	if err := ctl(t, nd, rootCred, "detach nosuchkind x\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("detach of an unknown kind: %v, want EINVAL", err)
	}
	if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(rootCred, "det"); err != nil {
		t.Fatal(err)
	}
	<-b.Closed()

	path := filepath.Join(t.TempDir(), "state.json")
	c2, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	nd2 := mkNet(t, c2, rootCred, "keep", 0700)
	mustCtl(t, nd2, "persist on\n")
	k := attachMem(t, nd2, memlink.Options{})
	c2.Close()
	<-k.Closed()
	if !k.Kept() {
		t.Error("the daemon's exit did not keep a persistent network's link")
	}
	// The state file names the link with its kind, as interfaces are.
	b2, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Networks []struct {
			Ifaces []map[string]any `json:"ifaces"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(b2, &doc); err != nil || len(doc.Networks) != 1 || len(doc.Networks[0].Ifaces) != 1 ||
		doc.Networks[0].Ifaces[0]["kind"] != "mem" {
		t.Fatalf("state file %s (%v)", b2, err)
	}
	c3 := newTestCore(t, path)
	nd3 := ipnRoot(t, c3)
	node, err := nd3.Lookup(rootCred, "keep")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readAll(t, node.(*netDir), "ctl"), "\nmem ") {
		t.Errorf("the mem link was not restored:\n%s", readAll(t, node.(*netDir), "ctl"))
	}
}

// A state file written before links existed (tap and grab with their
// "created" and "netns" fields) still reads: kind and name are found, and
// the fields reach the tap kind.
func TestStateFileOfInterfacesStillReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	old := `{"networks":[{"name":"old","uid":0,"gid":0,"mode":448,
	  "settings":{"policy":"hub","mtu":65535,"qlen":256,"lossless":false,"maxports":1024,"descr":"","persist":true},
	  "ifaces":[{"kind":"mem","name":"m0"},{"kind":"tap","name":"bad/name","created":true,"netns":"/run/netns/x"}]}]}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newTestCore(t, path)
	node, err := ipnRoot(t, c).Lookup(rootCred, "old")
	if err != nil {
		t.Fatal(err)
	}
	txt := readAll(t, node.(*netDir), "ctl")
	if !strings.Contains(txt, "\nmem m0\n") || strings.Contains(txt, "tap ") {
		t.Errorf("restored ctl:\n%s\nwant mem m0 restored and the bad tap left out", txt)
	}
}
