// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Three cat readers each get an echoed packet exactly once; the sender,
// which also has its port open for reading, gets none.
func TestHubEchoToThreeCats(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "lab")
	var cats []*exec.Cmd
	var outs []*syncBuffer
	for range 3 {
		cmd := exec.Command("cat", filepath.Join(net, "data"))
		out := &syncBuffer{}
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		cats = append(cats, cmd)
		outs = append(outs, out)
	}
	waitFor(t, "three readers", func() bool { return len(portRows(t, net)) == 3 })

	// The second sender holds a read-write port: it hears the first
	// sender's packet but never its own.
	self := openPort(t, net, unix.O_RDWR)
	sh(t, "echo hello > "+filepath.Join(net, "data"))
	if _, err := unix.Write(self, []byte("world\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both packets at every reader", func() bool {
		for _, out := range outs {
			if out.String() != "hello\nworld\n" {
				return false
			}
		}
		return true
	})
	if p, err := readNB(self); err != nil || string(p) != "hello\n" {
		t.Errorf("read-write port got %q (%v), want the other sender's packet", p, err)
	}
	if p, err := readNB(self); !errors.Is(err, unix.EAGAIN) {
		t.Errorf("sender read its own packet %q (err %v); want EAGAIN", p, err)
	}
	for _, c := range cats {
		c.Process.Signal(syscall.SIGTERM)
		c.Wait()
	}
	for i, out := range outs {
		if got := out.String(); got != "hello\nworld\n" {
			t.Errorf("reader %d got %q, want each packet once", i, got)
		}
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "packets"); got != "2" {
		t.Errorf("stats packets = %s, want 2", got)
	}
}

// One write is one packet and one read returns one packet, whole, for small
// and large packets; a short buffer cuts the packet and drops its rest.
func TestPacketBoundaries(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "b")
	r := openPort(t, net, unix.O_RDONLY)
	w := openPort(t, net, unix.O_WRONLY)
	sizes := []int{1, 1500, 65000, 1, 65000, 1500}
	for i, n := range sizes {
		if _, err := unix.Write(w, bytes.Repeat([]byte{byte('a' + i)}, n)); err != nil {
			t.Fatalf("write %d bytes: %v", n, err)
		}
	}
	buf := make([]byte, 1<<17)
	for i, n := range sizes {
		got, err := unix.Read(r, buf)
		if err != nil {
			t.Fatal(err)
		}
		if got != n || !bytes.Equal(buf[:got], bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Fatalf("packet %d: read %d bytes, want %d of %c", i, got, n, 'a'+i)
		}
	}
	// Datagram semantics: the rest of a packet longer than the buffer is gone.
	unix.Write(w, []byte("0123456789"))
	unix.Write(w, []byte("next"))
	small := make([]byte, 4)
	if n, _ := unix.Read(r, small); string(small[:n]) != "0123" {
		t.Fatalf("short read got %q, want %q", small[:n], "0123")
	}
	if n, _ := unix.Read(r, buf); string(buf[:n]) != "next" {
		t.Fatalf("after a short read got %q, want the next packet", buf[:n])
	}
	// A zero-length write sends nothing.
	if n, err := unix.Write(w, nil); n != 0 || err != nil {
		t.Fatalf("empty write: %d, %v", n, err)
	}
	if p, err := readNB(r); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("empty write delivered %q (%v)", p, err)
	}
	// dd with one block: a shell tool sees the same boundaries.
	out := sh(t, fmt.Sprintf("head -c 3000 /dev/zero | dd of=%s/data bs=3000 count=1 2>/dev/null; echo ok", net))
	if !strings.Contains(out, "ok") {
		t.Fatal(out)
	}
	if n, err := unix.Read(r, buf); err != nil || n != 3000 {
		t.Fatalf("dd's 3000-byte block arrived as %d bytes (%v)", n, err)
	}
}

func TestMTUAndEMSGSIZE(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "m")
	r := openPort(t, net, unix.O_RDONLY)
	w := openPort(t, net, unix.O_WRONLY)
	if _, err := unix.Write(w, make([]byte, 65536)); !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("65536-byte write: %v, want EMSGSIZE", err)
	}
	mustCtl(t, net, "mtu 1500\n")
	if _, err := unix.Write(w, make([]byte, 1501)); !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("1501-byte write at mtu 1500: %v, want EMSGSIZE", err)
	}
	out, err := shAs(t, nil, 10*time.Second, fmt.Sprintf("head -c 2000 /dev/zero | dd of=%s/data bs=2000 count=1", net))
	if err == nil || !strings.Contains(out, "Message too long") {
		t.Errorf("dd of 2000 bytes at mtu 1500: %v %s; want Message too long", err, out)
	}
	if _, err := unix.Write(w, make([]byte, 1500)); err != nil {
		t.Fatalf("1500-byte write at mtu 1500: %v", err)
	}
	if p, err := readNB(r); err != nil || len(p) != 1500 {
		t.Fatalf("read %d bytes (%v), want only the 1500-byte packet", len(p), err)
	}
	if p, err := readNB(r); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("an oversized packet was delivered: %d bytes (%v)", len(p), err)
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "packets"); got != "1" {
		t.Errorf("stats packets = %s, want 1", got)
	}
	if !strings.Contains(d.log.String(), `msg="packet refused"`) {
		t.Errorf("an oversized packet left no log line")
	}
}

// O_NONBLOCK at open and set later with fcntl both give EAGAIN.
func TestNonblockEAGAIN(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "nb")
	fd := openPort(t, net, unix.O_RDONLY|unix.O_NONBLOCK)
	if _, err := unix.Read(fd, make([]byte, 100)); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read with O_NONBLOCK from open: %v, want EAGAIN", err)
	}
	fd2 := openPort(t, net, unix.O_RDONLY)
	if err := unix.SetNonblock(fd2, true); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Read(fd2, make([]byte, 100)); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read after fcntl O_NONBLOCK: %v, want EAGAIN", err)
	}
	// And with a shell tool.
	out, err := shAs(t, nil, 10*time.Second, fmt.Sprintf("dd if=%s/data iflag=nonblock bs=100 count=1", net))
	if err == nil || !strings.Contains(out, "Resource temporarily unavailable") {
		t.Errorf("dd iflag=nonblock: %v %s; want Resource temporarily unavailable", err, out)
	}
}

// A signal ends a blocked cat at once.
func TestSignalEndsBlockedCat(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "sig")
	start := time.Now()
	out, err := shAs(t, nil, 10*time.Second, fmt.Sprintf("timeout -s INT 0.3 cat %s/data", net))
	elapsed := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 124 {
		t.Fatalf("timeout -s INT cat: %v %s; want exit 124", err, out)
	}
	if elapsed > 1300*time.Millisecond {
		t.Fatalf("cat took %v to die after SIGINT at 0.3 s", elapsed)
	}
	waitFor(t, "the port to leave", func() bool { return len(portRows(t, net)) == 0 })
}

// A signal interrupts a blocked read with EINTR, and no packet is lost by
// it: every packet sent while signals fly is read exactly once.
func TestEINTRLosesNoPacket(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "eintr")
	r := openPort(t, net, unix.O_RDONLY)
	w := openPort(t, net, unix.O_WRONLY)

	// Go installs its handlers with SA_RESTART, but a FUSE request that
	// was interrupted returns EINTR to the caller regardless.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	const packets = 200
	tid := make(chan int)
	got := make(chan []string)
	eintrs := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		var seen []string
		n := 0
		buf := make([]byte, 100)
		for len(seen) < packets {
			c, err := unix.Read(r, buf)
			if errors.Is(err, unix.EINTR) {
				n++
				continue
			}
			if err != nil {
				break
			}
			seen = append(seen, string(buf[:c]))
		}
		got <- seen
		eintrs <- n
	}()
	reader := <-tid

	// First: a read blocked with nothing to read returns EINTR.
	time.Sleep(50 * time.Millisecond)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			unix.Tgkill(os.Getpid(), reader, syscall.SIGUSR1)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	for i := range packets {
		if _, err := unix.Write(w, fmt.Appendf(nil, "p%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	var seen []string
	select {
	case seen = <-got:
	case <-time.After(20 * time.Second):
		close(stop)
		t.Fatal("reader did not get all packets")
	}
	close(stop)
	wg.Wait()
	n := <-eintrs
	if len(seen) != packets {
		t.Fatalf("read %d packets, want %d", len(seen), packets)
	}
	for i, s := range seen {
		if s != fmt.Sprintf("p%d", i) {
			t.Fatalf("packet %d is %q: lost or reordered", i, s)
		}
	}
	if n == 0 {
		t.Fatalf("no read returned EINTR while signals were sent")
	}
	t.Logf("%d reads interrupted, no packet lost", n)
}

// With lossless off a full queue drops for that port alone, and counts.
func TestFullQueueDrops(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "q")
	mustCtl(t, net, "qlen 4\n")
	slow := openPort(t, net, unix.O_RDONLY)
	fast := openPort(t, net, unix.O_RDONLY)
	w := openPort(t, net, unix.O_WRONLY)
	for i := range 10 {
		unix.Write(w, fmt.Appendf(nil, "%d", i))
		if p, err := readNB(fast); err != nil || string(p) != fmt.Sprint(i) {
			t.Fatalf("fast reader: %q %v", p, err)
		}
	}
	for i := range 4 {
		if p, err := readNB(slow); err != nil || string(p) != fmt.Sprint(i) {
			t.Fatalf("slow reader packet %d: %q %v", i, p, err)
		}
	}
	if p, err := readNB(slow); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("slow reader got a 5th packet %q (%v) with qlen 4", p, err)
	}
	rows := portRows(t, net)
	if rows[0][9] != "6" || rows[1][9] != "0" {
		t.Errorf("DROPS column: slow %s, fast %s; want 6 and 0", rows[0][9], rows[1][9])
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "drops"); got != "6" {
		t.Errorf("stats drops = %s, want 6", got)
	}
}

// With lossless on a full queue blocks the sender (EAGAIN if non-blocking)
// until the reader makes room; a signal interrupts it and nothing is sent
// twice.
func TestLosslessBlocksSender(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "ll")
	mustCtl(t, net, "lossless on\nqlen 2\n")
	r := openPort(t, net, unix.O_RDONLY)
	w := openPort(t, net, unix.O_WRONLY)
	unix.Write(w, []byte("a"))
	unix.Write(w, []byte("b"))
	// Without O_NONBLOCK honoured this write would hang: give it a
	// deadline so the test fails instead.
	nb := openPort(t, net, unix.O_WRONLY|unix.O_NONBLOCK)
	nbErr := make(chan error, 1)
	go func() { _, err := unix.Write(nb, []byte("x")); nbErr <- err }()
	select {
	case err := <-nbErr:
		if !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("non-blocking write to a full lossless network: %v, want EAGAIN", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("non-blocking write to a full lossless network blocked")
	}

	done := make(chan error, 1)
	go func() { _, err := unix.Write(w, []byte("c")); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("write to a full lossless network returned at once: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	buf := make([]byte, 10)
	if n, _ := unix.Read(r, buf); string(buf[:n]) != "a" {
		t.Fatalf("got %q, want a", buf[:n])
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked write: %v", err)
	}

	// A blocked writer (a shell) killed by a signal sends nothing.
	out, err := shAs(t, nil, 10*time.Second, fmt.Sprintf("timeout -s INT 0.3 bash -c 'echo d > %s/data'", net))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 124 {
		t.Fatalf("blocked echo under timeout: %v %s", err, out)
	}
	var seen []string
	for {
		p, err := readTimeout(r, 200*time.Millisecond)
		if err != nil {
			break
		}
		seen = append(seen, string(p))
	}
	if strings.Join(seen, "") != "bc" {
		t.Fatalf("after the interrupted write the reader got %q, want b, c once each", seen)
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "drops"); got != "0" {
		t.Errorf("lossless network dropped %s packets", got)
	}
}

func frame(dst, src byte, payload string) []byte {
	f := make([]byte, 14, 14+len(payload))
	for i := range 6 {
		f[i] = dst
		f[6+i] = src
	}
	if dst == 0xff {
		copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	} else {
		f[0] = dst & 0xfe // unicast
	}
	f[6] = src & 0xfe
	f[12], f[13] = 0x88, 0xb5 // local experimental ethertype
	return append(f, payload...)
}

// The switch floods until it has learned where an address is, then unicasts.
func TestSwitchLearns(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "sw")
	mustCtl(t, net, "policy switch\n")
	a := openPort(t, net, unix.O_RDWR)
	b := openPort(t, net, unix.O_RDWR)
	c := openPort(t, net, unix.O_RDWR)
	expect := func(fd int, name string, want string) {
		t.Helper()
		p, err := readNB(fd)
		if want == "" {
			if !errors.Is(err, unix.EAGAIN) {
				t.Errorf("%s got %q, want nothing", name, p)
			}
			return
		}
		if err != nil || string(p[14:]) != want {
			t.Errorf("%s got %q (%v), want %q", name, p, err, want)
		}
	}
	// Unknown destination: flooded to b and c, not back to a.
	unix.Write(a, frame(0x02, 0x0a, "to-unknown"))
	expect(a, "a", "")
	expect(b, "b", "to-unknown")
	expect(c, "c", "to-unknown")
	// a is learned now: b's frame to a goes to a only.
	unix.Write(b, frame(0x0a, 0x0b, "b-to-a"))
	expect(a, "a", "b-to-a")
	expect(c, "c", "")
	// And a's frame to b (learned from the frame above) goes to b only.
	unix.Write(a, frame(0x0b, 0x0a, "a-to-b"))
	expect(b, "b", "a-to-b")
	expect(c, "c", "")
	// Broadcast floods.
	unix.Write(c, frame(0xff, 0x0c, "bcast"))
	expect(a, "a", "bcast")
	expect(b, "b", "bcast")
	expect(c, "c", "")
	// Frames shorter than an Ethernet header are refused.
	if _, err := unix.Write(a, []byte("short")); !errors.Is(err, unix.EINVAL) {
		t.Errorf("5-byte frame on a switch: %v, want EINVAL", err)
	}
}

func TestMaxportsEBUSY(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "mp")
	mustCtl(t, net, "maxports 2")
	openPort(t, net, unix.O_RDONLY)
	openPort(t, net, unix.O_RDONLY)
	if fd, err := openFile(filepath.Join(net, "data"), unix.O_RDONLY, 0); !errors.Is(err, unix.EBUSY) {
		unix.Close(fd)
		t.Fatalf("third open with maxports 2: %v, want EBUSY", err)
	}
}

// rmdir fails with EBUSY while a port is open, and works after.
func TestRmdirBusy(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "busy")
	fd, err := openFile(filepath.Join(net, "data"), unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Rmdir(net); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("rmdir with an open port: %v, want EBUSY", err)
	}
	unix.Close(fd)
	waitFor(t, "port to close", func() bool { return len(portRows(t, net)) == 0 })
	sh(t, "rmdir "+net)
	if _, err := os.Stat(net); !os.IsNotExist(err) {
		t.Fatalf("network still there after rmdir: %v", err)
	}
	if out := sh(t, "ls "+d.path("ipn")); strings.TrimSpace(out) != "" {
		t.Fatalf("ls ipn after rmdir: %q", out)
	}
}

// A killed reader's port goes away and the network keeps working.
func TestKilledClientLeaves(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "k")
	cmd := exec.Command("cat", filepath.Join(net, "data"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "cat to join", func() bool { return len(portRows(t, net)) == 1 })
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, "killed cat's port to leave", func() bool { return len(portRows(t, net)) == 0 })
	// -v (startMnet passes it) logs joins and leaves.
	if log := d.log.String(); !strings.Contains(log, `msg="port joined"`) || !strings.Contains(log, `msg="port left"`) {
		t.Errorf("-v log lacks port joined/left lines:\n%s", log)
	}
	r := openPort(t, net, unix.O_RDONLY)
	sh(t, "echo alive > "+filepath.Join(net, "data"))
	if p, err := readTimeout(r, 2*time.Second); err != nil || string(p) != "alive\n" {
		t.Fatalf("after a killed client: %q %v", p, err)
	}
}

// O_TRUNC and O_APPEND are accepted: > and >> both send.
func TestShellRedirections(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "sh")
	r := openPort(t, net, unix.O_RDONLY)
	sh(t, fmt.Sprintf("echo one > %[1]s/data; echo two >> %[1]s/data; printf three | tee %[1]s/data >/dev/null", net))
	for _, want := range []string{"one\n", "two\n", "three"} {
		if p, err := readTimeout(r, 2*time.Second); err != nil || string(p) != want {
			t.Fatalf("got %q (%v), want %q", p, err, want)
		}
	}
	// stat: size 0.
	if out := sh(t, "stat -c %s "+filepath.Join(net, "data")); strings.TrimSpace(out) != "0" {
		t.Errorf("data size %q, want 0", out)
	}
}
