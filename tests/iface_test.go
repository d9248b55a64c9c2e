package tests

// End-to-end tests of SPEC "ctl" words tap, grab and detach: real TAP
// devices, veth pairs and network namespaces made with ip(8), traffic with
// ping, nc and tcpdump. Every name carries a per-test tag, so parallel runs
// and leftovers of killed runs never collide, and everything a test made is
// removed at its cleanup, also when it fails. Addresses are 198.18.0.0/15,
// used only inside the tests' own namespaces.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ifEnv is the interfaces and namespaces of one test. newIfEnv must be
// called before startMnet: its cleanup then runs after the daemon stopped.
type ifEnv struct {
	t     *testing.T
	tag   string
	nss   []string
	links []string
}

var ifSeq atomic.Uint32

func newIfEnv(t *testing.T, tools ...string) *ifEnv {
	t.Helper()
	require(t, append([]string{"ip"}, tools...)...)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		if inCI {
			t.Fatal("needs /dev/net/tun (CI=true: prerequisites must be installed)")
		}
		t.Skip("needs /dev/net/tun")
	}
	// "m" and 5 hex digits: names of 6 + a few characters, well under
	// IFNAMSIZ, unique per test and per run.
	n := (uint32(os.Getpid())<<8 ^ ifSeq.Add(1)<<4 ^ mrand.Uint32()) & 0xfffff
	e := &ifEnv{t: t, tag: fmt.Sprintf("m%05x", n)}
	t.Cleanup(e.cleanup)
	return e
}

// name is an interface name of this test: the tag and s.
func (e *ifEnv) name(s string) string {
	n := e.tag + s
	if len(n) > 15 {
		e.t.Fatalf("interface name %q too long", n)
	}
	return n
}

// netns creates a namespace with lo up and returns its name.
func (e *ifEnv) netns(s string) string {
	e.t.Helper()
	ns := "mnet-" + e.tag + "-" + s
	e.nss = append(e.nss, ns)
	sh(e.t, fmt.Sprintf("ip netns add %s && ip -n %s link set lo up", ns, ns))
	return ns
}

// link registers an interface of the daemon's namespace for deletion at
// cleanup (TAPs mnet should have deleted itself, for one).
func (e *ifEnv) link(name string) string {
	e.links = append(e.links, name)
	return name
}

// veth creates the pair a (left in the daemon's namespace, up) and b.
func (e *ifEnv) veth(a, b string) {
	e.t.Helper()
	e.link(a)
	sh(e.t, fmt.Sprintf("ip link add %s type veth peer name %s && ip link set %s up", a, b, a))
}

// persistentTap creates a TAP the way an administrator would, outside mnet.
func (e *ifEnv) persistentTap(name string) {
	e.t.Helper()
	e.link(name)
	sh(e.t, fmt.Sprintf("ip tuntap add dev %s mode tap", name))
}

// cleanup deletes the namespaces (and with them every interface inside)
// and the registered links, and any other link carrying the tag.
func (e *ifEnv) cleanup() {
	for _, ns := range e.nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	for _, l := range e.links {
		if linkExists("", l) {
			exec.Command("ip", "link", "del", l).Run()
		}
	}
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, e.tag) {
			exec.Command("ip", "link", "del", name).Run()
		}
	}
}

// inNS prefixes a command with `ip netns exec NS` unless ns is "" (the
// daemon's namespace).
func inNS(ns, cmd string) string {
	if ns == "" {
		return cmd
	}
	return "ip netns exec " + ns + " " + cmd
}

func ipN(ns string) string {
	if ns == "" {
		return "ip"
	}
	return "ip -n " + ns
}

// linkExists reports whether interface name exists in ns.
func linkExists(ns, name string) bool {
	args := []string{"link", "show", "dev", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return exec.Command("ip", args...).Run() == nil
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

// intoNS moves an interface of the daemon's namespace into ns, gives it
// addr/24 (none when addr is "") and brings it up.
func intoNS(t *testing.T, ifname, ns, addr string) {
	t.Helper()
	script := fmt.Sprintf("ip link set %s netns %s && ip -n %s link set %s up", ifname, ns, ns, ifname)
	if addr != "" {
		script += fmt.Sprintf(" && ip -n %s addr add %s/24 dev %s", ns, addr, ifname)
	}
	sh(t, script)
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
		if len(r) == 11 && r[10] == ifname {
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

// randomFile writes size random bytes to a new file and returns its path
// and SHA-256.
func randomFile(t *testing.T, size int) (string, [32]byte) {
	t.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(b)
}

// tcpTransfer sends file from fromNS to addr:port in toNS over one TCP
// connection (nc) and checks that exactly its bytes arrived.
func tcpTransfer(t *testing.T, fromNS, toNS, addr string, port int, file string, sum [32]byte) {
	t.Helper()
	recv := filepath.Join(t.TempDir(), "received")
	script := fmt.Sprintf(`set -e
ip netns exec %[2]s timeout 100 nc -l %[3]s %[4]d > %[5]s &
srv=$!
for i in $(seq 400); do ip netns exec %[2]s ss -ltnH | grep -q ':%[4]d ' && break; sleep 0.05; done
ip netns exec %[1]s timeout 100 nc -N %[3]s %[4]d < %[6]s
wait $srv
`, fromNS, toNS, addr, port, recv, file)
	out, err := shAs(t, nil, 120*time.Second, script)
	got, rerr := os.ReadFile(recv)
	st, _ := os.Stat(file)
	if err != nil || rerr != nil {
		t.Errorf("TCP %s -> %s (%s:%d): %v %v, %d of %d bytes arrived\n%s", fromNS, toNS, addr, port, err, rerr, len(got), st.Size(), out)
		return
	}
	if sha256.Sum256(got) != sum {
		t.Errorf("TCP %s -> %s (%s:%d): %d bytes arrived (sent %d), content differs", fromNS, toNS, addr, port, len(got), st.Size())
	}
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
	e.veth(g, gp)
	ns3 := e.netns("3")
	intoNS(t, gp, ns3, "198.18.0.3")
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
	e.veth(g, gp)
	ns3 := e.netns("3")
	intoNS(t, gp, ns3, "198.18.3.1")
	mustCtl(t, net, "grab "+g)
	frameComesOut(t, fd, ns3, gp)
	arpComesIn(t, fd, ns3, gp, "198.18.3.77")
}

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

// TCP streams between namespaces: TAP to TAP (IFF_VNET_HDR, TSO on), and
// TAP to the grabbed veth and back, where large segments must be cut in
// software. Every byte arrives, in order.
func TestTapTCPStreams(t *testing.T) {
	e := newIfEnv(t, "nc", "ping")
	d := startMnet(t)
	net := d.mkNet(t, "sw")
	mustCtl(t, net, "policy switch")
	ns1 := e.tapInNS(net, e.name("a"), "1", "198.18.0.1")
	ns2 := e.tapInNS(net, e.name("b"), "2", "198.18.0.2")
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	ns3 := e.netns("3")
	intoNS(t, gp, ns3, "198.18.0.3")
	mustCtl(t, net, "grab "+g)
	// The ports counters below prove TSO in use; ethtool, where present,
	// shows it switched on.
	if _, err := exec.LookPath("ethtool"); err == nil {
		if out := sh(t, inNS(ns1, "ethtool -k "+e.name("a"))); !strings.Contains(out, "tcp-segmentation-offload: on") {
			t.Errorf("TSO is not on for the TAP:\n%s", out)
		}
	}
	ping(t, ns1, "198.18.0.2")
	ping(t, ns1, "198.18.0.3")
	pc := readPcap(t, net)
	file, sum := randomFile(t, 8<<20)
	tcpTransfer(t, ns1, ns2, "198.18.0.2", 5001, file, sum)
	tcpTransfer(t, ns2, ns1, "198.18.0.1", 5002, file, sum)
	tcpTransfer(t, ns1, ns3, "198.18.0.3", 5003, file, sum)
	tcpTransfer(t, ns3, ns1, "198.18.0.1", 5004, file, sum)
	for _, ifn := range []string{e.name("a"), e.name("b"), g} {
		r := attachRow(t, net, ifn)
		t.Logf("ports row after the streams: %v", r)
	}
	// The offload is used: the sending TAP's frames average more than a
	// wire frame (each 64 KiB segment counts once).
	r := attachRow(t, net, e.name("a"))
	pkts, _ := strconv.Atoi(r[7])
	byts, _ := strconv.Atoi(r[8])
	if pkts == 0 || byts/pkts <= 1514 {
		t.Errorf("TAP %s sent %d bytes in %d frames: no TSO segment crossed the network", e.name("a"), byts, pkts)
	}
	// pcap shows the wire: segments, none longer than an Ethernet frame
	// of the interfaces' MTU 1500.
	n, longest := pc.stats()
	t.Logf("pcap: %d records, longest %d", n, longest)
	if n == 0 {
		t.Errorf("pcap recorded nothing of the streams")
	}
	if longest > 1514 {
		t.Errorf("pcap recorded a frame of %d bytes: TSO segments must be cut for pcap", longest)
	}
}

// pcapReader reads a network's pcap in the background until the daemon
// ends it, and keeps the record count and the longest original length.
type pcapReader struct {
	mu      sync.Mutex
	records int
	longest int
}

func (p *pcapReader) stats() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.records, p.longest
}

func readPcap(t *testing.T, net string) *pcapReader {
	t.Helper()
	// A raw descriptor, read by blocking reads in this goroutine.
	fd, err := openFile(filepath.Join(net, "pcap"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &pcapReader{}
	go func() {
		defer unix.Close(fd)
		var buf []byte
		chunk := make([]byte, 1<<20)
		hdr := false
		for {
			n, err := unix.Read(fd, chunk)
			if n < 0 {
				n = 0
			}
			buf = append(buf, chunk[:n]...)
			if !hdr && len(buf) >= 24 {
				buf, hdr = buf[24:], true
			}
			for hdr && len(buf) >= 16 {
				incl := int(binary.LittleEndian.Uint32(buf[8:12]))
				orig := int(binary.LittleEndian.Uint32(buf[12:16]))
				if len(buf) < 16+incl {
					break
				}
				buf = buf[16+incl:]
				p.mu.Lock()
				p.records++
				p.longest = max(p.longest, orig)
				p.mu.Unlock()
			}
			if err != nil || n == 0 {
				return
			}
		}
	}()
	return p
}

// A file port reading a network that carries a TCP stream between TAPs
// gets frames no longer than the network's mtu: TSO segments are cut for
// it. With a reader that lost nothing, it saw every byte of the stream.
func TestTapSegmentsForFilePorts(t *testing.T) {
	for _, mtu := range []int{1514, 65535} {
		t.Run(fmt.Sprint("mtu", mtu), func(t *testing.T) {
			e := newIfEnv(t, "nc", "ping")
			d := startMnet(t)
			net := d.mkNet(t, "hub")
			mustCtl(t, net, fmt.Sprintf("mtu %d\nqlen 65536", mtu))
			ns1 := e.tapInNS(net, e.name("a"), "1", "198.18.0.1")
			ns2 := e.tapInNS(net, e.name("b"), "2", "198.18.0.2")
			ping(t, ns1, "198.18.0.2")
			fd := openPort(t, net, unix.O_RDONLY)
			pc := readPcap(t, net)
			var (
				mu       sync.Mutex
				frames   int
				longest  int
				tooLong  int
				payload  int64
				stop     atomic.Bool
				readDone = make(chan error, 1)
			)
			go func() {
				for !stop.Load() {
					p, err := readTimeout(fd, 200*time.Millisecond)
					if errors.Is(err, unix.EAGAIN) {
						continue
					}
					if err != nil {
						readDone <- err
						return
					}
					mu.Lock()
					frames++
					longest = max(longest, len(p))
					if len(p) > mtu {
						tooLong++
					}
					payload += tcpPayloadTo(p, 5001)
					mu.Unlock()
				}
				readDone <- nil
			}()
			const size = 4 << 20
			file, sum := randomFile(t, size)
			tcpTransfer(t, ns1, ns2, "198.18.0.2", 5001, file, sum)
			// Let the reader drain its queue.
			var last int
			for {
				time.Sleep(500 * time.Millisecond)
				mu.Lock()
				n := frames
				mu.Unlock()
				if n == last {
					break
				}
				last = n
			}
			stop.Store(true)
			if err := <-readDone; err != nil {
				t.Fatalf("read data: %v", err)
			}
			row := portRows(t, net)
			var drops string
			for _, r := range row {
				if r[1] == "file" {
					drops = r[9]
				}
			}
			t.Logf("reader: %d frames, longest %d, TCP payload %d; ports %v", frames, longest, payload, row)
			if frames == 0 {
				t.Fatalf("the file port received nothing of the stream")
			}
			if tooLong > 0 {
				t.Errorf("the file port received %d frames longer than mtu %d (longest %d)", tooLong, mtu, longest)
			}
			if drops == "0" && payload < size {
				t.Errorf("the file port dropped nothing but saw only %d of %d stream bytes", payload, size)
			}
			if n, longest := pc.stats(); n == 0 || longest > min(mtu, 1514) {
				t.Errorf("pcap: %d records, longest %d; want segments of at most %d bytes", n, longest, min(mtu, 1514))
			}
		})
	}
}

// tcpPayloadTo returns the TCP payload length of an Ethernet/IPv4/TCP
// frame to dport, or 0.
func tcpPayloadTo(p []byte, dport int) int64 {
	if len(p) < 14+20+20 || p[12] != 0x08 || p[13] != 0x00 || p[14+9] != 6 {
		return 0
	}
	ihl := int(p[14]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[16:18]))
	if len(p) < 14+ihl+20 {
		return 0
	}
	tcp := p[14+ihl:]
	if int(binary.BigEndian.Uint16(tcp[2:4])) != dport {
		return 0
	}
	doff := int(tcp[12]>>4) * 4
	if total-ihl-doff < 0 {
		return 0
	}
	return int64(total - ihl - doff)
}

// Frames larger than what a port can take are drops for that port; the
// port keeps working. A 9000-byte frame cannot leave through a veth of
// mtu 1500, and a frame of the largest size never wedges a TAP.
func TestGrabDropsOversizedFrames(t *testing.T) {
	e := newIfEnv(t, "tcpdump", "ping")
	d := startMnet(t)
	net := d.mkNet(t, "big")
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	ns3 := e.netns("3")
	intoNS(t, gp, ns3, "198.18.0.3")
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

// A grabbed interface does not see its own transmissions: a frame the
// network sends out through it does not come back in as if it had been
// received (which would loop it back to its sender and to every port).
func TestGrabIgnoresOwnTransmissions(t *testing.T) {
	e := newIfEnv(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	ns := e.netns("1")
	intoNS(t, gp, ns, "")
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

// An interface that disappears (ip link del) is detached by itself; one
// taken down stays attached and works again when brought up.
func TestIfaceDeletedOrDown(t *testing.T) {
	e := newIfEnv(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "n")
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	ns := e.netns("1")
	intoNS(t, gp, ns, "")
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

// linkLocal waits until ifname in ns has a usable (no longer tentative)
// IPv6 link-local address and returns it.
func linkLocal(t *testing.T, ns, ifname string) string {
	t.Helper()
	var addr string
	waitFor(t, "an IPv6 link-local address on "+ifname, func() bool {
		out, err := exec.Command("ip", "-n", ns, "-6", "-o", "addr", "show", "dev", ifname, "scope", "link").Output()
		if err != nil || strings.Contains(string(out), "tentative") {
			return false
		}
		f := strings.Fields(string(out))
		for i := range f {
			if f[i] == "inet6" && i+1 < len(f) {
				addr, _, _ = strings.Cut(f[i+1], "/")
				return true
			}
		}
		return false
	})
	return addr
}

// tcp6Transfer is tcpTransfer over IPv6 link-local addresses: to addr on
// the link of fromIf.
func tcp6Transfer(t *testing.T, fromNS, fromIf, toNS, addr string, port int, file string, sum [32]byte) {
	t.Helper()
	recv := filepath.Join(t.TempDir(), "received")
	script := fmt.Sprintf(`set -e
ip netns exec %[2]s timeout 100 nc -6 -l %[4]d > %[5]s &
srv=$!
for i in $(seq 400); do ip netns exec %[2]s ss -6 -ltnH | grep -q ':%[4]d ' && break; sleep 0.05; done
ip netns exec %[1]s timeout 100 nc -6 -N %[3]s%%%[7]s %[4]d < %[6]s
wait $srv
`, fromNS, toNS, addr, port, recv, file, fromIf)
	out, err := shAs(t, nil, 120*time.Second, script)
	got, rerr := os.ReadFile(recv)
	if err != nil || rerr != nil {
		t.Errorf("TCP/IPv6 %s -> %s (%s:%d): %v %v, %d bytes arrived\n%s", fromNS, toNS, addr, port, err, rerr, len(got), out)
		return
	}
	if sha256.Sum256(got) != sum {
		t.Errorf("TCP/IPv6 %s -> %s: %d bytes arrived, content differs", fromNS, toNS, len(got))
	}
}

// TCP over IPv6 (TSO6) between TAPs, to and from a grabbed veth, with a
// file port reading: every byte arrives, and the reader gets wire frames.
func TestTapTCPStreamsIPv6(t *testing.T) {
	e := newIfEnv(t, "nc")
	d := startMnet(t)
	net := d.mkNet(t, "hub")
	mustCtl(t, net, "qlen 65536")
	a, b := e.name("a"), e.name("b")
	ns1 := e.tapInNS(net, a, "1", "198.18.0.1")
	ns2 := e.tapInNS(net, b, "2", "198.18.0.2")
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)
	ns3 := e.netns("3")
	intoNS(t, gp, ns3, "198.18.0.3")
	mustCtl(t, net, "grab "+g)
	ll1, ll2, ll3 := linkLocal(t, ns1, a), linkLocal(t, ns2, b), linkLocal(t, ns3, gp)
	fd := openPort(t, net, unix.O_RDONLY)
	var longest atomic.Int64
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			p, err := readTimeout(fd, 200*time.Millisecond)
			if err == nil && int64(len(p)) > longest.Load() {
				longest.Store(int64(len(p)))
			}
		}
	}()
	file, sum := randomFile(t, 4<<20)
	tcp6Transfer(t, ns1, a, ns2, ll2, 5001, file, sum)
	tcp6Transfer(t, ns3, gp, ns1, ll1, 5002, file, sum)
	tcp6Transfer(t, ns1, a, ns3, ll3, 5003, file, sum)
	stop.Store(true)
	<-done
	if l := longest.Load(); l == 0 || l > 1514 {
		t.Errorf("the file port's longest frame during IPv6 streams: %d bytes, want wire frames (1..1514)", l)
	}
	r := attachRow(t, net, a)
	pkts, _ := strconv.Atoi(r[7])
	byts, _ := strconv.Atoi(r[8])
	t.Logf("TAP %s sent %d bytes in %d frames; ports %v", a, byts, pkts, portRows(t, net))
	if pkts == 0 || byts/pkts <= 1514 {
		t.Errorf("TAP %s sent %d bytes in %d frames: no TSO6 segment crossed the network", a, byts, pkts)
	}
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
	e.veth(g, gp)
	ns3 := e.netns("3")
	intoNS(t, gp, ns3, "198.18.0.3")
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
	e.veth(c, cp)
	ns4 := e.netns("4")
	intoNS(t, cp, ns4, "198.18.1.4")
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
	e.veth(g, gp)
	nsG := e.netns("2")
	intoNS(t, gp, nsG, "198.18.0.2")
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
