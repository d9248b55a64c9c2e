// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostEnv is a network whose userspace host has 198.18.N.1/24 and
// 2001:db8:N::1/64, and a namespace behind a TAP on it with .2 and ::2.
type hostEnv struct {
	e      *ifEnv
	d      *daemon
	net    string
	ns     string
	tap    string
	v4, v6 string // the host's addresses
	p4, p6 string // the peer's, in ns
}

var hostSubnet = 40

func newHostEnv(t *testing.T, tools ...string) *hostEnv {
	t.Helper()
	e := newIfEnv(t, append([]string{"ping", "nc"}, tools...)...)
	d := startMnet(t)
	hostSubnet++
	n := hostSubnet
	he := &hostEnv{e: e, d: d, v4: fmt.Sprintf("198.18.%d.1", n), p4: fmt.Sprintf("198.18.%d.2", n),
		v6: fmt.Sprintf("2001:db8:%d::1", n), p6: fmt.Sprintf("2001:db8:%d::2", n)}
	he.net = d.mkNet(t, "h"+e.tag)
	mustCtl(t, he.net, fmt.Sprintf("addr %s/24\naddr %s/64", he.v4, he.v6))
	he.tap = e.link(e.name("t"))
	he.ns = e.tapInNS(he.net, he.tap, "p", he.p4)
	sh(t, fmt.Sprintf("ip -n %s addr add %s/64 dev %s nodad", he.ns, he.p6, he.tap))
	return he
}

// udp is the path of udp/HOST/PORT on the env's network.
func (he *hostEnv) udp(host string, port int) string {
	return filepath.Join(he.net, "udp", host, fmt.Sprint(port))
}

// bg runs a script in the background, killed at cleanup; its output
// is returned by the function it returns, after the script ended.
func bg(t *testing.T, script string) func() (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	var err error
	go func() { err = cmd.Wait(); cancel(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return func() (string, error) {
		<-done
		return out.String(), err
	}
}

// freeUDPPort is a port number for the peer's and the host's endpoints
// of one test: unique enough per process and test.
var udpPortSeq = 20000 + os.Getpid()%20000

func freeUDPPort() int {
	udpPortSeq += 2
	return udpPortSeq
}

// openUDP opens a udp file; closed at cleanup.
func openUDP(t *testing.T, path string, flags int) int {
	t.Helper()
	fd, err := openFile(path, flags, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// readDeadline reads one datagram from a blocking fd, failing the test
// after d.
func readDeadline(t *testing.T, fd int, d time.Duration) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		buf := make([]byte, 70000)
		n, err := unix.Read(fd, buf)
		if n < 0 {
			n = 0
		}
		ch <- res{string(buf[:n]), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("read: %v", r.err)
		}
		return r.s
	case <-time.After(d):
		t.Fatalf("no datagram within %v", d)
	}
	return ""
}

// The host answers ping over IPv4 and IPv6 from a namespace behind a TAP;
// it is a port of KIND host; ctl shows its mac and addresses.
func TestHostPing(t *testing.T) {
	he := newHostEnv(t)
	ping(t, he.ns, he.v4)
	ping(t, he.ns, he.v6)
	var host []string
	for _, r := range portRows(t, he.net) {
		if r[1] == "host" {
			host = r
		}
	}
	if host == nil || host[4] != "rw" {
		t.Errorf("ports has no host row (KIND host, MODE rw):\n%s", readFile(t, filepath.Join(he.net, "ports")))
	}
	lines := ctlLines(t, he.net)
	if !hasLine(lines, "addr "+he.v4+"/24") || !hasLine(lines, "addr "+he.v6+"/64") {
		t.Errorf("ctl does not list the addresses:\n%s", strings.Join(lines, "\n"))
	}
	var mac string
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "mac "); ok {
			mac = v
		}
	}
	if !regexp.MustCompile(`^[0-9a-f][26ae](:[0-9a-f]{2}){5}$`).MatchString(mac) {
		t.Errorf("ctl mac %q: want a locally administered unicast MAC", mac)
	}
	// The peer's neighbour table has the host's MAC for both addresses.
	neigh := sh(t, "ip -n "+he.ns+" neigh show")
	if !strings.Contains(neigh, he.v4+" dev "+he.tap+" lladdr "+mac) || !strings.Contains(neigh, he.v6+" dev "+he.tap+" lladdr "+mac) {
		t.Errorf("peer's neighbours lack the host's MAC %s:\n%s", mac, neigh)
	}
	// A new MAC applies; removing the last address takes the host off.
	mustCtl(t, he.net, "mac 02:00:5e:10:20:30")
	if !hasLine(ctlLines(t, he.net), "mac 02:00:5e:10:20:30") {
		t.Errorf("ctl after mac: %v", ctlLines(t, he.net))
	}
	mustCtl(t, he.net, fmt.Sprintf("addr -%s/24\naddr -%s/64", he.v4, he.v6))
	for _, r := range portRows(t, he.net) {
		if r[1] == "host" {
			t.Errorf("host port left after its last address went: %v", r)
		}
	}
}

// Datagrams both ways between nc in the namespace and udp files: a bound
// file receives and answers the last sender, a connected one exchanges
// with its peer; a closed port is refused by ICMP the peer's kernel sees.
func TestHostUDPWithNc(t *testing.T) {
	he := newHostEnv(t)
	for _, fam := range []struct{ host, peer, any, nc string }{
		{he.v4, he.p4, "0.0.0.0", "-4"}, {he.v6, he.p6, "::", "-6"}} {
		// Bound: nc sends, the file reads it and writes back.
		port := freeUDPPort()
		fd := openUDP(t, he.udp(fam.any, port), unix.O_RDWR)
		wait := bg(t, inNS(he.ns, fmt.Sprintf("bash -c '(echo ping-%s; sleep 3) | nc -u %s -w 4 %s %d'", fam.nc, fam.nc, fam.host, port)))
		if got := readDeadline(t, fd, 10*time.Second); got != "ping-"+fam.nc+"\n" {
			t.Errorf("bound file read %q", got)
		}
		if _, err := unix.Write(fd, []byte("pong\n")); err != nil {
			t.Fatalf("write to the last sender: %v", err)
		}
		if out, _ := wait(); !strings.Contains(out, "pong") {
			t.Errorf("nc did not get the reply: %q", out)
		}
		unix.Close(fd)

		// Connected: nc listens; the file writes first, reads the answer.
		port = freeUDPPort()
		wait = bg(t, inNS(he.ns, fmt.Sprintf("bash -c '(sleep 2; echo answer) | timeout 6 nc -u %s -l %d'", fam.nc, port)))
		time.Sleep(500 * time.Millisecond)
		cfd := openUDP(t, he.udp(fam.peer, port), unix.O_RDWR)
		if _, err := unix.Write(cfd, []byte("hello\n")); err != nil {
			t.Fatalf("write to %s:%d: %v", fam.peer, port, err)
		}
		if got := readDeadline(t, cfd, 10*time.Second); got != "answer\n" {
			t.Errorf("connected file read %q", got)
		}
		if out, _ := wait(); !strings.Contains(out, "hello") {
			t.Errorf("nc -l did not get the datagram: %q", out)
		}

		// Closed port on the host: the peer's kernel gets ICMP port
		// unreachable, which nc -z reports as refused (exit 1) ...
		closed := freeUDPPort()
		if out, err := shAs(t, nil, 20*time.Second, inNS(he.ns, fmt.Sprintf("nc -zuv %s -w 2 %s %d", fam.nc, fam.host, closed))); err == nil {
			t.Errorf("nc -zu to a closed port of the host succeeded: %s\n%s", out, readFile(t, filepath.Join(he.net, "host")))
		}
		// ... where an open one is not.
		ofd := openUDP(t, he.udp(fam.any, closed), unix.O_RDONLY)
		if out, err := shAs(t, nil, 20*time.Second, inNS(he.ns, fmt.Sprintf("nc -zuv %s -w 2 %s %d", fam.nc, fam.host, closed))); err != nil {
			t.Errorf("nc -zu to an open port of the host: %v %s", err, out)
		}
		unix.Close(ofd)

		// And a closed port of the peer: ECONNREFUSED on the file.
		cfd = openUDP(t, he.udp(fam.peer, freeUDPPort()), unix.O_RDWR)
		unix.Write(cfd, []byte("anyone?"))
		buf := make([]byte, 100)
		if _, err := unix.Read(cfd, buf); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("read after a datagram to a closed port: %v, want ECONNREFUSED", err)
		}
	}
}

// Frames the host builds carry correct checksums: tcpdump -vv on the
// network's pcap says so for UDP over IPv4 and IPv6, ICMP and ICMPv6
// (echo replies, neighbour advertisements, port unreachable) and a
// fragmented IPv4 datagram, and reports nothing bad.
func TestHostChecksums(t *testing.T) {
	he := newHostEnv(t, "tcpdump")
	capFile := filepath.Join(t.TempDir(), "cap.pcap")
	stopCap := bg(t, fmt.Sprintf("timeout 10 cat %s > %s", filepath.Join(he.net, "pcap"), capFile))
	time.Sleep(300 * time.Millisecond)
	ping(t, he.ns, he.v4)
	ping(t, he.ns, he.v6)
	for _, peer := range []string{he.p4, he.p6} {
		port := freeUDPPort()
		fd := openUDP(t, he.udp(peer, port), unix.O_WRONLY)
		if _, err := unix.Write(fd, []byte("checksum me")); err != nil {
			t.Fatal(err)
		}
		if peer == he.p4 {
			// A new file: the first has ECONNREFUSED pending (no one
			// listens in the namespace).
			fd := openUDP(t, he.udp(peer, port+1), unix.O_WRONLY)
			big := strings.Repeat("0123456789", 400) // 4000 bytes: three fragments
			if _, err := unix.Write(fd, []byte(big)); err != nil {
				t.Fatal(err)
			}
		}
	}
	shAs(t, nil, 10*time.Second, inNS(he.ns, fmt.Sprintf("nc -zuv -w 1 %s %d; nc -zuv -6 -w 1 %s %d", he.v4, freeUDPPort(), he.v6, freeUDPPort())))
	time.Sleep(500 * time.Millisecond)
	stopCap() // timeout ends the capture
	out := sh(t, "tcpdump -vv -n -r "+capFile+" 2>&1")
	for _, want := range []string{
		he.v4 + " > " + he.p4 + ": ICMP echo reply",
		he.v6 + " > " + he.p6 + ": [icmp6 sum ok] ICMP6, echo reply",
		"[icmp6 sum ok] ICMP6, neighbor advertisement, length 32, tgt is " + he.v6,
		he.v4 + ".", he.p4 + ".",
		"udp port", "unreachable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tcpdump -vv of pcap lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "[udp sum ok]") < 3 {
		t.Errorf("tcpdump -vv: fewer than 3 UDP datagrams with a correct checksum:\n%s", out)
	}
	// Whole words outside hex dumps: a kernel's DAD nonce once read
	// "bade".
	badWord := regexp.MustCompile(`\b(bad|wrong|incorrect)\b`)
	for _, line := range strings.Split(out, "\n") {
		if w := badWord.FindString(line); w != "" && !strings.HasPrefix(strings.TrimSpace(line), "0x") {
			t.Errorf("tcpdump -vv of pcap reports something %s:\n%s", w, out)
			break
		}
	}
	if !strings.Contains(out, "flags [+]") {
		t.Errorf("no IPv4 fragments in the capture:\n%s", out)
	}
}

// Errors of udp files, as inet's: EHOSTUNREACH when the neighbour does
// not answer (within a bound), ENETUNREACH off the host's prefixes,
// EADDRINUSE for a second bind, EDESTADDRREQ on a bound file before any
// datagram came, EINVAL for bad names, EAGAIN without data, EINTR.
func TestHostUDPErrors(t *testing.T) {
	he := newHostEnv(t)
	for _, absent := range []string{strings.TrimSuffix(he.p4, "2") + "99", strings.TrimSuffix(he.p6, "2") + "99"} {
		fd := openUDP(t, he.udp(absent, 9), unix.O_RDWR)
		start := time.Now()
		_, err := unix.Write(fd, []byte("anyone?"))
		took := time.Since(start)
		if !errors.Is(err, unix.EHOSTUNREACH) {
			t.Errorf("write to absent %s: %v, want EHOSTUNREACH", absent, err)
		}
		if took > 5*time.Second {
			t.Errorf("EHOSTUNREACH for %s after %v, want within 5 s", absent, took)
		}
		if !strings.Contains(readFile(t, filepath.Join(he.net, "host")), "neigh "+absent+" - failed") {
			t.Errorf("host file does not show %s failed:\n%s", absent, readFile(t, filepath.Join(he.net, "host")))
		}
		// Within the failed hold, at once.
		start = time.Now()
		if _, err := unix.Write(fd, []byte("anyone?")); !errors.Is(err, unix.EHOSTUNREACH) || time.Since(start) > time.Second {
			t.Errorf("second write to absent %s: %v after %v", absent, err, time.Since(start))
		}
	}
	if _, err := openFile(he.udp("198.19.0.1", 9), unix.O_RDWR, 0); !errors.Is(err, unix.ENETUNREACH) {
		t.Errorf("open toward an address off the host's prefixes: %v, want ENETUNREACH", err)
	}
	port := freeUDPPort()
	b := openUDP(t, he.udp("0.0.0.0", port), unix.O_RDWR)
	if _, err := openFile(he.udp("0.0.0.0", port), unix.O_RDWR, 0); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("second bind of %d: %v, want EADDRINUSE", port, err)
	}
	v6 := openUDP(t, he.udp("::", port), unix.O_RDWR) // another family: free
	_ = v6
	if _, err := unix.Write(b, []byte("to whom?")); !errors.Is(err, unix.EDESTADDRREQ) {
		t.Errorf("write on a bound file before any datagram: %v, want EDESTADDRREQ", err)
	}
	unix.SetNonblock(b, true)
	if _, err := unix.Read(b, make([]byte, 10)); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("O_NONBLOCK read without data: %v, want EAGAIN", err)
	}
	for _, bad := range []string{"udp/host.name/9", "udp/1.2.3/9", "udp/" + he.p4 + "/0", "udp/" + he.p4 + "/65536", "udp/" + he.p4 + "/09"} {
		if _, err := os.Stat(filepath.Join(he.net, bad)); !errors.Is(err, unix.EINVAL) {
			t.Errorf("stat %s: %v, want EINVAL", bad, err)
		}
	}
	// An open udp file keeps the network, as an open data file does.
	if err := os.Remove(he.net); !errors.Is(err, unix.EBUSY) {
		t.Errorf("rmdir with a udp file open: %v, want EBUSY", err)
	}
	// A signal interrupts a blocked read (bash's read builtin, killed by
	// timeout's SIGTERM: the process ends, the daemon is not wedged).
	out, err := shAs(t, nil, 10*time.Second, fmt.Sprintf("timeout -s INT 1 cat %s; echo rc=$?", he.udp("0.0.0.0", freeUDPPort())))
	if err != nil || !strings.Contains(out, "rc=124") {
		t.Errorf("a signal did not end a blocked read: %v %s", err, out)
	}
}

// The neighbour cache ages: an entry confirmed by the peer is reachable,
// stale after ReachableTime (1 s, netcore/iphost) without a sign of
// life, probed by unicast on the next send and reachable again when the
// peer answers.
func TestHostNeighbourAging(t *testing.T) {
	he := newHostEnv(t)
	ping(t, he.ns, he.v4)
	hostFile := filepath.Join(he.net, "host")
	mac := linkMAC(t, he.ns, he.tap)
	macs := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
	entry := "neigh " + he.p4 + " " + macs + " "
	if s := readFile(t, hostFile); !strings.Contains(s, entry+"reachable") && !strings.Contains(s, entry+"stale") {
		t.Fatalf("host file lacks %q after a ping:\n%s", entry, s)
	}
	waitFor(t, "the entry to go stale", func() bool { return strings.Contains(readFile(t, hostFile), entry+"stale") })
	fd := openUDP(t, he.udp(he.p4, 9), unix.O_WRONLY)
	if _, err := unix.Write(fd, []byte("x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the probe to be answered", func() bool { return strings.Contains(readFile(t, hostFile), entry+"reachable") })
}

// ctl: bad addresses and MACs are EINVAL with last-error; duplicates
// EEXIST; removing an absent address EADDRNOTAVAIL; addr and mac need x;
// udp files follow the network's r and w for other uids; a persistent
// network keeps its MAC and addresses over a restart.
func TestHostCtlAndRights(t *testing.T) {
	e := newIfEnv(t)
	_ = e
	dir := mountDir(t)
	mp, state := filepath.Join(dir, "mnt"), filepath.Join(dir, "state.json")
	d := startMnetAt(t, mp, state)
	net := d.mkNet(t, "hc")
	for _, bad := range []string{"addr 198.18.0.1", "addr 198.18.0.300/24", "addr 198.18.0.1/33", "addr 0.0.0.0/8",
		"addr 224.0.0.1/4", "addr 198.18.0.0/24", "addr 198.18.0.255/24", "addr ::/0", "addr ::ffff:198.18.0.1/120",
		"addr fe80::1%eth0/64", "addr", "mac 01:00:5e:00:00:01", "mac 00:00:00:00:00:00", "mac 02:00:00:00:00",
		"mac zz:00:00:00:00:00", "mac"} {
		err := ctl(net, bad)
		if !errors.Is(err, unix.EINVAL) {
			t.Errorf("ctl %q: %v, want EINVAL", bad, err)
			continue
		}
		if le := lastError(t, net); !strings.HasPrefix(le, strings.Fields(bad)[0]) {
			t.Errorf("ctl %q: last-error %q", bad, le)
		}
	}
	mustCtl(t, net, "addr 198.18.0.1/24\nmac 02:00:00:00:00:07")
	ctlFails(t, net, "addr 198.18.0.1/24", unix.EEXIST)
	ctlFails(t, net, "addr -198.18.0.9/24", unix.EADDRNOTAVAIL)
	// A bad line fails the whole write: nothing of it applies.
	if err := ctl(net, "addr 198.18.0.2/24\nmac bad"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("write with a bad line: %v", err)
	}
	if hasLine(ctlLines(t, net), "addr 198.18.0.2/24") {
		t.Error("a write with a bad line applied its good line")
	}

	// Rights: 0754 gives the group r and x, others r only.
	if err := os.Chmod(net, 0o754); err != nil {
		t.Fatal(err)
	}
	other := &cred{uid: 65534, gid: 65534}
	out, err := shAs(t, other, 10*time.Second, fmt.Sprintf("echo 'addr 198.18.0.3/24' > %s/ctl", net))
	if err == nil {
		t.Errorf("uid 65534 without x wrote addr: %s", out)
	}
	out, err = shAs(t, other, 10*time.Second, fmt.Sprintf("echo hi > %s/udp/198.18.0.2/9", net))
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid 65534 without w sent a datagram: %v %s", err, out)
	}
	out, err = shAs(t, other, 10*time.Second, fmt.Sprintf("timeout 1 cat %s/udp/0.0.0.0/5000; echo rc=$?", net))
	if err != nil || !strings.Contains(out, "rc=124") {
		t.Errorf("uid 65534 with r could not wait for datagrams: %v %s", err, out)
	}
	out, err = shAs(t, other, 10*time.Second, fmt.Sprintf("timeout 1 cat %s/udp/0.0.0.0/500; echo rc=$?", net))
	if err != nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid 65534 bound port 500: %v %s", err, out)
	}
	if err := os.Chmod(net, 0o752); err != nil {
		t.Fatal(err)
	}
	out, err = shAs(t, other, 10*time.Second, fmt.Sprintf("timeout 1 cat %s/udp/0.0.0.0/5000; echo rc=$?", net))
	if err != nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid 65534 without r opened for reading: %v %s", err, out)
	}

	// Persistence.
	mustCtl(t, net, "persist on\naddr 2001:db8::1/64")
	if err := d.stop(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	startMnetAt(t, mp, state)
	lines := ctlLines(t, net)
	for _, want := range []string{"mac 02:00:00:00:00:07", "addr 198.18.0.1/24", "addr 2001:db8::1/64"} {
		if !hasLine(lines, want) {
			t.Errorf("after a restart ctl lacks %q:\n%s", want, strings.Join(lines, "\n"))
		}
	}
	mustCtl(t, net, "persist off")
}

// poll, select and epoll on udp files of the userspace host and on
// mhost/any: idle files are not readable; a datagram from the namespace
// makes them readable (edge-triggered epoll: one event); ICMP port
// unreachable makes a connected file readable with POLLERR, and its read
// ECONNREFUSED.
func TestHostPoll(t *testing.T) {
	he := newHostEnv(t, "python3")
	port, closed, anyPort := freeUDPPort(), freeUDPPort(), freeUDPPort()
	py(t, 60*time.Second, "host_poll.py", he.udp("0.0.0.0", port), he.udp(he.p4, closed), he.d.path("mhost", "any", "udp", strconv.Itoa(anyPort)),
		he.ns, he.v4, strconv.Itoa(port), strconv.Itoa(anyPort))
}

// reasmOKs is the count of IP datagrams the kernel of namespace ns
// reassembled from fragments (v4: Ip ReasmOKs, v6: Ip6ReasmOKs).
func reasmOKs(t *testing.T, ns string, v6 bool) int {
	t.Helper()
	if v6 {
		for _, l := range strings.Split(sh(t, inNS(ns, "cat /proc/net/snmp6")), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "Ip6ReasmOKs" {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		t.Fatal("no Ip6ReasmOKs in /proc/net/snmp6")
	}
	var names []string
	for _, l := range strings.Split(sh(t, inNS(ns, "cat /proc/net/snmp")), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "ReasmOKs" && i < len(f) {
				n, _ := strconv.Atoi(f[i])
				return n
			}
		}
	}
	t.Fatal("no Ip ReasmOKs in /proc/net/snmp")
	return 0
}

// The userspace host sends nothing larger than its MTU (1500 here, as the
// TAP's): echo replies to ping -s 1477 (IPv6: 1453) and above come back in
// fragments the peer reassembles (IPv6: with a Fragment header), as the
// requests came, and so do UDP datagrams over IPv6.
func TestHostFragmentsWhatItSends(t *testing.T) {
	he := newHostEnv(t, "python3")
	for _, size := range []int{1472, 1477, 4000, 30000} {
		before := reasmOKs(t, he.ns, false)
		if out, err := shAs(t, nil, 20*time.Second, inNS(he.ns, fmt.Sprintf("ping -n -c 2 -W 3 -s %d %s", size, he.v4))); err != nil {
			t.Errorf("ping -s %d %s: %v\n%s\n%s", size, he.v4, err, out, readFile(t, filepath.Join(he.net, "ports")))
			continue
		}
		if after := reasmOKs(t, he.ns, false); size > 1472 && after < before+2 {
			t.Errorf("ping -s %d: the peer reassembled %d replies, want 2", size, after-before)
		}
	}

	for _, size := range []int{1452, 1453, 4000, 30000} {
		before := reasmOKs(t, he.ns, true)
		if out, err := shAs(t, nil, 20*time.Second, inNS(he.ns, fmt.Sprintf("ping -6 -n -c 2 -W 3 -s %d %s", size, he.v6))); err != nil {
			t.Errorf("ping -6 -s %d %s: %v\n%s\n%s", size, he.v6, err, out, readFile(t, filepath.Join(he.net, "host")))
			continue
		}
		if after := reasmOKs(t, he.ns, true); size > 1452 && after < before+2 {
			t.Errorf("ping -6 -s %d: the peer reassembled %d replies, want 2", size, after-before)
		}
	}

	port := freeUDPPort()
	script := fmt.Sprintf(`
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("::", %d))
s.settimeout(10)
d, a = s.recvfrom(70000)
print("got", len(d), d == bytes(range(256)) * 20)
`, port)
	f := filepath.Join(t.TempDir(), "recv.py")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	wait := bg(t, inNS(he.ns, "python3 "+f))
	waitFor(t, "the receiver to listen", func() bool {
		out, _ := shAs(t, nil, 5*time.Second, inNS(he.ns, fmt.Sprintf("ss -Huln sport = :%d", port)))
		return strings.Contains(out, fmt.Sprint(port))
	})
	payload := make([]byte, 256*20)
	for i := range payload {
		payload[i] = byte(i)
	}
	fd := openUDP(t, he.udp(he.p6, port), unix.O_WRONLY)
	if _, err := unix.Write(fd, payload); err != nil {
		t.Fatalf("write of a %d-byte IPv6 datagram: %v", len(payload), err)
	}
	if out, _ := wait(); !strings.Contains(out, "got 5120 True") {
		t.Errorf("the peer did not receive the %d-byte datagram whole: %q", len(payload), out)
	}
}
