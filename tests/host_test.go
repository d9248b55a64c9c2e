package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	udpPortSeq++
	return udpPortSeq
}

// openUDP opens a udp file; closed at cleanup.
func openUDP(t *testing.T, path string, flags int) int {
	t.Helper()
	fd, err := unix.Open(path, flags, 0)
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
