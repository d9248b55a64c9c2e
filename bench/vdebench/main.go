// SPDX-License-Identifier: BSD-3-Clause

// Command vdebench measures frames per second and Mbit/s between two
// vde_plug clients (Debian's vde2) joined through an mnet network's VDE
// switch directory, against the same two clients through Debian's
// vde_switch, in interleaved rounds of the same run.
//
//	go build -o /tmp/mnet ./cmd/mnet
//	go run ./bench/vdebench -mnet /tmp/mnet      # as root
//
// Each side is `vde_plug DIR`: this program writes frames to the sender's
// stdin and counts the frames that come out of the receiver's stdout (in
// vde_plug's stream format, a 2-byte big-endian length before each frame).
// Both switches learn MAC addresses (mnet's network has policy switch): the
// receiver announces its MAC first, then the sender's frames are unicast
// to it. See bench/README.md.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	mnetBin = flag.String("mnet", "/tmp/mnet", "mnet binary (go build -o /tmp/mnet ./cmd/mnet)")
	dur     = flag.Duration("d", 3*time.Second, "measuring window of each run")
	rounds  = flag.Int("n", 3, "rounds: every setup runs n times, interleaved; the median is shown")
	sizes   = flag.String("sizes", "64,1514", "frame sizes in bytes (Ethernet header included), comma-separated")
	clients = flag.String("clients", "vde_plug", "vde_plug: two vde_plug processes; raw: this program speaks VDE itself, "+
		"one thread per side and one system call per frame, so that the switch is the bottleneck; or both")
)

const warmup = 500 * time.Millisecond

var (
	srcMAC = []byte{0x02, 0x76, 0x64, 0x62, 0x00, 0x01}
	dstMAC = []byte{0x02, 0x76, 0x64, 0x62, 0x00, 0x02}
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vdebench:", err)
		os.Exit(1)
	}
}

type setup struct {
	name string
	dir  string // the switch directory vde_plug is given
	pid  int    // the switch's process
}

func run() error {
	var szs []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 60 || n > 1514 {
			return fmt.Errorf("bad size %q (60..1514)", f)
		}
		szs = append(szs, n)
	}
	tmp, err := os.MkdirTemp("", "vdebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var procs []*exec.Cmd
	stopAll := func() {
		for _, p := range procs {
			syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
		}
		for _, p := range procs {
			done := make(chan struct{})
			go func() { p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
				<-done
			}
		}
		unix.Unmount(filepath.Join(tmp, "mnt"), unix.MNT_DETACH)
	}
	defer stopAll()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		stopAll()
		os.RemoveAll(tmp)
		os.Exit(1)
	}()

	mnt, vdeDir := filepath.Join(tmp, "mnt"), filepath.Join(tmp, "vde")
	mnet := exec.Command(*mnetBin, "mount", "--state", "", "--vde-dir", vdeDir, mnt)
	mnetLog, _ := os.Create(filepath.Join(tmp, "mnet.log"))
	mnet.Stdout, mnet.Stderr = mnetLog, mnetLog
	mnet.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := mnet.Start(); err != nil {
		return err
	}
	procs = append(procs, mnet)
	if err := waitPath(filepath.Join(mnt, "families")); err != nil {
		return fmt.Errorf("mnet did not mount: %v", err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "ipn", "bench"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(mnt, "ipn", "bench", "ctl"), []byte("policy switch\n"), 0); err != nil {
		return err
	}
	sw := filepath.Join(tmp, "vde_switch")
	vs := exec.Command("vde_switch", "-s", sw)
	vs.Stdin = nil // no console on stdin: -d would fork out of our reach
	vsIn, _ := vs.StdinPipe()
	defer vsIn.Close()
	vs.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := vs.Start(); err != nil {
		return err
	}
	procs = append(procs, vs)
	if err := waitPath(filepath.Join(sw, "ctl")); err != nil {
		return fmt.Errorf("vde_switch did not start: %v", err)
	}
	setups := []setup{{"mnet", filepath.Join(vdeDir, "bench"), mnet.Process.Pid}, {"vde_switch", sw, vs.Process.Pid}}

	var kinds []string
	switch *clients {
	case "vde_plug", "raw":
		kinds = []string{*clients}
	case "both":
		kinds = []string{"vde_plug", "raw"}
	default:
		return fmt.Errorf("-clients %q: want vde_plug, raw or both", *clients)
	}
	type key struct {
		clients, setup string
		size           int
	}
	results := map[key][]result{}
	for r := range *rounds {
		for _, cl := range kinds {
			for _, size := range szs {
				for _, s := range setups {
					measure := measurePlugs
					if cl == "raw" {
						measure = measureRaw
					}
					res, err := measure(s, size)
					if err != nil {
						return fmt.Errorf("%s, %s clients, %d bytes: %v", s.name, cl, size, err)
					}
					fmt.Printf("round %d  %-8s %-10s %4d B  sent %8.0f/s  received %8.0f/s  %7.1f Mbit/s  switch CPU %3.0f%%\n",
						r+1, cl, s.name, size, res.sent, res.recv, res.recv*float64(size)*8/1e6, res.cpu*100)
					k := key{cl, s.name, size}
					results[k] = append(results[k], res)
				}
			}
		}
	}
	fmt.Printf("\n| clients | switch | frame | frames/s received | Mbit/s | min..max frames/s | switch CPU | µs switch CPU/frame | mnet/vde_switch |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, cl := range kinds {
		for _, size := range szs {
			baseRs := results[key{cl, "vde_switch", size}]
			base := median(baseRs).recv
			for _, s := range setups {
				rs := results[key{cl, s.name, size}]
				m := median(rs)
				lo, hi := spread(rs)
				ratio := ""
				if s.name == "mnet" && base > 0 {
					var ratios []float64
					for i, x := range rs {
						ratios = append(ratios, x.recv/baseRs[i].recv)
					}
					slices.Sort(ratios)
					ratio = fmt.Sprintf("**%.2f** (rounds %.2f–%.2f)", m.recv/base, ratios[0], ratios[len(ratios)-1])
				}
				fmt.Printf("| %s | %s | %d B | %.0f | %.1f | %.0f..%.0f | %.0f%% | %.2f | %s |\n", cl, s.name, size, m.recv,
					m.recv*float64(size)*8/1e6, lo, hi, m.cpu*100, m.cpu/m.recv*1e6, ratio)
			}
		}
	}
	return nil
}

// result is one window: frames/s written to the sender and received by
// the receiver, and the switch process's CPU (1 = one CPU busy).
type result struct{ sent, recv, cpu float64 }

// cpuTime is the user and system time of process pid, in seconds.
func cpuTime(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.recv < b.recv:
			return -1
		case a.recv > b.recv:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func spread(rs []result) (lo, hi float64) {
	lo, hi = rs[0].recv, rs[0].recv
	for _, r := range rs {
		lo, hi = min(lo, r.recv), max(hi, r.recv)
	}
	return
}

func waitPath(p string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for " + p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// plug is one running vde_plug.
type plug struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out io.ReadCloser
}

func startPlug(dir string) (*plug, error) {
	cmd := exec.Command("vde_plug", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &plug{cmd, in, out}, nil
}

func (p *plug) stop() {
	p.in.Close()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
}

// frames returns n frames of size bytes from src to dst, each with the
// 2-byte length of vde_plug's stream format in front.
func frames(src, dst []byte, size, n int) []byte {
	var b []byte
	for i := range n {
		b = binary.BigEndian.AppendUint16(b, uint16(size))
		f := make([]byte, size)
		copy(f, dst)
		copy(f[6:], src)
		f[12], f[13] = 0x88, 0xb5
		binary.BigEndian.PutUint32(f[14:], uint32(i))
		b = append(b, f...)
	}
	return b
}

// measurePlugs runs one sender and one receiver vde_plug through the
// switch for the window.
func measurePlugs(s setup, size int) (result, error) {
	dir := s.dir
	rx, err := startPlug(dir)
	if err != nil {
		return result{}, err
	}
	defer rx.stop()
	tx, err := startPlug(dir)
	if err != nil {
		return result{}, err
	}
	defer tx.stop()

	var received atomic.Int64
	go func() {
		r := bufio.NewReaderSize(rx.out, 1<<20)
		var hdr [2]byte
		buf := make([]byte, 65536)
		for {
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				return
			}
			if _, err := io.ReadFull(r, buf[:binary.BigEndian.Uint16(hdr[:])]); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	// The receiver announces its MAC (to the sender's, so nothing
	// comes back to count), until the switch has learned it: the
	// sender's frames then reach it.
	announce := frames(dstMAC, srcMAC, 60, 1)
	probe := frames(srcMAC, dstMAC, 60, 1)
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() == 0 {
		if time.Now().After(deadline) {
			return result{}, errors.New("no frame crossed the switch")
		}
		rx.in.Write(announce)
		tx.in.Write(probe)
		time.Sleep(20 * time.Millisecond)
	}

	batch := frames(srcMAC, dstMAC, size, 256)
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := tx.in.Write(batch); err != nil {
				return
			}
			sent.Add(256)
		}
	}()
	time.Sleep(warmup)
	s0, r0, c0, t0 := sent.Load(), received.Load(), cpuTime(s.pid), time.Now()
	time.Sleep(*dur)
	s1, r1, c1, t1 := sent.Load(), received.Load(), cpuTime(s.pid), time.Now()
	close(stop)
	tx.stop() // unblocks a write stuck on a full pipe
	<-done
	secs := t1.Sub(t0).Seconds()
	return result{sent: float64(s1-s0) / secs, recv: float64(r1-r0) / secs, cpu: (c1 - c0) / secs}, nil
}

// rawClient is this program as a VDE client: the control connection and
// the connected datagram socket.
type rawClient struct {
	ctl, data int
	path      string
}

var rawSeq atomic.Int32

// dialVDE joins the switch at dir the way libvdeplug does (see package
// netcore/link/vde): connect to ctl, bind a datagram socket in dir, send a
// request_v3, connect to the socket the switch answers with.
func dialVDE(dir string) (*rawClient, error) {
	c := &rawClient{ctl: -1, data: -1}
	var err error
	fail := func(e error) (*rawClient, error) { c.close(); return nil, e }
	if c.ctl, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail(err)
	}
	if err := unix.Connect(c.ctl, &unix.SockaddrUnix{Name: filepath.Join(dir, "ctl")}); err != nil {
		return fail(err)
	}
	if c.data, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail(err)
	}
	c.path = filepath.Join(dir, fmt.Sprintf(".bench-%d-%d", os.Getpid(), rawSeq.Add(1)))
	if err := unix.Bind(c.data, &unix.SockaddrUnix{Name: c.path}); err != nil {
		return fail(err)
	}
	unix.SetsockoptInt(c.data, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 1<<20)
	unix.SetsockoptInt(c.data, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20)
	req := binary.NativeEndian.AppendUint32(nil, 0xfeedface)
	req = binary.NativeEndian.AppendUint32(req, 3)
	req = binary.NativeEndian.AppendUint32(req, 0)
	sa := make([]byte, 110)
	binary.NativeEndian.PutUint16(sa, unix.AF_UNIX)
	copy(sa[2:], c.path)
	req = append(append(req, sa...), "vdebench"...)
	if _, err := unix.Write(c.ctl, req); err != nil {
		return fail(err)
	}
	reply := make([]byte, 110)
	n, err := unix.Read(c.ctl, reply)
	if err != nil || n != 110 {
		return fail(fmt.Errorf("switch answered %d bytes: %v", n, err))
	}
	end := 2
	for end < len(reply) && reply[end] != 0 {
		end++
	}
	if err := unix.Connect(c.data, &unix.SockaddrUnix{Name: string(reply[2:end])}); err != nil {
		return fail(err)
	}
	return c, nil
}

func (c *rawClient) close() {
	if c.data >= 0 {
		unix.Close(c.data)
	}
	if c.ctl >= 0 {
		unix.Close(c.ctl)
	}
	if c.path != "" {
		os.Remove(c.path)
	}
}

// measureRaw runs a sending and a receiving thread of this program, one
// system call per frame each, through the switch for the window.
func measureRaw(s setup, size int) (result, error) {
	rx, err := dialVDE(s.dir)
	if err != nil {
		return result{}, err
	}
	defer rx.close()
	tx, err := dialVDE(s.dir)
	if err != nil {
		return result{}, err
	}
	defer tx.close()
	frame := func(src, dst []byte, n int) []byte { return frames(src, dst, n, 1)[2:] }
	f := frame(srcMAC, dstMAC, size)

	var received atomic.Int64
	var stop atomic.Bool
	rxDone := make(chan struct{})
	// shutdown(2) does not wake a read blocked on a datagram socket: the
	// receiver looks at stop between reads that time out.
	unix.SetsockoptTimeval(rx.data, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	go func() {
		runtime.LockOSThread()
		defer close(rxDone)
		buf := make([]byte, 65536)
		for !stop.Load() {
			if _, err := unix.Read(rx.data, buf); err == nil {
				received.Add(1)
			}
		}
	}()
	// Until the switch has learned the receiver's MAC.
	deadline := time.Now().Add(10 * time.Second)
	for received.Load() == 0 {
		if time.Now().After(deadline) {
			return result{}, errors.New("no frame crossed the switch")
		}
		unix.Write(rx.data, frame(dstMAC, srcMAC, 60))
		unix.Write(tx.data, frame(srcMAC, dstMAC, 60))
		time.Sleep(20 * time.Millisecond)
	}
	var sent atomic.Int64
	txDone := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer close(txDone)
		for !stop.Load() {
			if _, err := unix.Write(tx.data, f); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	time.Sleep(warmup)
	s0, r0, c0, t0 := sent.Load(), received.Load(), cpuTime(s.pid), time.Now()
	time.Sleep(*dur)
	s1, r1, c1, t1 := sent.Load(), received.Load(), cpuTime(s.pid), time.Now()
	stop.Store(true)
	<-txDone
	<-rxDone
	secs := t1.Sub(t0).Seconds()
	return result{sent: float64(s1-s0) / secs, recv: float64(r1-r0) / secs, cpu: (c1 - c0) / secs}, nil
}
