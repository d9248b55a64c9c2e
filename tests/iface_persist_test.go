// SPDX-License-Identifier: BSD-3-Clause

package tests

// Attachments of persist networks across restarts.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A persist network keeps its attachments across a clean restart: the
// TAP stays while the daemon is down and is taken over again, the grab
// comes back. A TAP of a network without persist goes.
func TestTapPersistAcrossRestart(t *testing.T) {
	e := newIfEnv(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "keep")
	mustCtl(t, net, "policy switch\npersist on")
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	mustCtl(t, net, "grab "+g)
	tmp := d.mkNet(t, "tmp")
	b := e.link(e.name("b"))
	mustCtl(t, tmp, "tap "+b)
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	if !linkExists("", a) {
		t.Errorf("the TAP %s of a persist network was deleted on a clean exit", a)
	}
	if linkExists("", b) {
		t.Errorf("the TAP %s of a network without persist survived the exit", b)
	}
	st, err := os.ReadFile(d.state)
	if err != nil || !bytes.Contains(st, []byte(a)) || !bytes.Contains(st, []byte(g)) {
		t.Errorf("state file does not record the attachments (%v):\n%s", err, st)
	}

	d2 := startMnetAt(t, d.mp, d.state)
	lines := ctlLines(t, net)
	if !hasLine(lines, "tap "+a) || !hasLine(lines, "grab "+g) {
		t.Fatalf("after restart ctl does not list the attachments:\n%s", strings.Join(lines, "\n"))
	}
	wantAttachRow(t, net, "tap", a)
	wantAttachRow(t, net, "grab", g)
	if _, err := os.Stat(d2.path("ipn", "tmp")); err == nil {
		t.Errorf("the network without persist came back")
	}
	// The re-attached interfaces carry frames.
	fd := openPort(t, net, unix.O_RDWR)
	frameComesOut(t, fd, "", a)
	ns := e.netns("g")
	intoNS(t, gp, ns, "")
	frameComesOut(t, fd, ns, gp)
	// Detaching the TAP mnet created, taken over at restart, deletes it.
	mustCtl(t, net, "detach "+a)
	waitFor(t, "the persist network's TAP to be deleted on detach", func() bool { return !linkExists("", a) })
}

// A persist network comes back after a restart even when its interfaces
// changed while the daemon was down: a TAP deleted meanwhile is created
// again, a grabbed interface that is gone is reported, not fatal.
func TestTapPersistInterfacesGoneWhileDown(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "keep")
	mustCtl(t, net, "persist on")
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	mustCtl(t, net, "grab "+g)
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	sh(t, "ip link del "+a+" && ip link del "+g)
	d2 := startMnetAt(t, d.mp, d.state)
	if _, err := os.Stat(net); err != nil {
		t.Fatalf("the persist network did not come back: %v", err)
	}
	if !hasLine(ctlLines(t, net), "tap "+a) || !linkExists("", a) {
		t.Errorf("the deleted TAP %s was not created again:\n%s", a, readFile(t, filepath.Join(net, "ctl")))
	}
	if attachRow(t, net, g) != nil {
		t.Errorf("a port for the missing interface %s:\n%s", g, readFile(t, filepath.Join(net, "ports")))
	}
	if !strings.Contains(d2.log.String(), g) {
		t.Errorf("the missing interface %s is not in the log", g)
	}
	// The network works: a file port and the TAP exchange frames.
	fd := openPort(t, net, unix.O_RDWR)
	frameComesOut(t, fd, "", a)
}

// README: the TAPs of a persist network are left in place at a clean exit
// "so their addresses and namespaces survive a restart". A TAP moved into
// a namespace, with an address there, carries traffic again after the
// restart, and no second interface of its name appears in the daemon's
// namespace.
func TestTapPersistInNamespaceAcrossRestart(t *testing.T) {
	e := newIfEnv(t, "ping")
	d := startMnet(t)
	net := d.mkNet(t, "keep")
	mustCtl(t, net, "policy switch\npersist on")
	a, b := e.name("a"), e.name("b")
	ns1 := e.tapInNS(net, a, "1", "198.18.0.1")
	ns2 := e.tapInNS(net, b, "2", "198.18.0.2")
	ping(t, ns1, "198.18.0.2")
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	if !linkExists(ns1, a) || !linkExists(ns2, b) {
		t.Fatalf("the persist network's TAPs did not stay in their namespaces")
	}
	startMnetAt(t, d.mp, d.state)
	if linkExists("", a) || linkExists("", b) {
		t.Errorf("after restart a new TAP %s or %s appeared in the daemon's namespace: %s",
			a, b, sh(t, "ip -br link"))
	}
	lines := ctlLines(t, net)
	if !hasLine(lines, "tap "+a) || !hasLine(lines, "tap "+b) {
		t.Errorf("after restart ctl does not list the TAPs:\n%s", strings.Join(lines, "\n"))
	}
	ping(t, ns1, "198.18.0.2")
	ping(t, ns2, "198.18.0.1")
}

// Persistence follows the attachments: a detach is saved, persist off and
// rmdir let the TAPs go at exit, and a TAP taken over from outside mnet
// is still not mnet's to delete after a restart.
func TestTapPersistBookkeeping(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	keep := d.mkNet(t, "keep")
	mustCtl(t, keep, "persist on")
	a := e.link(e.name("a"))
	mustCtl(t, keep, "tap "+a)
	p := e.name("p")
	e.persistentTap(p)
	mustCtl(t, keep, "tap "+p)
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	mustCtl(t, keep, "grab "+g)
	mustCtl(t, keep, "detach "+g)

	off := d.mkNet(t, "off")
	mustCtl(t, off, "persist on")
	b := e.link(e.name("b"))
	mustCtl(t, off, "tap "+b)
	mustCtl(t, off, "persist off")

	gone := d.mkNet(t, "gone")
	mustCtl(t, gone, "persist on")
	c := e.link(e.name("c"))
	mustCtl(t, gone, "tap "+c)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removed persist network's TAP to go", func() bool { return !linkExists("", c) })

	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	if linkExists("", b) {
		t.Errorf("TAP %s of a network switched to persist off survived the exit", b)
	}
	if !linkExists("", a) || !linkExists("", p) {
		t.Fatalf("the persist network's TAPs did not stay")
	}
	d2 := startMnetAt(t, d.mp, d.state)
	lines := ctlLines(t, keep)
	if !hasLine(lines, "tap "+a) || !hasLine(lines, "tap "+p) || hasLine(lines, "grab "+g) {
		t.Errorf("after restart ctl shows:\n%s\nwant tap %s and tap %s, no grab %s (detached before exit)", strings.Join(lines, "\n"), a, p, g)
	}
	for _, name := range []string{"off", "gone"} {
		if _, err := os.Stat(d2.path("ipn", name)); err == nil {
			t.Errorf("network %s came back", name)
		}
	}
	if linkExists("", c) || linkExists("", b) {
		t.Errorf("a TAP of a network that is not kept exists after restart")
	}
	mustCtl(t, keep, "detach "+p)
	if !linkExists("", p) {
		t.Errorf("after a restart, detach deleted %s, a TAP made outside mnet", p)
	}
	mustCtl(t, keep, "detach "+a)
	waitFor(t, "mnet's own TAP to be deleted on detach", func() bool { return !linkExists("", a) })
}
