// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of what hostile input and bugs may cost: a frame, never
// the daemon or another caller. Issue 24's reproductions (IPv4 fragments
// that crashed the userspace host's reassembly, through a VXLAN cable and
// through data) and the test hooks (MNET_TEST_HOOKS=1) that make a link
// pump and a FUSE handler panic on purpose.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	crashVNI  = 4242
	crashHost = "198.18.11.1"
	crashPeer = "198.18.11.2"
)

var (
	crashBcast   = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	crashPeerMAC = []byte{0x02, 0, 0, 0, 0x11, 0x02}
)

// crashFreeUDPPort is a UDP port on 127.0.0.1 nobody uses now.
func crashFreeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// crashFragments are issue 24's two IPv4 fragments to the host, in
// Ethernet frames: 8 bytes at offset 1000 with more to come, then the
// last, 8 bytes at offset 8.
func crashFragments() [][]byte {
	var out [][]byte
	for _, f := range []struct{ flagsOff uint16 }{{0x2000 | 1000/8}, {1}} { // MF at offset 1000, then offset 8
		ip := make([]byte, 20, 28)
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], 28)
		binary.BigEndian.PutUint16(ip[4:], 0x4242)
		binary.BigEndian.PutUint16(ip[6:], f.flagsOff)
		copy(ip[12:], net.ParseIP(crashPeer).To4())
		copy(ip[16:], net.ParseIP(crashHost).To4())
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		ip = append(ip, make([]byte, 8)...)
		out = append(out, crashEth(crashBcast, 0x0800, ip))
	}
	return out
}

func ipChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func crashEth(dst []byte, etype uint16, payload []byte) []byte {
	f := append(append(append([]byte(nil), dst...), crashPeerMAC...), byte(etype>>8), byte(etype))
	return append(f, payload...)
}

// crashARPRequest asks who has the host's address.
func crashARPRequest() []byte {
	arp := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	arp = append(arp, crashPeerMAC...)
	arp = append(arp, net.ParseIP(crashPeer).To4()...)
	arp = append(arp, make([]byte, 6)...)
	arp = append(arp, net.ParseIP(crashHost).To4()...)
	return crashEth(crashBcast, 0x0806, arp)
}

// vxlanDatagram puts frame behind a VXLAN header for crashVNI.
func vxlanDatagram(frame []byte) []byte {
	h := make([]byte, 8)
	h[0] = 0x08
	binary.BigEndian.PutUint32(h[4:], crashVNI<<8)
	return append(h, frame...)
}

// expectARPReply reads fd until the host's ARP reply comes.
func expectARPReply(t *testing.T, fd int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p, err := readTimeout(fd, time.Until(deadline))
		if err != nil {
			break
		}
		if len(p) >= 42 && p[12] == 0x08 && p[13] == 0x06 && p[21] == 2 && bytes.Equal(p[0:6], crashPeerMAC) {
			return
		}
	}
	t.Fatal("the userspace host did not answer an ARP request")
}

// writeWithin writes p to fd, failing the test if the write does not
// return within d (the daemon would have wedged it).
func writeWithin(t *testing.T, fd int, p []byte, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := unix.Write(fd, p)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("a write of %d bytes still blocks after %v", len(p), d)
		return nil
	}
}

// alive fails the test if the daemon has exited or its mount stopped
// answering.
func (d *daemon) alive(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
		t.Fatalf("the daemon died: %v", d.err)
	default:
	}
	if _, err := os.ReadFile(d.path("families")); err != nil {
		t.Fatalf("the mount stopped working: %v", err)
	}
}

// Issue 24, 1: two datagrams to a VXLAN cable's port, sent by a user
// without any right on the network, crashed the daemon.
func TestCrashVXLANFragments(t *testing.T) {
	require(t, "setpriv")
	d := startMnet(t)
	n := d.mkNet(t, "crashvx")
	remote, local := crashFreeUDPPort(t), crashFreeUDPPort(t)
	mustCtl(t, n, fmt.Sprintf("addr %s/24\nvxlan %d 127.0.0.1:%d port %d", crashHost, crashVNI, remote, local))
	if err := os.Chmod(n, 0o700); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	for _, f := range crashFragments() {
		fmt.Fprintf(&script, "printf '")
		for _, b := range vxlanDatagram(f) {
			fmt.Fprintf(&script, `\x%02x`, b)
		}
		fmt.Fprintf(&script, "' > /dev/udp/127.0.0.1/%d\n", local)
	}
	if out, err := shAs(t, &cred{uid: 65534, gid: 65534}, 10*time.Second, script.String()); err != nil {
		t.Fatalf("sending as uid 65534: %v\n%s", err, out)
	}
	hostFile := filepath.Join(n, "host")
	waitFor(t, "both fragments at the host", func() bool {
		b, err := os.ReadFile(hostFile)
		return err == nil && strings.Contains(string(b), "frag-in 2\n") || d.exited()
	})
	d.alive(t)
	if v := keyValue(t, hostFile, "frag-drops"); v != "2" {
		t.Errorf("frag-drops %s, want 2", v)
	}
	// The host still answers, through the same cable's network.
	port := openPort(t, n, unix.O_RDWR)
	if err := writeWithin(t, port, crashARPRequest(), 5*time.Second); err != nil {
		t.Fatalf("ARP request: %v", err)
	}
	expectARPReply(t, port)
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Issue 24, 2: the same fragments written into data panicked inside the
// host's frame path with its input lock held, and the next frame to reach
// the host (another member's ARP) blocked its writer for good.
func TestCrashDataFragmentsThenARP(t *testing.T) {
	d := startMnet(t)
	n := d.mkNet(t, "crashdata")
	mustCtl(t, n, "addr "+crashHost+"/24")
	a := openPort(t, n, unix.O_WRONLY)
	b := openPort(t, n, unix.O_RDWR)
	for _, f := range crashFragments() {
		if err := writeWithin(t, a, f, 5*time.Second); err != nil {
			t.Errorf("writing a fragment: %v", err)
		}
	}
	if err := writeWithin(t, b, crashARPRequest(), 5*time.Second); err != nil {
		t.Fatalf("ARP request from another member: %v", err)
	}
	expectARPReply(t, b)
	d.alive(t)
	if v := keyValue(t, filepath.Join(n, "host"), "frag-drops"); v != "2" {
		t.Errorf("frag-drops %s, want 2", v)
	}
}

// The test hooks: a FUSE handler that panics answers EIO at once, a link
// pump that panics loses that frame alone; both are counted and logged at
// error level with their stack, and the daemon serves on.
func TestCrashTestHooks(t *testing.T) {
	t.Setenv("MNET_TEST_HOOKS", "1")
	d := startMnet(t)
	d.expectPanics = true
	n := d.mkNet(t, "crashhook")
	local := crashFreeUDPPort(t)
	mustCtl(t, n, fmt.Sprintf("vxlan %d 127.0.0.1:%d port %d", crashVNI, crashFreeUDPPort(t), local))
	port := openPort(t, n, unix.O_RDWR)

	// A FUSE WRITE handler panics: EIO, promptly.
	start := time.Now()
	err := writeWithin(t, port, crashEth(crashBcast, 0x88b5, []byte("MNET-TEST-PANIC-FUSE")), 5*time.Second)
	if !errors.Is(err, unix.EIO) || time.Since(start) > 2*time.Second {
		t.Errorf("write into a panicking handler: %v after %v, want EIO at once", err, time.Since(start))
	}
	// And a LOOKUP.
	if _, err := os.Stat(filepath.Join(n, "MNET-TEST-PANIC-FUSE")); !errors.Is(err, unix.EIO) {
		t.Errorf("lookup into a panicking handler: %v, want EIO", err)
	}
	// The same file goes on working.
	if err := writeWithin(t, port, crashEth(crashBcast, 0x88b5, []byte("fine")), 5*time.Second); err != nil {
		t.Errorf("write after the panic: %v", err)
	}

	// A pump panics on a frame from the VXLAN cable: that frame is lost,
	// counted in stats, and the next frame comes through.
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: local})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(vxlanDatagram(crashEth(crashBcast, 0x88b5, []byte("MNET-TEST-PANIC-PUMP")))); err != nil {
		t.Fatal(err)
	}
	stats := filepath.Join(n, "stats")
	waitFor(t, "the pump's panic counted", func() bool { return d.exited() || keyValue(t, stats, "panics") == "1" })
	d.alive(t)
	next := crashEth(crashBcast, 0x88b5, []byte("after the panic"))
	if _, err := conn.Write(vxlanDatagram(next)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := readTimeout(port, time.Until(deadline))
		if err != nil {
			t.Fatalf("the frame after the pump's panic did not arrive: %v", err)
		}
		if bytes.Equal(p, next) {
			break
		}
	}

	log := d.log.String()
	for _, want := range []struct{ msg, frame string }{
		{"panic in a FUSE handler", "fs.(*handle).Write"},
		{"panic in a FUSE handler", "fs.(*node).Lookup"},
		{"panic in a link pump", "ipn.(*linkQueue).forward"},
	} {
		found := false
		for line := range strings.SplitSeq(log, "\n") {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, want.msg) && strings.Contains(line, want.frame) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error-level %q line with a stack through %s in the log", want.msg, want.frame)
		}
	}
	if !strings.Contains(log, "panics=3") {
		t.Error("the log does not count the daemon's third panic")
	}
	d.alive(t)
}

// The userspace host reassembles what a Linux peer fragments: a 3000-byte
// UDP datagram over IPv4 and over IPv6, through a TAP of MTU 1500.
func TestHostFragmentedFromLinux(t *testing.T) {
	he := newHostEnv(t)
	for _, fam := range []struct{ host, any string }{{he.v4, "0.0.0.0"}, {he.v6, "::"}} {
		port := freeUDPPort()
		fd := openUDP(t, he.udp(fam.any, port), unix.O_RDONLY)
		want := strings.Repeat(" ", 2999) + "x"
		sh(t, inNS(he.ns, fmt.Sprintf(`bash -c "printf '%%3000s' x > /dev/udp/%s/%d"`, fam.host, port)))
		if got := readDeadline(t, fd, 10*time.Second); got != want {
			t.Errorf("%s: read %d bytes, want the 3000 sent", fam.host, len(got))
		}
		unix.Close(fd)
	}
	if st := readFile(t, filepath.Join(he.net, "host")); !strings.Contains(st, "frag-reassembled 2\n") {
		t.Errorf("host counters:\n%s", st)
	}
}
