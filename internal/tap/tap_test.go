// SPDX-License-Identifier: BSD-3-Clause

package tap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"github.com/mnet-project/mnet/internal/vnet"
	"golang.org/x/sys/unix"
)

// needRoot stops a test that must create interfaces: a skip with a reason
// on a developer's machine, a failure in CI (CI=true), where it must run.
func needRoot(t *testing.T) {
	t.Helper()
	testenv.Require(t, "root", "/dev/net/tun", "ip")
}

// ifname returns a name unique to this test run.
func ifname(tag string) string { return fmt.Sprintf("mt%s%d", tag, os.Getpid()%100000) }

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func delLink(name string) { exec.Command("ip", "link", "del", name).Run() }

func TestOpenTapCreatesAndDeletes(t *testing.T) {
	needRoot(t)
	name := ifname("c")
	t.Cleanup(func() { delLink(name) })
	tp, err := OpenTap(name, 1400)
	if err != nil {
		t.Fatal(err)
	}
	if !tp.Created() || tp.MTU() != 1400 || tp.Name() != name {
		t.Errorf("created=%v mtu=%d name=%s", tp.Created(), tp.MTU(), tp.Name())
	}
	if isTap, err := IsTap(name); !isTap || err != nil {
		t.Errorf("IsTap = %v, %v", isTap, err)
	}
	// A second open while the first holds it: EBUSY, as the kernel says.
	if _, err := OpenTap(name, 0); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second OpenTap: %v, want EBUSY", err)
	}
	tp.Close()
	if Exists(name) {
		t.Error("a created TAP survived Close")
	}
}

func TestOpenTapTakesOverPersistentTap(t *testing.T) {
	needRoot(t)
	name := ifname("p")
	run(t, "ip", "tuntap", "add", "dev", name, "mode", "tap")
	t.Cleanup(func() { delLink(name) })
	tp, err := OpenTap(name, 1400)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Created() || tp.MTU() != 1500 {
		t.Errorf("taken over: created=%v mtu=%d (its own MTU stays)", tp.Created(), tp.MTU())
	}
	tp.Close()
	if !Exists(name) {
		t.Error("closing a TAP we did not create deleted it")
	}
}

func TestOpenTapPersist(t *testing.T) {
	needRoot(t)
	name := ifname("k")
	t.Cleanup(func() { delLink(name) })
	tp, err := OpenTap(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.SetPersist(true); err != nil {
		t.Fatal(err)
	}
	tp.Close()
	if !Exists(name) {
		t.Fatal("a persistent TAP went away with its descriptor")
	}
	tp, err = OpenTap(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	tp.SetPersist(false)
	tp.Close()
	if Exists(name) {
		t.Error("TAP made non-persistent survived Close")
	}
}

func TestOpenTapRefuses(t *testing.T) {
	needRoot(t)
	veth := ifname("v")
	run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", veth+"p")
	t.Cleanup(func() { delLink(veth) })
	if _, err := OpenTap(veth, 0); !errors.Is(err, ErrNotTap) {
		t.Errorf("OpenTap of a veth: %v, want ErrNotTap", err)
	}
	for _, bad := range []string{"", "a/b", "a b", "sixteen-chars-xx", "..", "x:y"} {
		if _, err := OpenTap(bad, 0); !errors.Is(err, unix.EINVAL) {
			t.Errorf("OpenTap(%q): %v, want EINVAL", bad, err)
		}
	}
}

func TestGrabRefuses(t *testing.T) {
	needRoot(t)
	if _, err := Grab("lo"); !errors.Is(err, ErrLoopback) {
		t.Errorf("Grab(lo): %v, want ErrLoopback", err)
	}
	if _, err := Grab(ifname("none")); !errors.Is(err, unix.ENODEV) {
		t.Errorf("Grab of a missing interface: %v, want ENODEV", err)
	}
	if _, err := Grab("bad/name"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Grab(bad/name): %v, want EINVAL", err)
	}
}

// Two grabbed ends of a veth pair: a frame written to one comes out of the
// other, and the writer does not read its own frame back.
func TestGrabVethPair(t *testing.T) {
	needRoot(t)
	a, b := ifname("a"), ifname("b")
	run(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
	t.Cleanup(func() { delLink(a) })
	ga, err := Grab(a)
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	gb, err := Grab(b)
	if err != nil {
		t.Fatal(err)
	}
	defer gb.Close()
	frame := make([]byte, vnet.HdrLen+60)
	copy(frame[vnet.HdrLen:], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5}) // local experimental ethertype
	copy(frame[vnet.HdrLen+14:], "mnet tap test")

	got := make(chan []byte, 4)
	reader := func(d Device) {
		buf := make([]byte, 2048)
		for {
			n, err := d.Read(buf)
			if err != nil {
				return
			}
			if bytes.Contains(buf[:n], []byte("mnet tap test")) {
				got <- append([]byte(d.Name()+":"), buf[vnet.HdrLen:n]...)
			}
		}
	}
	go reader(ga)
	go reader(gb)
	// The interfaces were just brought up; IPv6 may still be settling, so
	// write until the frame shows up.
	deadline := time.After(10 * time.Second)
	for {
		if _, err := ga.Write(frame); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if !bytes.HasPrefix(m, []byte(b+":")) {
				t.Fatalf("frame read back on %s, want only on %s", m[:bytes.IndexByte(m, ':')], b)
			}
			if !bytes.Equal(m[len(b)+1:], frame[vnet.HdrLen:]) {
				t.Fatalf("frame changed on the way: %x", m)
			}
			// Give a read-back on a time to show up before we conclude.
			select {
			case m := <-got:
				if bytes.HasPrefix(m, []byte(a+":")) {
					t.Fatal("the writer saw its own frame")
				}
			case <-time.After(200 * time.Millisecond):
			}
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("frame never arrived at the peer")
		}
	}
}

// Close wakes a blocked Read, and the TAP is gone when Close returns with
// the reader out.
func TestCloseWakesReader(t *testing.T) {
	needRoot(t)
	name := ifname("w")
	t.Cleanup(func() { delLink(name) })
	tp, err := OpenTap(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		buf := make([]byte, 70000)
		for {
			// Frames the kernel sends on a new interface (IPv6 router
			// solicitations) may come first.
			if _, err := tp.Read(buf); err != nil {
				if !errors.Is(err, os.ErrClosed) {
					t.Errorf("Read after Close: %v, want os.ErrClosed", err)
				}
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	tp.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the reader")
	}
	if Exists(name) {
		t.Error("TAP still there")
	}
}

// A TAP moved into a named namespace is found there: NetnsID is that
// namespace's, and OpenTapIn takes the persistent TAP over in it.
func TestNetnsAndOpenTapIn(t *testing.T) {
	needRoot(t)
	name, ns := ifname("n"), ifname("ns")
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	tp, err := OpenTap(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	nsID := func(path string) [2]uint64 {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return [2]uint64{st.Dev, st.Ino}
	}
	if dev, ino, err := tp.NetnsID(); [2]uint64{dev, ino} != nsID("/proc/self/ns/net") || err != nil {
		t.Errorf("NetnsID in our own namespace = %d:%d, %v", dev, ino, err)
	}
	run(t, "ip", "link", "set", name, "netns", ns)
	where := "/run/netns/" + ns
	if dev, ino, err := tp.NetnsID(); [2]uint64{dev, ino} != nsID(where) || err != nil {
		t.Fatalf("NetnsID after the move = %d:%d, %v; want %s's", dev, ino, err, where)
	}
	tp.SetPersist(true)
	tp.Close()
	tp, err = OpenTapIn(where, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Created() || Exists(name) {
		t.Errorf("OpenTapIn created=%v, or the TAP appeared in our namespace", tp.Created())
	}
	tp.SetPersist(false)
	tp.Close()
	if out, _ := exec.Command("ip", "-n", ns, "link", "show", name).CombinedOutput(); bytes.Contains(out, []byte(name+":")) {
		t.Errorf("TAP still in %s after Close:\n%s", ns, out)
	}
}

// A multi-queue TAP has its queues, spreads flows over them, and is
// EBUSY for a second holder, as a single-queue TAP is.
func TestOpenTapQueues(t *testing.T) {
	needRoot(t)
	name := ifname("q")
	t.Cleanup(func() { delLink(name) })
	tp, err := OpenTapQueues(name, 1400, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if n := len(tp.Queues()); n != 2 {
		t.Errorf("%d queues, want 2", n)
	}
	if n, err := attachedQueues(name); n != 2 || err != nil {
		t.Errorf("attachedQueues = %d, %v; want 2", n, err)
	}
	if _, err := OpenTapQueues(name, 0, 2); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second OpenTapQueues: %v, want EBUSY", err)
	}
	if _, err := OpenTap(name, 0); !errors.Is(err, unix.EBUSY) {
		t.Errorf("second OpenTap: %v, want EBUSY", err)
	}
}

// FlowHash is the same both ways of a flow, and tells flows apart.
func TestFlowHashSymmetric(t *testing.T) {
	frame := func(src, dst byte, sport, dport byte) []byte {
		f := make([]byte, 14+20+8)
		f[12], f[13] = 0x08, 0x00
		ip := f[14:]
		ip[0], ip[9] = 0x45, 17
		ip[15], ip[19] = src, dst
		ip[21], ip[23] = sport, dport
		return f
	}
	if a, b := FlowHash(frame(1, 2, 10, 20)), FlowHash(frame(2, 1, 20, 10)); a != b {
		t.Errorf("FlowHash differs by direction: %x, %x", a, b)
	}
	seen := map[uint32]bool{}
	for p := byte(1); p <= 16; p++ {
		seen[FlowHash(frame(1, 2, p, 20))%2] = true
	}
	if len(seen) != 2 {
		t.Errorf("16 flows all hash to one of 2 queues")
	}
}
