// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// twoPaths is a namespace reachable from the daemon over an IPN network
// (a TAP, the network's userspace host at .N.1, the peer at .N.2) and
// over inet (a veth, the daemon's side .M.1, the peer .M.2).
type twoPaths struct {
	*hostEnv
	veth          string
	inet4, inetP4 string // daemon's and peer's veth addresses
	echoOut       func() (string, error)
}

func newTwoPaths(t *testing.T) *twoPaths {
	t.Helper()
	he := newHostEnv(t, "python3")
	hostSubnet++
	m := hostSubnet
	tp := &twoPaths{hostEnv: he, veth: he.e.name("v"), inet4: fmt.Sprintf("198.18.%d.1", m), inetP4: fmt.Sprintf("198.18.%d.2", m)}
	peerEnd := he.e.name("w")
	he.e.veth(tp.veth, peerEnd)
	sh(t, fmt.Sprintf("ip addr add %s/24 dev %s", tp.inet4, tp.veth))
	intoNS(t, peerEnd, he.ns, tp.inetP4)
	return tp
}

// echoServer runs a UDP echo server on port in the namespace: each
// datagram goes back to its sender, prefixed with the address it came to.
func (tp *twoPaths) echoServer(t *testing.T, port int) {
	t.Helper()
	script := testdata(t, "udp_echo_pktinfo.py")
	tp.echoOut = bg(t, inNS(tp.ns, fmt.Sprintf("python3 %s %d", script, port)))
	waitFor(t, "the echo server to listen", func() bool {
		out, _ := shAs(t, nil, 5*time.Second, inNS(tp.ns, fmt.Sprintf("ss -Huln sport = :%d", port)))
		return strings.Contains(out, fmt.Sprint(port))
	})
}

// locatorLine returns the line of the locators file for loc.
func locatorLine(t *testing.T, host, loc string) (state string, sent, received int) {
	t.Helper()
	for _, l := range strings.Split(readFile(t, filepath.Join(host, "locators")), "\n") {
		if rest, ok := strings.CutPrefix(l, loc+" state "); ok {
			f := strings.Fields(rest)
			state = f[0]
			for i := 0; i+1 < len(f); i++ {
				switch f[i] {
				case "sent":
					sent, _ = strconv.Atoi(f[i+1])
				case "received":
					received, _ = strconv.Atoi(f[i+1])
				case "error":
					state += " " + f[i+1]
				}
			}
			return
		}
	}
	t.Fatalf("no locator %q in:\n%s", loc, readFile(t, filepath.Join(host, "locators")))
	return
}

// exchange writes one datagram and waits up to d for a reply; "" if none.
func exchange(fd int, msg string, d time.Duration) (string, error) {
	if _, err := unix.Write(fd, []byte(msg)); err != nil {
		return "", err
	}
	deadline := time.Now().Add(d)
	buf := make([]byte, 2000)
	for time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", nil
}

// An mhost with two locators: the IPN one is used while it works; when
// the TAP behind it is detached the conversation moves to inet within 5 s
// and continues; when the TAP is back, it returns to the IPN locator.
func TestMhostFailover(t *testing.T) {
	tp := newTwoPaths(t)
	port := freeUDPPort()
	tp.echoServer(t, port)
	mh := tp.d.path("mhost", "peer")
	if err := os.Mkdir(mh, 0o755); err != nil {
		t.Fatal(err)
	}
	ipnLoc := fmt.Sprintf("ipn %s %s", filepath.Base(tp.net), tp.p4)
	inetLoc := "inet " + tp.inetP4
	mustCtl(t, mh, ipnLoc+"\n"+inetLoc)
	if got := readFile(t, filepath.Join(mh, "ctl")); got != ipnLoc+"\n"+inetLoc+"\n" {
		t.Errorf("ctl reads %q", got)
	}
	fd, err := openFile(filepath.Join(mh, "udp", fmt.Sprint(port)), unix.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	reply, err := exchange(fd, "one", 5*time.Second)
	if err != nil || reply != tp.p4+" one" {
		t.Fatalf("first exchange: %q %v, want it over the IPN locator\n%s\n%s", reply, err,
			readFile(t, filepath.Join(mh, "locators")), readFile(t, filepath.Join(tp.net, "host")))
	}
	if st, sent, recv := locatorLine(t, mh, ipnLoc); st != "up" || sent != 1 || recv != 1 {
		t.Errorf("ipn locator: %s sent %d received %d", st, sent, recv)
	}

	// Cut the IPN path.
	mustCtl(t, tp.net, "detach "+tp.tap)
	cut := time.Now()
	var moved time.Duration
	for i := 0; time.Since(cut) < 15*time.Second; i++ {
		reply, err := exchange(fd, fmt.Sprint("cut-", i), 200*time.Millisecond)
		if err != nil && !errors.Is(err, unix.EHOSTUNREACH) {
			t.Fatalf("write after the cut: %v", err)
		}
		if strings.HasPrefix(reply, tp.inetP4+" ") {
			moved = time.Since(cut)
			break
		}
	}
	if moved == 0 {
		t.Fatalf("no reply over inet within 15 s of the cut; locators:\n%s", readFile(t, filepath.Join(mh, "locators")))
	}
	t.Logf("conversation moved to inet %v after the cut", moved)
	if moved > 5*time.Second {
		t.Errorf("failover took %v, want at most 5 s", moved)
	}
	if st, _, _ := locatorLine(t, mh, ipnLoc); !strings.HasPrefix(st, "down ") {
		t.Errorf("ipn locator after the cut: %s", st)
	}
	if reply, _ := exchange(fd, "still", 2*time.Second); reply != tp.inetP4+" still" {
		t.Errorf("conversation after failover: %q", reply)
	}

	// The TAP comes back: the preferred locator is used again.
	tp.e.link(tp.tap)
	mustCtl(t, tp.net, "tap "+tp.tap)
	intoNS(t, tp.tap, tp.ns, tp.p4)
	back := time.Now()
	returned := false
	for i := 0; time.Since(back) < 15*time.Second; i++ {
		reply, _ := exchange(fd, fmt.Sprint("back-", i), 200*time.Millisecond)
		if strings.HasPrefix(reply, tp.p4+" ") {
			returned = true
			break
		}
	}
	if !returned {
		t.Fatalf("the conversation did not return to the IPN locator; locators:\n%s", readFile(t, filepath.Join(mh, "locators")))
	}
	t.Logf("back on the IPN locator %v after the TAP returned", time.Since(back))

	// Mobility: removing the working locator moves the next write.
	mustCtl(t, mh, "-"+ipnLoc)
	if reply, _ := exchange(fd, "mobile", 2*time.Second); reply != tp.inetP4+" mobile" {
		t.Errorf("after -ipn: %q", reply)
	}
}

// mhost/any answers each sender by the family its datagram came by: a
// peer asking the network's host hears from it, one asking over inet
// hears from the kernel's address.
func TestMhostAny(t *testing.T) {
	tp := newTwoPaths(t)
	port := freeUDPPort()
	fd := openUDP(t, tp.d.path("mhost", "any", "udp", fmt.Sprint(port)), unix.O_RDWR)
	if _, err := unix.Write(fd, []byte("x")); !errors.Is(err, unix.EDESTADDRREQ) {
		t.Errorf("write before any datagram: %v, want EDESTADDRREQ", err)
	}
	for _, to := range []string{tp.v4, tp.inet4, tp.v6} {
		fam := "-4"
		if strings.Contains(to, ":") {
			fam = "-6"
		}
		wait := bg(t, inNS(tp.ns, fmt.Sprintf("bash -c '(echo to-%s; sleep 3) | nc -u %s -w 4 %s %d'", to, fam, to, port)))
		got := readDeadline(t, fd, 10*time.Second)
		if got != "to-"+to+"\n" {
			t.Errorf("any read %q", got)
		}
		if _, err := unix.Write(fd, []byte("answer-"+to+"\n")); err != nil {
			t.Fatal(err)
		}
		if out, _ := wait(); !strings.Contains(out, "answer-"+to) {
			t.Errorf("nc to %s did not hear the answer: %q", to, out)
		}
	}
	if _, err := openFile(tp.d.path("mhost", "any", "udp", fmt.Sprint(port)), unix.O_RDWR, 0); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("second open of any/udp/%d: %v, want EADDRINUSE", port, err)
	}
}

// Locator lines are checked; rights come from the host directory's mode.
func TestMhostCtlAndRights(t *testing.T) {
	d := startMnet(t)
	mh := d.path("mhost", "h")
	if err := os.Mkdir(mh, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d.path("mhost", "any"), 0o755); !errors.Is(err, unix.EEXIST) {
		t.Errorf("mkdir mhost/any: %v, want EEXIST", err)
	}
	if err := os.Mkdir(d.path("mhost", ".x"), 0o755); !errors.Is(err, unix.EINVAL) {
		t.Errorf("mkdir mhost/.x: %v, want EINVAL", err)
	}
	for _, bad := range []string{"inet", "inet 2001:db8::1", "inet6 198.18.0.1", "inet 198.18.0", "ipn 198.18.0.1",
		"ipn .bad 198.18.0.1", "ipn lab 198.18.0.1 x", "udp 198.18.0.1", "inet 0.0.0.0", "inet 224.0.0.1"} {
		if err := ctl(mh, bad); !errors.Is(err, unix.EINVAL) {
			t.Errorf("ctl %q: %v, want EINVAL", bad, err)
			continue
		}
		if le := lastError(t, mh); !strings.Contains(le, "locator") {
			t.Errorf("ctl %q: last-error %q", bad, le)
		}
	}
	mustCtl(t, mh, "inet 198.18.0.1\nipn lab 2001:db8::1")
	mustCtl(t, mh, "+inet6 2001:db8::2")
	ctlFails(t, mh, "+inet6 2001:db8::2", unix.EEXIST)
	ctlFails(t, mh, "-inet 198.18.0.9", unix.ENOENT)
	mustCtl(t, mh, "-inet 198.18.0.1")
	lines := ctlLines(t, mh)
	if !hasLine(lines, "ipn lab 2001:db8::1") || !hasLine(lines, "inet6 2001:db8::2") || hasLine(lines, "inet 198.18.0.1") {
		t.Errorf("ctl after edits:\n%s", strings.Join(lines, "\n"))
	}
	other := &cred{uid: 65534, gid: 65534}
	if out, err := shAs(t, other, 10*time.Second, "cat "+filepath.Join(mh, "ctl")); err == nil {
		t.Errorf("uid 65534 read ctl of a 0750 host: %s", out)
	}
	if out, err := shAs(t, other, 10*time.Second, "echo hi > "+filepath.Join(mh, "udp", "9")); err == nil {
		t.Errorf("uid 65534 sent by a 0750 host: %s", out)
	}
	os.Chmod(mh, 0o754)
	if out, err := shAs(t, other, 10*time.Second, "cat "+filepath.Join(mh, "locators")); err != nil {
		t.Errorf("uid 65534 with r cannot read locators: %v %s", err, out)
	}
	if out, err := shAs(t, other, 10*time.Second, "echo inet 198.18.0.7 > "+filepath.Join(mh, "ctl")); err == nil {
		t.Errorf("uid 65534 without x wrote ctl: %s", out)
	}
	// No locator works: EHOSTUNREACH (an ipn network that does not exist,
	// an inet6 address nobody routes).
	mustCtl(t, mh, "ipn nosuchnet 198.18.0.1")
	fd := openUDP(t, filepath.Join(mh, "udp", "9"), unix.O_RDWR)
	if _, err := unix.Write(fd, []byte("x")); !errors.Is(err, unix.ENETUNREACH) {
		t.Errorf("write with no working locator: %v, want ENETUNREACH", err)
	}
	if err := os.Remove(mh); !errors.Is(err, unix.EBUSY) {
		t.Errorf("rmdir with a file open: %v, want EBUSY", err)
	}
}

// The README's tour, as written (with this test's names and subnets):
// the conversation goes on after way 1 is cut.
func TestReadmeMhostTour(t *testing.T) {
	e := newIfEnv(t, "socat", "timeout", "dd")
	d := startMnet(t)
	script := readmeBlock(t, "sh", "# mhost-tour\n")
	ns := e.NetnsName("far") // the tour creates it
	e.link(e.name("v0"))
	hostSubnet++
	r := strings.NewReplacer("/mnt/mnet", d.mp, "far", ns, "tourv0", e.name("v0"), "tourv1", e.name("v1"),
		"tour0", e.name("t0"), "ipn/tour", "ipn/"+e.tag, "ipn tour", "ipn "+e.tag,
		"198.18.11.", fmt.Sprintf("198.18.%d.", hostSubnet))
	script = r.Replace(script)
	wait := bg(t, script)
	out, err := wait()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // the echo server in the background holds the output
	}
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s\nscript:\n%s", err, out, script)
	}
	for _, want := range []string{"hello 1\n", "hello 4\n", "hello 12\n", "state down error EHOSTUNREACH", "state up sent"} {
		if !strings.Contains(out, want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("tour output:\n%s", out)
}

// Shells write ctl line by line (bash's printf does): the lines of one
// open make one list; a new open replaces it.
func TestMhostCtlLineByLine(t *testing.T) {
	d := startMnet(t)
	mh := d.path("mhost", "lines")
	if err := os.Mkdir(mh, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, fmt.Sprintf("printf 'inet 198.18.0.1\\ninet6 2001:db8::1\\n' > %s/ctl", mh))
	if got := readFile(t, filepath.Join(mh, "ctl")); got != "inet 198.18.0.1\ninet6 2001:db8::1\n" {
		t.Errorf("after printf: %q", got)
	}
	sh(t, fmt.Sprintf("echo 'ipn lab 198.18.0.2' > %s/ctl", mh))
	if got := readFile(t, filepath.Join(mh, "ctl")); got != "ipn lab 198.18.0.2\n" {
		t.Errorf("after a new write: %q", got)
	}
	sh(t, fmt.Sprintf("echo > %s/ctl", mh))
	if got := readFile(t, filepath.Join(mh, "ctl")); got != "" {
		t.Errorf("after echo > ctl: %q", got)
	}
}

// A rewrite of ctl that keeps the locators keeps their state and
// counters, though bash's printf writes it line by line: the locators
// after the first are not made anew.
func TestMhostCtlRewriteKeepsState(t *testing.T) {
	d := startMnet(t)
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	port := sink.LocalAddr().(*net.UDPAddr).Port
	mh := d.path("mhost", "robust-rewrite")
	if err := os.Mkdir(mh, 0o755); err != nil {
		t.Fatal(err)
	}
	// Nothing listens on ::1 at port: the first locator is refused and
	// the conversation moves to the second.
	list := "inet6 ::1\ninet 127.0.0.1\n"
	sh(t, fmt.Sprintf("printf '%s' > %s/ctl", strings.ReplaceAll(list, "\n", `\n`), mh))
	fd := openUDP(t, filepath.Join(mh, "udp", fmt.Sprint(port)), unix.O_WRONLY)
	waitFor(t, "datagrams over the second locator", func() bool {
		unix.Write(fd, []byte("x"))
		time.Sleep(20 * time.Millisecond)
		_, sent, _ := locatorLine(t, mh, "inet 127.0.0.1")
		return sent >= 3
	})
	before := readFile(t, filepath.Join(mh, "locators"))
	if !strings.Contains(before, "inet6 ::1 state down error ECONNREFUSED") {
		t.Fatalf("locators before the rewrite:\n%s", before)
	}
	sh(t, fmt.Sprintf("printf '%s' > %s/ctl", strings.ReplaceAll(list, "\n", `\n`), mh))
	if got := readFile(t, filepath.Join(mh, "ctl")); got != list {
		t.Errorf("ctl after the rewrite: %q", got)
	}
	if after := readFile(t, filepath.Join(mh, "locators")); after != before {
		t.Errorf("the rewrite changed the locators' state:\nbefore:\n%safter:\n%s", before, after)
	}
}

// An inet or inet6 locator whose neighbour goes silent (the far end of
// its veth set down) is down within 3.4 s, as an ipn locator is, with
// EHOSTUNREACH: the conversation moves to the next locator and stays
// there, but for one probe a while, until the neighbour answers again;
// then it returns.
func TestMhostInetFailoverSilentNeighbour(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		name := "inet"
		if v6 {
			name = "inet6"
		}
		t.Run(name, func(t *testing.T) { testInetFailoverSilent(t, v6) })
	}
}

// echoServer6 is echoServer over IPv6 (only: echoServer may serve the
// same port over IPv4): each datagram goes back prefixed with the
// address it came to.
func (tp *twoPaths) echoServer6(t *testing.T, port int) {
	t.Helper()
	script := fmt.Sprintf(`
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.IPPROTO_IPV6, 49, 1)  # IPV6_RECVPKTINFO
s.bind(("::", %d))
while True:
    d, anc, _, a = s.recvmsg(65535, 1024)
    to = socket.inet_ntop(socket.AF_INET6, anc[0][2][:16]) if anc else "?"
    s.sendto(to.encode() + b" " + d, a)
`, port)
	f := filepath.Join(t.TempDir(), "echo6.py")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	bg(t, inNS(tp.ns, "python3 "+f))
	waitFor(t, "the echo server to listen", func() bool {
		out, _ := shAs(t, nil, 5*time.Second, inNS(tp.ns, fmt.Sprintf("ss -Huln sport = :%d", port)))
		return strings.Contains(out, fmt.Sprint(port))
	})
}

func testInetFailoverSilent(t *testing.T, v6 bool) {
	tp := newTwoPaths(t)
	port := freeUDPPort()
	far := tp.e.name("w")
	inetLoc, peer := "inet "+tp.inetP4, tp.inetP4
	if v6 {
		n := strings.Split(tp.inet4, ".")[2]
		peer = fmt.Sprintf("2001:db8:%s::2", n)
		// The peer keeps its address while its link is down (by
		// default IPv6 drops it with the link).
		sh(t, fmt.Sprintf("ip netns exec %s sysctl -qw net.ipv6.conf.%s.keep_addr_on_down=1", tp.ns, far))
		sh(t, fmt.Sprintf("ip addr add 2001:db8:%s::1/64 dev %s nodad && ip -n %s addr add %s/64 dev %s nodad",
			n, tp.veth, tp.ns, peer, far))
		inetLoc = "inet6 " + peer
		tp.echoServer6(t, port)
	}
	tp.echoServer(t, port) // for the ipn locator, and inet
	mh := tp.d.path("mhost", "robust-silent")
	if err := os.Mkdir(mh, 0o755); err != nil {
		t.Fatal(err)
	}
	ipnLoc := fmt.Sprintf("ipn %s %s", filepath.Base(tp.net), tp.p4)
	mustCtl(t, mh, inetLoc+"\n"+ipnLoc)
	fd := openUDP(t, filepath.Join(mh, "udp", fmt.Sprint(port)), unix.O_RDWR|unix.O_NONBLOCK)
	var reply string
	waitFor(t, "a first exchange over "+inetLoc, func() bool {
		reply, _ = exchange(fd, "one", 500*time.Millisecond)
		return reply == peer+" one"
	})
	// The ipn locator's neighbour is resolved ahead, so that the time
	// measured is the inet locator's alone.
	ping(t, tp.ns, tp.v4)
	sh(t, fmt.Sprintf("ip -n %s link set %s down", tp.ns, far))
	cut := time.Now()
	var moved time.Duration
	for i := 0; time.Since(cut) < 10*time.Second; i++ {
		reply, err := exchange(fd, fmt.Sprint("cut-", i), 100*time.Millisecond)
		if err != nil {
			t.Fatalf("write after the cut: %v", err)
		}
		if strings.HasPrefix(reply, tp.p4+" ") {
			moved = time.Since(cut)
			break
		}
	}
	if moved == 0 {
		t.Fatalf("no reply over the ipn locator within 10 s of the cut; locators:\n%s", readFile(t, filepath.Join(mh, "locators")))
	}
	t.Logf("conversation moved to the ipn locator %v after the far end went down", moved)
	// 3.4 s and a little for the writes' own pace and a busy machine.
	if moved > 3400*time.Millisecond+300*time.Millisecond {
		t.Errorf("failover took %v, want within 3.4 s", moved)
	}
	// Unreachable once the kernel gave up on the neighbour; a datagram
	// the veth dropped before that (ENOBUFS) may tell first.
	downState := func(st string) bool { return st == "down EHOSTUNREACH" || st == "down ENOBUFS" }
	if st, _, _ := locatorLine(t, mh, inetLoc); !downState(st) {
		t.Errorf("inet locator after the cut: %s", st)
	}
	// It stays on the ipn locator: a probe of the inet one now and then
	// is all that is lost.
	var viaIPN, lost int
	for i := range 40 {
		reply, _ := exchange(fd, fmt.Sprint("after-", i), 150*time.Millisecond)
		switch {
		case strings.HasPrefix(reply, tp.p4+" "):
			viaIPN++
		case reply == "":
			lost++
		}
	}
	t.Logf("after the failover: %d of 40 replies over ipn, %d lost", viaIPN, lost)
	if lost > 4 {
		t.Errorf("%d of 40 datagrams lost after the failover, want only the probes (at most 4)", lost)
	}
	if st, _, _ := locatorLine(t, mh, inetLoc); !downState(st) {
		t.Errorf("inet locator while its neighbour is silent: %s", st)
	}

	// The far end answers again: the conversation returns to inet.
	sh(t, fmt.Sprintf("ip -n %s link set %s up", tp.ns, far))
	back := time.Now()
	returned := false
	for i := 0; time.Since(back) < 15*time.Second; i++ {
		if reply, _ := exchange(fd, fmt.Sprint("back-", i), 150*time.Millisecond); strings.HasPrefix(reply, peer+" ") {
			returned = true
			break
		}
	}
	if !returned {
		t.Fatalf("the conversation did not return to %s; locators:\n%s", inetLoc, readFile(t, filepath.Join(mh, "locators")))
	}
	t.Logf("back on inet %v after the far end came up", time.Since(back))
}
