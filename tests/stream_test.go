// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ipn/NAME/stream: a port whose bytes are VDE's stream format (a 2-byte
// big-endian length, then the frame), many frames per read and write,
// driven by real programs: dd, cat, socat, dpipe and vde_plug.

// streamFrames puts pkts in the stream format.
func streamFrames(pkts ...[]byte) []byte {
	var b []byte
	for _, p := range pkts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

// numberedPkts are n packets of size bytes, each starting with its number.
func numberedPkts(n, size int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		p := bytes.Repeat([]byte{'.'}, size)
		copy(p, fmt.Sprintf("pkt%05d", i))
		pkts[i] = p
	}
	return pkts
}

// openStream opens net/stream with flags; closed at cleanup.
func openStream(t *testing.T, net string, flags int) int {
	t.Helper()
	fd, err := openFile(filepath.Join(net, "stream"), flags, 0)
	if err != nil {
		t.Fatalf("open %s/stream: %v", net, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// expectPackets reads want from a data port, in order, and nothing more.
func expectPackets(t *testing.T, fd int, want [][]byte) {
	t.Helper()
	for i, p := range want {
		got, err := readTimeout(fd, 5*time.Second)
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("packet %d: %q, %v; want %q", i, got, err, p)
		}
	}
	if got, err := readNB(fd); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("after %d packets: %q, %v; want nothing more", len(want), got, err)
	}
}

// Many frames per write, cut anywhere: the writes end inside a length and
// inside a frame, and the data port gets the packets one per read.
func TestStreamWritesCarryFrames(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "stwrite")
	r := openPort(t, net, unix.O_RDONLY)
	s := openStream(t, net, unix.O_WRONLY)
	pkts := numberedPkts(100, 300)
	all := streamFrames(pkts...)
	for _, cut := range []int{1, 301, 777, 5000} { // in a length, at its end, inside frames
		if n, err := unix.Write(s, all[:cut]); err != nil || n != cut {
			t.Fatalf("write of %d bytes: %d, %v", cut, n, err)
		}
		if n, err := unix.Write(s, all[cut:]); err != nil || n != len(all)-cut {
			t.Fatalf("write of %d bytes: %d, %v", len(all)-cut, n, err)
		}
		expectPackets(t, r, pkts)
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "packets"); got != "400" {
		t.Fatalf("stats packets %s, want 400: counters count packets, not writes", got)
	}
	// The shell's > (O_TRUNC) and >> (O_APPEND) both work, as for data.
	sh(t, fmt.Sprintf(`printf '\000\002hi' > %s/stream; printf '\000\002ho' >> %s/stream`, net, net))
	expectPackets(t, r, [][]byte{[]byte("hi"), []byte("ho")})
}

// Reads return many whole frames; dd with bs=1 reads the stream a byte at
// a time and gets it exactly.
func TestStreamReadsWithDd(t *testing.T) {
	require(t, "dd", "timeout")
	d := startMnet(t)
	net := d.mkNet(t, "stread")
	w := openPort(t, net, unix.O_WRONLY)
	s := openStream(t, net, unix.O_RDONLY)
	pkts := numberedPkts(20, 50)
	for _, p := range pkts {
		if _, err := unix.Write(w, p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 65536)
	n, err := unix.Read(s, buf)
	if err != nil || !bytes.Equal(buf[:n], streamFrames(pkts...)) {
		t.Fatalf("one read of 64 KiB: %d bytes, %v; want all %d frames (%d bytes)", n, err, len(pkts), len(streamFrames(pkts...)))
	}

	out := filepath.Join(t.TempDir(), "out")
	want := streamFrames(pkts[:3]...)
	dd := exec.Command("timeout", "10", "dd", "if="+filepath.Join(net, "stream"), "of="+out, "bs=1",
		fmt.Sprintf("count=%d", len(want)), "status=none")
	var ddErr bytes.Buffer
	dd.Stderr = &ddErr
	if err := dd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dd's port", func() bool { return len(portRows(t, net)) == 3 })
	for _, p := range pkts[:3] {
		if _, err := unix.Write(w, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := dd.Wait(); err != nil {
		t.Fatalf("dd: %v\n%s", err, ddErr.String())
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatalf("dd bs=1 read %q, want %q", got, want)
	}
}

// A bad frame (length 0, or above the mtu): the frames before it are sent
// and the write returns their bytes; a write starting with one is EINVAL.
func TestStreamBadFrameEINVAL(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "stbad")
	mustCtl(t, net, "mtu 1500\n")
	r := openPort(t, net, unix.O_RDONLY)
	s := openStream(t, net, unix.O_WRONLY)
	good := streamFrames([]byte("first"), []byte("second"))
	for _, bad := range [][]byte{{0, 0}, streamFrames(make([]byte, 1501))} {
		n, err := unix.Write(s, append(append([]byte{}, good...), bad...))
		if err != nil || n != len(good) {
			t.Fatalf("good frames then a bad one: %d, %v; want %d", n, err, len(good))
		}
		expectPackets(t, r, [][]byte{[]byte("first"), []byte("second")})
		if n, err := unix.Write(s, bad); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("a write starting with a bad frame: %d, %v; want EINVAL", n, err)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(net, "ctl")), "last-error") {
		t.Errorf("ctl has no last-error after refused frames")
	}
}

// Lossless: a write blocks until all its frames are queued; a signal ends
// it with the bytes of the frames already sent, EINTR when none was.
func TestStreamLosslessEINTRCount(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "stintr")
	mustCtl(t, net, "lossless on\nqlen 3\n")
	r := openPort(t, net, unix.O_RDONLY)
	s := openStream(t, net, unix.O_WRONLY)
	pkts := numberedPkts(5, 100)
	all := streamFrames(pkts...)

	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	type result struct {
		n   int
		err error
	}
	write := func(b []byte) (tid int, done chan result) {
		tids := make(chan int)
		done = make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids <- unix.Gettid()
			n, err := unix.Write(s, b)
			done <- result{n, err}
		}()
		return <-tids, done
	}
	interrupt := func(tid int, done chan result) result {
		select {
		case r := <-done:
			t.Fatalf("lossless write returned %d, %v before the signal", r.n, r.err)
		case <-time.After(300 * time.Millisecond):
		}
		unix.Tgkill(os.Getpid(), tid, syscall.SIGUSR1)
		select {
		case r := <-done:
			return r
		case <-time.After(5 * time.Second):
			t.Fatal("the signal did not end the blocked write")
		}
		return result{}
	}
	res := interrupt(write(all))
	if want := len(streamFrames(pkts[:3]...)); res.err != nil || res.n != want {
		t.Fatalf("interrupted write of 5 frames into a queue of 3: %d, %v; want %d (3 frames)", res.n, res.err, want)
	}
	res = interrupt(write(all[res.n:]))
	if !errors.Is(res.err, unix.EINTR) {
		t.Fatalf("interrupted write with no room: %d, %v; want EINTR", res.n, res.err)
	}
	// Reading makes room: the rest goes.
	_, done := write(all[len(streamFrames(pkts[:3]...)):])
	expectPacketsTimeout := func(want [][]byte) {
		for i, p := range want {
			got, err := readTimeout(r, 5*time.Second)
			if err != nil || !bytes.Equal(got, p) {
				t.Fatalf("packet %d: %q, %v; want %q", i, got, err, p)
			}
		}
	}
	expectPacketsTimeout(pkts[:3])
	select {
	case res := <-done:
		if res.err != nil || res.n != len(streamFrames(pkts[3:]...)) {
			t.Fatalf("write of the last 2 frames: %d, %v", res.n, res.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lossless write did not go on once there was room")
	}
	expectPacketsTimeout(pkts[3:])
}

// epoll: a stream file is readable when a frame is queued, and while a
// frame a short read began is left, not otherwise.
func TestStreamEpoll(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "stpoll")
	w := openPort(t, net, unix.O_WRONLY)
	s := openStream(t, net, unix.O_RDONLY|unix.O_NONBLOCK)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, s, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s)}); err != nil {
		t.Fatal(err)
	}
	ready := func(ms int) bool {
		ev := make([]unix.EpollEvent, 1)
		for {
			n, err := unix.EpollWait(ep, ev, ms)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			return n == 1 && ev[0].Events&unix.EPOLLIN != 0
		}
	}
	if ready(100) {
		t.Fatal("an idle stream is readable")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		unix.Write(w, []byte("hello, stream"))
	}()
	if !ready(5000) {
		t.Fatal("a frame did not make the stream readable")
	}
	b := make([]byte, 4)
	if n, err := unix.Read(s, b); err != nil || n != 4 {
		t.Fatalf("short read: %d, %v", n, err)
	}
	if !ready(0) {
		t.Fatal("a stream with half a frame left to read is not readable")
	}
	rest := make([]byte, 100)
	n, err := unix.Read(s, rest)
	if err != nil || !bytes.Equal(append(b, rest[:n]...), streamFrames([]byte("hello, stream"))) {
		t.Fatalf("the rest: %q, %v", rest[:n], err)
	}
	if ready(100) {
		t.Fatal("a drained stream is readable")
	}
	if _, err := unix.Read(s, rest); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("read of a drained non-blocking stream: %v, want EAGAIN", err)
	}
}

// Rights are data's: a uid with r only reads the stream and cannot write
// it; ls shows the same bits as data; the port rows and pcap see packets.
func TestStreamRightsCountersPcap(t *testing.T) {
	require(t, "setpriv", "tcpdump", "timeout", "head")
	d := startMnet(t)
	net := d.mkNet(t, "stright")
	if err := os.Chmod(net, 0o744); err != nil {
		t.Fatal(err)
	}
	user := &cred{uid: 1000, gid: 1000}
	out, err := shAs(t, user, 10*time.Second, fmt.Sprintf("printf '\\000\\001x' > %s/stream", net))
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("uid 1000 without w wrote the stream: %v\n%s", err, out)
	}
	ls := sh(t, fmt.Sprintf("stat -c %%A %s/data %s/stream", net, net))
	if f := strings.Fields(ls); len(f) != 2 || f[0] != f[1] {
		t.Fatalf("data and stream modes differ: %q", ls)
	}

	pcapPath := filepath.Join(net, "pcap")
	pcap := exec.Command("tcpdump", "-n", "-r", pcapPath, "-c", "3")
	var pcapOut bytes.Buffer
	pcap.Stdout, pcap.Stderr = &pcapOut, &pcapOut
	if err := pcap.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pcap.Process.Kill(); pcap.Wait() })
	// A capture is no port: tcpdump is ready once it holds pcap open.
	waitFor(t, "tcpdump to open pcap", func() bool {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pcap.Process.Pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); l == pcapPath {
				return true
			}
		}
		return false
	})
	// The reader: uid 1000 with r only, through head.
	frames := streamFrames(arpFrame(1), arpFrame(2), arpFrame(3))
	got := filepath.Join(mountDir(t), "got") // a directory uid 1000 reaches
	os.WriteFile(got, nil, 0o666)
	os.Chmod(got, 0o666)
	reader := exec.Command("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "timeout", "10",
		"bash", "-c", fmt.Sprintf("head -c %d %s > %s", len(frames), filepath.Join(net, "stream"), got))
	var readerErr bytes.Buffer
	reader.Stderr = &readerErr
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	// readerErr is the command's to write until Wait: read it after.
	waitFor(t, "the reader's port", func() bool { return len(portRows(t, net)) == 1 })
	s := openStream(t, net, unix.O_WRONLY)
	if n, err := unix.Write(s, frames); err != nil || n != len(frames) {
		t.Fatalf("write of 3 frames: %d, %v", n, err)
	}
	if err := reader.Wait(); err != nil {
		t.Fatalf("reader: %v\n%s", err, readerErr.String())
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, frames) {
		t.Fatalf("uid 1000 read %x, want %x", b, frames)
	}
	if err := pcap.Wait(); err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, pcapOut.String())
	}
	if n := strings.Count(pcapOut.String(), "ARP"); n != 3 {
		t.Fatalf("tcpdump saw %d ARP packets, want 3:\n%s", n, pcapOut.String())
	}
	var row []string
	for _, r := range portRows(t, net) {
		if r[4] == "w" {
			row = r
		}
	}
	if row == nil || row[7] != "3" || row[8] != "126" {
		t.Fatalf("the stream writer's row %v: want TXPKTS 3 TXBYTES 126", row)
	}
}

// arpFrame is a broadcast ARP frame of 42 bytes from a MAC ending in last.
func arpFrame(last byte) []byte {
	f := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, last, 0x08, 0x06}
	return append(f, make([]byte, 28)...)
}

// A recorded stream replays into a network with cat.
func TestStreamRecordAndReplayWithCat(t *testing.T) {
	require(t, "cat", "timeout")
	d := startMnet(t)
	src, dst := d.mkNet(t, "strec"), d.mkNet(t, "strep")
	w := openPort(t, src, unix.O_WRONLY)
	rec := filepath.Join(t.TempDir(), "capture.stream")
	cat := exec.Command("bash", "-c", fmt.Sprintf("exec cat %s/stream > %s", src, rec))
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Process.Kill(); cat.Wait() })
	waitFor(t, "cat's port", func() bool { return len(portRows(t, src)) == 2 })
	pkts := numberedPkts(50, 700)
	for _, p := range pkts {
		if _, err := unix.Write(w, p); err != nil {
			t.Fatal(err)
		}
	}
	want := streamFrames(pkts...)
	waitFor(t, "the recording", func() bool {
		fi, err := os.Stat(rec)
		return err == nil && fi.Size() == int64(len(want))
	})
	cat.Process.Kill()
	cat.Wait()
	if b, _ := os.ReadFile(rec); !bytes.Equal(b, want) {
		t.Fatalf("the recording is not the packets in stream format")
	}

	r := openPort(t, dst, unix.O_RDONLY)
	mustCtl(t, dst, "qlen 1000\n")
	sh(t, fmt.Sprintf("timeout 10 cat %s > %s/stream", rec, dst))
	expectPackets(t, r, pkts)
}

// Two mnet networks joined by socat on their stream files: a TAP in one
// namespace on one network pings a TAP in another namespace on the other.
func TestStreamSocatJoinsNetworks(t *testing.T) {
	e := newIfEnv(t, "ping", "socat")
	d := startMnet(t)
	a, b := d.mkNet(t, "sta"), d.mkNet(t, "stb")
	nsA := e.tapInNS(a, e.name("sta"), "sa", "198.18.62.1")
	nsB := e.tapInNS(b, e.name("stb"), "sb", "198.18.62.2")
	socat := exec.Command("socat", "-b", "65536", "OPEN:"+filepath.Join(a, "stream")+",rdwr",
		"OPEN:"+filepath.Join(b, "stream")+",rdwr")
	socat.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var log bytes.Buffer
	socat.Stdout, socat.Stderr = &log, &log
	if err := socat.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-socat.Process.Pid, syscall.SIGKILL); socat.Wait() })
	waitFor(t, "socat's ports", func() bool { return len(portRows(t, a)) == 2 && len(portRows(t, b)) == 2 })
	ping(t, nsA, "198.18.62.2")
	ping(t, nsB, "198.18.62.1")
	if st := keyValue(t, filepath.Join(a, "stats"), "drops"); st != "0" {
		t.Logf("drops on a: %s", st)
	}
}

// An mnet network and a vde_switch joined by a dpipe of vde_plug and
// socat on the stream file: a TAP on mnet pings a TAP behind the switch.
func TestStreamDpipeToVdeSwitch(t *testing.T) {
	e := newIfEnv(t, "ping", "socat", "dpipe", "vde_plug", "vde_switch", "vde_plug2tap")
	d := startMnet(t)
	net := d.mkNet(t, "stvde")
	nsA := e.tapInNS(net, e.name("stv"), "sv", "198.18.63.1")
	nsB := e.netns("sw")
	sw := filepath.Join(filepath.Dir(d.state), "stvde_switch")
	pidfile := sw + ".pid"
	sh(t, fmt.Sprintf("vde_switch -s %s -p %s -d", sw, pidfile))
	t.Cleanup(func() { exec.Command("bash", "-c", "kill $(cat "+pidfile+")").Run() })

	tapB := e.name("stw")
	plug := exec.Command("ip", "netns", "exec", nsB, "vde_plug2tap", "-s", sw, tapB)
	plug.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := plug.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-plug.Process.Pid, syscall.SIGKILL); plug.Wait() })
	waitFor(t, "vde_plug2tap's TAP", func() bool { return linkExists(nsB, tapB) })
	sh(t, fmt.Sprintf("ip -n %s addr add 198.18.63.2/24 dev %s && ip -n %s link set %s up", nsB, tapB, nsB, tapB))

	cable := exec.Command("dpipe", "vde_plug", sw, "=", "socat", "-", "OPEN:"+filepath.Join(net, "stream")+",rdwr")
	cable.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var log bytes.Buffer
	cable.Stdout, cable.Stderr = &log, &log
	if err := cable.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cable.Process.Pid, syscall.SIGKILL); cable.Wait() })
	waitFor(t, "the cable's port", func() bool { return len(portRows(t, net)) == 2 })
	ping(t, nsA, "198.18.63.2")
	ping(t, nsB, "198.18.63.1")
}

// The README's stream example, as written (with this test's names): a
// socat cable between two networks, a recording with cat, od showing a
// length and a packet.
func TestReadmeStreamCable(t *testing.T) {
	require(t, "socat", "timeout", "od")
	d := startMnet(t)
	tag := fmt.Sprint(os.Getpid())
	rec := filepath.Join(t.TempDir(), "west.stream")
	r := strings.NewReplacer("/tmp/west.stream", rec, "/mnt/mnet", d.mp, "east", "steast"+tag, "west", "stwest"+tag)
	script := r.Replace(readmeBlock(t, "sh", "# stream-cable\n"))
	out, err := bg(t, "set -e\n"+script)()
	if err != nil {
		t.Fatalf("the example failed: %v\n%s\nscript:\n%s", err, out, script)
	}
	if !strings.Contains(out, `\0 006   h   e   l   l   o  \n`) {
		t.Fatalf("od shows no framed hello:\n%s", out)
	}
	if _, err := os.Stat(d.path("ipn", "steast"+tag)); !os.IsNotExist(err) {
		t.Errorf("the example left its network: %v", err)
	}
}
