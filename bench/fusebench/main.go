// Command fusebench measures how fast packets cross mnet's data files and
// compares that with a bare go-fuse relay, the FUSE ceiling of the machine.
//
//	go build -o /tmp/mnet ./cmd/mnet
//	go run ./bench/fusebench -mnet /tmp/mnet      # as root
//
// Both file systems run as separate daemon processes (mnet from -mnet, the
// relay as this same binary with -serve-bare), so the clients and the
// servers never share a Go runtime. Every reader and writer is a goroutine
// locked to its own OS thread, doing one unix.Read or unix.Write per packet
// on a raw file descriptor. See bench/README.md for what the figures mean.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

var (
	mnetBin   = flag.String("mnet", "/tmp/mnet", "mnet binary (go build -o /tmp/mnet ./cmd/mnet)")
	dur       = flag.Duration("d", 3*time.Second, "measuring time of each scenario")
	rbuf      = flag.Int("rbuf", 65536, "read(2) buffer size, i.e. the largest packet a reader takes (mnet's mtu)")
	serveBare = flag.String("serve-bare", "", "internal: serve the bare relay at this directory until SIGTERM")
)

// warmup runs before each throughput window, so queues and thread pools
// are in their steady state when counting starts.
const warmup = 300 * time.Millisecond

func main() {
	flag.Parse()
	if *serveBare != "" {
		if err := serveBareRelay(*serveBare); err != nil {
			fmt.Fprintln(os.Stderr, "fusebench -serve-bare:", err)
			os.Exit(1)
		}
		return
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "fusebench: %v, cleaning up\n", s)
		cleanup()
		os.Exit(1)
	}()
	err := run()
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fusebench:", err)
		os.Exit(1)
	}
}

// Cleanups run once, newest first, when run returns or on SIGINT/SIGTERM.
var (
	cleanMu  sync.Mutex
	cleanups []func()
)

func atCleanup(f func()) { cleanMu.Lock(); cleanups = append(cleanups, f); cleanMu.Unlock() }

func cleanup() {
	cleanMu.Lock()
	defer cleanMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

type row struct {
	name     string
	size     int
	readers  int
	t        tput
	p50, p99 time.Duration // 0: not measured
	bare     *row          // the bare relay row to compare with
}

func run() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (both file systems are mounted with DirectMount)")
	}
	if _, err := os.Stat(*mnetBin); err != nil {
		return fmt.Errorf("mnet binary: %v (build it: go build -o /tmp/mnet ./cmd/mnet)", err)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fusebench")
	if err != nil {
		return err
	}
	atCleanup(func() {
		if mounted(filepath.Join(tmp, "mnet")) || mounted(filepath.Join(tmp, "bare")) {
			fmt.Fprintf(os.Stderr, "fusebench: a mount is left under %s; not removing it\n", tmp)
			return
		}
		os.RemoveAll(tmp)
	})

	bareMnt, mnetMnt := filepath.Join(tmp, "bare"), filepath.Join(tmp, "mnet")
	bare, err := startDaemon("bare relay", bareMnt, self, "-serve-bare", bareMnt)
	if err != nil {
		return err
	}
	mnetd, err := startDaemon("mnet", mnetMnt, *mnetBin, "mount", "--state", "", mnetMnt)
	if err != nil {
		return err
	}

	var rows []*row
	bareData := filepath.Join(bareMnt, "data")
	bareRows := map[int]*row{}
	for _, size := range []int{64, 1500} {
		r := &row{name: "bare relay 1→1", size: size, readers: 1}
		if r.t, err = throughput(bareData, "", size, 1); err != nil {
			return fmt.Errorf("%s %d B: %v", r.name, size, err)
		}
		if r.p50, r.p99, err = latency(bareData, size); err != nil {
			return fmt.Errorf("%s %d B latency: %v", r.name, size, err)
		}
		rows, bareRows[size] = append(rows, r), r
	}

	nets := 0
	for _, sc := range []struct {
		name     string
		readers  int
		lossless bool
	}{{"mnet 1→1", 1, false}, {"mnet 1→4", 4, false}, {"mnet 1→1 lossless", 1, true}} {
		for _, size := range []int{64, 1500} {
			// A fresh network for each scenario: its stats are ours alone.
			nets++
			dir := filepath.Join(mnetMnt, "ipn", fmt.Sprintf("bench%d", nets))
			if err := os.Mkdir(dir, 0o777); err != nil {
				return err
			}
			if sc.lossless {
				if err := os.WriteFile(filepath.Join(dir, "ctl"), []byte("lossless on\n"), 0); err != nil {
					return err
				}
			}
			r := &row{name: sc.name, size: size, readers: sc.readers}
			data := filepath.Join(dir, "data")
			if r.t, err = throughput(data, filepath.Join(dir, "stats"), size, sc.readers); err != nil {
				return fmt.Errorf("%s %d B: %v", r.name, size, err)
			}
			if sc.readers == 1 && !sc.lossless { // one packet in flight: lossless changes nothing
				if r.p50, r.p99, err = latency(data, size); err != nil {
					return fmt.Errorf("%s %d B latency: %v", r.name, size, err)
				}
			}
			if sc.readers == 1 {
				r.bare = bareRows[size]
			}
			rows = append(rows, r)
		}
	}
	mnetOK, bareOK := mnetd.stop(), bare.stop()
	printTable(rows)
	if !mnetOK || !bareOK {
		return errors.New("a daemon did not stop cleanly (see above)")
	}
	return nil
}

func printTable(rows []*row) {
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("fusebench: %d CPUs, Linux %s, %s, %v per scenario (+%v warm-up), read buffer %d B\n\n",
		runtime.NumCPU(), unix.ByteSliceToString(uts.Release[:]), runtime.Version(), *dur, warmup, *rbuf)
	fmt.Printf("%-18s %5s %10s %12s %12s %8s %9s %8s %8s %8s\n",
		"scenario", "size", "sent/s", "rx/s/reader", "delivered/s", "Mbit/s", "drops/s", "p50", "p99", "vs bare")
	for _, r := range rows {
		t := r.t
		var total uint64
		for _, n := range t.rx {
			total += n
		}
		deliv := float64(total) / t.secs
		drops, lat50, lat99, ratio := "-", "-", "-", "-"
		if t.drops >= 0 {
			drops = fmt.Sprintf("%.0f", float64(t.drops)/t.secs)
		}
		if r.p50 > 0 {
			lat50, lat99 = fmtDur(r.p50), fmtDur(r.p99)
		}
		if r.bare != nil {
			bare := float64(r.bare.t.rx[0]) / r.bare.t.secs
			ratio = fmt.Sprintf("%.2f", deliv/bare)
		}
		fmt.Printf("%-18s %5d %10.0f %12.0f %12.0f %8.1f %9s %8s %8s %8s\n",
			r.name, r.size, float64(t.sent)/t.secs, deliv/float64(len(t.rx)), deliv,
			deliv*float64(r.size)*8/1e6, drops, lat50, lat99, ratio)
	}
	fmt.Println()
	for _, r := range rows {
		if len(r.t.rx) > 1 {
			var each []string
			for _, n := range r.t.rx {
				each = append(each, fmt.Sprintf("%.0f", float64(n)/r.t.secs))
			}
			fmt.Printf("%s %d B: rx/s of each reader: %s\n", r.name, r.size, strings.Join(each, " "))
		}
		if r.name == "mnet 1→1" && r.size == 64 && r.bare != nil {
			ratio := float64(r.t.rx[0]) / r.t.secs / (float64(r.bare.t.rx[0]) / r.bare.t.secs)
			verdict := "met"
			if ratio < 0.8 {
				verdict = "NOT met"
			}
			fmt.Printf("target mnet/bare >= 0.80 for 1→1 64 B: %.2f, %s\n", ratio, verdict)
		}
	}
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

// tput is what one throughput window counted.
type tput struct {
	secs  float64
	sent  uint64   // write(2)s completed
	rx    []uint64 // packets each reader received
	drops int64    // the network's drops (stats file); -1 if there is none
}

// throughput runs one writer, writing size-byte packets as fast as it can,
// and nreaders readers on data, and counts over one window of -d what the
// writer sent, what each reader received and what the network dropped.
// Then the writer stops; every reader returns after the next packet it
// reads, the writer poking with small packets until all have. Each
// goroutine closes its own descriptors, so a stuck one can never touch a
// reused descriptor number after we have given up on it.
func throughput(data, stats string, size, nreaders int) (tput, error) {
	rfds := make([]int, 0, nreaders)
	for range nreaders {
		fd, err := unix.Open(data, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, fd := range rfds {
				unix.Close(fd)
			}
			return tput{}, fmt.Errorf("open for reading: %v", err)
		}
		rfds = append(rfds, fd)
	}
	wfd, err := unix.Open(data, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		for _, fd := range rfds {
			unix.Close(fd)
		}
		return tput{}, fmt.Errorf("open for writing: %v", err)
	}

	var (
		stop, writerDone atomic.Bool
		sent             atomic.Uint64
		rx               = make([]atomic.Uint64, nreaders)
		readersLeft      atomic.Int32
		errs             = make(chan error, nreaders+1)
		wg               sync.WaitGroup
	)
	readersLeft.Store(int32(nreaders))
	for i, fd := range rfds {
		wg.Go(func() {
			runtime.LockOSThread()
			defer readersLeft.Add(-1)
			defer unix.Close(fd)
			buf := make([]byte, *rbuf)
			for {
				n, err := unix.Read(fd, buf)
				if err == unix.EINTR {
					continue
				}
				if err != nil || n == 0 {
					errs <- fmt.Errorf("reader %d: read returned %d, %v", i, n, err)
					return
				}
				rx[i].Add(1)
				if writerDone.Load() {
					return
				}
			}
		})
	}
	wg.Go(func() {
		runtime.LockOSThread()
		defer unix.Close(wfd)
		pkt := make([]byte, size)
		for !stop.Load() {
			_, err := unix.Write(wfd, pkt)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				errs <- fmt.Errorf("writer: %v", err)
				break
			}
			sent.Add(1)
		}
		writerDone.Store(true)
		for readersLeft.Load() > 0 {
			unix.Write(wfd, pkt[:1])
			time.Sleep(time.Millisecond)
		}
	})
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	snap := func() (time.Time, uint64, []uint64, int64) {
		now, s := time.Now(), sent.Load()
		r := make([]uint64, nreaders)
		for i := range rx {
			r[i] = rx[i].Load()
		}
		d := int64(-1)
		if stats != "" {
			d = int64(readStat(stats, "drops"))
		}
		return now, s, r, d
	}
	time.Sleep(warmup)
	t0, s0, r0, d0 := snap()
	time.Sleep(*dur)
	t1, s1, r1, d1 := snap()
	stop.Store(true)
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		return tput{}, errors.New("readers or writer stuck after the window")
	}
	close(errs)
	if err := <-errs; err != nil {
		return tput{}, err
	}
	t := tput{secs: t1.Sub(t0).Seconds(), sent: s1 - s0, drops: d1 - d0}
	for i := range r1 {
		t.rx = append(t.rx, r1[i]-r0[i])
	}
	if stats != "" && (d0 < 0 || d1 < 0) {
		return t, errors.New("cannot read drops from " + stats)
	}
	return t, nil
}

// readStat returns the value of one "key N" line of an mnet stats file, or
// -1 (as uint64 max, which callers turn into -1) if it cannot be read.
func readStat(path, key string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return math.MaxUint64
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			if n, err := strconv.ParseUint(v, 10, 63); err == nil {
				return n
			}
		}
	}
	return math.MaxUint64
}

// latency measures the write→read latency with timestamps in the payload
// and exactly one packet in flight: the writer puts a sequence number and
// the monotonic time taken just before write(2) into the packet; the reader,
// its own thread normally already blocked in read(2), takes the time as soon
// as read(2) returns and hands the sequence number back over a Go channel;
// only then is the next packet written. With a single packet in flight
// there is no queueing and nothing can be dropped, so each sample is one
// trip write(2) → FUSE WRITE → daemon → the pending FUSE READ is answered →
// reader woken, and the channel hand-back stays outside the measured
// interval. (A ping-pong through two ports would measure the same path,
// twice per sample, plus a second wake-up.) Both ends use one clock in one
// process, so there is no clock skew. The first 1% of samples is warm-up.
func latency(data string, size int) (p50, p99 time.Duration, err error) {
	size = max(size, 16)
	rfd, err := unix.Open(data, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("open for reading: %v", err)
	}
	wfd, err := unix.Open(data, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(rfd)
		return 0, 0, fmt.Errorf("open for writing: %v", err)
	}
	defer unix.Close(wfd)

	base := time.Now()
	got := make(chan uint64, 1)
	readerDone := make(chan error, 1)
	samples := make([]time.Duration, 0, 1<<18)
	go func() {
		runtime.LockOSThread()
		defer unix.Close(rfd)
		buf := make([]byte, *rbuf)
		for {
			n, err := unix.Read(rfd, buf)
			now := time.Since(base)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n < 16 {
				readerDone <- fmt.Errorf("reader: read returned %d, %v", n, err)
				return
			}
			seq := binary.LittleEndian.Uint64(buf)
			if seq == math.MaxUint64 {
				readerDone <- nil
				return
			}
			samples = append(samples, now-time.Duration(binary.LittleEndian.Uint64(buf[8:])))
			got <- seq
		}
	}()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pkt := make([]byte, size)
	timer := time.NewTimer(time.Hour)
	send := func(seq uint64) error {
		binary.LittleEndian.PutUint64(pkt, seq)
		binary.LittleEndian.PutUint64(pkt[8:], uint64(time.Since(base)))
		for {
			_, err := unix.Write(wfd, pkt)
			if err != unix.EINTR {
				return err
			}
		}
	}
	for seq, end := uint64(0), time.Now().Add(*dur); time.Now().Before(end); seq++ {
		if err := send(seq); err != nil {
			return 0, 0, fmt.Errorf("writer: %v", err)
		}
		timer.Reset(time.Second)
		select {
		case s := <-got:
			if s != seq {
				return 0, 0, fmt.Errorf("sent packet %d, received %d", seq, s)
			}
		case err := <-readerDone:
			return 0, 0, fmt.Errorf("reader stopped early: %v", err)
		case <-timer.C:
			return 0, 0, fmt.Errorf("packet %d not received within 1s", seq)
		}
	}
	if err := send(math.MaxUint64); err != nil {
		return 0, 0, fmt.Errorf("writer: %v", err)
	}
	timer.Reset(5 * time.Second)
	select {
	case err := <-readerDone:
		if err != nil {
			return 0, 0, err
		}
	case <-timer.C:
		return 0, 0, errors.New("reader did not stop")
	}
	s := samples[len(samples)/100:]
	if len(s) == 0 {
		return 0, 0, errors.New("no samples")
	}
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100], nil
}

// daemon is a file system server process mounted at mnt.
type daemon struct {
	name, mnt, log string
	cmd            *exec.Cmd
	exited         chan struct{}
	err            error // of cmd.Wait, once exited is closed
	once           sync.Once
	ok             bool
}

// startDaemon runs argv, which must mount a FUSE file system at mnt, and
// waits until the mount is there. Its output goes to a log file shown if
// it fails. It is stopped (SIGTERM) at cleanup if not before.
func startDaemon(name, mnt string, argv ...string) (*daemon, error) {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	d := &daemon{name: name, mnt: mnt, log: mnt + ".log", exited: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group: a ^C reaches only us, and we stop it in order.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %v", name, err)
	}
	go func() { d.err = d.cmd.Wait(); logf.Close(); close(d.exited) }()
	atCleanup(func() { d.stop() })
	for deadline := time.Now().Add(10 * time.Second); !mounted(mnt); {
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.log)
			return nil, fmt.Errorf("%s exited before mounting (%v); its output:\n%s", name, d.err, b)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not mount %s within 10s", name, mnt)
		}
	}
	return d, nil
}

// stop sends SIGTERM (SIGKILL after 5s), makes sure the mount is gone and
// reports whether the daemon exited 0 by itself.
func (d *daemon) stop() bool {
	d.once.Do(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(5 * time.Second):
				fmt.Fprintf(os.Stderr, "fusebench: %s ignored SIGTERM, killing it\n", d.name)
				d.cmd.Process.Kill()
				<-d.exited
			}
		}
		d.ok = d.err == nil
		if !d.ok {
			b, _ := os.ReadFile(d.log)
			fmt.Fprintf(os.Stderr, "fusebench: %s exited: %v; its output:\n%s", d.name, d.err, b)
		}
		if mounted(d.mnt) {
			fmt.Fprintf(os.Stderr, "fusebench: %s left %s mounted, detaching it\n", d.name, d.mnt)
			unix.Unmount(d.mnt, unix.MNT_DETACH)
		}
	})
	return d.ok
}

// mounted reports whether a FUSE file system is mounted at mnt.
func mounted(mnt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == mnt && strings.Contains(line, " - fuse") {
			return true
		}
	}
	return false
}

// The bare relay: one file, data, whose Write hands a copy of each write to
// a buffered channel (blocking while 256 packets wait) and whose Read takes
// one packet from it. It does what a FUSE packet relay cannot avoid (one
// WRITE and one READ request, a copy out of go-fuse's buffer, a goroutine
// hand-off) and nothing else.
type relayDir struct{ gofs.Inode }

type relayFile struct {
	gofs.Inode
	ch chan []byte
}

var (
	_ gofs.NodeOnAdder   = (*relayDir)(nil)
	_ gofs.NodeOpener    = (*relayFile)(nil)
	_ gofs.NodeGetattrer = (*relayFile)(nil)
	_ gofs.NodeReader    = (*relayFile)(nil)
	_ gofs.NodeWriter    = (*relayFile)(nil)
)

func (d *relayDir) OnAdd(ctx context.Context) {
	f := &relayFile{ch: make(chan []byte, 256)}
	d.AddChild("data", d.NewPersistentInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG}), false)
}

func (f *relayFile) Open(context.Context, uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *relayFile) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o666
	return 0
}

func (f *relayFile) Write(ctx context.Context, _ gofs.FileHandle, data []byte, _ int64) (uint32, syscall.Errno) {
	pkt := make([]byte, len(data)) // go-fuse reuses data once we return
	copy(pkt, data)
	select {
	case f.ch <- pkt:
		return uint32(len(data)), 0
	case <-ctx.Done():
		return 0, syscall.EINTR
	}
}

func (f *relayFile) Read(ctx context.Context, _ gofs.FileHandle, dest []byte, _ int64) (fuse.ReadResult, syscall.Errno) {
	select {
	case pkt := <-f.ch:
		return fuse.ReadResultData(dest[:copy(dest, pkt)]), 0
	case <-ctx.Done():
		return nil, syscall.EINTR
	}
}

// serveBareRelay mounts the relay at dir and serves it until SIGINT or
// SIGTERM, then unmounts (detaching if files are still open) and returns.
func serveBareRelay(dir string) error {
	server, err := gofs.Mount(dir, &relayDir{}, &gofs.Options{MountOptions: fuse.MountOptions{
		DirectMount:       true,
		DirectMountStrict: true,
		MaxWrite:          128 << 10,
		FsName:            "fusebench",
		Name:              "fusebench",
	}})
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	served := make(chan struct{})
	go func() { server.Wait(); close(served) }()
	select {
	case <-sigs:
		if server.Unmount() != nil {
			// Readers still blocked: the connection ends when we exit.
			return unix.Unmount(dir, unix.MNT_DETACH)
		}
	case <-served:
	}
	return nil
}
