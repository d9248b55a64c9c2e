// SPDX-License-Identifier: BSD-3-Clause

package netns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"golang.org/x/sys/unix"
)

// testNS makes a named network namespace with lo up, deleted at cleanup.
func testNS(t testing.TB) *NS {
	t.Helper()
	name := testenv.NewNet(t).Netns("ns")
	ns, err := Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// A socket is owned by the uid it was made for: its inode's owner is the
// creating thread's fsuid, which is what the kernel's sk_uid is.
func TestSocketOwner(t *testing.T) {
	testenv.Require(t, "root")
	for _, ns := range []*NS{Self(), testNS(t)} {
		fd, err := ns.Socket(4321, unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		unix.Close(fd)
		if st.Uid != 4321 {
			t.Errorf("socket made for uid 4321 (own namespace %v) is owned by %d", ns.Self(), st.Uid)
		}
	}
	// The daemon's own threads are left as they were.
	if got := unix.Getuid(); got != 0 {
		t.Errorf("uid changed to %d", got)
	}
	fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	unix.Close(fd)
	if st.Uid != 0 {
		t.Errorf("a socket made afterwards by the test is owned by %d", st.Uid)
	}
}

// Work done through Do runs inside the namespace, and sockets made there
// stay there: a listener of the namespace's loopback is reachable from
// the namespace and not from ours.
func TestDoAndDialInNamespace(t *testing.T) {
	ns := testNS(t)
	var inside string
	if err := ns.Do(func() { inside, _ = os.Readlink("/proc/thread-self/ns/net") }); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", ns.ID().Ino); inside != want {
		t.Errorf("Do ran in %s, want %s", inside, want)
	}
	ln, err := ns.ListenTCP(false, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sa, _ := unix.Getsockname(int(ln.Fd()))
	port := uint16(sa.(*unix.SockaddrInet4).Port)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	c, err := ns.Dial(context.Background(), "tcp", addr, 0)
	if err != nil {
		t.Fatalf("dial the namespace's own listener from inside: %v", err)
	}
	c.Close()
	if c, err := Self().Dial(context.Background(), "tcp", addr, 0); err == nil {
		c.Close()
		t.Error("the namespace's listener was reached from our own namespace")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial from our namespace: %v, want ECONNREFUSED", err)
	}

}

// A connect that waits is ended by its context.
func TestDialInterrupted(t *testing.T) {
	ns := testNS(t)
	// 198.18.0.1 is on the prefix of a veth whose peer, in the same
	// namespace, has no address: nobody answers the ARP request for it,
	// so the SYN waits for a neighbour and the connect waits.
	if out, err := exec.Command("ip", "netns", "exec", nsName(t, ns), "sh", "-c",
		"ip link add d0 type veth peer name d1 && ip link set d0 up && ip link set d1 up && "+
			"ip addr add 198.18.0.2/24 dev d0").CombinedOutput(); err != nil {
		t.Fatalf("a veth in the test namespace: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := ns.Dial(ctx, "tcp", netip.MustParseAddrPort("198.18.0.1:9"), 0)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("dial with a context ending after 200ms: %v after %v", err, time.Since(start))
	}
}

func nsName(t *testing.T, ns *NS) string {
	t.Helper()
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat("/run/netns/"+e.Name(), &st) == nil && st.Ino == ns.ID().Ino {
			return e.Name()
		}
	}
	t.Fatal("namespace has no name")
	return ""
}

// A caller the daemon cannot see has no namespace here.
func TestOfTaskPidZero(t *testing.T) {
	if _, err := OfTask(0); err != syscall.EACCES {
		t.Errorf("OfTask(0) = %v, want EACCES", err)
	}
	ns, err := OfTask(uint32(os.Getpid()))
	if err != nil || !ns.Self() {
		t.Errorf("OfTask(own pid) = %v, %v; want the own namespace", ns, err)
	}
	if ns != nil {
		ns.Close()
	}
}

// The cost of a socket made for a caller: in our own namespace as root
// (the path before confinement), for another uid, and in another
// namespace.
func BenchmarkSocket(b *testing.B) {
	other := testNS(b)
	for _, c := range []struct {
		name string
		ns   *NS
		uid  uint32
	}{{"own/root", Self(), 0}, {"own/uid", Self(), 1000}, {"other/uid", other, 1000}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				fd, err := c.ns.Socket(c.uid, unix.AF_INET, unix.SOCK_DGRAM, 0)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			}
		})
	}
}

// A caller in another namespace is found by its thread; the namespace
// stays open for the next call and is let go when idle.
func TestOfTaskOtherNamespace(t *testing.T) {
	ns := testNS(t)
	tidc := make(chan int)
	stop, done := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		// The thread comes back before it is let go. A thread that
		// ended locked in the test namespace would be the end of it,
		// unless it is the process's main thread, which Go keeps
		// (parked), and then OfTask of our own pid, which reads the
		// main thread's namespace, would find the test's in the next
		// run (go test -count=2).
		runtime.LockOSThread()
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			tidc <- -1
			return
		}
		tidc <- unix.Gettid()
		<-stop
		if unix.Setns(selfFD, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	tid := <-tidc
	if tid < 0 {
		t.Fatal("setns failed")
	}
	old := IdleTimeout
	IdleTimeout = 50 * time.Millisecond
	defer func() { IdleTimeout = old }()
	for range 2 {
		got, err := OfTask(uint32(tid))
		if err != nil {
			t.Fatal(err)
		}
		if got.Self() || got.ID() != ns.ID() {
			t.Errorf("OfTask of a thread in the test namespace: %+v, want %+v", got.ID(), ns.ID())
		}
		if Cached() != 1 {
			t.Errorf("%d namespaces held open, want 1", Cached())
		}
		got.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for Cached() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the namespace was not let go when idle")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A named namespace is found by its inode under the directories given,
// opened only while its path is still that namespace, and a path left
// without one (an unmounted name) is gone.
func TestNamedNamespaces(t *testing.T) {
	ns := testNS(t)
	name := nsName(t, ns)
	dir := t.TempDir()
	if got := NameOf([]string{dir, "/run/netns"}, ns.ID()); got != "/run/netns/"+name {
		t.Errorf("NameOf = %q, want /run/netns/%s", got, name)
	}
	if got := NameOf([]string{dir}, ns.ID()); got != "" {
		t.Errorf("NameOf in an empty directory = %q", got)
	}
	opened, err := OpenNamed("/run/netns/"+name, ns.ID())
	if err != nil || opened.ID() != ns.ID() || opened.Self() {
		t.Fatalf("OpenNamed = %v, %v", opened, err)
	}
	opened.Close()
	if _, err := OpenNamed("/run/netns/"+name, ID{Dev: ns.ID().Dev, Ino: ns.ID().Ino + 1}); !errors.Is(err, ErrChanged) {
		t.Errorf("OpenNamed with another inode: %v, want ErrChanged", err)
	}
	if _, err := OpenNamed(dir+"/none", ns.ID()); !errors.Is(err, ErrGone) {
		t.Errorf("OpenNamed of nothing: %v, want ErrGone", err)
	}
	plain := dir + "/plain"
	os.WriteFile(plain, nil, 0o644)
	if _, err := OpenNamed(plain, ID{}); !errors.Is(err, ErrGone) {
		t.Errorf("OpenNamed of a plain file: %v, want ErrGone", err)
	}
	if d := Dirs("/a::/b/"); len(d) != 2 || d[0] != "/a" || d[1] != "/b" {
		t.Errorf("Dirs = %q", d)
	}
}
