// SPDX-License-Identifier: BSD-3-Clause

package tests

// What the end-to-end tests of the ctl words tap, grab and detach
// (tap_test.go, grab_test.go, iface_*_test.go) share: real TAP devices,
// veth pairs and network namespaces made with ip(8) (testenv.Net: every
// name carries a per-test tag, and everything a test made is removed at
// its cleanup, also when it fails), traffic with ping, nc and tcpdump.
// Addresses are 198.18.0.0/15, used only inside the tests' own namespaces.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"golang.org/x/sys/unix"
)

// ifEnv is the interfaces and namespaces of one test (a testenv.Net).
// newIfEnv must be called before startMnet: its cleanup then runs after
// the daemon stopped.
type ifEnv struct {
	*testenv.Net
	t   *testing.T
	tag string
}

func newIfEnv(t *testing.T, tools ...string) *ifEnv {
	t.Helper()
	require(t, append([]string{"ip", "/dev/net/tun"}, tools...)...)
	n := testenv.NewNet(t)
	return &ifEnv{Net: n, t: t, tag: n.Tag}
}

// The methods and functions below are testenv's of the same names.

func (e *ifEnv) name(s string) string { return e.Name(s) }

func (e *ifEnv) link(name string) string { return e.Link(name) }

func (e *ifEnv) netns(s string) string {
	e.t.Helper()
	return e.Netns(s)
}

func (e *ifEnv) veth(a, b string) {
	e.t.Helper()
	e.Veth(a, b)
}

func (e *ifEnv) vethNS(a, b, ns, addr string) string {
	e.t.Helper()
	return e.VethNS(a, b, ns, addr)
}

func (e *ifEnv) persistentTap(name string) {
	e.t.Helper()
	e.PersistentTap(name)
}

func inNS(ns, cmd string) string { return testenv.InNS(ns, cmd) }

func ipN(ns string) string { return testenv.IP(ns) }

func linkExists(ns, name string) bool { return testenv.LinkExists(ns, name) }

func intoNS(t *testing.T, ifname, ns, addr string) {
	t.Helper()
	testenv.IntoNS(t, ifname, ns, addr)
}

// linkLine is `ip -o link show dev NAME` in ns.
func linkLine(t *testing.T, ns, name string) string {
	t.Helper()
	return sh(t, ipN(ns)+" -o link show dev "+name)
}

// linkMTU and linkMAC read an interface's MTU and MAC address.
func linkMTU(t *testing.T, ns, name string) int {
	t.Helper()
	f := strings.Fields(linkLine(t, ns, name))
	for i := range f {
		if f[i] == "mtu" && i+1 < len(f) {
			n, err := strconv.Atoi(f[i+1])
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no mtu for %s in %q", name, linkLine(t, ns, name))
	return 0
}

func linkMAC(t *testing.T, ns, name string) []byte {
	t.Helper()
	f := strings.Fields(linkLine(t, ns, name))
	for i := range f {
		if f[i] == "link/ether" && i+1 < len(f) {
			var mac []byte
			for _, h := range strings.Split(f[i+1], ":") {
				b, err := strconv.ParseUint(h, 16, 8)
				if err != nil {
					t.Fatalf("bad MAC %q", f[i+1])
				}
				mac = append(mac, byte(b))
			}
			return mac
		}
	}
	t.Fatalf("no MAC for %s", name)
	return nil
}

// linkFlags returns the <...> flags of an interface.
func linkFlags(t *testing.T, ns, name string) []string {
	t.Helper()
	l := linkLine(t, ns, name)
	i, j := strings.Index(l, "<"), strings.Index(l, ">")
	if i < 0 || j < i {
		t.Fatalf("no flags in %q", l)
	}
	return strings.Split(l[i+1:j], ",")
}

// promiscuity is the kernel's promiscuity count of an interface of the
// daemon's namespace (`ip -d link`).
func promiscuity(t *testing.T, name string) int {
	t.Helper()
	f := strings.Fields(sh(t, "ip -d -o link show dev "+name))
	for i := range f {
		if f[i] == "promiscuity" && i+1 < len(f) {
			if n, err := strconv.Atoi(f[i+1]); err == nil {
				return n
			}
		}
	}
	t.Fatalf("no promiscuity for %s", name)
	return 0
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// ping checks that ns reaches addr. A fresh path may lose its first
// packets to ARP and links coming up, so a failed round is retried.
func ping(t *testing.T, ns, addr string) {
	t.Helper()
	var out string
	var err error
	for range 5 {
		out, err = shAs(t, nil, 20*time.Second, inNS(ns, "ping -n -c 2 -W 2 "+addr))
		if err == nil {
			return
		}
	}
	t.Fatalf("ping from %s to %s: %v\n%s", ns, addr, err, out)
}

// attachRow returns the ports row whose NAME is ifname, or nil.
func attachRow(t *testing.T, net, ifname string) []string {
	t.Helper()
	for _, r := range portRows(t, net) {
		if len(r) >= 11 && r[10] == ifname {
			return r
		}
	}
	return nil
}

// wantAttachRow checks the ports row of an attachment: KIND, UID 0, PID 0,
// MODE rw, NAME the interface.
func wantAttachRow(t *testing.T, net, kind, ifname string) []string {
	t.Helper()
	r := attachRow(t, net, ifname)
	if r == nil {
		t.Fatalf("ports has no row for %s:\n%s", ifname, readFile(t, filepath.Join(net, "ports")))
	}
	if r[1] != kind || r[2] != "0" || r[3] != "0" || r[4] != "rw" {
		t.Errorf("ports row of %s: %v, want KIND %s UID 0 PID 0 MODE rw", ifname, r, kind)
	}
	return r
}

// ctlLines returns the lines of ctl.
func ctlLines(t *testing.T, net string) []string {
	t.Helper()
	return strings.Split(strings.TrimSuffix(readFile(t, filepath.Join(net, "ctl")), "\n"), "\n")
}

func hasLine(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

// lastError returns the text of ctl's last-error line, "" if none.
func lastError(t *testing.T, net string) string {
	t.Helper()
	for _, l := range ctlLines(t, net) {
		if v, ok := strings.CutPrefix(l, "last-error "); ok {
			return v
		}
	}
	return ""
}

// ctlFails checks that a ctl write fails with errno and leaves a last-error
// naming the interface (or, without one, the command).
func ctlFails(t *testing.T, net, cmd string, errno unix.Errno) {
	t.Helper()
	err := ctl(net, cmd)
	if !errors.Is(err, errno) {
		t.Errorf("ctl %q: %v, want %v (%s)", cmd, err, errno, unix.ErrnoName(errno))
		return
	}
	f := strings.Fields(cmd)
	want := f[0]
	if len(f) > 1 {
		want = f[1]
	}
	if le := lastError(t, net); !strings.Contains(le, want) {
		t.Errorf("after ctl %q: last-error %q does not mention %q", cmd, le, want)
	}
}

// testFrame is a broadcast frame of size bytes with the local
// experimental ethertype 0x88b5, from 02:6d:6e:65:74:01.
func testFrame(size int) []byte {
	f := make([]byte, max(size, 60))
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x6d, 0x6e, 0x65, 0x74, 0x01, 0x88, 0xb5})
	copy(f[14:], "mnet iface test frame")
	return f
}

const testFrameSrc = "02:6d:6e:65:74:01 > ff:ff:ff:ff:ff:ff"

// frameComesOut writes test frames to the data port fd until tcpdump on
// ifname (in ns) has captured one: what a file port sends leaves through
// the interface.
func frameComesOut(t *testing.T, fd int, ns, ifname string) {
	t.Helper()
	sizedFrameComesOut(t, fd, ns, ifname, 60)
}

// sizedFrameComesOut is frameComesOut with frames of size bytes.
func sizedFrameComesOut(t *testing.T, fd int, ns, ifname string, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td := exec.CommandContext(ctx, "bash", "-c", inNS(ns, fmt.Sprintf("tcpdump -n -e -l -i %s -c 1 ether proto 0x88b5 and greater %d", ifname, size)))
	td.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	td.Cancel = func() error { return syscall.Kill(-td.Process.Pid, syscall.SIGKILL) }
	td.WaitDelay = 2 * time.Second
	out := &syncBuffer{}
	td.Stdout, td.Stderr = out, out
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- td.Wait() }()
	frame := testFrame(size)
	for {
		select {
		case err := <-done:
			if err != nil || !strings.Contains(out.String(), testFrameSrc) {
				t.Fatalf("tcpdump on %s (%s) did not see the frame written to data: %v\n%s", ifname, ns, err, out.String())
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		// Write only once tcpdump listens: earlier frames are lost anyway.
		if strings.Contains(out.String(), "listening on") {
			if _, err := unix.Write(fd, frame); err != nil {
				t.Fatalf("write to data: %v", err)
			}
		}
	}
}

// arpComesIn makes ns ask for target's MAC (ping of an absent address)
// and reads the data port fd until that ARP request arrives, sent from
// the MAC of ifname in ns: what the interface sends enters the network.
func arpComesIn(t *testing.T, fd int, ns, ifname, target string) {
	t.Helper()
	mac := linkMAC(t, ns, ifname)
	ip := ip4(t, target)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pinger := exec.CommandContext(ctx, "bash", "-c", inNS(ns, "bash -c 'for i in $(seq 60); do ping -n -c 1 -W 1 "+target+"; done' >/dev/null 2>&1"))
	pinger.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pinger.Cancel = func() error { return syscall.Kill(-pinger.Process.Pid, syscall.SIGKILL) }
	pinger.WaitDelay = 2 * time.Second
	if err := pinger.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); pinger.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		p, err := readTimeout(fd, time.Second)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			t.Fatalf("read data: %v", err)
		}
		if len(seen) < 20 {
			seen = append(seen, fmt.Sprintf("%d bytes %x", len(p), p[:min(len(p), 42)]))
		}
		if len(p) >= 42 && p[12] == 0x08 && p[13] == 0x06 && p[21] == 1 && bytes.Equal(p[38:42], ip) {
			if !bytes.Equal(p[6:12], mac) {
				t.Errorf("ARP request for %s from MAC %x, want %s's %x", target, p[6:12], ifname, mac)
			}
			return
		}
	}
	t.Fatalf("no ARP request for %s from %s reached data; read:\n%s", target, ifname, strings.Join(seen, "\n"))
}

func ip4(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("bad address %q", s)
		}
		b = append(b, byte(n))
	}
	return b
}

// tapInNS attaches a new TAP to net, checks it, and moves it into a new
// namespace with addr. It returns the namespace.
func (e *ifEnv) tapInNS(net, ifname, nsName, addr string) string {
	t := e.t
	t.Helper()
	e.link(ifname)
	mustCtl(t, net, "tap "+ifname)
	ns := e.netns(nsName)
	intoNS(t, ifname, ns, addr)
	return ns
}
