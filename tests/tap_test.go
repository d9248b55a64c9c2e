// SPDX-License-Identifier: BSD-3-Clause

package tests

// The tap word: TAP devices mnet creates or takes over, between
// namespaces, with file ports, and detached.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Two namespaces, each holding one TAP of one switch network, ping each
// other both ways, and the ICMP shows in `tcpdump -r pcap`. The TAPs are
// created in the daemon's namespace, up, MTU 1500; ports and ctl list them.
func TestTapPingBetweenNamespaces(t *testing.T) {
	e := newIfEnv(t, "ping", "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "sw")
	mustCtl(t, net, "policy switch")
	a, b := e.link(e.name("a")), e.link(e.name("b"))
	mustCtl(t, net, "tap "+a)
	mustCtl(t, net, "tap "+b)

	for _, ifn := range []string{a, b} {
		if !linkExists("", ifn) {
			t.Fatalf("tap %s: no such interface in the daemon's namespace", ifn)
		}
		if fl := linkFlags(t, "", ifn); !hasFlag(fl, "UP") {
			t.Errorf("tap %s is not up: %v", ifn, fl)
		}
		if mtu := linkMTU(t, "", ifn); mtu != 1500 {
			t.Errorf("tap %s has mtu %d, want 1500", ifn, mtu)
		}
		if det := sh(t, "ip -d link show dev "+ifn); !strings.Contains(det, "tun type tap") {
			t.Errorf("%s is not a TAP:\n%s", ifn, det)
		}
		wantAttachRow(t, net, "tap", ifn)
	}
	lines := ctlLines(t, net)
	if !hasLine(lines, "tap "+a) || !hasLine(lines, "tap "+b) {
		t.Errorf("ctl does not list both taps:\n%s", strings.Join(lines, "\n"))
	}
	// Attachments come after the settings.
	for i, l := range lines {
		if strings.HasPrefix(l, "tap ") && i < 8 {
			t.Errorf("ctl line %d %q comes before the settings:\n%s", i, l, strings.Join(lines, "\n"))
		}
	}

	ns1, ns2 := e.netns("1"), e.netns("2")
	intoNS(t, a, ns1, "198.18.0.1")
	intoNS(t, b, ns2, "198.18.0.2")

	td := exec.Command("tcpdump", "-n", "-l", "-r", filepath.Join(net, "pcap"), "-c", "4", "icmp")
	tdOut := &syncBuffer{}
	td.Stdout, td.Stderr = tdOut, tdOut
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	tdDone := make(chan error, 1)
	go func() { tdDone <- td.Wait() }()
	defer td.Process.Kill()

	// A file port on the switch: it hears the ARP broadcasts, but the
	// echo requests and replies go only to the TAP that learned the
	// destination's MAC.
	listener := openPort(t, net, unix.O_RDONLY)
	ping(t, ns1, "198.18.0.2")
	ping(t, ns2, "198.18.0.1")
	var arps, icmps int
	for {
		p, err := readTimeout(listener, 500*time.Millisecond)
		if err != nil {
			break
		}
		switch {
		case len(p) >= 14 && p[12] == 0x08 && p[13] == 0x06:
			arps++
		case len(p) >= 34 && p[12] == 0x08 && p[13] == 0x00 && p[23] == 1:
			icmps++
		}
	}
	if arps == 0 || icmps != 0 {
		t.Errorf("a file port on the switch got %d ARP and %d ICMP frames, want some ARP (flooded) and no ICMP (unicast to learned ports)", arps, icmps)
	}
	// tcpdump may have opened pcap after the first pings: ping until it
	// has its four ICMP packets.
	for i := 0; ; i++ {
		var err error
		select {
		case err = <-tdDone:
		case <-time.After(100 * time.Millisecond):
			if i == 20 {
				t.Fatalf("tcpdump -r pcap saw fewer than 4 ICMP packets in 20 rounds of ping:\n%s", tdOut.String())
			}
			ping(t, ns1, "198.18.0.2")
			continue
		}
		if err != nil {
			t.Fatalf("tcpdump -r pcap: %v\n%s", err, tdOut.String())
		}
		break
	}
	if out := tdOut.String(); !strings.Contains(out, "ICMP echo request") || !strings.Contains(out, "ICMP echo reply") ||
		!strings.Contains(out, "198.18.0.") {
		t.Errorf("tcpdump -r pcap shows no ICMP echo request and reply between the namespaces:\n%s", out)
	}
	for _, ifn := range []string{a, b} {
		r := wantAttachRow(t, net, "tap", ifn)
		if r[5] == "0" || r[7] == "0" {
			t.Errorf("ports row of %s after pings counts no traffic: %v", ifn, r)
		}
	}
	if keyValue(t, filepath.Join(net, "stats"), "packets") == "0" {
		t.Errorf("stats count no packets after pings:\n%s", readFile(t, filepath.Join(net, "stats")))
	}
}

// detach removes the port; a TAP mnet created goes away with it, a TAP it
// took over (made with `ip tuntap add`) stays. Detaching what is not
// attached to this network is ENODEV.
func TestTapDetach(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "n")
	other := d.mkNet(t, "other")
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	wantAttachRow(t, net, "tap", a)
	mustCtl(t, net, "detach "+a)
	if attachRow(t, net, a) != nil || len(portRows(t, net)) != 0 {
		t.Errorf("detach %s left a port:\n%s", a, readFile(t, filepath.Join(net, "ports")))
	}
	if hasLine(ctlLines(t, net), "tap "+a) {
		t.Errorf("ctl still lists tap %s after detach", a)
	}
	waitFor(t, "the detached TAP "+a+" to be deleted", func() bool { return !linkExists("", a) })
	ctlFails(t, net, "detach "+a, unix.ENODEV)

	// A TAP made outside mnet is taken over, and kept on detach.
	p := e.name("p")
	e.persistentTap(p)
	mustCtl(t, net, "tap "+p)
	wantAttachRow(t, net, "tap", p)
	if !hasLine(ctlLines(t, net), "tap "+p) {
		t.Errorf("ctl does not list the taken-over tap %s", p)
	}
	ctlFails(t, other, "detach "+p, unix.ENODEV) // attached elsewhere
	if attachRow(t, net, p) == nil {
		t.Fatalf("a refused detach on another network removed the port")
	}
	mustCtl(t, net, "detach "+p)
	if attachRow(t, net, p) != nil {
		t.Errorf("detach %s left its port", p)
	}
	if !linkExists("", p) {
		t.Errorf("detach deleted %s, a TAP that mnet did not create", p)
	}
	// Taken over again, after detach: nothing of the first attachment
	// is left holding it.
	mustCtl(t, net, "tap "+p)
	wantAttachRow(t, net, "tap", p)
	ctlFails(t, net, "detach "+e.name("none"), unix.ENODEV)

	// A created TAP moved into another namespace is deleted there too.
	b := e.name("b")
	ns := e.tapInNS(net, b, "1", "198.18.0.2")
	mustCtl(t, net, "detach "+b)
	waitFor(t, "the detached TAP to be deleted from its namespace", func() bool { return !linkExists(ns, b) })
}

// The MTU of a created TAP is min(1500, network mtu - 14).
func TestTapMTU(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	for _, c := range []struct {
		mtu  int
		want int
	}{{65535, 1500}, {9000, 1500}, {1514, 1500}, {1000, 986}} {
		net := d.mkNet(t, fmt.Sprint("m", c.mtu))
		mustCtl(t, net, fmt.Sprint("mtu ", c.mtu))
		ifn := e.link(e.name(fmt.Sprint(c.mtu)))
		mustCtl(t, net, "tap "+ifn)
		if got := linkMTU(t, "", ifn); got != c.want {
			t.Errorf("tap on a network of mtu %d: interface mtu %d, want %d", c.mtu, got, c.want)
		}
	}
}

// File ports and TAP ports exchange frames: a frame written to data comes
// out of the TAP inside its namespace, and what the namespace sends (an
// ARP request) is read from data. The same for a taken-over TAP.
func TestTapExchangesWithFilePorts(t *testing.T) {
	e := newIfEnv(t, "ping", "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	ns := e.tapInNS(net, e.name("a"), "1", "198.18.1.1")
	fd := openPort(t, net, unix.O_RDWR)
	frameComesOut(t, fd, ns, e.name("a"))
	arpComesIn(t, fd, ns, e.name("a"), "198.18.1.77")
	r := wantAttachRow(t, net, "tap", e.name("a"))
	if r[5] == "0" || r[7] == "0" {
		t.Errorf("ports row of the tap after the exchange: %v, want RX and TX counted", r)
	}

	p := e.name("p")
	e.persistentTap(p)
	mustCtl(t, net, "tap "+p)
	ns2 := e.netns("2")
	intoNS(t, p, ns2, "198.18.2.1")
	frameComesOut(t, fd, ns2, p)
	arpComesIn(t, fd, ns2, p, "198.18.2.77")

	// And through a grabbed veth.
	g, gp := e.name("g"), e.name("gp")
	ns3 := e.vethNS(g, gp, "3", "198.18.3.1")
	mustCtl(t, net, "grab "+g)
	frameComesOut(t, fd, ns3, gp)
	arpComesIn(t, fd, ns3, gp, "198.18.3.77")
}

// A TAP held open by another program cannot be taken over: EBUSY. Here
// the other program is a second mnet daemon.
func TestTapHeldElsewhereBusy(t *testing.T) {
	e := newIfEnv(t)
	d1 := startMnet(t)
	d2 := startMnet(t)
	n1 := d1.mkNet(t, "n")
	n2 := d2.mkNet(t, "n")
	a := e.link(e.name("a"))
	mustCtl(t, n1, "tap "+a)
	ctlFails(t, n2, "tap "+a, unix.EBUSY)
	if len(portRows(t, n2)) != 0 {
		t.Errorf("a refused tap left a port")
	}
	if !linkExists("", a) || attachRow(t, n1, a) == nil {
		t.Fatalf("the other daemon's refused tap disturbed the holder")
	}
	// Once the first lets go (and deletes it), the second creates it.
	mustCtl(t, n1, "detach "+a)
	waitFor(t, "the TAP to be deleted", func() bool { return !linkExists("", a) })
	mustCtl(t, n2, "tap "+a)
	wantAttachRow(t, n2, "tap", a)
}
