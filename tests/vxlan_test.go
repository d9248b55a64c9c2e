// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of SPEC "VXLAN cables": mnet networks cabled over VXLAN
// to Linux vxlan devices and to a second mnet daemon. Each "host" is a
// network namespace with an underlay address on a shared wire (a bridge
// in a namespace of its own); an mnet daemon runs inside its host's
// namespace (nsenter --net, so its mount is the test's), which is where
// its cables' sockets are made. Hosts put the overlay into endpoint
// namespaces: behind a TAP of the mnet network, or behind a Linux bridge
// of the vxlan device. Underlay 198.18.0.0/24 (2001:db8::/64 for IPv6),
// overlay 198.18.1.0/24.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"golang.org/x/sys/unix"
)

const vxVNI = 42

// vxWorld is the wire and hosts of one test.
type vxWorld struct {
	*ifEnv
	wire string // namespace with the underlay bridge
	n    int
}

func newVxWorld(t *testing.T, tools ...string) *vxWorld {
	t.Helper()
	e := newIfEnv(t, append([]string{"nsenter", "ping", "tcpdump"}, tools...)...)
	w := &vxWorld{ifEnv: e}
	w.wire = e.netns("wire")
	sh(t, fmt.Sprintf("ip -n %s link add sw0 type bridge && ip -n %s link set sw0 up", w.wire, w.wire))
	return w
}

// host makes a host namespace joined to the wire by its underlay
// interface "ul" with addr (an IPv4 /24 or IPv6 /64 address).
func (w *vxWorld) host(name, addr string) string {
	w.t.Helper()
	ns := w.netns(name)
	w.n++
	port := fmt.Sprintf("p%d", w.n)
	plen, nodad := "/24", ""
	if strings.Contains(addr, ":") {
		plen, nodad = "/64", " nodad"
	}
	sh(w.t, fmt.Sprintf(`set -e
ip link add ul netns %[1]s type veth peer name %[2]s netns %[3]s
ip -n %[3]s link set %[2]s master sw0 up
ip -n %[1]s addr add %[4]s%[5]s dev ul%[6]s
ip -n %[1]s link set ul up`, ns, port, w.wire, addr, plen, nodad))
	return ns
}

// linuxVTEP gives host a Linux vxlan device (dstport 4789) with args
// (remote ..., group ... dev ul), bridged with a veth into a new endpoint
// namespace with overlay address addr. It returns the endpoint.
func (w *vxWorld) linuxVTEP(host, args, epName, addr string) string {
	w.t.Helper()
	return w.linuxVTEPOf(host, vxVNI, args, epName, addr)
}

// linuxVTEPOf is linuxVTEP for VNI vni; its devices are named after it.
func (w *vxWorld) linuxVTEPOf(host string, vni int, args, epName, addr string) string {
	w.t.Helper()
	ep := w.netns(epName)
	sh(w.t, fmt.Sprintf(`set -e
ip -n %[1]s link add vx%[2]d type vxlan id %[2]d %[3]s dstport 4789
ip -n %[1]s link add sw%[2]d type bridge
ip -n %[1]s link set vx%[2]d master sw%[2]d
ip -n %[1]s link add ep%[2]d type veth peer name ep netns %[4]s
ip -n %[1]s link set ep%[2]d master sw%[2]d
ip -n %[1]s link set vx%[2]d up
ip -n %[1]s link set ep%[2]d up
ip -n %[1]s link set sw%[2]d up
ip -n %[4]s link set ep mtu 1450 up
ip -n %[4]s addr add %[5]s/24 dev ep`, host, vni, args, ep, addr))
	return ep
}

// mnetVTEP starts a daemon in host with a switch network cabled by the
// vxlan line, and a TAP of it in a new endpoint namespace with overlay
// address addr (MTU 1450, as the Linux side has). It returns the
// daemon, the network and the endpoint.
func (w *vxWorld) mnetVTEP(host, vxlanLine, epName, addr string) (*daemon, string, string) {
	t := w.t
	t.Helper()
	d := startMnetInDir(t, host)
	net := d.mkNet(t, "vx")
	ctlIn(t, host, net, "policy switch")
	ctlIn(t, host, net, vxlanLine)
	ep := w.tapEndpoint(host, net, epName, addr)
	return d, net, ep
}

// startMnetInDir starts a daemon in network namespace ns with its mount,
// state file and VDE directory in a fresh directory.
func startMnetInDir(t *testing.T, ns string) *daemon {
	t.Helper()
	dir := mountDir(t)
	return startMnetIn(t, ns, filepath.Join(dir, "mnt"), filepath.Join(dir, "state.json"))
}

// tapEndpoint attaches a TAP "tpEPNAME" to net (the daemon runs in host) and
// moves it into a new endpoint namespace with addr and MTU 1450.
func (w *vxWorld) tapEndpoint(host, net, epName, addr string) string {
	w.t.Helper()
	ep := w.netns(epName)
	tap := "tp" + epName
	ctlIn(w.t, host, net, "tap "+tap)
	sh(w.t, fmt.Sprintf("ip -n %[1]s link set %[4]s netns %[2]s && ip -n %[2]s link set %[4]s mtu 1450 up && ip -n %[2]s addr add %[3]s/24 dev %[4]s",
		host, ep, addr, tap))
	return ep
}

// ctlIn writes one ctl line from inside the network namespace ns, the
// caller's namespace where its interfaces and sockets are made.
func ctlIn(t *testing.T, ns, net, line string) {
	t.Helper()
	if err := ctlInErr(t, ns, net, line); err != nil {
		t.Fatalf("ctl %q (from %s): %v", line, ns, err)
	}
}

// ctlInFails checks that writing line from ns fails with errno.
func ctlInFails(t *testing.T, ns, net, line string, errno unix.Errno) {
	t.Helper()
	err := ctlInErr(t, ns, net, line)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), errno.Error()) {
		t.Errorf("ctl %q (from %s): %v, want %v", line, ns, err, errno)
	}
}

func ctlInErr(t *testing.T, ns, net, line string) error {
	t.Helper()
	// dd (one write(2)) says which errno the write got; a shell's printf
	// would say EIO whatever it was.
	out, err := exec.Command("nsenter", "--net=/run/netns/"+ns, "sh", "-c", `printf '%s\n' "$1" | dd of="$2" status=none`,
		"sh", line, filepath.Join(net, "ctl")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// capture is tcpdump running in a namespace.
type capture struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startCapture runs tcpdump -nn -v on ifname in ns with filter, until
// stop; it returns once tcpdump listens.
func startCapture(t *testing.T, ns, ifname, filter string) *capture {
	t.Helper()
	c := &capture{out: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tcpdump", "-nn", "-l", "-i", ifname, filter)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() { c.stop() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.out.String(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump in %s did not start:\n%s", ns, c.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// stop ends tcpdump (letting it flush what it printed) and returns its output.
func (c *capture) stop() string {
	select {
	case <-c.done:
		return c.out.String()
	default:
	}
	time.Sleep(300 * time.Millisecond) // the last packets reach tcpdump
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
	return c.out.String()
}

// vxlanRow returns the ports row of the cable of vni in net, or nil.
func vxlanRow(t *testing.T, net string, vni int) []string {
	t.Helper()
	for _, r := range portRows(t, net) {
		if len(r) >= 11 && r[1] == "vxlan" && r[10] == strconv.Itoa(vni) {
			return r
		}
	}
	return nil
}

// iperf runs an iperf3 TCP test of secs seconds from client to server
// (its address addr) and returns the receiver's rate line.
func iperf(t *testing.T, client, server, addr string, secs int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+30)*time.Second)
	defer cancel()
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", server, "iperf3", "-s", "-1")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	srv.Cancel = func() error { return syscall.Kill(-srv.Process.Pid, syscall.SIGKILL) }
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	var out []byte
	var err error
	for range 50 {
		out, err = exec.CommandContext(ctx, "ip", "netns", "exec", client, "iperf3", "-c", addr,
			"-t", strconv.Itoa(secs)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Connection refused") {
			break
		}
		time.Sleep(100 * time.Millisecond) // the server is not listening yet
	}
	if err != nil {
		t.Fatalf("iperf3 %s -> %s: %v\n%s", client, server, err, out)
	}
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(l, "receiver") {
			return strings.TrimSpace(l)
		}
	}
	t.Fatalf("iperf3 %s -> %s: no receiver line\n%s", client, server, out)
	return ""
}

// An mnet network with a TAP and a vxlan cable reaches a Linux vxlan
// device on another host: ping and iperf3 across, the underlay carries
// RFC 7348 datagrams with the VNI from source ports in 32768..60999, the
// cable is a port of kind vxlan named by its VNI and a ctl line, a frame
// too long for the underlay is a counted drop, and detach removes it.
func TestVxlanLinuxPeer(t *testing.T) {
	w := newVxWorld(t, "iperf3")
	a := w.host("a", "198.18.0.1")
	b := w.host("b", "198.18.0.2")
	h2 := w.linuxVTEP(b, "remote 198.18.0.1 dev ul", "h2", "198.18.1.2")
	_, net, h1 := w.mnetVTEP(a, fmt.Sprintf("vxlan %d 198.18.0.2", vxVNI), "h1", "198.18.1.1")

	if !hasLine(ctlLines(t, net), "vxlan 42 198.18.0.2") {
		t.Errorf("ctl does not show the cable's line:\n%s", readFile(t, filepath.Join(net, "ctl")))
	}
	row := vxlanRow(t, net, vxVNI)
	if row == nil || row[2] != "0" || row[3] != "0" || row[4] != "rw" {
		t.Fatalf("ports row of the cable: %v\n%s", row, readFile(t, filepath.Join(net, "ports")))
	}

	c := startCapture(t, a, "ul", "udp port 4789")
	ping(t, h1, "198.18.1.2")
	ping(t, h2, "198.18.1.1")
	got := c.stop()
	if !strings.Contains(got, "VXLAN, flags [I] (0x08), vni 42") {
		t.Errorf("tcpdump on the underlay shows no VXLAN with vni 42:\n%s", got)
	}
	// Our datagrams: 198.18.0.1.SPORT > 198.18.0.2.4789.
	sports := regexp.MustCompile(`198\.18\.0\.1\.(\d+) > 198\.18\.0\.2\.4789:`).FindAllStringSubmatch(got, -1)
	if len(sports) == 0 {
		t.Errorf("no datagram from mnet to the Linux VTEP on the underlay:\n%s", got)
	}
	for _, m := range sports {
		if p, _ := strconv.Atoi(m[1]); p < 32768 || p >= 61000 {
			t.Errorf("source port %d outside 32768..60999", p)
		}
	}
	if !strings.Contains(got, "198.18.1.1 > 198.18.1.2: ICMP echo request") {
		t.Errorf("the inner ICMP is not in the VXLAN datagrams:\n%s", got)
	}

	t.Log(iperf(t, h1, h2, "198.18.1.2", 3))
	t.Log(iperf(t, h2, h1, "198.18.1.1", 3))

	// A frame longer than the underlay allows is a drop of the cable's
	// port (the TAP's side has MTU 1500 for a moment).
	drops := func() int { n, _ := strconv.Atoi(vxlanRow(t, net, vxVNI)[9]); return n }
	before := drops()
	sh(t, inNS(h1, "ip link set tph1 mtu 1500"))
	shAs(t, nil, 10*time.Second, inNS(h1, "ping -n -c 2 -W 1 -M do -s 1472 198.18.1.2"))
	if after := drops(); after < before+2 {
		t.Errorf("cable drops %d -> %d after two frames too long for the underlay", before, after)
	}

	ctlIn(t, a, net, "detach vxlan 42")
	if vxlanRow(t, net, vxVNI) != nil || strings.Contains(readFile(t, filepath.Join(net, "ctl")), "vxlan") {
		t.Errorf("after detach the cable is still there:\n%s\n%s", readFile(t, filepath.Join(net, "ports")), readFile(t, filepath.Join(net, "ctl")))
	}
	if out, err := shAs(t, nil, 10*time.Second, inNS(h1, "ping -n -c 1 -W 1 198.18.1.2")); err == nil {
		t.Errorf("ping still crosses after detach:\n%s", out)
	}
}

// Three hosts: mnet on a with cables to b (Linux) and c (a second mnet
// daemon). Unicast to a learned MAC goes to its VTEP only; broadcast is
// replicated to both remotes.
func TestVxlanLearningAndReplication(t *testing.T) {
	w := newVxWorld(t)
	a := w.host("a", "198.18.0.1")
	b := w.host("b", "198.18.0.2")
	c := w.host("c", "198.18.0.3")
	h2 := w.linuxVTEP(b, "remote 198.18.0.1 dev ul", "h2", "198.18.1.2")
	// Linux floods to one remote per fdb entry: b knows a, and a knows b and c.
	_, _, h3 := w.mnetVTEP(c, "vxlan 42 198.18.0.1", "h3", "198.18.1.3")
	_, net, h1 := w.mnetVTEP(a, "vxlan 42 198.18.0.2 198.18.0.3", "h1", "198.18.1.1")

	ping(t, h1, "198.18.1.2")
	ping(t, h1, "198.18.1.3")
	ping(t, h3, "198.18.1.1")
	ping(t, h2, "198.18.1.1")

	// Unicast: learned, so to one remote only.
	cb := startCapture(t, b, "ul", "udp port 4789")
	cc := startCapture(t, c, "ul", "udp port 4789")
	sh(t, inNS(h1, "ping -n -c 3 -i 0.2 198.18.1.2"))
	gotB, gotC := cb.stop(), cc.stop()
	echo := "198.18.1.1 > 198.18.1.2: ICMP echo request"
	if n := strings.Count(gotB, echo); n < 3 {
		t.Errorf("b saw %d echo requests to its endpoint, want 3:\n%s", n, gotB)
	}
	if strings.Contains(gotC, echo) {
		t.Errorf("c saw echo requests meant for b's endpoint (not learned?):\n%s", gotC)
	}

	// Broadcast: ARP for an absent address reaches both.
	cb = startCapture(t, b, "ul", "udp port 4789")
	cc = startCapture(t, c, "ul", "udp port 4789")
	shAs(t, nil, 10*time.Second, inNS(h1, "ping -n -c 1 -W 2 198.18.1.99"))
	gotB, gotC = cb.stop(), cc.stop()
	arp := "Request who-has 198.18.1.99"
	if !strings.Contains(gotB, arp) || !strings.Contains(gotC, arp) {
		t.Errorf("the ARP broadcast did not reach both remotes:\nb:\n%s\nc:\n%s", gotB, gotC)
	}
	if row := vxlanRow(t, net, vxVNI); row == nil {
		t.Errorf("no vxlan port in %s", net)
	}
}

// A cable over a multicast group reaches a Linux vxlan device in the
// same group.
func TestVxlanGroup(t *testing.T) {
	w := newVxWorld(t)
	a := w.host("a", "198.18.0.1")
	b := w.host("b", "198.18.0.2")
	h2 := w.linuxVTEP(b, "group 239.1.1.42 dev ul", "h2", "198.18.1.2")
	_, net, h1 := w.mnetVTEP(a, "vxlan 42 group 239.1.1.42 dev ul", "h1", "198.18.1.1")
	if !hasLine(ctlLines(t, net), "vxlan 42 group 239.1.1.42 dev ul") {
		t.Errorf("ctl does not show the cable's line:\n%s", readFile(t, filepath.Join(net, "ctl")))
	}
	ping(t, h1, "198.18.1.2")
	ping(t, h2, "198.18.1.1")
}

// Over an IPv6 underlay (70 bytes of overhead).
func TestVxlanIPv6Underlay(t *testing.T) {
	w := newVxWorld(t)
	a := w.host("a", "2001:db8::1")
	b := w.host("b", "2001:db8::2")
	h2 := w.linuxVTEP(b, "remote 2001:db8::1 dev ul", "h2", "198.18.1.2")
	_, net, h1 := w.mnetVTEP(a, "vxlan 42 2001:db8::2", "h1", "198.18.1.1")
	sh(t, inNS(h1, "ip link set tph1 mtu 1430")+" && "+inNS(h2, "ip link set ep mtu 1430"))
	ping(t, h1, "198.18.1.2")
	ping(t, h2, "198.18.1.1")
	if row := vxlanRow(t, net, vxVNI); row == nil {
		t.Errorf("no vxlan port in %s", net)
	}
	// 1430 + 14 + 70 = 1514: a full-size ping fits exactly.
	sh(t, inNS(h1, "ping -n -c 1 -W 2 -M do -s 1402 198.18.1.2"))
}

// A persistent network keeps its cable across a restart.
func TestVxlanPersist(t *testing.T) {
	w := newVxWorld(t)
	a := w.host("a", "198.18.0.1")
	b := w.host("b", "198.18.0.2")
	h2 := w.linuxVTEP(b, "remote 198.18.0.1 dev ul", "h2", "198.18.1.2")
	dir := mountDir(t)
	mp, state := filepath.Join(dir, "mnt"), filepath.Join(dir, "state.json")
	d := startMnetIn(t, a, mp, state)
	net := d.mkNet(t, "vx")
	ctlIn(t, a, net, "policy switch")
	ctlIn(t, a, net, "persist on")
	ctlIn(t, a, net, "vxlan 42 198.18.0.2:4789")
	h1 := w.tapEndpoint(a, net, "h1", "198.18.1.1")
	ping(t, h1, "198.18.1.2")
	if err := d.stop(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	d = startMnetIn(t, a, mp, state)
	net = d.path("ipn", "vx")
	waitFor(t, "the cable to be restored", func() bool { return vxlanRow(t, net, vxVNI) != nil })
	if !hasLine(ctlLines(t, net), "vxlan 42 198.18.0.2") {
		t.Errorf("ctl after restart:\n%s", readFile(t, filepath.Join(net, "ctl")))
	}
	ping(t, h2, "198.18.1.1")
}

// Bad lines are EINVAL with a last-error; a VNI on a port is one
// network's (EEXIST); cables need CAP_NET_ADMIN (EPERM).
func TestVxlanCtlErrors(t *testing.T) {
	w := newVxWorld(t)
	a := w.host("a", "198.18.0.1")
	d := startMnetInDir(t, a)
	net := d.mkNet(t, "vx")
	other := d.mkNet(t, "other")
	for _, line := range []string{
		"vxlan",
		"vxlan 42",
		"vxlan x 198.18.0.2",
		"vxlan 16777216 198.18.0.2",
		"vxlan -1 198.18.0.2",
		"vxlan 042 198.18.0.2",
		"vxlan 42 198.18.0.256",
		"vxlan 42 host.example",
		"vxlan 42 198.18.0.2:0",
		"vxlan 42 198.18.0.2:65536",
		"vxlan 42 0.0.0.0",
		"vxlan 42 239.1.1.1",
		"vxlan 42 198.18.0.2 2001:db8::2",
		"vxlan 42 198.18.0.2 198.18.0.2",
		"vxlan 42 fe80::1%ul",
		"vxlan 42 group 198.18.0.2",
		"vxlan 42 group 239.1.1.1 dev",
		"vxlan 42 group 239.1.1.1 via ul",
		"vxlan 42 group 239.1.1.1 dev a/b",
	} {
		ctlFails(t, net, line, unix.EINVAL)
	}
	ctlFails(t, net, "vxlan 42 group 239.1.1.1 dev nosuchdev", unix.ENODEV)
	ctlFails(t, net, "detach vxlan 42", unix.ENODEV)

	ctlIn(t, a, net, "vxlan 42 [2001:db8::2]:4789 ")
	if !hasLine(ctlLines(t, net), "vxlan 42 2001:db8::2") {
		t.Errorf("ctl does not show the canonical line:\n%s", readFile(t, filepath.Join(net, "ctl")))
	}
	ctlIn(t, a, net, "detach vxlan 42")
	ctlIn(t, a, net, "vxlan 42 198.18.0.2:4790 198.18.0.3")
	if !hasLine(ctlLines(t, net), "vxlan 42 198.18.0.2:4790 198.18.0.3") {
		t.Errorf("ctl does not show the canonical line:\n%s", readFile(t, filepath.Join(net, "ctl")))
	}
	// The same VNI on the same local port: EEXIST, here and elsewhere.
	ctlInFails(t, a, net, "vxlan 42 198.18.0.4:4790", unix.EEXIST)
	ctlInFails(t, a, other, "vxlan 42 198.18.0.9:4790", unix.EEXIST)
	// Another VNI on the same port shares the socket; the same VNI on
	// another port is another cable.
	ctlIn(t, a, other, "vxlan 43 198.18.0.9:4790")
	ctlIn(t, a, other, "vxlan 42 198.18.0.9")
	if r := vxlanRow(t, other, 43); r == nil {
		t.Errorf("no port for VNI 43 in other")
	}
	ctlIn(t, a, net, "detach 42")
	ctlIn(t, a, other, "detach vxlan 43")

	// Without CAP_NET_ADMIN: EPERM, for attach and detach (the manage
	// right granted by chmod: mkdir gives others none).
	for _, dir := range []string{net, other} {
		if err := syscall.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	out, err := shAs(t, &cred{uid: 65534, gid: 65534}, 10*time.Second,
		fmt.Sprintf("echo 'vxlan 44 198.18.0.2' > %s/ctl", net))
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("vxlan as uid 65534: %v\n%s", err, out)
	}
	out, err = shAs(t, &cred{uid: 65534, gid: 65534}, 10*time.Second,
		fmt.Sprintf("echo 'detach vxlan 42' > %s/ctl", other))
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("detach vxlan as uid 65534: %v\n%s", err, out)
	}
}

// Two networks cabled with VNIs 42 and 43 to one Linux host share the
// UDP port: each frame reaches the network of its VNI only (the two
// overlays even use the same addresses).
func TestVxlanTwoVNIsOnePort(t *testing.T) {
	w := newVxWorld(t)
	a := w.host("a", "198.18.0.1")
	b := w.host("b", "198.18.0.2")
	h2 := w.linuxVTEPOf(b, 42, "remote 198.18.0.1 dev ul", "h2", "198.18.1.2")
	h4 := w.linuxVTEPOf(b, 43, "remote 198.18.0.1 dev ul", "h4", "198.18.1.2")
	d, vx, h1 := w.mnetVTEP(a, "vxlan 42 198.18.0.2", "h1", "198.18.1.1")
	vy := d.mkNet(t, "vy")
	ctlIn(t, a, vy, "policy switch")
	ctlIn(t, a, vy, "vxlan 43 198.18.0.2")
	h3 := w.tapEndpoint(a, vy, "h3", "198.18.1.1")
	// Different MACs behind the same address tell the overlays apart.
	mac2, mac4 := linkMAC(t, h2, "ep"), linkMAC(t, h4, "ep")
	for _, c := range []struct {
		from, net string
		mac       []byte
	}{{h1, vx, mac2}, {h3, vy, mac4}} {
		ping(t, c.from, "198.18.1.2")
		out := sh(t, inNS(c.from, "ip neigh show 198.18.1.2"))
		if !strings.Contains(out, net6MAC(c.mac)) {
			t.Errorf("%s reached 198.18.1.2 at %s, want %s (the other VNI's host?)", c.from, out, net6MAC(c.mac))
		}
	}
	ping(t, h2, "198.18.1.1")
	ping(t, h4, "198.18.1.1")
	for _, net := range []string{vx, vy} {
		if r := portRows(t, net); len(r) != 2 {
			t.Errorf("%s ports: %v", net, r)
		}
	}
	// One cable leaves the shared socket; the other goes on, and the VNI
	// can be cabled again.
	ctlIn(t, a, vy, "detach vxlan 43")
	ping(t, h1, "198.18.1.2")
	ctlIn(t, a, vy, "vxlan 43 198.18.0.2")
	ping(t, h3, "198.18.1.2")
	ctlIn(t, a, vx, "detach vxlan 42")
	ping(t, h3, "198.18.1.2")
}

// net6MAC formats a MAC as ip(8) prints it.
func net6MAC(m []byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// vdeplug4's vxvde (vde_plug vxvde://GROUP/port=PORT/vni=VNI with a TAP
// behind it) and a cable over the same group and port exchange frames.
func TestVxlanVxvde(t *testing.T) {
	w := newVxWorld(t, "vde_plug")
	if m, _ := filepath.Glob("/usr/lib/*/vdeplug/libvdeplug_vxvde.so"); len(m) == 0 {
		testenv.SkipOrFail(t, "needs vdeplug4's vxvde module (Debian libvdeplug2)")
	}
	a := w.host("a", "198.18.0.1")
	b := w.host("b", "198.18.0.2")
	_, net, h1 := w.mnetVTEP(a, "vxlan 42 group 239.0.0.1:14789 dev ul", "h1", "198.18.1.1")
	sh(t, fmt.Sprintf("ip netns exec %[1]s ip tuntap add dev tpv mode tap && ip -n %[1]s link set tpv mtu 1450 up && ip -n %[1]s addr add 198.18.1.2/24 dev tpv", b))
	plug := exec.Command("ip", "netns", "exec", b, "vde_plug", "vxvde://239.0.0.1/port=14789/vni=42/if=ul", "tap://tpv")
	out := &syncBuffer{}
	plug.Stdout, plug.Stderr = out, out
	plug.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := plug.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-plug.Process.Pid, syscall.SIGKILL)
		plug.Wait()
		if t.Failed() {
			t.Logf("vde_plug:\n%s", out.String())
		}
	})
	ping(t, h1, "198.18.1.2")
	ping(t, b, "198.18.1.1")
	if row := vxlanRow(t, net, 42); row == nil || row[5] == "0" || row[7] == "0" {
		t.Errorf("the cable's row shows no traffic: %v", row)
	}
}

// The daemon runs in the test's namespace; a cable made by a caller in
// host a's namespace has its sockets there (confinement), and reaches a
// Linux VTEP on host b.
func TestVxlanInCallersNamespace(t *testing.T) {
	w := newVxWorld(t, "ss")
	a := w.host("a", "198.18.0.1")
	b := w.host("b", "198.18.0.2")
	h2 := w.linuxVTEP(b, "remote 198.18.0.1 dev ul", "h2", "198.18.1.2")
	d := startMnet(t)
	net := d.mkNet(t, "vx")
	ctlIn(t, a, net, "policy switch")
	ctlIn(t, a, net, "vxlan 42 198.18.0.2")
	h1 := w.tapEndpoint(a, net, "h1", "198.18.1.1")
	if out := sh(t, inNS(a, "ss -uanH sport = :4789")); !strings.Contains(out, ":4789") {
		t.Errorf("no UDP socket on port 4789 in the caller's namespace:\n%s", out)
	}
	if out := sh(t, "ss -uanH sport = :4789"); strings.Contains(out, ":4789") {
		t.Errorf("a UDP socket on port 4789 in the daemon's namespace:\n%s", out)
	}
	ping(t, h1, "198.18.1.2")
	ping(t, h2, "198.18.1.1")
}
