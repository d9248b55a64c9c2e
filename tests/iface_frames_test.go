// SPDX-License-Identifier: BSD-3-Clause

package tests

// Frames too large for a port, and lossless networks whose reader does
// not read.

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Frames larger than what a port can take are drops for that port; the
// port keeps working. A 9000-byte frame cannot leave through a veth of
// mtu 1500, and a frame of the largest size never wedges a TAP.
func TestGrabDropsOversizedFrames(t *testing.T) {
	e := newIfEnv(t, "tcpdump", "ping")
	d := startMnet(t)
	net := d.mkNet(t, "big")
	g, gp := e.name("g"), e.name("gp")
	ns3 := e.vethNS(g, gp, "3", "198.18.0.3")
	mustCtl(t, net, "grab "+g)
	ns1 := e.tapInNS(net, e.name("a"), "1", "198.18.0.1")
	fd := openPort(t, net, unix.O_RDWR)
	if _, err := unix.Write(fd, testFrame(9000)); err != nil {
		t.Fatalf("write of a 9000-byte frame: %v", err)
	}
	waitFor(t, "the oversized frame to be counted as a drop of "+g, func() bool {
		r := attachRow(t, net, g)
		return r != nil && r[9] != "0"
	})
	if _, err := unix.Write(fd, testFrame(65535)); err != nil {
		t.Fatalf("write of a 65535-byte frame: %v", err)
	}
	frameComesOut(t, fd, ns3, gp)
	frameComesOut(t, fd, ns1, e.name("a"))
	ping(t, ns1, "198.18.0.3")
	ping(t, ns3, "198.18.0.1")
}

// Jumbo frames from a TAP whose MTU is larger than the network's mtu, or
// than the MTU of the TAP they go to, are dropped and counted; they never
// wedge a port: small frames pass before and after.
func TestTapJumboFramesDropped(t *testing.T) {
	e := newIfEnv(t, "ping")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	mustCtl(t, net, "mtu 1514")
	j := e.name("j")
	e.persistentTap(j)
	sh(t, "ip link set "+j+" mtu 9000")
	mustCtl(t, net, "tap "+j)
	ns1 := e.netns("1")
	intoNS(t, j, ns1, "198.18.0.1")
	ns2 := e.tapInNS(net, e.name("b"), "2", "198.18.0.2")
	ping(t, ns1, "198.18.0.2")
	// 8000 bytes of ICMP: one 8042-byte frame, over the network's mtu.
	if out, err := shAs(t, nil, 20*time.Second, inNS(ns1, "ping -n -c 2 -W 1 -s 8000 198.18.0.2")); err == nil {
		t.Errorf("an 8042-byte frame crossed a network of mtu 1514:\n%s", out)
	}
	ping(t, ns1, "198.18.0.2")
	t.Logf("after jumbo pings, mtu 1514: %v", portRows(t, net))
	// With room in the network, the TAP of MTU 1500 cannot take it: a
	// drop for that port.
	mustCtl(t, net, "mtu 65535")
	before := attachRow(t, net, e.name("b"))
	if out, err := shAs(t, nil, 20*time.Second, inNS(ns1, "ping -n -c 2 -W 1 -s 8000 198.18.0.2")); err == nil {
		t.Errorf("an 8042-byte frame went into a TAP of MTU 1500:\n%s", out)
	}
	after := attachRow(t, net, e.name("b"))
	if after[9] == before[9] {
		t.Errorf("jumbo frames to a TAP of MTU 1500 not counted as its drops: before %v after %v", before, after)
	}
	ping(t, ns1, "198.18.0.2")
	ping(t, ns2, "198.18.0.1")
}

// The largest frame an interface of MTU 1500 takes is 1514 bytes (plus a
// VLAN tag): one of 1514 leaves through a TAP and a grabbed veth, one of
// 1600 is a drop for each of them.
func TestIfaceFrameSizeLimits(t *testing.T) {
	e := newIfEnv(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	a := e.name("a")
	nsA := e.tapInNS(net, a, "1", "198.18.0.1")
	g, gp := e.name("g"), e.name("gp")
	nsG := e.vethNS(g, gp, "2", "198.18.0.2")
	mustCtl(t, net, "grab "+g)
	fd := openPort(t, net, unix.O_RDWR)
	sizedFrameComesOut(t, fd, nsA, a, 1514)
	sizedFrameComesOut(t, fd, nsG, gp, 1514)
	ra, rg := attachRow(t, net, a), attachRow(t, net, g)
	if _, err := unix.Write(fd, testFrame(1600)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a 1600-byte frame to be a drop of both interfaces", func() bool {
		return attachRow(t, net, a)[9] != ra[9] && attachRow(t, net, g)[9] != rg[9]
	})
	sizedFrameComesOut(t, fd, nsA, a, 1514)
	sizedFrameComesOut(t, fd, nsG, gp, 1514)
}

// Under lossless on a TAP's frames wait for a file port that does not
// read; when that port closes, traffic flows again, and a daemon whose
// TAP is blocked so still stops on SIGTERM.
func TestTapLosslessBlockedReader(t *testing.T) {
	e := newIfEnv(t, "ping")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	mustCtl(t, net, "lossless on\nqlen 1")
	ns1 := e.tapInNS(net, e.name("a"), "1", "198.18.0.1")
	ns2 := e.tapInNS(net, e.name("b"), "2", "198.18.0.2")
	ping(t, ns1, "198.18.0.2")
	fd, err := openFile(filepath.Join(net, "data"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Fill its queue; pings now wait for it (and may all be lost).
	shAs(t, nil, 20*time.Second, inNS(ns1, "ping -n -c 3 -i 0.2 -W 1 198.18.0.2"))
	unix.Close(fd)
	ping(t, ns1, "198.18.0.2")
	ping(t, ns2, "198.18.0.1")

	// Blocked again, then SIGTERM.
	openPort(t, net, unix.O_RDONLY)
	shAs(t, nil, 20*time.Second, inNS(ns1, "ping -n -c 3 -i 0.2 -W 1 198.18.0.2"))
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit with a TAP blocked on a lossless reader: %v", err)
	}
	if linkExists(ns1, e.name("a")) || linkExists(ns2, e.name("b")) {
		t.Errorf("TAPs left after SIGTERM")
	}
}

// A TAP whose frames wait for a lossless reader that does not read can
// still be detached, and its network removed; neither hangs.
func TestTapDetachWhileBlockedLossless(t *testing.T) {
	e := newIfEnv(t, "ping")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	mustCtl(t, net, "lossless on\nqlen 1")
	a, b := e.name("a"), e.name("b")
	ns1 := e.tapInNS(net, a, "1", "198.18.0.1")
	e.tapInNS(net, b, "2", "198.18.0.2")
	ping(t, ns1, "198.18.0.2")
	fd, err := openFile(filepath.Join(net, "data"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			unix.Close(fd)
		}
	}()
	// Frames from both TAPs now wait for fd.
	shAs(t, nil, 20*time.Second, inNS(ns1, "ping -n -c 5 -i 0.2 -W 1 198.18.0.2"))
	for _, cmd := range []string{"detach " + a, "detach " + b} {
		if out, err := shAs(t, nil, 20*time.Second, "echo '"+cmd+"' > "+filepath.Join(net, "ctl")); err != nil {
			t.Fatalf("%s while its frames wait for a lossless reader: %v\n%s", cmd, err, out)
		}
	}
	if rows := portRows(t, net); len(rows) != 1 {
		t.Errorf("ports after detaching both TAPs: %v", rows)
	}
	unix.Close(fd)
	closed = true
	waitFor(t, "the reader to leave", func() bool { return len(portRows(t, net)) == 0 })
	if err := os.Remove(net); err != nil {
		t.Errorf("rmdir: %v", err)
	}
}
