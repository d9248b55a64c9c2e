// SPDX-License-Identifier: BSD-3-Clause

package tests

// Interfaces at exit, rmdir and detach, and changes while traffic flows.

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// After SIGTERM no TAP that mnet created remains, in the daemon's
// namespace or moved into another; taken-over TAPs and grabbed interfaces
// stay.
func TestTapGoneAfterSIGTERM(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "n")
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	b := e.name("b")
	ns := e.tapInNS(net, b, "1", "198.18.0.2")
	p := e.name("p")
	e.persistentTap(p)
	mustCtl(t, net, "tap "+p)
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	mustCtl(t, net, "grab "+g)
	// A second network's TAP, and one held while a file port is open.
	net2 := d.mkNet(t, "n2")
	c := e.link(e.name("c"))
	mustCtl(t, net2, "tap "+c)
	openPort(t, net2, unix.O_RDWR)

	if !linkExists("", a) || !linkExists(ns, b) || !linkExists("", c) {
		t.Fatalf("TAPs missing before SIGTERM")
	}
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit after SIGTERM: %v, want 0", err)
	}
	for _, l := range []struct{ ns, name string }{{"", a}, {ns, b}, {"", c}} {
		if linkExists(l.ns, l.name) {
			t.Errorf("TAP %s (namespace %q) still exists after SIGTERM", l.name, l.ns)
		}
	}
	if !linkExists("", p) {
		t.Errorf("the taken-over TAP %s was deleted on exit", p)
	}
	if !linkExists("", g) {
		t.Errorf("the grabbed veth %s was deleted on exit", g)
	}
}

// A daemon killed with SIGKILL cannot clean up, but the TAPs it created
// are not persistent: they go with its file descriptors, also from another
// namespace. The next daemon recovers the mount and can create them again.
func TestTapGoneAfterSIGKILL(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "n")
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	b := e.name("b")
	ns := e.tapInNS(net, b, "1", "198.18.0.2")
	d.cmd.Process.Kill()
	<-d.done
	waitFor(t, "the TAPs of a killed daemon to go", func() bool {
		return !linkExists("", a) && !linkExists(ns, b)
	})
	d2 := startMnetAt(t, d.mp, d.state)
	n2 := d2.mkNet(t, "n")
	mustCtl(t, n2, "tap "+a)
	wantAttachRow(t, n2, "tap", a)
}

// `mnet umount` cleans up like SIGTERM: the TAPs mnet created are gone.
func TestTapGoneAfterUmount(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "n")
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	b := e.name("b")
	ns := e.tapInNS(net, b, "1", "198.18.0.2")
	if out, err := exec.Command(mnetBin, "umount", d.mp).CombinedOutput(); err != nil {
		t.Fatalf("mnet umount: %v\n%s", err, out)
	}
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatal("daemon still running after mnet umount")
	}
	if d.err != nil {
		t.Errorf("daemon exit after umount: %v, want 0", d.err)
	}
	if linkExists("", a) || linkExists(ns, b) {
		t.Errorf("TAPs left after mnet umount: %s %v, %s (in %s) %v", a, linkExists("", a), b, ns, linkExists(ns, b))
	}
}

// rmdir of a network detaches its interfaces and deletes the TAPs mnet
// created; a grabbed interface is free again afterwards.
func TestTapRmdirDeletes(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "n")
	a := e.link(e.name("a"))
	mustCtl(t, net, "tap "+a)
	b := e.name("b")
	ns := e.tapInNS(net, b, "1", "198.18.0.2")
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	mustCtl(t, net, "grab "+g)
	// While a file port is open, rmdir is EBUSY and the attachments stay.
	fd, err := openFile(filepath.Join(net, "data"), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(net); !errors.Is(err, unix.EBUSY) {
		t.Errorf("rmdir with a file port open: %v, want EBUSY", err)
	}
	unix.Close(fd)
	if !linkExists("", a) || attachRow(t, net, a) == nil || attachRow(t, net, g) == nil {
		t.Fatalf("a refused rmdir detached interfaces:\n%s", readFile(t, filepath.Join(net, "ports")))
	}
	waitFor(t, "the file port to leave", func() bool { return len(portRows(t, net)) == 3 })
	if err := os.Remove(net); err != nil {
		t.Fatalf("rmdir of a network with attachments and no file port: %v", err)
	}
	waitFor(t, "the TAPs of a removed network to be deleted", func() bool {
		return !linkExists("", a) && !linkExists(ns, b)
	})
	if !linkExists("", g) {
		t.Fatalf("rmdir deleted the grabbed veth %s", g)
	}
	n2 := d.mkNet(t, "n2")
	mustCtl(t, n2, "grab "+g)
	mustCtl(t, n2, "tap "+a) // the name is free again
	wantAttachRow(t, n2, "tap", a)
}

// Detach, attach, rmdir and SIGTERM while frames flood through TAPs, a
// grab and a file port: no wedge, no race, nothing left behind.
func TestIfaceChangesUnderLoad(t *testing.T) {
	e := newIfEnv(t, "ping")
	d := startMnet(t)
	net := d.mkNet(t, "sw")
	mustCtl(t, net, "policy switch")
	a, b := e.name("a"), e.name("b")
	ns1 := e.tapInNS(net, a, "1", "198.18.0.1")
	ns2 := e.tapInNS(net, b, "2", "198.18.0.2")
	g, gp := e.name("g"), e.name("gp")
	ns3 := e.vethNS(g, gp, "3", "198.18.0.3")
	mustCtl(t, net, "grab "+g)
	ping(t, ns1, "198.18.0.2")
	ping(t, ns3, "198.18.0.1")
	openPort(t, net, unix.O_RDONLY) // a reader that never reads: its queue overflows
	flood := func(ns, to string) *exec.Cmd {
		c := exec.Command("ip", "netns", "exec", ns, "ping", "-f", "-q", "-w", "60", "-s", "1400", to)
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL); c.Wait() })
		return c
	}
	flood(ns1, "198.18.0.2")
	flood(ns2, "198.18.0.1")
	flood(ns3, "198.18.0.1")
	flood(ns1, "198.18.0.3")
	waitFor(t, "traffic", func() bool {
		r := attachRow(t, net, g)
		n, _ := strconv.Atoi(r[5])
		return n > 1000
	})
	x := e.link(e.name("x"))
	for range 10 {
		mustCtl(t, net, "detach "+g)
		mustCtl(t, net, "tap "+x)
		mustCtl(t, net, "grab "+g)
		mustCtl(t, net, "detach "+x)
	}
	mustCtl(t, net, "detach "+b)
	waitFor(t, "the detached TAP to be deleted", func() bool { return !linkExists(ns2, b) })
	// A second network under load, removed while it carries traffic.
	n2 := d.mkNet(t, "n2")
	c, cp := e.name("c"), e.name("cp")
	ns4 := e.vethNS(c, cp, "4", "198.18.1.4")
	y := e.name("y")
	ns5 := e.tapInNS(n2, y, "5", "198.18.1.5")
	mustCtl(t, n2, "grab "+c)
	ping(t, ns4, "198.18.1.5")
	flood(ns4, "198.18.1.5")
	flood(ns5, "198.18.1.4")
	if err := os.Remove(n2); err != nil {
		t.Fatalf("rmdir under load: %v", err)
	}
	waitFor(t, "the removed network's TAP to be deleted", func() bool { return !linkExists(ns5, y) })
	ping(t, ns3, "198.18.0.1")
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit under load: %v", err)
	}
	if linkExists(ns1, a) || linkExists("", x) {
		t.Errorf("TAPs left after SIGTERM under load")
	}
}
