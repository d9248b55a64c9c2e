// SPDX-License-Identifier: BSD-3-Clause

package vxlan

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/internal/vnet"
)

// The VXLAN header of any UDP payload: a datagram is taken exactly when it
// has the I flag and an Ethernet header after the VXLAN header, with the
// VNI and frame it carries; what putHeader writes parses back.
func FuzzVXLANHeader(f *testing.F) {
	f.Add([]byte{0x08, 0, 0, 0, 0, 0, 0x2a, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06})
	f.Add([]byte{0x00, 0, 0, 0, 0, 0, 0x2a, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		vni, frame, err := parseHeader(b)
		switch {
		case len(b) < HeaderLen+ethHeaderLen || b[0]&flagVNI == 0:
			if err == nil {
				t.Fatalf("took %x", b)
			}
		case err != nil || vni > MaxVNI || vni != binary.BigEndian.Uint32(b[4:])>>8 || &frame[0] != &b[HeaderLen]:
			t.Fatalf("%x: vni %d, frame %x, %v", b, vni, frame, err)
		default:
			out := append(make([]byte, HeaderLen), frame...)
			putHeader(out, vni)
			if v, fr, err := parseHeader(out); err != nil || v != vni || !bytes.Equal(fr, frame) {
				t.Fatalf("putHeader(%d) parsed back as %d, %v", vni, v, err)
			}
		}
		flowHash(b) // the Write path hashes whatever frame a member sent
	})
}

// decapRig is two cables sharing one receiving port on loopback (VNIs
// 4242 and 4243) and a socket that sends them datagrams, as any process
// on the machine may.
type decapRig struct {
	a, b *cable
	from *net.UDPConn
	to   *net.UDPAddr
	seq  uint32
}

func newDecapRig(f *testing.F) *decapRig {
	port := freeUDPPort(f)
	peer := freeUDPPort(f)
	r := &decapRig{
		a:  openCable(f, fmt.Sprintf("4242 127.0.0.1:%d port %d", peer, port)),
		b:  openCable(f, fmt.Sprintf("4243 127.0.0.1:%d port %d", peer, port)),
		to: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port},
	}
	var err error
	if r.from, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.from.Close() })
	return r
}

// FuzzDecap: any datagram to a VXLAN port, read by the cable as its pump
// reads it. A datagram the header takes reaches the cable of its VNI (and
// no other) as exactly its inner frame behind a virtio-net header that a
// plain receiver can act on; any other reaches none; the learning table
// stays within its bound.
func FuzzDecap(f *testing.F) {
	frame := func(vni uint32, inner []byte) []byte {
		b := make([]byte, HeaderLen, HeaderLen+len(inner))
		putHeader(b, vni)
		return append(b, inner...)
	}
	arp := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06}, make([]byte, 28)...)
	f.Add(frame(4242, arp))
	f.Add(frame(4243, arp))
	f.Add(frame(4244, arp))
	f.Add(frame(4242, arp[:13]))
	f.Add([]byte("not vxlan at all"))
	// Issue 24: the two IPv4 fragments of its reproduction, as datagrams.
	frag := func(offMF uint16) []byte {
		ip := []byte{0x45, 0, 0, 28, 0, 1, byte(offMF >> 8), byte(offMF), 64, 17, 0, 0, 198, 18, 11, 2, 198, 18, 11, 1}
		return frame(4242, append(append([]byte{2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x08, 0}, ip...), make([]byte, 8)...))
	}
	f.Add(frag(0x2000 | 125))
	f.Add(frag(1))
	// A TCP segment larger than the cable's MTU, as a Linux VTEP hands it
	// over a veth: the cable asks for it to be cut.
	tcp := make([]byte, 14+20+20+70000)
	copy(tcp, []byte{2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x08, 0, 0x45, 0, 0xff, 0xff, 0, 1, 0x40, 0, 64, 6})
	tcp[14+20+12] = 5 << 4
	f.Add(frame(4242, tcp[:65000]))
	r := newDecapRig(f)
	p := make([]byte, vnet.HdrLen+70000)
	f.Fuzz(func(t *testing.T, d []byte) {
		r.a.fdb = newFDB(fdbAge, fdbMax)
		r.b.fdb = newFDB(fdbAge, fdbMax)
		if _, err := r.from.WriteToUDP(d, r.to); err != nil {
			if errors.Is(err, unix.EMSGSIZE) {
				return
			}
			t.Fatal(err)
		}
		// A sentinel for a behind every datagram: what a reads before
		// it came from d.
		r.seq++
		sentinel := frame(4242, binary.BigEndian.AppendUint32([]byte{2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x88, 0xb5}, r.seq))
		if _, err := r.from.WriteToUDP(sentinel, r.to); err != nil {
			t.Fatal(err)
		}
		vni, inner, err := parseHeader(d)
		var gotA [][]byte
		for {
			n, err := readWithin(r.a, p, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(p[vnet.HdrLen:n], sentinel[HeaderLen:]) {
				break
			}
			checkDeliverable(t, r.a, p[:n])
			gotA = append(gotA, bytes.Clone(p[vnet.HdrLen:n]))
		}
		var gotB [][]byte
		for len(r.b.in) > 0 {
			b := <-r.b.in
			gotB = append(gotB, bytes.Clone(b))
			putBuf(b)
		}
		want := func(got [][]byte, forIt bool) {
			t.Helper()
			switch {
			case !forIt && len(got) != 0:
				t.Fatalf("datagram %x delivered %d frames to a cable it is not for", d, len(got))
			case forIt && len(got) != 1:
				t.Fatalf("datagram %x delivered %d frames, want 1", d, len(got))
			case forIt && len(got[0]) != len(inner):
				t.Fatalf("datagram %x delivered a frame of %d bytes, want %d", d, len(got[0]), len(inner))
			}
		}
		want(gotA, err == nil && vni == 4242)
		want(gotB, err == nil && vni == 4243)
		if r.a.fdb.len() > fdbMax || r.b.fdb.len() > fdbMax {
			t.Fatal("learning table past its bound")
		}
	})
}

// readWithin reads one frame from c, failing after d.
func readWithin(c *cable, p []byte, d time.Duration) (int, error) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := c.Read(p)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-time.After(d):
		return 0, errors.New("the cable read nothing within its time")
	}
}

// checkDeliverable fails unless the frame a cable read (header first)
// is one the network can hand any port: a plain receiver gets it through
// vnet.Segment, in frames that fit the cable's MTU.
func checkDeliverable(t *testing.T, c *cable, p []byte) {
	t.Helper()
	if len(p) < vnet.HdrLen+ethHeaderLen {
		t.Fatalf("read %d bytes", len(p))
	}
	h, frame := vnet.Decode(p), p[vnet.HdrLen:]
	if h.Plain() {
		return
	}
	segs, err := vnet.Segment(h, frame)
	if err != nil {
		t.Fatalf("the cable made header %+v for a frame it cannot be applied to: %v\n%x", h, err, frame)
	}
	for _, s := range segs {
		if h.GSOType != vnet.GSONone && len(s) > ethHeaderLen+c.pathMTU-Overhead(false)+ethHeaderLen {
			t.Fatalf("segment of %d bytes for a path MTU of %d", len(s), c.pathMTU)
		}
	}
}

// FuzzCableWrite: any frame a member sends, with any virtio-net header,
// through a cable to its remote. Write never panics, and what reaches the
// remote is VXLAN for the cable's VNI carrying frames that fit its MTU;
// a plain frame arrives exactly as sent.
func FuzzCableWrite(f *testing.F) {
	plainHdr := make([]byte, vnet.HdrLen)
	f.Add(plainHdr, append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06}, make([]byte, 28)...))
	f.Add(plainHdr, []byte{2, 0, 0, 0, 0, 9})
	gso := make([]byte, vnet.HdrLen)
	vnet.Hdr{Flags: vnet.FlagNeedsCsum, GSOType: vnet.GSOTCPv4, HdrLen: 54, GSOSize: 1400, CsumStart: 34, CsumOffset: 16}.Encode(gso)
	tcp := make([]byte, 14+20+20+4000)
	copy(tcp, []byte{2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x08, 0, 0x45, 0, 0x0f, 0xc8, 0, 1, 0x40, 0, 64, 6})
	tcp[14+20+12] = 5 << 4
	f.Add(gso, tcp)
	csum := make([]byte, vnet.HdrLen)
	vnet.Hdr{Flags: vnet.FlagNeedsCsum, CsumStart: 60000, CsumOffset: 16}.Encode(csum)
	f.Add(csum, tcp[:100])
	remote, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	defer remote.Close()
	c := openCable(f, fmt.Sprintf("4242 127.0.0.1:%d port %d", remote.LocalAddr().(*net.UDPAddr).Port, freeUDPPort(f)))
	rc, err := remote.SyscallConn()
	if err != nil {
		f.Fatal(err)
	}
	buf := make([]byte, 70000)
	// recv takes one datagram the remote got, waiting up to wait for it.
	recv := func(t *testing.T, wait time.Duration) []byte {
		var n int
		var rerr error
		deadline := time.Now().Add(wait)
		for {
			rc.Read(func(fd uintptr) bool {
				n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
				return true
			})
			if rerr == nil {
				break
			}
			if !errors.Is(rerr, unix.EAGAIN) || time.Now().After(deadline) {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		vni, inner, err := parseHeader(buf[:n])
		if err != nil || vni != 4242 {
			t.Fatalf("the remote got %x: vni %d, %v", buf[:min(n, 64)], vni, err)
		}
		if len(inner) > c.MTU()+ethHeaderLen {
			t.Fatalf("the remote got a frame of %d bytes, MTU %d", len(inner), c.MTU())
		}
		return inner
	}
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		if len(hdr) < vnet.HdrLen || len(frame) > 65535 {
			return
		}
		h := vnet.Decode(hdr)
		werr := c.Write(append(bytes.Clone(hdr[:vnet.HdrLen]), frame...))
		// Loopback delivers as it sends, nearly always: what arrives
		// later is checked with the next input's datagrams.
		found := false
		for {
			inner := recv(t, 0)
			if inner == nil {
				break
			}
			found = found || bytes.Equal(inner, frame)
		}
		for h.Plain() && werr == nil && !found {
			inner := recv(t, time.Second)
			if inner == nil {
				t.Fatalf("a plain frame of %d bytes was sent and did not arrive", len(frame))
			}
			found = bytes.Equal(inner, frame)
		}
	})
}
