// SPDX-License-Identifier: BSD-3-Clause

package vxlan

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore/link"
)

// freeUDPPort returns a UDP port nothing is bound to on loopback now.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// openCable attaches "vxlan ARGS" and lets it go at cleanup.
func openCable(t testing.TB, args string) *cable {
	t.Helper()
	s, err := Parse(args)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Open(link.Env{Network: "test", MTU: 65535, NS: netns.Self(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(false) })
	return l.(*cable)
}

// readFrame reads one frame from c within a few seconds.
func readFrame(t *testing.T, c *cable) (vnet.Hdr, []byte) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		p := make([]byte, vnet.HdrLen+70000)
		n, err := c.Read(p)
		done <- result{p[:n], err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("read: %v", r.err)
		}
		return vnet.Decode(r.b), r.b[vnet.HdrLen:]
	case <-time.After(5 * time.Second):
		t.Fatal("no frame within 5 s")
	}
	return vnet.Hdr{}, nil
}

func ethFrame(dst, src byte, size int) []byte {
	f := make([]byte, size)
	copy(f, []byte{2, 0, 0, 0, 0, dst, 2, 0, 0, 0, 0, src, 0x88, 0xb5})
	for i := 14; i < size; i++ {
		f[i] = byte(i)
	}
	return f
}

func plain(f []byte) []byte { return append(make([]byte, vnet.HdrLen), f...) }

// Two cables on loopback, each the other's remote: frames cross both
// ways with their VNI, replies go to the learned VTEP, and the MTU is
// loopback's less 50.
func TestCablesOnLoopback(t *testing.T) {
	pa, pb := freeUDPPort(t), freeUDPPort(t)
	a := openCable(t, fmt.Sprintf("7 127.0.0.1:%d port %d", pb, pa))
	b := openCable(t, fmt.Sprintf("7 127.0.0.1:%d port %d", pa, pb))
	if a.MTU() != a.pathMTU-50 || a.pathMTU < 65000 {
		t.Errorf("MTU over loopback %d (path %d), want the path's less 50", a.MTU(), a.pathMTU)
	}
	f := ethFrame(0xff, 1, 100)
	f[0] = 0xff // broadcast: flooded to the one remote
	if err := a.Write(plain(f)); err != nil {
		t.Fatal(err)
	}
	h, got := readFrame(t, b)
	if !bytes.Equal(got, f) || !h.Plain() {
		t.Fatalf("b read %x (hdr %+v), want %x", got, h, f)
	}
	// b learned 02:..:01 behind 127.0.0.1; its answer is unicast.
	r := ethFrame(1, 2, 60)
	if err := b.Write(plain(r)); err != nil {
		t.Fatal(err)
	}
	if _, got := readFrame(t, a); !bytes.Equal(got, r) {
		t.Fatalf("a read %x, want %x", got, r)
	}
	if v, ok := b.fdb.lookup(mac{2, 0, 0, 0, 0, 1}, time.Now()); !ok || v.String() != "127.0.0.1" {
		t.Errorf("b did not learn a's MAC: %v %v", v, ok)
	}
	// A frame longer than the path allows is refused, not sent.
	if err := a.Write(plain(ethFrame(0xff, 1, a.MTU()+14+1))); err == nil {
		t.Error("a frame longer than the MTU was sent")
	}
}

// A GSO frame leaves as wire-size datagrams (UDP segmentation offload)
// and arrives as segments with complete checksums.
func TestCableSegments(t *testing.T) {
	pa, pb := freeUDPPort(t), freeUDPPort(t)
	a := openCable(t, fmt.Sprintf("9 127.0.0.1:%d port %d", pb, pa))
	b := openCable(t, fmt.Sprintf("9 127.0.0.1:%d port %d", pa, pb))
	// IPv4/TCP frames: 3 segments, and 90, more than one sendmsg takes.
	for _, c := range []struct{ payload, mss int }{{3000, 1000}, {9000, 100}} {
		f := make([]byte, 14+20+20+c.payload)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
		ip := f[14:]
		ip[0], ip[8], ip[9] = 0x45, 64, 6
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		copy(ip[12:], []byte{198, 18, 1, 1, 198, 18, 1, 2})
		tcp := ip[20:]
		binary.BigEndian.PutUint16(tcp[0:], 40000)
		binary.BigEndian.PutUint16(tcp[2:], 5201)
		tcp[12], tcp[13] = 5<<4, 0x10
		h := vnet.Hdr{Flags: vnet.FlagNeedsCsum, GSOType: vnet.GSOTCPv4, HdrLen: 54, GSOSize: uint16(c.mss), CsumStart: 34, CsumOffset: 16}
		p := make([]byte, vnet.HdrLen+len(f))
		h.Encode(p)
		copy(p[vnet.HdrLen:], f)
		if err := a.Write(p); err != nil {
			t.Fatal(err)
		}
		want, err := vnet.Segment(h, f)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			_, got := readFrame(t, b)
			if !bytes.Equal(got, w) {
				t.Fatalf("MSS %d, segment %d: got %d bytes, want %d", c.mss, i, len(got), len(w))
			}
		}
	}
}

// Two VNIs on one port: the socket is shared, each cable gets its own
// frames, and closing one leaves the other working.
func TestCablesShareAPort(t *testing.T) {
	pa, pb := freeUDPPort(t), freeUDPPort(t)
	a := openCable(t, fmt.Sprintf("1 127.0.0.1:%d port %d", pb, pa))
	b1 := openCable(t, fmt.Sprintf("1 127.0.0.1:%d port %d", pa, pb))
	b2 := openCable(t, fmt.Sprintf("2 127.0.0.1:%d port %d", pa, pb))
	a2 := openCable(t, fmt.Sprintf("2 127.0.0.1:%d port %d", pb, pa))
	if b1.u != b2.u || a.u != a2.u {
		t.Fatal("cables on one port do not share its socket")
	}
	for i := range 3 {
		f1, f2 := ethFrame(0xff, 1, 60+i), ethFrame(0xff, 2, 80+i)
		if err := a.Write(plain(f1)); err != nil {
			t.Fatal(err)
		}
		if err := a2.Write(plain(f2)); err != nil {
			t.Fatal(err)
		}
		// Read in the other order than sent: b2's read may take b1's
		// frame off the socket and queue it for b1.
		if _, got := readFrame(t, b2); !bytes.Equal(got, f2) {
			t.Fatalf("VNI 2 read %x", got)
		}
		if _, got := readFrame(t, b1); !bytes.Equal(got, f1) {
			t.Fatalf("VNI 1 read %x", got)
		}
	}
	// Closing a cable while another's Read blocks on the socket.
	done := make(chan error, 1)
	go func() {
		p := make([]byte, vnet.HdrLen+70000)
		_, err := b2.Read(p)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	b2.Close(false)
	select {
	case err := <-done:
		if err != link.ErrClosed {
			t.Fatalf("read after close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocked Read")
	}
	f := ethFrame(0xff, 1, 70)
	if err := a.Write(plain(f)); err != nil {
		t.Fatal(err)
	}
	if _, got := readFrame(t, b1); !bytes.Equal(got, f) {
		t.Fatalf("after closing VNI 2, VNI 1 read %x", got)
	}
}
