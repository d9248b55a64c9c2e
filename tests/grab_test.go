// SPDX-License-Identifier: BSD-3-Clause

package tests

// The grab word: interfaces mnet reads and writes through a packet
// socket, and what happens to them outside mnet.

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A third namespace joins through `grab` of the daemon-side end of a veth
// pair and reaches the TAP namespaces, both ways; detach leaves the veth.
func TestGrabVethJoinsNetwork(t *testing.T) {
	e := newIfEnv(t, "ping")
	d := startMnet(t)
	net := d.mkNet(t, "sw")
	mustCtl(t, net, "policy switch")
	ns1 := e.tapInNS(net, e.name("a"), "1", "198.18.0.1")
	ns2 := e.tapInNS(net, e.name("b"), "2", "198.18.0.2")
	g, gp := e.name("g"), e.name("gp")
	ns3 := e.vethNS(g, gp, "3", "198.18.0.3")
	mustCtl(t, net, "grab "+g)
	wantAttachRow(t, net, "grab", g)
	if !hasLine(ctlLines(t, net), "grab "+g) {
		t.Errorf("ctl does not list grab %s:\n%s", g, readFile(t, filepath.Join(net, "ctl")))
	}
	ping(t, ns3, "198.18.0.1")
	ping(t, ns3, "198.18.0.2")
	ping(t, ns1, "198.18.0.3")
	ping(t, ns2, "198.18.0.3")
	ping(t, ns1, "198.18.0.2")
	r := wantAttachRow(t, net, "grab", g)
	if r[5] == "0" || r[7] == "0" {
		t.Errorf("ports row of %s after pings counts no traffic: %v", g, r)
	}
	// The grabbed interface is promiscuous while grabbed, and only then.
	// A packet socket's promiscuity shows in the counter, not in the flags.
	if n := promiscuity(t, g); n == 0 {
		t.Errorf("%s is not promiscuous while grabbed", g)
	}

	mustCtl(t, net, "detach "+g)
	if attachRow(t, net, g) != nil {
		t.Errorf("detach %s left its port:\n%s", g, readFile(t, filepath.Join(net, "ports")))
	}
	if hasLine(ctlLines(t, net), "grab "+g) {
		t.Errorf("ctl still lists grab %s after detach", g)
	}
	if !linkExists("", g) {
		t.Fatalf("detach of a grabbed interface deleted it")
	}
	if n := promiscuity(t, g); n != 0 {
		t.Errorf("%s still promiscuous after detach (promiscuity %d)", g, n)
	}
	if out, err := shAs(t, nil, 20*time.Second, inNS(ns3, "ping -n -c 2 -W 1 198.18.0.1")); err == nil {
		t.Errorf("ns3 still reaches ns1 after detach %s:\n%s", g, out)
	}
	// It can be grabbed again and works again.
	mustCtl(t, net, "grab "+g)
	ping(t, ns3, "198.18.0.1")
}

// A grabbed interface does not see its own transmissions: a frame the
// network sends out through it does not come back in as if it had been
// received (which would loop it back to its sender and to every port).
func TestGrabIgnoresOwnTransmissions(t *testing.T) {
	e := newIfEnv(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	g, gp := e.name("g"), e.name("gp")
	ns := e.vethNS(g, gp, "1", "")
	mustCtl(t, net, "grab "+g)
	w := openPort(t, net, unix.O_RDWR)
	r := openPort(t, net, unix.O_RDONLY)
	frameComesOut(t, w, ns, gp) // the grab works: frames leave through it
	before := attachRow(t, net, g)
	// Every frame w sent reached r once from w. Any frame from the test
	// source MAC that r reads more often than w wrote it came back in
	// through the grab.
	var sent int
	for _, row := range portRows(t, net) {
		if row[1] == "file" && row[4] == "rw" {
			sent, _ = strconv.Atoi(row[7])
		}
	}
	if _, err := unix.Write(w, testFrame(60)); err != nil {
		t.Fatal(err)
	}
	sent++
	got := 0
	// Read until the network has been quiet for 2 s (the namespace's own
	// IPv6 chatter may keep it busy for a while, but not forever).
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		p, err := readTimeout(r, 2*time.Second)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(p, testFrame(60)[:14]) {
			got++
		}
	}
	if got != sent {
		t.Errorf("a reader got %d test frames for %d written: the grab fed its own transmissions back", got, sent)
	}
	after := attachRow(t, net, g)
	t.Logf("grab row before %v after %v", before, after)
}

// A grabbed interface moved into another namespace is gone from the
// daemon's: like a deleted one, it is detached by itself, and the network
// goes on working.
func TestGrabMovedAway(t *testing.T) {
	e := newIfEnv(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "n")
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	// grab brings a down interface up (README).
	sh(t, "ip link set "+g+" down")
	mustCtl(t, net, "grab "+g)
	if fl := linkFlags(t, "", g); !hasFlag(fl, "UP") {
		t.Errorf("grab did not bring %s up: %v", g, fl)
	}
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	ns := e.netns("1")
	sh(t, fmt.Sprintf("ip link set %s netns %s", g, ns))
	waitFor(t, "the moved interface's port to go", func() bool { return attachRow(t, net, g) == nil })
	fd := openPort(t, net, unix.O_RDWR)
	frameComesOut(t, fd, "", a)
	if !strings.Contains(d.log.String(), g) {
		t.Errorf("the moved interface's detach is not logged")
	}
}

// An interface that disappears (ip link del) is detached by itself; one
// taken down stays attached and works again when brought up.
func TestIfaceDeletedOrDown(t *testing.T) {
	e := newIfEnv(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "n")
	g, gp := e.name("g"), e.name("gp")
	ns := e.vethNS(g, gp, "1", "")
	mustCtl(t, net, "grab "+g)
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	fd := openPort(t, net, unix.O_RDWR)

	sh(t, "ip link set "+g+" down")
	if attachRow(t, net, g) == nil {
		t.Fatalf("an interface taken down was detached")
	}
	sh(t, "ip link set "+g+" up")
	frameComesOut(t, fd, ns, gp)

	sh(t, "ip link del "+a)
	waitFor(t, "the deleted TAP's port to go", func() bool { return attachRow(t, net, a) == nil })
	sh(t, "ip link del "+g)
	waitFor(t, "the deleted veth's port to go", func() bool { return attachRow(t, net, g) == nil })
	for _, l := range ctlLines(t, net) {
		if strings.HasPrefix(l, "tap ") || strings.HasPrefix(l, "grab ") {
			t.Errorf("ctl lists %q after its interface was deleted", l)
		}
	}
	if !strings.Contains(d.log.String(), a) || !strings.Contains(d.log.String(), g) {
		t.Errorf("the vanished interfaces are not logged")
	}
	// The names are free again, and the network still works.
	mustCtl(t, net, "tap "+a)
	frameComesOut(t, fd, "", a)
}
