// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of SPEC "Confinement": through the mount a caller gets
// what it could do itself. Its sockets and TAPs are made in its own network
// namespace (unshare -n, ip netns exec), privilege is its effective
// capabilities (setpriv empties or grants them), its sockets are owned by
// its uid (ss -e), per-uid limits hold, and a caller the daemon cannot see
// (another pid namespace) gets EACCES for what needs its namespace.

import (
	"context"
	"fmt"
	"net"
	"os"
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

// privSh runs a bash script under setpriv with args (credentials and
// capabilities), and returns its combined output and error.
func privSh(t *testing.T, args []string, script string) (string, error) {
	t.Helper()
	require(t, "setpriv")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "setpriv", append(args, "bash", "-c", script)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// openRetry is open(2) again while it is EINTR: Go's runtime signals its
// own threads (preemption), and mnet answers an interrupted open with
// EINTR.
func openRetry(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := openFile(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// rootNoCaps is uid 0 with empty bounding, inheritable and so effective
// sets: Docker's default root, minus even what Docker keeps.
var rootNoCaps = []string{"--bounding-set=-all", "--inh-caps=-all"}

// unprivPortStartAbove skips (fails in CI) unless ports up to port need
// privilege in the host's namespace.
func unprivPortStartAbove(t *testing.T, port int) {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		t.Fatal(err)
	}
	if start, _ := strconv.Atoi(strings.TrimSpace(string(b))); start <= port {
		testenv.SkipOrFail(t, fmt.Sprintf("needs net.ipv4.ip_unprivileged_port_start > %d, is %d", port, start))
	}
}

// An `unshare -n` caller does not reach a listener on the host's loopback:
// its open fails as its own namespace (lo down) makes it fail. A caller in
// `ip netns exec X` reaches X's own loopback listener, which the host
// cannot reach, and its UDP datagram arrives there too.
func TestConfineNetnsLoopback(t *testing.T) {
	e := newIfEnv(t, "unshare", "socat")
	requireInet(t, false)
	x := e.netns("x")
	d := startMnet(t)

	host, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := host.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	hostPort := host.Addr().(*net.TCPAddr).Port
	out, err := shAs(t, nil, 20*time.Second, fmt.Sprintf("unshare -n bash -c 'exec 3<>%s'",
		d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(hostPort))))
	if err == nil || !strings.Contains(out, "Network is unreachable") {
		t.Errorf("unshare -n caller connecting to the host's loopback: %v %q, want Network is unreachable", err, out)
	}
	out, err = shAs(t, nil, 20*time.Second, fmt.Sprintf("unshare -n bash -c 'ip link set lo up && exec 3<>%s'",
		d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(hostPort))))
	if err == nil || !strings.Contains(out, "Connection refused") {
		t.Errorf("unshare -n caller (lo up) connecting to the host's loopback: %v %q, want Connection refused", err, out)
	}
	select {
	case <-accepted:
		t.Error("the host's listener got a connection from a confined caller")
	default:
	}

	// X's own listener, on a port nothing listens on in the host.
	port := freePort(t, "tcp4")
	srv := startProc(t, "ip", "netns", "exec", x, "socat", "-u",
		fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1", port), "STDOUT")
	waitFor(t, "socat listening in "+x, func() bool {
		o, _ := exec.Command("ip", "netns", "exec", x, "ss", "-Htln", fmt.Sprintf("sport = :%d", port)).Output()
		return len(strings.TrimSpace(string(o))) > 0
	})
	sh(t, fmt.Sprintf("ip netns exec %s bash -c 'exec 3<>%s && echo hello-from-x >&3'", x,
		d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(port))))
	srv.waitOutput(t, "hello-from-x")
	if fd, err := openRetry(d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(port)), unix.O_RDWR, 0); err != unix.ECONNREFUSED {
		if err == nil {
			unix.Close(fd)
		}
		t.Errorf("host caller connecting to X's listener port: %v, want ECONNREFUSED", err)
	}

	// A listener is made in the caller's namespace: the host's listener on
	// a port (kept by an O_NONBLOCK accept) is not X's on the same port.
	lport := freePort(t, "tcp4")
	lfile := d.path("inet", "tcp", "0.0.0.0", strconv.Itoa(lport))
	if fd, err := openRetry(lfile, unix.O_RDWR|unix.O_NONBLOCK, 0); err != unix.EAGAIN {
		if err == nil {
			unix.Close(fd)
		}
		t.Fatalf("host O_NONBLOCK accept: %v, want EAGAIN", err)
	}
	out = sh(t, fmt.Sprintf(`ip netns exec %s bash -c '( exec 3<>%s && cat <&3 ) &
for i in $(seq 100); do ss -Htln "sport = :%d" | grep -q . && break; sleep 0.05; done
echo via-x | nc -N 127.0.0.1 %d; wait'`, x, lfile, lport, lport))
	if !strings.Contains(out, "via-x") {
		t.Errorf("accept in %s while the host listens on the same port: %q, want via-x", x, out)
	}

	// UDP, and a name resolved in X: "localhost" from /etc/hosts.
	uport := freePort(t, "udp4")
	usrv := startProc(t, "ip", "netns", "exec", x, "socat", "-u",
		fmt.Sprintf("UDP-RECV:%d,bind=127.0.0.1", uport), "STDOUT")
	waitFor(t, "socat bound in "+x, func() bool {
		o, _ := exec.Command("ip", "netns", "exec", x, "ss", "-Huln", fmt.Sprintf("sport = :%d", uport)).Output()
		return len(strings.TrimSpace(string(o))) > 0
	})
	sh(t, fmt.Sprintf("ip netns exec %s bash -c 'exec 3<>%s && echo udp-in-x >&3'", x,
		d.path("inet", "udp", "localhost", strconv.Itoa(uport))))
	usrv.waitOutput(t, "udp-in-x")
}

// `echo 'tap NAME' > ctl` run inside a namespace creates the TAP there and
// nowhere else; grab and detach act there too.
func TestConfineTapInNamespace(t *testing.T) {
	e := newIfEnv(t)
	a := e.netns("a")
	d := startMnet(t)
	nw := d.mkNet(t, "sw")
	tp := e.name("t")
	ctlPath := filepath.Join(nw, "ctl")
	sh(t, fmt.Sprintf("ip netns exec %s bash -c \"echo 'tap %s' > %s\"", a, tp, ctlPath))
	if !linkExists(a, tp) {
		t.Fatalf("TAP %s not in namespace %s", tp, a)
	}
	if linkExists("", tp) {
		t.Errorf("TAP %s appeared in the daemon's namespace", tp)
	}
	wantAttachRow(t, nw, "tap", tp)

	// An interface name is claimed in its namespace: b and the daemon's
	// own namespace attach a TAP of the same name to another network,
	// and a second one of that name in the same network is EEXIST.
	b := e.netns("b")
	nw2 := d.mkNet(t, "sw2")
	sh(t, fmt.Sprintf("ip netns exec %s bash -c \"echo 'tap %s' > %s\"", b, tp, filepath.Join(nw2, "ctl")))
	if !linkExists(b, tp) {
		t.Errorf("TAP %s not in namespace %s", tp, b)
	}
	out, err := shAs(t, nil, 20*time.Second, fmt.Sprintf("ip netns exec %s bash -c \"echo 'tap %s' > %s\"", b, tp, ctlPath))
	if err == nil || !strings.Contains(out, "File exists") {
		t.Errorf("a second TAP %s in one network: %v %q, want File exists", tp, err, out)
	}
	e.link(tp)
	if err := ctl(d.mkNet(t, "sw3"), "tap "+tp); err != nil {
		t.Errorf("TAP %s in the daemon's namespace while a and b have one: %v", tp, err)
	}
	if !linkExists("", tp) {
		t.Errorf("TAP %s not in the daemon's namespace", tp)
	}

	// A veth end inside a, grabbed from inside a.
	g, gp := e.name("g"), e.name("gp")
	sh(t, fmt.Sprintf("ip -n %s link add %s type veth peer name %s", a, g, gp))
	if err := ctl(nw, "grab "+g); err != unix.ENODEV {
		t.Errorf("grab from the daemon's namespace of %s, which is in %s: %v, want ENODEV", g, a, err)
	}
	sh(t, fmt.Sprintf("ip netns exec %s bash -c \"echo 'grab %s' > %s\"", a, g, ctlPath))
	wantAttachRow(t, nw, "grab", g)
	// Taken down there, it is still there: it stays attached (the
	// daemon looks for it in its socket's namespace, not its own).
	sh(t, fmt.Sprintf("ip -n %s link set %s down", a, g))
	time.Sleep(200 * time.Millisecond) // time for a wrong detach
	wantAttachRow(t, nw, "grab", g)
	sh(t, fmt.Sprintf("ip -n %s link set %s up", a, g))

	sh(t, fmt.Sprintf("ip netns exec %s bash -c \"echo 'detach %s' > %s\"", a, tp, ctlPath))
	waitFor(t, "TAP deleted from "+a, func() bool { return !linkExists(a, tp) })
	sh(t, fmt.Sprintf("ip netns exec %s bash -c \"echo 'detach %s' > %s\"", a, g, ctlPath))
	if rows := portRows(t, nw); len(rows) != 0 {
		t.Errorf("ports left after detaching both: %v", rows)
	}
}

// uid 0 without capabilities keeps the rights of file ownership (it may
// manage any network) but gets EPERM for tap, grab and detach, and EACCES
// for a privileged port; with CAP_NET_ADMIN alone it may tap.
func TestConfineRootWithoutCapabilities(t *testing.T) {
	e := newIfEnv(t, "setpriv")
	requireInet(t, false)
	unprivPortStartAbove(t, 81)
	d := startMnet(t)
	nw := d.mkNet(t, "lab")
	sh(t, "chmod 0700 "+nw) // root's alone: uid 0 holds x by ownership
	ctlPath := filepath.Join(nw, "ctl")
	x := e.link(e.name("x"))
	g, gp := e.name("g"), e.name("gp")
	e.veth(g, gp)

	if out, err := privSh(t, rootNoCaps, "echo 'descr no caps' > "+ctlPath); err != nil {
		t.Fatalf("uid 0 without capabilities cannot manage its network: %v %s", err, out)
	}
	for _, cmd := range []string{"tap " + x, "grab " + g} {
		out, err := privSh(t, rootNoCaps, "echo '"+cmd+"' > "+ctlPath)
		if err == nil || !strings.Contains(out, rightsEPERM) {
			t.Errorf("uid 0 without capabilities: %q: %v %q, want %q", cmd, err, out, rightsEPERM)
		}
	}
	if linkExists("", x) {
		t.Errorf("a refused tap created %s", x)
	}
	mustCtl(t, nw, "grab "+g)
	if out, err := privSh(t, rootNoCaps, "echo 'detach "+g+"' > "+ctlPath); err == nil || !strings.Contains(out, rightsEPERM) {
		t.Errorf("uid 0 without capabilities: detach: %v %q, want %q", err, out, rightsEPERM)
	}
	if attachRow(t, nw, g) == nil {
		t.Errorf("a refused detach removed %s", g)
	}
	for _, f := range []string{"inet/udp/0.0.0.0/81", "inet/tcp/0.0.0.0/81", "inet6/udp/::/81"} {
		out, err := privSh(t, rootNoCaps, "exec 3<>"+d.path(f))
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid 0 without capabilities binding %s: %v %q, want Permission denied", f, err, out)
		}
	}
	// CAP_NET_ADMIN alone is enough for interfaces.
	netAdmin := []string{"--bounding-set=-all,+net_admin", "--inh-caps=-all"}
	if out, err := privSh(t, netAdmin, "echo 'tap "+x+"' > "+ctlPath); err != nil {
		t.Errorf("uid 0 with CAP_NET_ADMIN only: tap: %v %s", err, out)
	}
	wantAttachRow(t, nw, "tap", x)
}

// A caller that is not root binds port 82 with CAP_NET_BIND_SERVICE in its
// effective set (ambient, kept across exec), and cannot without it.
func TestConfineAmbientBindService(t *testing.T) {
	requireInet(t, false, "setpriv")
	unprivPortStartAbove(t, 82)
	d := startMnet(t)
	user := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	withCap := append(append([]string{}, user...), "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service")
	for _, f := range []string{"inet/udp/0.0.0.0/82", "inet/tcp/0.0.0.0/82"} {
		if out, err := privSh(t, user, "exec 3<>"+d.path(f)); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("uid 65534 without CAP_NET_BIND_SERVICE binding %s: %v %q, want Permission denied", f, err, out)
		}
	}
	if ssPort(t, "ul", 82) != "" {
		t.Skip("port 82 is in use on this machine")
	}
	out, err := privSh(t, withCap, "exec 3<>"+d.path("inet/udp/0.0.0.0/82")+" && echo bound")
	if err != nil || !strings.Contains(out, "bound") {
		t.Errorf("uid 65534 with ambient CAP_NET_BIND_SERVICE binding udp port 82: %v %q", err, out)
	}
}

// The caller's sockets are its own: ss -e shows its uid on a TCP
// connection it made, on a listener it made and on what that accepted.
func TestConfineSocketOwner(t *testing.T) {
	requireInet(t, false, "setpriv")
	d := startMnet(t)
	host, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	go func() {
		for {
			c, err := host.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := host.Addr().(*net.TCPAddr).Port
	holder := startProc(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c",
		fmt.Sprintf("exec 3<>%s && echo connected && sleep 60", d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(port))))
	holder.waitOutput(t, "connected")
	out, err := exec.Command("ss", "-Htne", fmt.Sprintf("dport = :%d", port)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "uid:65534") {
		t.Errorf("ss -tne for the caller's connection: %v\n%s\nwant uid:65534", err, out)
	}

	lport := freePort(t, "tcp4")
	acceptor := startProc(t, "setpriv", "--reuid=65533", "--regid=65533", "--clear-groups", "bash", "-c",
		fmt.Sprintf("exec 3<>%s && echo accepted && sleep 60", d.path("inet", "tcp", "0.0.0.0", strconv.Itoa(lport))))
	waitSocket(t, "tl", lport, false)
	if out := ssPort(t, "tle", lport); !strings.Contains(out, "uid:65533") {
		t.Errorf("ss -tle for the caller's listener: %s, want uid:65533", out)
	}
	c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	acceptor.waitOutput(t, "accepted")
	if out := ssPort(t, "te", lport); !strings.Contains(out, "uid:65533") {
		t.Errorf("ss -te for the accepted connection: %s, want uid:65533", out)
	}
}

// Per-uid limits: networks (ENOSPC), persistent networks (ENOSPC), open
// sockets of every family together (EMFILE), each logged with the uid,
// and none affects another uid or root.
func TestConfinePerUidLimits(t *testing.T) {
	requireInet(t, false, "setpriv")
	d := startMnet(t, "--max-networks-per-uid", "2", "--max-persistent-per-uid", "1", "--max-sockets-per-uid", "2")
	u1, u2 := &cred{uid: 1000, gid: 1000}, &cred{uid: 1001, gid: 1001}
	mk := func(c *cred, name string) (string, error) {
		return shAs(t, c, 15*time.Second, "mkdir "+d.path("ipn", name))
	}
	for _, n := range []string{"a1", "a2"} {
		if out, err := mk(u1, n); err != nil {
			t.Fatalf("uid 1000 mkdir %s: %v %s", n, err, out)
		}
	}
	if out, err := mk(u1, "a3"); err == nil || !strings.Contains(out, "No space left on device") {
		t.Errorf("uid 1000's third network: %v %q, want No space left on device", err, out)
	}
	if out, err := mk(u2, "b1"); err != nil {
		t.Errorf("uid 1001 mkdir while uid 1000 is at its limit: %v %s", err, out)
	}
	if err := os.Mkdir(d.path("ipn", "r1"), 0o755); err != nil {
		t.Errorf("root mkdir: %v", err)
	}
	waitFor(t, "a log line naming uid 1000", func() bool {
		return strings.Contains(d.log.String(), "resource=networks uid=1000 scope=per-uid")
	})

	persist := func(c *cred, name string) (string, error) {
		return shAs(t, c, 15*time.Second, "echo 'persist on' > "+d.path("ipn", name, "ctl"))
	}
	if out, err := persist(u1, "a1"); err != nil {
		t.Fatalf("uid 1000 persist on a1: %v %s", err, out)
	}
	if out, err := persist(u1, "a2"); err == nil || !strings.Contains(out, "No space left on device") {
		t.Errorf("uid 1000's second persistent network: %v %q, want No space left on device", err, out)
	}
	if out, err := persist(u1, "a1"); err != nil {
		t.Errorf("persist on again for a network that persists: %v %s", err, out)
	}
	if out, err := persist(u2, "b1"); err != nil {
		t.Errorf("uid 1001 persist on: %v %s", err, out)
	}
	if err := ctl(d.path("ipn", "a2"), "persist on"); err != nil {
		t.Errorf("root making uid 1000's network persist: %v", err)
	}

	port := freePort(t, "udp4")
	file := d.path("inet", "udp", "127.0.0.1", strconv.Itoa(port))
	holder := startProc(t, "setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "bash", "-c",
		fmt.Sprintf("exec 3<>%s 4<>%s && echo held && sleep 60", file, file))
	holder.waitOutput(t, "held")
	if out, err := shAs(t, u1, 15*time.Second, "exec 5<>"+file); err == nil || !strings.Contains(out, "Too many open files") {
		t.Errorf("uid 1000's third socket: %v %q, want Too many open files", err, out)
	}
	if b, _ := os.ReadFile("/proc/net/if_inet6"); strings.Contains(string(b), "00000000000000000000000000000001") {
		if out, err := shAs(t, u1, 15*time.Second, "exec 5<>"+d.path("inet6", "udp", "::1", strconv.Itoa(port))); err == nil || !strings.Contains(out, "Too many open files") {
			t.Errorf("uid 1000's first inet6 socket (counted with inet): %v %q, want Too many open files", err, out)
		}
	}
	if out, err := shAs(t, u2, 15*time.Second, "exec 3<>"+file+" 4<>"+file+" && echo ok"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("uid 1001's sockets while uid 1000 is at its limit: %v %q", err, out)
	}
	if !strings.Contains(d.log.String(), "resource=sockets uid=1000 scope=per-uid") {
		t.Error("no log line for the socket limit")
	}
}

// A caller the daemon cannot see (the daemon runs in a pid namespace of
// its own, so FUSE gives pid 0 for callers outside it) gets EACCES for
// inet opens, never the daemon's namespace, and still uses ipn.
//
// The daemon is started with `unshare -p -f` and no --mount-proc: a mount
// namespace of its own would keep the FUSE mount from the test. Its /proc
// is then the host's, which it detects (and logs) and trusts for no one.
func TestConfineInvisibleCaller(t *testing.T) {
	requireInet(t, false, "unshare")
	require(t)
	dir := mountDir(t)
	mp := filepath.Join(dir, "mnt")
	d := &daemon{t: t, mp: mp, state: filepath.Join(dir, "state.json"), log: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command("unshare", "-p", "-f", "--kill-child=SIGKILL", mnetBin, "mount", "-v", "--state", d.state, mp)
	d.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		// unshare passes no signal on: SIGTERM goes to its child, the
		// daemon (pid 1 of its namespace, with handlers installed).
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", d.cmd.Process.Pid, d.cmd.Process.Pid))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			t.Error("mnet in its pid namespace did not stop within 15s of SIGTERM")
			d.cmd.Process.Kill() // --kill-child: the daemon goes too
			<-d.done
		}
		if strings.Contains(d.log.String(), "DATA RACE") {
			t.Error("the daemon reported a data race")
		}
		if t.Failed() {
			t.Logf("mnet log:\n%s", d.log.String())
		}
	})
	waitFor(t, "mnet mounted in its own pid namespace", func() bool {
		_, err := os.Stat(filepath.Join(mp, "families"))
		return err == nil && isMounted(mp)
	})

	host, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	port := host.Addr().(*net.TCPAddr).Port
	for _, f := range []string{
		d.path("inet", "tcp", "127.0.0.1", strconv.Itoa(port)),
		d.path("inet", "udp", "127.0.0.1", strconv.Itoa(port)),
		d.path("inet", "udp", "0.0.0.0", strconv.Itoa(freePort(t, "udp4"))),
	} {
		if fd, err := openRetry(f, unix.O_RDWR, 0); err != unix.EACCES {
			if err == nil {
				unix.Close(fd)
			}
			t.Errorf("open %s by a caller the daemon cannot see: %v, want EACCES", f, err)
		}
	}
	nw := d.mkNet(t, "seen")
	r := openPort(t, nw, unix.O_RDONLY)
	w := openPort(t, nw, unix.O_WRONLY)
	mustWrite(t, w, "still works")
	if got, err := readTimeout(r, 5*time.Second); err != nil || string(got) != "still works" {
		t.Errorf("ipn data through a daemon that cannot see us: %q %v", got, err)
	}
	if err := ctl(nw, "tap mnetinvis0"); err != unix.EPERM {
		t.Errorf("tap by a caller the daemon cannot see: %v, want EPERM (no capabilities)", err)
	}
}

// mhost's kernel paths are the caller's too: an inet locator of an mhost
// opened inside a namespace reaches that namespace's loopback, and
// mhost/any binds a privileged port only with CAP_NET_BIND_SERVICE.
func TestConfineMhost(t *testing.T) {
	e := newIfEnv(t, "socat", "setpriv")
	requireInet(t, false)
	unprivPortStartAbove(t, 81)
	x := e.netns("x")
	d := startMnet(t)
	mh := d.path("mhost", "h")
	if err := os.Mkdir(mh, 0o755); err != nil {
		t.Fatal(err)
	}
	mustCtl(t, mh, "inet 127.0.0.1")
	port := freePort(t, "udp4")
	srv := startProc(t, "ip", "netns", "exec", x, "socat", "-u",
		fmt.Sprintf("UDP-RECV:%d,bind=127.0.0.1", port), "STDOUT")
	waitFor(t, "socat bound in "+x, func() bool {
		o, _ := exec.Command("ip", "netns", "exec", x, "ss", "-Huln", fmt.Sprintf("sport = :%d", port)).Output()
		return len(strings.TrimSpace(string(o))) > 0
	})
	sh(t, fmt.Sprintf("ip netns exec %s bash -c 'exec 3<>%s && echo mhost-in-x >&3'", x,
		filepath.Join(mh, "udp", strconv.Itoa(port))))
	srv.waitOutput(t, "mhost-in-x")

	if out, err := privSh(t, rootNoCaps, "exec 3<>"+d.path("mhost", "any", "udp", "81")); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("uid 0 without capabilities binding mhost/any/udp/81: %v %q, want Permission denied", err, out)
	}
}
