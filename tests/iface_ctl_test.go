// SPDX-License-Identifier: BSD-3-Clause

package tests

// tap, grab and detach refused: errnos, last-error, rights, maxports.

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Failures: every one has its errno, sets last-error and leaves no port
// and no interface behind.
func TestIfaceCtlErrors(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	n1 := d.mkNet(t, "n1")
	n2 := d.mkNet(t, "n2")
	tp := e.link(e.name("t"))
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	v, vp := e.name("v"), e.name("vp")
	e.veth(v, vp)
	mustCtl(t, n1, "tap "+tp)
	mustCtl(t, n1, "grab "+g)

	long := e.tag + strings.Repeat("x", 16-len(e.tag)) // 16 bytes
	for _, c := range []struct {
		net   string
		cmd   string
		errno unix.Errno
	}{
		// Syntax.
		{n2, "tap", unix.EINVAL},
		{n2, "tap " + long, unix.EINVAL},
		{n2, "tap " + e.tag + "/x", unix.EINVAL},
		{n2, "tap " + e.tag + " x", unix.EINVAL},
		{n2, "tap " + e.tag + "\tx", unix.EINVAL},
		{n2, "tap " + e.tag + ":x", unix.EINVAL},
		{n2, "tap ..", unix.EINVAL},
		{n2, "grab", unix.EINVAL},
		{n2, "grab " + long, unix.EINVAL},
		{n2, "grab " + e.tag + "/x", unix.EINVAL},
		{n2, "detach", unix.EINVAL},
		{n2, "grab lo", unix.EINVAL},
		// Missing interfaces.
		{n2, "grab " + e.name("none"), unix.ENODEV},
		{n2, "detach " + e.name("none"), unix.ENODEV},
		{n2, "detach " + tp, unix.ENODEV},
		{n2, "detach " + g, unix.ENODEV},
		// Names in use.
		{n2, "tap " + v, unix.EEXIST},  // exists, not a TAP
		{n2, "tap " + tp, unix.EEXIST}, // tapped by n1
		{n2, "grab " + tp, unix.EEXIST},
		{n2, "tap " + g, unix.EEXIST}, // grabbed by n1
		{n2, "grab " + g, unix.EBUSY},
		{n1, "grab " + g, unix.EBUSY},
		{n1, "tap " + tp, unix.EEXIST}, // already attached here
	} {
		ctlFails(t, c.net, c.cmd, c.errno)
	}
	if rows := portRows(t, n2); len(rows) != 0 {
		t.Errorf("failed commands left ports on n2: %v", rows)
	}
	if rows := portRows(t, n1); len(rows) != 2 {
		t.Errorf("n1 should hold exactly its tap and grab: %v", rows)
	}
	// ctl of n1: the nine settings (the seven of ipn, vde and mac), the
	// attachments in the order they were made, then last-error.
	if l := ctlLines(t, n1); len(l) != 12 || l[9] != "tap "+tp || l[10] != "grab "+g || !strings.HasPrefix(l[11], "last-error ") {
		t.Errorf("ctl of n1:\n%s\nwant settings, tap %s, grab %s, last-error", strings.Join(l, "\n"), tp, g)
	}
	for _, l := range ctlLines(t, n2) {
		if strings.HasPrefix(l, "tap ") || strings.HasPrefix(l, "grab ") {
			t.Errorf("n2's ctl lists an attachment after failures: %q", l)
		}
	}
	// A write whose last line fails attaches nothing of its first.
	x := e.link(e.name("x"))
	if err := ctl(n2, "tap "+x+"\ngrab "+e.name("none")+"\n"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("tap then grab of a missing interface in one write: %v, want ENODEV", err)
	}
	if attachRow(t, n2, x) != nil {
		t.Errorf("a failed write attached its first line's tap %s", x)
	}
	if linkExists("", x) {
		t.Errorf("a failed write left the interface %s of its first line", x)
	}
	// No stray interface: failed taps created nothing.
	out := sh(t, "ip -o link show")
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, e.tag) && name != tp && name != g && name != gp && name != v && name != vp {
			t.Errorf("interface %s exists after failed commands", name)
		}
	}
	if !strings.Contains(d.log.String(), `msg="ctl refused"`) {
		t.Errorf("refused interface commands left no log line")
	}
	// The attachments of n1 still work: the grab still receives.
	ns := e.netns("g")
	intoNS(t, gp, ns, "")
	fd := openPort(t, n1, unix.O_RDWR)
	frameComesOut(t, fd, ns, gp)
}

// A caller with the manage right but not root gets EPERM for tap, grab
// and detach, with last-error set, and nothing is attached or created.
func TestTapGrabNeedRoot(t *testing.T) {
	e := newIfEnv(t, "setpriv")
	d := startMnet(t)
	owner := &cred{1000, 1000, nil}
	net := d.path("ipn", "mine")
	if out, err := shAs(t, owner, 15*time.Second, "mkdir -m 0755 "+net); err != nil {
		t.Fatalf("mkdir as uid 1000: %v\n%s", err, out)
	}
	open := d.mkNet(t, "open") // root's, mode 0777: everyone manages it
	sh(t, "chmod 0777 "+open)
	x := e.link(e.name("x"))
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	for _, c := range []struct {
		who *cred
		net string
	}{{owner, net}, {&cred{1002, 1002, nil}, open}} {
		// The caller does hold the manage right.
		if out, err := shAs(t, c.who, 15*time.Second, "echo 'descr managed' > "+filepath.Join(c.net, "ctl")); err != nil {
			t.Fatalf("descr as uid %d: %v\n%s", c.who.uid, err, out)
		}
		for _, cmd := range []string{"tap " + x, "grab " + g} {
			out, err := shAs(t, c.who, 15*time.Second, "echo '"+cmd+"' > "+filepath.Join(c.net, "ctl"))
			if err == nil || !strings.Contains(out, rightsEPERM) {
				t.Errorf("uid %d: %q: %v %s, want %q", c.who.uid, cmd, err, out, rightsEPERM)
			}
			if le := lastError(t, c.net); le == "" {
				t.Errorf("uid %d: %q left no last-error", c.who.uid, cmd)
			}
		}
		if rows := portRows(t, c.net); len(rows) != 0 {
			t.Errorf("refused commands left ports: %v", rows)
		}
		if linkExists("", x) {
			t.Errorf("a refused tap created %s", x)
		}
	}
	// Root attaches; the owner cannot detach.
	mustCtl(t, net, "grab "+g)
	out, err := shAs(t, owner, 15*time.Second, "echo 'detach "+g+"' > "+filepath.Join(net, "ctl"))
	if err == nil || !strings.Contains(out, rightsEPERM) {
		t.Errorf("uid 1000: detach %s: %v %s, want %q", g, err, out, rightsEPERM)
	}
	if attachRow(t, net, g) == nil {
		t.Errorf("a refused detach removed the port of %s", g)
	}
	// The owner sees the attachment in ctl.
	out, err = shAs(t, owner, 15*time.Second, "cat "+filepath.Join(net, "ctl"))
	if err != nil || !strings.Contains(out, "grab "+g+"\n") {
		t.Errorf("uid 1000 reading ctl: %v\n%s", err, out)
	}
}

// Attachments count toward maxports.
func TestIfaceMaxports(t *testing.T) {
	e := newIfEnv(t)
	d := startMnet(t)
	net := d.mkNet(t, "n")
	mustCtl(t, net, "maxports 2")
	a, b, c := e.link(e.name("a")), e.link(e.name("b")), e.link(e.name("c"))
	mustCtl(t, net, "tap "+a)
	mustCtl(t, net, "tap "+b)
	ctlFails(t, net, "tap "+c, unix.EBUSY)
	if linkExists("", c) {
		t.Errorf("a tap refused for maxports left its interface %s", c)
	}
	if _, err := openFile(filepath.Join(net, "data"), unix.O_RDWR, 0); !errors.Is(err, unix.EBUSY) {
		t.Errorf("open of data with two attachments and maxports 2: %v, want EBUSY", err)
	}
	mustCtl(t, net, "detach "+b)
	openPort(t, net, unix.O_RDWR)
}
