// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of SPEC "Confinement": the namespace and capabilities
// of a ctl write are the opener's, pinned at open, and a persistent
// attachment comes back after a restart only in the namespace it was made
// in, never in the daemon's.

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openCtlIn opens ctl for writing from a thread that has entered the
// named namespace ns. With back, the thread then returns to the test's
// namespace and lives on (until cleanup); without, it ends once the file
// is open. Either way the opener no longer is in ns when the test writes.
func openCtlIn(t *testing.T, ns, ctlPath string, back bool) int {
	t.Helper()
	type result struct {
		fd, tid int
		err     error
	}
	done := make(chan result, 1)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var opener func()
	opener = func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if unix.Gettid() == unix.Getpid() {
			// The main thread: the runtime parks it when its
			// goroutine ends, never ends it. Open from another,
			// started while this one is held, and let this one go.
			inner := make(chan struct{})
			go func() { defer close(inner); opener() }()
			<-inner
			runtime.UnlockOSThread()
			return
		}
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(home)
		target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		fd, err := openFile(ctlPath, unix.O_WRONLY, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		if back {
			if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
				done <- result{err: err}
				return
			}
		}
		done <- result{fd: fd, tid: unix.Gettid()}
		if back {
			<-release
		}
	}
	go opener()
	r := <-done
	if r.err != nil {
		t.Fatalf("opening %s from namespace %s: %v", ctlPath, ns, r.err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	if !back {
		task := fmt.Sprintf("/proc/self/task/%d", r.tid)
		waitFor(t, "the opening thread to end", func() bool {
			_, err := os.Stat(task)
			return err != nil
		})
	}
	return r.fd
}

func writeCtlFD(t *testing.T, fd int, cmd string) error {
	t.Helper()
	for {
		_, err := unix.Write(fd, []byte(cmd+"\n"))
		if err != unix.EINTR {
			return err
		}
	}
}

// A ctl file acts in the namespace its opener had at open(2): not in the
// one the opener moved to since, nor in the writer's or the daemon's, and
// still after the opener is gone and the namespace has lost its name.
func TestNsCtlPinnedAtOpen(t *testing.T) {
	e := newIfEnv(t)
	a := e.netns("a")
	d := startMnet(t)
	nw := d.mkNet(t, "pin")
	ctlPath := filepath.Join(nw, "ctl")

	// The opener is back in the daemon's namespace when the write comes.
	moved := openCtlIn(t, a, ctlPath, true)
	x := e.link(e.name("x"))
	if err := writeCtlFD(t, moved, "tap "+x); err != nil {
		t.Fatalf("tap %s through the kept ctl: %v", x, err)
	}
	if linkExists("", x) {
		t.Errorf("TAP %s appeared in the daemon's (and writer's) namespace, where its opener is now", x)
	}
	if !linkExists(a, x) {
		t.Errorf("TAP %s is not in %s, where ctl was opened", x, a)
	}

	// The opening thread is gone: its pid names nothing, or another task.
	gone := openCtlIn(t, a, ctlPath, false)
	y := e.link(e.name("y"))
	if err := writeCtlFD(t, gone, "tap "+y); err != nil {
		t.Fatalf("tap %s through a ctl whose opener is gone: %v", y, err)
	}
	if linkExists("", y) || !linkExists(a, y) {
		t.Errorf("TAP %s: in the daemon's namespace %v, in %s %v; want only in %s",
			y, linkExists("", y), a, linkExists(a, y), a)
	}

	// Without its name the namespace lives on while the file holds it;
	// a write still acts there, never in the daemon's.
	sh(t, "ip netns del "+a)
	z := e.link(e.name("z"))
	if err := writeCtlFD(t, gone, "tap "+z); err != nil {
		t.Fatalf("tap %s after the namespace lost its name: %v", z, err)
	}
	if linkExists("", z) {
		t.Errorf("TAP %s appeared in the daemon's namespace", z)
	}
	if !hasLine(ctlLines(t, nw), "tap "+z) {
		t.Errorf("tap %s not attached:\n%s", z, readFile(t, ctlPath))
	}
}

// nsPort is a UDP port for a test's VXLAN cable, unlikely to be another
// test's.
func nsPort() int { return 40000 + mrand.IntN(10000) }

// udpBound reports whether a UDP socket is bound to port in namespace ns
// ("" the daemon's).
func udpBound(t *testing.T, ns string, port int) bool {
	t.Helper()
	return strings.TrimSpace(sh(t, inNS(ns, fmt.Sprintf("ss -Huan 'sport = :%d'", port)))) != ""
}

func ctlHas(t *testing.T, net, prefix string) string {
	t.Helper()
	for _, l := range ctlLines(t, net) {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// The container case: root in an unnamed namespace (unshare -n) makes a
// persistent network's TAP and VXLAN cable. They work, ctl says they are
// not persistent, and after a restart neither is made in the daemon's
// namespace.
func TestNsPersistUnnamedNamespace(t *testing.T) {
	e := newIfEnv(t, "unshare", "ss")
	d := startMnet(t)
	nw := d.mkNet(t, "ct")
	x := e.link(e.name("x"))
	port := nsPort()
	cable := fmt.Sprintf("vxlan 4201 198.18.71.2:%d", port)
	out := sh(t, fmt.Sprintf(`unshare -n sh -c 'printf "persist on\ntap %s\n%s\n" > %s/ctl && ip -br link show %s && ss -Huan "sport = :%d"'`,
		x, cable, nw, x, port))
	if !strings.Contains(out, x) || !strings.Contains(out, fmt.Sprint(port)) {
		t.Fatalf("the TAP or the cable's socket is not in the caller's namespace:\n%s", out)
	}
	for _, l := range []string{"tap " + x, cable} {
		if want := l + " # not persistent: unnamed namespace"; !hasLine(ctlLines(t, nw), want) {
			t.Errorf("ctl lacks %q:\n%s", want, readFile(t, filepath.Join(nw, "ctl")))
		}
	}
	if linkExists("", x) || udpBound(t, "", port) {
		t.Fatalf("the TAP or the cable is in the daemon's namespace before any restart")
	}
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	if b, _ := os.ReadFile(d.state); strings.Contains(string(b), x) || strings.Contains(string(b), "4201") {
		t.Errorf("the state file keeps attachments of an unnamed namespace:\n%s", b)
	}
	startMnetAt(t, d.mp, d.state)
	if linkExists("", x) {
		t.Errorf("after restart TAP %s appeared in the daemon's namespace", x)
	}
	if udpBound(t, "", port) {
		t.Errorf("after restart the cable's underlay is in the daemon's namespace")
	}
	if l := ctlHas(t, nw, "tap "+x); l != "" {
		t.Errorf("after restart ctl shows %q", l)
	}
	if l := ctlHas(t, nw, "vxlan 4201"); l != "" {
		t.Errorf("after restart ctl shows %q", l)
	}
}

// A named namespace's attachments (tap, grab, cable) come back there after
// a restart. While the name is gone they wait, shown in ctl, and nothing
// is made in the daemon's namespace; once the same namespace has its name
// again they are attached. A new namespace under the old name is not the
// one they were made in: they keep waiting.
func TestNsPersistNamedNamespace(t *testing.T) {
	e := newIfEnv(t, "ss")
	a := e.netns("a")
	d := startMnet(t)
	nw := d.mkNet(t, "named")
	x := e.link(e.name("x"))
	g, gp := e.name("g"), e.name("gp")
	sh(t, fmt.Sprintf("ip -n %s link add %s type veth peer name %s && ip -n %s link set %s up", a, g, gp, a, g))
	port := nsPort()
	cable := fmt.Sprintf("vxlan 4202 198.18.72.2:%d", port)
	lines := []string{"tap " + x, "grab " + g, cable}
	sh(t, fmt.Sprintf(`ip netns exec %s sh -c 'printf "persist on\n%s\n" > %s/ctl'`, a, strings.Join(lines, `\n`), nw))
	check := func(when string) {
		t.Helper()
		ctlText := readFile(t, filepath.Join(nw, "ctl"))
		for _, l := range lines {
			if !hasLine(ctlLines(t, nw), l) {
				t.Errorf("%s: ctl lacks %q:\n%s", when, l, ctlText)
			}
		}
		if !linkExists(a, x) || linkExists("", x) {
			t.Errorf("%s: TAP %s in %s %v, in the daemon's namespace %v", when, x, a, linkExists(a, x), linkExists("", x))
		}
		if !udpBound(t, a, port) || udpBound(t, "", port) {
			t.Errorf("%s: the cable's socket in %s %v, in the daemon's namespace %v",
				when, a, udpBound(t, a, port), udpBound(t, "", port))
		}
	}
	check("before restart")
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	d = startMnetAt(t, d.mp, d.state)
	check("after restart")
	if attachRow(t, nw, g) == nil {
		t.Errorf("after restart grab %s has no port:\n%s", g, readFile(t, filepath.Join(nw, "ports")))
	}

	// The namespace loses its name while a process keeps it alive.
	keeper := exec.Command("ip", "netns", "exec", a, "sleep", "300")
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keeper.Process.Kill(); keeper.Wait() })
	time.Sleep(100 * time.Millisecond) // sleep runs in the namespace
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	sh(t, "ip netns del "+a)
	d = startMnetAt(t, d.mp, d.state)
	for _, l := range lines {
		if want := l + " # waiting: namespace /run/netns/" + a + " gone"; !hasLine(ctlLines(t, nw), want) {
			t.Errorf("with %s gone, ctl lacks %q:\n%s", a, want, readFile(t, filepath.Join(nw, "ctl")))
		}
	}
	if linkExists("", x) || linkExists("", g) || udpBound(t, "", port) {
		t.Errorf("with %s gone, an attachment was made in the daemon's namespace", a)
	}
	// Named again: a read of ctl tries the waiting ones at once.
	sh(t, fmt.Sprintf("ip netns attach %s %d", a, keeper.Process.Pid))
	check("named again")

	// A new namespace under the old name is another one.
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	keeper.Process.Kill()
	keeper.Wait()
	sh(t, "ip netns del "+a)
	sh(t, "ip netns add "+a)
	startMnetAt(t, d.mp, d.state)
	for _, l := range lines {
		want := l + " # waiting: namespace /run/netns/" + a + " is another namespace than the one it was made in"
		if !hasLine(ctlLines(t, nw), want) {
			t.Errorf("with a new %s, ctl lacks %q:\n%s", a, want, readFile(t, filepath.Join(nw, "ctl")))
		}
	}
	if linkExists("", x) || linkExists(a, x) || udpBound(t, "", port) || udpBound(t, a, port) {
		t.Errorf("with a new namespace %s, an attachment was made there or in the daemon's", a)
	}
	// detach takes a waiting attachment away; tap from the new namespace
	// replaces one.
	sh(t, fmt.Sprintf(`ip netns exec %s sh -c 'printf "detach vxlan 4202\ntap %s\n" > %s/ctl'`, a, x, nw))
	if l := ctlHas(t, nw, "vxlan 4202"); l != "" {
		t.Errorf("after detach ctl still shows %q", l)
	}
	if !hasLine(ctlLines(t, nw), "tap "+x) || !linkExists(a, x) {
		t.Errorf("tap %s from the new %s did not replace the waiting one:\n%s", x, a, readFile(t, filepath.Join(nw, "ctl")))
	}
}
