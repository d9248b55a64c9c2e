// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"golang.org/x/sys/unix"
)

// The inet tests talk to real peers, Debian's netcat-openbsd (nc) and
// socat, over loopback only, on ports picked free at run time; ss from
// iproute2 tells whether a socket is (still) there.

// requireInet is require plus the peers, and ::1 for IPv6 tests.
func requireInet(t *testing.T, v6 bool, tools ...string) {
	t.Helper()
	require(t, append([]string{"nc", "ss"}, tools...)...)
	if v6 {
		b, err := os.ReadFile("/proc/net/if_inet6")
		if err != nil || !strings.Contains(string(b), "00000000000000000000000000000001") {
			testenv.SkipOrFail(t, "needs ::1 on lo")
		}
	}
}

// freePort returns a port that was free on loopback a moment ago, for
// network "udp4", "udp6", "tcp4" or "tcp6".
func freePort(t *testing.T, network string) int {
	t.Helper()
	host := "127.0.0.1"
	if strings.HasSuffix(network, "6") {
		host = "::1"
	}
	addr := net.JoinHostPort(host, "0")
	if strings.HasPrefix(network, "udp") {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ssPort returns what `ss -Hn<flags>` shows for sockets on local port.
func ssPort(t *testing.T, flags string, port int) string {
	t.Helper()
	out, err := exec.Command("ss", "-Hn"+flags, fmt.Sprintf("sport = :%d", port)).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// recvQ returns the bytes queued on the UDP socket bound to port.
func recvQ(t *testing.T, port int) int {
	t.Helper()
	f := strings.Fields(ssPort(t, "ul", port))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// waitSocket waits until ss shows a socket on port (or, with gone, none).
func waitSocket(t *testing.T, flags string, port int, gone bool) {
	t.Helper()
	what := fmt.Sprintf("a socket on port %d (ss -%s)", port, flags)
	if gone {
		what = "no " + what
	}
	waitFor(t, what, func() bool { return (ssPort(t, flags, port) == "") == gone })
}

// proc is a peer process with its stdin held open and its output collected.
type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *syncBuffer
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), out: &syncBuffer{}}
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	// Its own process group, killed whole at cleanup: a shell's children
	// (dd blocked in read) would otherwise keep the output pipe open.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.cmd.WaitDelay = 2 * time.Second
	in, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.in = in
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s %v output:\n%s", name, args, p.out.String())
		}
	})
	return p
}

func (p *proc) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.in, s); err != nil {
		t.Fatal(err)
	}
}

func (p *proc) waitOutput(t *testing.T, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%q from %s", want, p.cmd.Path), func() bool { return strings.Contains(p.out.String(), want) })
}

// openInet opens a file under the mount; closed at cleanup.
func openInet(t *testing.T, path string, flags int) int {
	t.Helper()
	fd, err := openFile(path, flags, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func mustWrite(t *testing.T, fd int, s string) {
	t.Helper()
	if n, err := unix.Write(fd, []byte(s)); err != nil || n != len(s) {
		t.Fatalf("write %q: %d %v", s, n, err)
	}
}

func lsNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

type ipv struct {
	name     string // subtest name
	family   string // inet or inet6
	loopback string
	wildcard string
	udp, tcp string // Go network names, for freePort
	ncFlag   string // -4 or -6
}

var ipvs = []ipv{
	{"IPv4", "inet", "127.0.0.1", "0.0.0.0", "udp4", "tcp4", "-4"},
	{"IPv6", "inet6", "::1", "::", "udp6", "tcp6", "-6"},
}

// A datagram written to inet/udp/HOST/PORT reaches `nc -u -l`, and nc's
// reply is read back on the same open file, over IPv4 and IPv6; while the
// file is open, ls shows its HOST and PORT.
func TestInetUDPToNcListener(t *testing.T) {
	for _, v := range ipvs {
		t.Run(v.name, func(t *testing.T) {
			requireInet(t, v.family == "inet6")
			d := startMnet(t)
			port := freePort(t, v.udp)
			nc := startProc(t, "nc", v.ncFlag, "-u", "-l", v.loopback, strconv.Itoa(port))
			waitSocket(t, "ul", port, false)

			file := d.path(v.family, "udp", v.loopback, strconv.Itoa(port))
			fd := openInet(t, file, unix.O_RDWR)
			mustWrite(t, fd, "ping\n")
			nc.waitOutput(t, "ping\n")
			nc.send(t, "pong\n")
			if p, err := readTimeout(fd, 5*time.Second); err != nil || string(p) != "pong\n" {
				t.Fatalf("reply on the same file: %q %v, want \"pong\\n\"", p, err)
			}
			// Two writes are two datagrams, each one read on the other side.
			mustWrite(t, fd, "one\n")
			mustWrite(t, fd, "two\n")
			nc.waitOutput(t, "ping\none\ntwo\n")

			if got := lsNames(t, d.path(v.family, "udp")); len(got) != 1 || got[0] != v.loopback {
				t.Errorf("ls %s/udp = %q, want [%s]", v.family, got, v.loopback)
			}
			if got := lsNames(t, d.path(v.family, "udp", v.loopback)); len(got) != 1 || got[0] != strconv.Itoa(port) {
				t.Errorf("ls %s/udp/%s = %q, want [%d]", v.family, v.loopback, got, port)
			}
			unix.Close(fd)
			waitFor(t, "the closed file to leave the listing", func() bool {
				return len(lsNames(t, d.path(v.family, "udp"))) == 0
			})
		})
	}
}

// A wildcard file binds the port: it receives from `nc -u`; before any
// datagram a write has no destination (EDESTADDRREQ), after one it goes to
// the last sender; a short read cuts one datagram and drops its rest.
func TestInetUDPBoundReceivesFromNc(t *testing.T) {
	for _, v := range ipvs {
		t.Run(v.name, func(t *testing.T) {
			requireInet(t, v.family == "inet6")
			d := startMnet(t)
			port := freePort(t, v.udp)
			fd := openInet(t, d.path(v.family, "udp", v.wildcard, strconv.Itoa(port)), unix.O_RDWR)
			waitSocket(t, "ul", port, false)
			if _, err := unix.Write(fd, []byte("nobody\n")); !errors.Is(err, unix.EDESTADDRREQ) {
				t.Fatalf("write before any datagram: %v, want EDESTADDRREQ", err)
			}

			nc := startProc(t, "nc", v.ncFlag, "-u", v.loopback, strconv.Itoa(port))
			nc.send(t, "hello\n")
			if p, err := readTimeout(fd, 5*time.Second); err != nil || string(p) != "hello\n" {
				t.Fatalf("bound file read %q %v, want \"hello\\n\"", p, err)
			}
			mustWrite(t, fd, "back\n")
			nc.waitOutput(t, "back\n")

			// One datagram at a time: nc sends what one read of its
			// stdin returns.
			nc.send(t, "0123456789\n")
			waitFor(t, "the datagram to be queued", func() bool { return recvQ(t, port) > 0 })
			nc.send(t, "next\n")
			buf := make([]byte, 4)
			if n, err := readBlocking(t, fd, buf); err != nil || string(buf[:n]) != "0123" {
				t.Fatalf("short read: %q %v, want \"0123\"", buf[:n], err)
			}
			if p, err := readTimeout(fd, 5*time.Second); err != nil || string(p) != "next\n" {
				t.Fatalf("read after a short read: %q %v, want the next datagram whole", p, err)
			}
		})
	}
}

// readBlocking is one read(2) that must return within 5 s.
func readBlocking(t *testing.T, fd int, buf []byte) (int, error) {
	t.Helper()
	type res struct {
		n   int
		err error
	}
	ch := make(chan res, 1)
	go func() { n, err := unix.Read(fd, buf); ch <- res{n, err} }()
	select {
	case r := <-ch:
		return r.n, r.err
	case <-time.After(5 * time.Second):
		t.Fatal("read blocked for 5 s")
		return 0, nil
	}
}

// inet/tcp/HOST/PORT connects to `nc -l`: what is written reaches nc, and
// nc's reply, then its end of stream, are read back.
func TestInetTCPConnectToNc(t *testing.T) {
	for _, v := range ipvs {
		t.Run(v.name, func(t *testing.T) {
			requireInet(t, v.family == "inet6")
			d := startMnet(t)
			port := freePort(t, v.tcp)
			nc := startProc(t, "nc", v.ncFlag, "-N", "-l", v.loopback, strconv.Itoa(port))
			waitSocket(t, "tl", port, false)

			fd := openInet(t, d.path(v.family, "tcp", v.loopback, strconv.Itoa(port)), unix.O_RDWR)
			mustWrite(t, fd, "GET /\n")
			nc.waitOutput(t, "GET /\n")
			nc.send(t, "reply line 1\nreply line 2\n")
			nc.in.Close() // -N: nc shuts its side down, we read end of stream
			var got []byte
			buf := make([]byte, 4096)
			for {
				n, err := readBlocking(t, fd, buf)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if n == 0 {
					break
				}
				got = append(got, buf[:n]...)
			}
			if string(got) != "reply line 1\nreply line 2\n" {
				t.Fatalf("stream read %q", got)
			}
		})
	}
}

// Each open of inet/tcp/0.0.0.0/PORT accepts one connection: cat gets what
// nc sends; concurrent opens of one uid share the listener and each gets
// its own connection, while another uid gets EADDRINUSE; the listener goes
// with its last open; O_NONBLOCK opens are EAGAIN with nothing pending and
// find a connection made meanwhile.
func TestInetTCPAccept(t *testing.T) {
	requireInet(t, false, "setpriv")
	d := startMnet(t)
	port := freePort(t, "tcp4")
	file := d.path("inet", "tcp", "0.0.0.0", strconv.Itoa(port))

	cat := exec.Command("cat", file)
	catOut := &syncBuffer{}
	cat.Stdout = catOut
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Process.Kill(); cat.Wait() })
	waitSocket(t, "tl", port, false)
	if got := lsNames(t, d.path("inet", "tcp")); len(got) != 1 || got[0] != "0.0.0.0" {
		t.Errorf("ls inet/tcp while accepting = %q, want [0.0.0.0]", got)
	}
	nc := startProc(t, "nc", "-N", "127.0.0.1", strconv.Itoa(port))
	nc.send(t, "hello\n")
	nc.in.Close()
	if err := cat.Wait(); err != nil || catOut.String() != "hello\n" {
		t.Fatalf("cat of an accepted connection: %v %q", err, catOut.String())
	}
	waitSocket(t, "tl", port, true) // last user gone: the listener is closed

	// Two opens wait on one listener; two clients, one connection each.
	opened := make(chan int, 2)
	for range 2 {
		go func() {
			fd, err := openFile(file, unix.O_RDWR, 0)
			for err == unix.EINTR { // a SIGCHLD of a peer that exited
				fd, err = openFile(file, unix.O_RDWR, 0)
			}
			if err != nil {
				t.Errorf("accepting open: %v", err)
				fd = -1
			}
			opened <- fd
		}()
	}
	waitSocket(t, "tl", port, false)
	// Another uid may not take connections from root's listener.
	out, err := shAs(t, &cred{uid: 65534, gid: 65534}, 10*time.Second, "exec 3<"+file)
	if err == nil || !strings.Contains(out, "Address already in use") {
		t.Errorf("other uid opening a port root listens on: %v %q, want Address already in use", err, out)
	}
	clients := []*proc{
		startProc(t, "nc", "127.0.0.1", strconv.Itoa(port)),
		startProc(t, "nc", "127.0.0.1", strconv.Itoa(port)),
	}
	for i := range 2 {
		var fd int
		select {
		case fd = <-opened:
		case <-time.After(10 * time.Second):
			t.Fatal("an accepting open did not return")
		}
		if fd < 0 {
			t.FailNow()
		}
		t.Cleanup(func() { unix.Close(fd) })
		mustWrite(t, fd, fmt.Sprintf("to client %d\n", i))
	}
	waitFor(t, "each client to get one line", func() bool {
		a, b := clients[0].out.String(), clients[1].out.String()
		return a != b && (a == "to client 0\n" || a == "to client 1\n") && (b == "to client 0\n" || b == "to client 1\n")
	})

	// O_NONBLOCK: nothing pending is EAGAIN; the listener lingers, so a
	// connection made now is there for the retry.
	nport := freePort(t, "tcp4")
	nfile := d.path("inet", "tcp", "0.0.0.0", strconv.Itoa(nport))
	if _, err := openFile(nfile, unix.O_RDONLY|unix.O_NONBLOCK, 0); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("O_NONBLOCK open with nothing pending: %v, want EAGAIN", err)
	}
	late := startProc(t, "nc", "-N", "127.0.0.1", strconv.Itoa(nport))
	late.send(t, "late\n")
	var nfd int
	waitFor(t, "a non-blocking open to accept", func() bool {
		nfd, err = openFile(nfile, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		return err == nil
	})
	defer unix.Close(nfd)
	if p, err := readTimeout(nfd, 5*time.Second); err != nil || string(p) != "late\n" {
		t.Fatalf("read on non-blocking accepted file: %q %v", p, err)
	}
}

// A closed port is ECONNREFUSED: at open for TCP, at a later read for a
// connected UDP file (ICMP port unreachable).
func TestInetConnectionRefused(t *testing.T) {
	for _, v := range ipvs {
		t.Run(v.name, func(t *testing.T) {
			requireInet(t, v.family == "inet6")
			d := startMnet(t)
			port := freePort(t, v.tcp)
			if _, err := openFile(d.path(v.family, "tcp", v.loopback, strconv.Itoa(port)), unix.O_RDWR, 0); !errors.Is(err, unix.ECONNREFUSED) {
				t.Errorf("tcp open of a closed port: %v, want ECONNREFUSED", err)
			}
			uport := freePort(t, v.udp)
			fd := openInet(t, d.path(v.family, "udp", v.loopback, strconv.Itoa(uport)), unix.O_RDWR)
			mustWrite(t, fd, "anyone?\n")
			if p, err := readTimeout(fd, 5*time.Second); !errors.Is(err, unix.ECONNREFUSED) {
				t.Errorf("udp read after sending to a closed port: %q %v, want ECONNREFUSED", p, err)
			}
			out, err := shAs(t, nil, 10*time.Second, "cat "+d.path(v.family, "tcp", v.loopback, strconv.Itoa(port)))
			if err == nil || !strings.Contains(out, "Connection refused") {
				t.Errorf("cat of a closed tcp port: %v %q", err, out)
			}
		})
	}
}

// A port already bound is EADDRINUSE: a second open of a wildcard UDP
// file, and a wildcard UDP or TCP file whose port nc holds.
func TestInetAddressInUse(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	port := freePort(t, "udp4")
	file := d.path("inet", "udp", "0.0.0.0", strconv.Itoa(port))
	openInet(t, file, unix.O_RDONLY)
	if _, err := openFile(file, unix.O_RDONLY, 0); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("second bind of udp port: %v, want EADDRINUSE", err)
	}

	uport := freePort(t, "udp4")
	startProc(t, "nc", "-u", "-l", "127.0.0.1", strconv.Itoa(uport))
	waitSocket(t, "ul", uport, false)
	if _, err := openFile(d.path("inet", "udp", "0.0.0.0", strconv.Itoa(uport)), unix.O_RDONLY, 0); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("bind of a udp port nc holds: %v, want EADDRINUSE", err)
	}

	tport := freePort(t, "tcp4")
	startProc(t, "nc", "-l", "127.0.0.1", strconv.Itoa(tport))
	waitSocket(t, "tl", tport, false)
	out, err := shAs(t, nil, 10*time.Second, "cat "+d.path("inet", "tcp", "0.0.0.0", strconv.Itoa(tport)))
	if err == nil || !strings.Contains(out, "Address already in use") {
		t.Errorf("listen on a tcp port nc holds: %v %q, want Address already in use", err, out)
	}
}

// A caller that could not bind a port below ip_unprivileged_port_start
// itself cannot bind it through mnet; root can; anyone can above it.
func TestInetPrivilegedPort(t *testing.T) {
	requireInet(t, false, "setpriv")
	unprivPortStartAbove(t, 81)
	d := startMnet(t)
	nobody := &cred{uid: 65534, gid: 65534}
	for _, f := range []string{"inet/udp/0.0.0.0/81", "inet/tcp/0.0.0.0/81", "inet6/udp/::/81", "inet6/tcp/::/81"} {
		out, err := shAs(t, nobody, 10*time.Second, "exec 3<>"+d.path(f))
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid 65534 binding %s: %v %q, want Permission denied", f, err, out)
		}
	}
	if ssPort(t, "ul", 81) == "" {
		fd := openInet(t, d.path("inet/udp/0.0.0.0/81"), unix.O_RDONLY)
		if !strings.Contains(ssPort(t, "ul", 81), ":81") {
			t.Errorf("root's bind of port 81 not shown by ss")
		}
		unix.Close(fd)
	}
	port := freePort(t, "udp4")
	if out, err := shAs(t, nobody, 10*time.Second, fmt.Sprintf("exec 3<>%s", d.path("inet", "udp", "0.0.0.0", strconv.Itoa(port)))); err != nil {
		t.Errorf("uid 65534 binding port %d: %v %s", port, err, out)
	}
}

// Bad HOSTs and PORTs are EINVAL, at lookup; valid ones need no listing.
func TestInetBadNames(t *testing.T) {
	require(t)
	d := startMnet(t)
	for _, p := range []string{
		"inet/udp/127.0.0.1/0", "inet/udp/127.0.0.1/65536", "inet/udp/127.0.0.1/http",
		"inet/udp/127.0.0.1/-1", "inet/udp/127.0.0.1/080", "inet/tcp/127.0.0.1/99999999999",
		"inet/udp/::1/53", "inet6/udp/127.0.0.1/53", "inet6/tcp/::ffff:127.0.0.1/53",
		"inet/udp/1.2.3/53", "inet/udp/127.0.0.01/53", "inet/udp/bad_host!/53",
		"inet/tcp/-dash/80", "inet/tcp/a..b/80",
	} {
		var st unix.Stat_t
		if err := unix.Stat(d.path(p), &st); !errors.Is(err, unix.EINVAL) {
			t.Errorf("stat %s: %v, want EINVAL", p, err)
		}
	}
	for _, p := range []string{"inet/udp/127.0.0.1/53", "inet/tcp/localhost/65535", "inet6/udp/::1/1", "inet6/tcp/::/8080", "inet/udp/0.0.0.0/9"} {
		var st unix.Stat_t
		if err := unix.Stat(d.path(p), &st); err != nil || st.Mode != unix.S_IFREG|0o666 {
			t.Errorf("stat %s: %v mode %o, want a 0666 file", p, err, st.Mode)
		}
	}
	if out, err := shAs(t, nil, 10*time.Second, "cat "+d.path("inet/udp/127.0.0.1/0")); err == nil || !strings.Contains(out, "Invalid argument") {
		t.Errorf("cat of port 0: %v %q", err, out)
	}
	if got := lsNames(t, d.path("inet")); strings.Join(got, " ") != "tcp udp" {
		t.Errorf("ls inet = %q", got)
	}
}

// Killing a reader blocked on a socket closes the socket: ss shows nothing
// left, for a bound UDP port, a TCP accept and a TCP connection.
func TestInetKilledReaderLeavesNoSocket(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	kill := func(path string) *exec.Cmd {
		cmd := exec.Command("cat", path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	uport := freePort(t, "udp4")
	c := kill(d.path("inet", "udp", "0.0.0.0", strconv.Itoa(uport)))
	waitSocket(t, "ul", uport, false)
	time.Sleep(100 * time.Millisecond) // let cat block in read
	c.Process.Kill()
	c.Wait()
	waitSocket(t, "ul", uport, true)

	tport := freePort(t, "tcp4")
	c = kill(d.path("inet", "tcp", "0.0.0.0", strconv.Itoa(tport)))
	waitSocket(t, "tl", tport, false)
	c.Process.Kill()
	c.Wait()
	waitSocket(t, "tl", tport, true)

	// A connection: our end is the one whose peer port is nc's.
	cport := freePort(t, "tcp4")
	startProc(t, "nc", "-l", "127.0.0.1", strconv.Itoa(cport))
	waitSocket(t, "tl", cport, false)
	c = kill(d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(cport)))
	ours := func() string {
		out, _ := exec.Command("ss", "-Htn", "state", "established", fmt.Sprintf("dport = :%d", cport)).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	waitFor(t, "the connection", func() bool { return ours() != "" })
	time.Sleep(100 * time.Millisecond)
	c.Process.Kill()
	c.Wait()
	waitFor(t, "no established connection to nc", func() bool { return ours() == "" })
	waitFor(t, "ls inet/tcp and inet/udp to be empty", func() bool {
		return len(lsNames(t, d.path("inet", "tcp"))) == 0 && len(lsNames(t, d.path("inet", "udp"))) == 0
	})
}

// A signal interrupts a blocked read (EINTR), a blocked accepting open and
// a blocked cat; the file keeps working after an interrupted read.
func TestInetSignals(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	port := freePort(t, "udp4")
	fd := openInet(t, d.path("inet", "udp", "0.0.0.0", strconv.Itoa(port)), unix.O_RDONLY)

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	type res struct {
		p   string
		err error
	}
	tid := make(chan int)
	got := make(chan res, 4)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		buf := make([]byte, 100)
		for range 2 {
			n, err := unix.Read(fd, buf)
			got <- res{string(buf[:max(n, 0)]), err}
		}
	}()
	reader := <-tid
	time.Sleep(200 * time.Millisecond)
	unix.Tgkill(os.Getpid(), reader, syscall.SIGUSR1)
	select {
	case r := <-got:
		if !errors.Is(r.err, unix.EINTR) {
			t.Fatalf("interrupted read: %q %v, want EINTR", r.p, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a signal did not interrupt a blocked read")
	}
	sh(t, fmt.Sprintf("printf 'after\\n' | nc -u -w1 127.0.0.1 %d", port))
	select {
	case r := <-got:
		if r.err != nil || r.p != "after\n" {
			t.Fatalf("read after EINTR: %q %v", r.p, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram after an interrupted read")
	}

	tport := freePort(t, "tcp4")
	for _, p := range []string{
		d.path("inet", "udp", "0.0.0.0", strconv.Itoa(freePort(t, "udp4"))),
		d.path("inet", "tcp", "0.0.0.0", strconv.Itoa(tport)),
	} {
		start := time.Now()
		out, err := shAs(t, nil, 10*time.Second, "timeout -s INT 0.3 cat "+p)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 124 {
			t.Errorf("timeout -s INT cat %s: %v %q; want exit 124", p, err, out)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("cat %s took %v to end after SIGINT", p, el)
		}
	}
	waitSocket(t, "tl", tport, true)
}

// O_NONBLOCK from open or fcntl: a read with nothing to read is EAGAIN.
func TestInetNonblock(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	file := d.path("inet", "udp", "0.0.0.0", strconv.Itoa(freePort(t, "udp4")))
	fd := openInet(t, file, unix.O_RDONLY|unix.O_NONBLOCK)
	if _, err := unix.Read(fd, make([]byte, 100)); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("O_NONBLOCK read: %v, want EAGAIN", err)
	}
	unix.Close(fd)
	tport := freePort(t, "tcp4")
	nc := startProc(t, "nc", "-l", "127.0.0.1", strconv.Itoa(tport))
	waitSocket(t, "tl", tport, false)
	fd2 := openInet(t, d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(tport)), unix.O_RDWR)
	if err := unix.SetNonblock(fd2, true); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Read(fd2, make([]byte, 100)); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read after fcntl O_NONBLOCK: %v, want EAGAIN", err)
	}
	nc.send(t, "now\n")
	if p, err := readTimeout(fd2, 5*time.Second); err != nil || string(p) != "now\n" {
		t.Fatalf("non-blocking read: %q %v", p, err)
	}
	out, err := shAs(t, nil, 10*time.Second, fmt.Sprintf("dd if=%s iflag=nonblock bs=100 count=1", file))
	if err == nil || !strings.Contains(out, "Resource temporarily unavailable") {
		t.Errorf("dd iflag=nonblock: %v %s", err, out)
	}
}

// Stopping the daemon ends blocked readers (end of file) and closes every
// socket.
func TestInetDaemonStopClosesSockets(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	port := freePort(t, "udp4")
	cat := exec.Command("cat", d.path("inet", "udp", "0.0.0.0", strconv.Itoa(port)))
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Process.Kill(); cat.Wait() })
	waitSocket(t, "ul", port, false)
	if err := d.stop(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cat.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("cat still blocked after the daemon stopped")
	}
	waitSocket(t, "ul", port, true)
}

// readmeSnippet returns the README's shell block whose first line is the
// comment "# NAME", with /mnt/mnet and the example port replaced.
func readmeSnippet(t *testing.T, name, mnt, oldPort string, port int) string {
	t.Helper()
	block := strings.ReplaceAll(readmeBlock(t, "sh", "# "+name+"\n"), "/mnt/mnet", mnt)
	return strings.ReplaceAll(block, oldPort, strconv.Itoa(port))
}

// The README's UDP echo server, exactly as written, answers nc.
func TestInetReadmeUDPEchoServer(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	port := freePort(t, "udp4")
	script := readmeSnippet(t, "udp-echo-server", d.mp, "7777", port)
	srv := startProc(t, "bash", "-c", script)
	waitSocket(t, "ul", port, false)
	nc := startProc(t, "nc", "-u", "127.0.0.1", strconv.Itoa(port))
	nc.send(t, "hello\n")
	nc.waitOutput(t, "hello\n")
	nc.send(t, "second line\n")
	nc.waitOutput(t, "hello\nsecond line\n")
	if srv.out.String() != "" {
		t.Errorf("the server printed %q", srv.out.String())
	}
}

// The README's TCP client, exactly as written, fetches from a server.
func TestInetReadmeTCPClient(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	port := freePort(t, "tcp4")
	srv := startProc(t, "nc", "-N", "-l", "127.0.0.1", strconv.Itoa(port))
	waitSocket(t, "tl", port, false)
	srv.send(t, "HTTP/1.0 200 OK\r\n\r\nhello from the server\n")
	srv.in.Close()
	out := sh(t, readmeSnippet(t, "tcp-client", d.mp, "8080", port))
	if !strings.Contains(out, "hello from the server") {
		t.Fatalf("client printed %q", out)
	}
	srv.waitOutput(t, "GET / HTTP/1.0\r\n\r\n")
}

// A TCP file is a full-duplex byte stream: 4 MiB written through it to a
// socat echo server come back intact, read concurrently on the same open
// file, over IPv4 and IPv6.
func TestInetTCPStreamThroughSocatEcho(t *testing.T) {
	for _, v := range ipvs {
		t.Run(v.name, func(t *testing.T) {
			requireInet(t, v.family == "inet6", "socat")
			d := startMnet(t)
			port := freePort(t, v.tcp)
			listen := fmt.Sprintf("TCP4-LISTEN:%d,bind=127.0.0.1,reuseaddr", port)
			if v.family == "inet6" {
				listen = fmt.Sprintf("TCP6-LISTEN:%d,bind=[::1],reuseaddr", port)
			}
			// Blocks of at most PIPE_BUF: socat writes to its echo pipe
			// when select says there is room, and a larger block could
			// then block socat, the pipe's only reader, for good (seen:
			// socat wedged with data in its socket).
			startProc(t, "socat", "-b", "4096", listen, "PIPE")
			waitSocket(t, "tl", port, false)

			fd := openInet(t, d.path(v.family, "tcp", v.loopback, strconv.Itoa(port)), unix.O_RDWR)
			want := make([]byte, 4<<20)
			for i := range want {
				want[i] = byte(i*7 + i>>12)
			}
			werr := make(chan error, 1)
			go func() {
				for off := 0; off < len(want); {
					n, err := unix.Write(fd, want[off:min(off+100_000, len(want))])
					if err != nil {
						werr <- err
						return
					}
					off += n
				}
				werr <- nil
			}()
			got := make([]byte, 0, len(want))
			buf := make([]byte, 1<<16)
			deadline := time.Now().Add(20 * time.Second)
			for len(got) < len(want) && time.Now().Before(deadline) {
				n, err := readBlocking(t, fd, buf)
				if err != nil || n == 0 {
					t.Fatalf("read after %d bytes: %d %v", len(got), n, err)
				}
				got = append(got, buf[:n]...)
			}
			if err := <-werr; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("echoed stream differs (%d bytes back of %d)", len(got), len(want))
			}
		})
	}
}

// A HOST name is resolved at open: inet/tcp/localhost/PORT reaches a
// server on 127.0.0.1.
func TestInetNameResolved(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	port := freePort(t, "tcp4")
	nc := startProc(t, "nc", "-l", "127.0.0.1", strconv.Itoa(port))
	waitSocket(t, "tl", port, false)
	sh(t, fmt.Sprintf("echo by name > %s", d.path("inet", "tcp", "localhost", strconv.Itoa(port))))
	nc.waitOutput(t, "by name\n")
}
