// SPDX-License-Identifier: BSD-3-Clause

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
	"cmp"
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
	"regexp"
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
	wbuf      = flag.Int("wbuf", 65536, "write(2) size of the stream rows: as many whole frames as fit")
	rounds    = flag.Int("n", 1, "rounds: each scenario runs n times, interleaved, and the median is shown")
	only      = flag.String("s", "", "run only the scenarios whose name matches this regexp (with the rows they are compared with)")
	cpuprof   = flag.String("cpuprofile", "", "write the mnet daemon's CPU profile of the whole run here (its --cpuprofile)")
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

// scenario is one line of the table; it is measured once per round.
type scenario struct {
	name     string
	mnet     bool
	drop     bool // bare relay: data-drop
	size     int
	readers  int
	lossless bool
	epoll    bool // readers wait in epoll (edge-triggered) and read to EAGAIN
	latency  bool // also measure the write→read latency
	results  []result
	bare     *scenario // the bare relay that treats a full queue as this does (/bare)
	same     *scenario // the other bare relay, for the unlike ratio in the footer
	blocking *scenario // for an epoll row: the same with blocking readers
	// The stream rows: packets through ipn/NAME/stream in VDE's stream
	// format, -wbuf bytes of whole frames per write, -rbuf per read.
	stream bool
	// seqpacket: a unix SOCK_SEQPACKET pair, one packet per call, no
	// daemon: what a socket carries on this machine.
	seqpacket bool
	// vs are the rows a stream row's targets compare it with: the data
	// row, the SEQPACKET pair, the 1→1 stream row (for 1→4).
	vs []*scenario
}

// kind is what throughput opens.
func (sc *scenario) kind() string {
	switch {
	case sc.stream:
		return "stream"
	case sc.seqpacket:
		return "seqpacket"
	}
	return "data"
}

type result struct {
	t        tput
	p50, p99 time.Duration
	// epoll rows: the daemon's POLL requests and NOTIFY_POLL messages for
	// the reader's file, and the packets it read, in the throughput run
	// and in the latency run.
	polls, notifies, readerPkts    uint64
	lpolls, lnotifies, latencyPkts uint64
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
	// -v: the daemon logs the polls and notifies of each polled file
	// when it is released, at debug level.
	margs := []string{"mount", "-v", "--state", ""}
	if *cpuprof != "" {
		margs = append(margs, "--cpuprofile", *cpuprof)
	}
	mnetd, err := startDaemon("mnet", mnetMnt, append([]string{*mnetBin}, append(margs, mnetMnt)...)...)
	if err != nil {
		return err
	}

	// Each mnet row's /bare is its ratio to the bare relay with the same
	// full-queue behaviour: lossless off against the relay that drops,
	// lossless on against the relay that blocks. With lossless off the
	// writer never waits, and the CPU it spends on packets that are then
	// dropped is taken from the reader on a small machine; comparing that
	// with a relay that blocks the writer would measure the policy, not
	// mnet. That unlike ratio is printed too (footer).
	var scs []*scenario
	bareOf, dropOf := map[int]*scenario{}, map[int]*scenario{}
	add := func(sc *scenario) *scenario { scs = append(scs, sc); return sc }
	for _, size := range []int{64, 1500} {
		bareOf[size] = add(&scenario{name: "bare relay 1→1", size: size, readers: 1, latency: true})
	}
	for _, size := range []int{64, 1500} {
		dropOf[size] = add(&scenario{name: "bare-drop 1→1", drop: true, size: size, readers: 1})
	}
	// Each epoll row runs right after its blocking twin, so that the
	// machine's drift hits both alike.
	for _, size := range []int{64, 1500} {
		b := add(&scenario{name: "mnet 1→1", mnet: true, size: size, readers: 1, latency: true, bare: dropOf[size], same: bareOf[size]})
		add(&scenario{name: "mnet 1→1 epoll", mnet: true, epoll: true, size: size, readers: 1, latency: true, bare: dropOf[size], blocking: b})
	}
	for _, size := range []int{64, 1500} {
		add(&scenario{name: "mnet 1→4", mnet: true, size: size, readers: 4})
	}
	// With one packet in flight lossless changes nothing: no latency here.
	for _, size := range []int{64, 1500} {
		b := add(&scenario{name: "mnet 1→1 lossless", mnet: true, size: size, readers: 1, lossless: true, bare: bareOf[size]})
		add(&scenario{name: "mnet 1→1 lossl. epoll", mnet: true, epoll: true, size: size, readers: 1, lossless: true, bare: bareOf[size], blocking: b})
	}
	// Many packets per call: the stream file against the data file (the
	// "mnet 1→1" rows) and against a socket pair, one packet per call.
	for _, size := range []int{64, 1500} {
		var data *scenario
		for _, sc := range scs {
			if sc.name == "mnet 1→1" && sc.size == size {
				data = sc
			}
		}
		seq := add(&scenario{name: "seqpacket pair 1→1", seqpacket: true, size: size, readers: 1})
		one := add(&scenario{name: "stream 1→1", mnet: true, stream: true, size: size, readers: 1, vs: []*scenario{data, seq}})
		add(&scenario{name: "stream 1→4", mnet: true, stream: true, size: size, readers: 4, vs: []*scenario{one}})
		// A socket pair's writer waits when the reader is behind, as a
		// lossless network's does; lossless off spends CPU on frames
		// that are then dropped.
		one = add(&scenario{name: "stream 1→1 lossless", mnet: true, stream: true, lossless: true, size: size, readers: 1, vs: []*scenario{data, seq}})
		add(&scenario{name: "stream 1→4 lossless", mnet: true, stream: true, lossless: true, size: size, readers: 4, vs: []*scenario{one}})
	}

	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return fmt.Errorf("-s: %v", err)
		}
		keep := map[*scenario]bool{}
		var mark func(sc *scenario)
		mark = func(sc *scenario) {
			if sc == nil || keep[sc] {
				return
			}
			keep[sc] = true
			mark(sc.bare)
			mark(sc.same)
			mark(sc.blocking)
			for _, v := range sc.vs {
				mark(v)
			}
		}
		for _, sc := range scs {
			if re.MatchString(sc.name) {
				mark(sc)
			}
		}
		scs = slices.DeleteFunc(scs, func(sc *scenario) bool { return !keep[sc] })
	}

	nets := 0
	for round := range *rounds {
		for _, sc := range scs {
			data, stats, pid := filepath.Join(bareMnt, "data"), "", bare.cmd.Process.Pid
			if sc.drop {
				data = filepath.Join(bareMnt, "data-drop")
			}
			if sc.mnet {
				// A fresh network for each run: its stats are ours alone.
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
				data, stats, pid = filepath.Join(dir, "data"), filepath.Join(dir, "stats"), mnetd.cmd.Process.Pid
				if sc.stream {
					// Room for a few writes' frames in each queue.
					if err := os.WriteFile(filepath.Join(dir, "ctl"), []byte("qlen 4096\n"), 0); err != nil {
						return err
					}
					data = filepath.Join(dir, "stream")
				}
			}
			if sc.seqpacket {
				data, pid = "", -1
			}
			var r result
			released := 0
			if sc.epoll {
				released = len(pollReleases(mnetd.log))
			}
			if r.t, err = throughput(sc.kind(), data, stats, pid, sc.size, sc.readers, sc.epoll); err != nil {
				return fmt.Errorf("round %d, %s %d B: %v", round+1, sc.name, sc.size, err)
			}
			if sc.epoll {
				if r.polls, r.notifies, err = pollCounts(mnetd.log, released); err != nil {
					return fmt.Errorf("round %d, %s %d B: %v", round+1, sc.name, sc.size, err)
				}
				r.readerPkts = r.t.rxAll
			}
			if sc.latency {
				if sc.epoll {
					released = len(pollReleases(mnetd.log))
				}
				var n uint64
				if r.p50, r.p99, n, err = latency(data, sc.size, sc.epoll); err != nil {
					return fmt.Errorf("round %d, %s %d B latency: %v", round+1, sc.name, sc.size, err)
				}
				if sc.epoll {
					if r.lpolls, r.lnotifies, err = pollCounts(mnetd.log, released); err != nil {
						return fmt.Errorf("round %d, %s %d B latency: %v", round+1, sc.name, sc.size, err)
					}
					r.latencyPkts = n
				}
			}
			sc.results = append(sc.results, r)
		}
	}
	idle, err := idleEpollReader(mnetMnt, mnetd.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("idle epoll reader: %v", err)
	}
	mnetOK, bareOK := mnetd.stop(), bare.stop()
	printTable(scs)
	fmt.Println(idle)
	if !mnetOK || !bareOK {
		return errors.New("a daemon did not stop cleanly (see above)")
	}
	return nil
}

// median returns the result with the median delivered rate, and the
// median p50 and p99 over the rounds.
func (sc *scenario) median() (r result, p50, p99 time.Duration) {
	rs := slices.Clone(sc.results)
	slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.t.delivered(), b.t.delivered()) })
	var l50, l99 []time.Duration
	for _, x := range rs {
		l50, l99 = append(l50, x.p50), append(l99, x.p99)
	}
	slices.Sort(l50)
	slices.Sort(l99)
	return rs[len(rs)/2], l50[len(l50)/2], l99[len(l99)/2]
}

// ratio is the median delivered rate of sc over that of b.
func (sc *scenario) ratio(b *scenario) float64 {
	m, _, _ := sc.median()
	mb, _, _ := b.median()
	return m.t.delivered() / mb.t.delivered()
}

func printTable(scs []*scenario) {
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("fusebench: %d CPUs, Linux %s, %s, %v per scenario (+%v warm-up), read buffer %d B, %d round(s)\n\n",
		runtime.NumCPU(), unix.ByteSliceToString(uts.Release[:]), runtime.Version(), *dur, warmup, *rbuf, *rounds)
	fmt.Printf("%-21s %4s %7s %7s %7s %6s %7s %7s %7s %6s %6s %5s",
		"scenario", "size", "sent/s", "rx/s/r", "deliv/s", "Mbit/s", "drops/s", "p50", "p99", "srvCPU", "cliCPU", "/bare")
	if *rounds > 1 {
		fmt.Printf("  deliv/s min..max")
	}
	fmt.Println()
	for _, sc := range scs {
		r, p50, p99 := sc.median()
		t := r.t
		deliv := t.delivered()
		drops, lat50, lat99, ratio := "-", "-", "-", "-"
		if t.drops >= 0 {
			drops = fmt.Sprintf("%.0f", float64(t.drops)/t.secs)
		}
		if sc.latency {
			lat50, lat99 = fmtDur(p50), fmtDur(p99)
		}
		if sc.bare != nil {
			ratio = fmt.Sprintf("%.2f", sc.ratio(sc.bare))
		}
		perPkt := func(cpu float64) float64 { return cpu / (deliv * t.secs) * 1e6 }
		fmt.Printf("%-21s %4d %7.0f %7.0f %7.0f %6.1f %7s %7s %7s %6.1f %6.1f %5s",
			sc.name, sc.size, float64(t.sent)/t.secs, deliv/float64(len(t.rx)), deliv,
			deliv*float64(sc.size)*8/1e6, drops, lat50, lat99, perPkt(t.srvCPU), perPkt(t.cliCPU), ratio)
		if len(sc.results) > 1 {
			lo, hi := math.Inf(1), 0.0
			for _, x := range sc.results {
				lo, hi = min(lo, x.t.delivered()), max(hi, x.t.delivered())
			}
			fmt.Printf("  %.0f..%.0f", lo, hi)
		}
		fmt.Println()
	}
	fmt.Println()
	for _, sc := range scs {
		if sc.readers > 1 {
			r, _, _ := sc.median()
			var each []string
			for _, n := range r.t.rx {
				each = append(each, fmt.Sprintf("%.0f", float64(n)/r.t.secs))
			}
			fmt.Printf("%s %d B: rx/s of each reader: %s\n", sc.name, sc.size, strings.Join(each, " "))
		}
	}
	// The target: mnet >= 0.80 of the bare relay for 1→1, 64 B.
	for _, sc := range scs {
		if (sc.name == "mnet 1→1" || sc.name == "mnet 1→1 lossless") && sc.size == 64 {
			verdict := "met"
			if sc.ratio(sc.bare) < 0.8 {
				verdict = "NOT met"
			}
			fmt.Printf("target >= 0.80: %s 64 B over %s 64 B: %.2f, %s", sc.name, sc.bare.name, sc.ratio(sc.bare), verdict)
			if len(sc.results) > 1 {
				fmt.Printf(" (round by round:")
				for i := range sc.results {
					fmt.Printf(" %.2f", sc.results[i].t.delivered()/sc.bare.results[i].t.delivered())
				}
				fmt.Printf(")")
			}
			fmt.Println()
		}
	}
	for _, sc := range scs {
		if sc.blocking == nil {
			continue
		}
		verdict := "met"
		if sc.ratio(sc.blocking) < 0.8 {
			verdict = "NOT met"
		}
		var polls, notifies, pkts, lpolls, lnotifies, lpkts uint64
		for _, r := range sc.results {
			polls, notifies, pkts = polls+r.polls, notifies+r.notifies, pkts+r.readerPkts
			lpolls, lnotifies, lpkts = lpolls+r.lpolls, lnotifies+r.lnotifies, lpkts+r.latencyPkts
		}
		fmt.Printf("target >= 0.80: %s %d B over %s %d B: %.2f, %s", sc.name, sc.size, sc.blocking.name, sc.size,
			sc.ratio(sc.blocking), verdict)
		if len(sc.results) > 1 {
			var rs []float64
			fmt.Printf(" (round by round:")
			for i := range sc.results {
				r := sc.results[i].t.delivered() / sc.blocking.results[i].t.delivered()
				rs = append(rs, r)
				fmt.Printf(" %.2f", r)
			}
			slices.Sort(rs)
			fmt.Printf("; their median %.2f)", rs[len(rs)/2])
		}
		fmt.Printf("\n  per packet read: throughput %.4f notifies, %.4f polls (%d packets)",
			float64(notifies)/float64(pkts), float64(polls)/float64(pkts), pkts)
		if lpkts > 0 {
			fmt.Printf("; latency, one in flight: %.3f notifies, %.3f polls (%d packets)",
				float64(lnotifies)/float64(lpkts), float64(lpolls)/float64(lpkts), lpkts)
		}
		fmt.Println()
	}
	for _, sc := range scs {
		if sc.same != nil && sc.same != sc.bare {
			fmt.Printf("unlike for unlike: %s %d B (drops when full) over %s %d B (blocks when full): %.2f\n",
				sc.name, sc.size, sc.same.name, sc.same.size, sc.ratio(sc.same))
		}
	}
	printStreamTargets(scs)
}

// printStreamTargets prints the stream rows' ratios to what they are
// compared with, round by round: at 64 B the stream at >= 10x the data
// file and >= 1.0x the SEQPACKET pair; at 1→4 each reader at >= 0.8x the
// 1→1 reader.
func printStreamTargets(scs []*scenario) {
	perRound := func(sc, b *scenario, each bool) []float64 {
		var rs []float64
		for i := range min(len(sc.results), len(b.results)) {
			num := sc.results[i].t.delivered()
			if each {
				lo := math.Inf(1)
				for _, n := range sc.results[i].t.rx {
					lo = min(lo, float64(n)/sc.results[i].t.secs)
				}
				num = lo
			}
			rs = append(rs, num/b.results[i].t.delivered())
		}
		return rs
	}
	for _, sc := range scs {
		for _, b := range sc.vs {
			if b == nil || len(b.results) == 0 {
				continue
			}
			want, each := 0.0, sc.readers > 1
			switch {
			case each:
				want = 0.8
			case b.seqpacket && sc.size == 64:
				want = 1.0
			case !b.stream && !b.seqpacket && sc.size == 64:
				want = 10
			}
			rs := perRound(sc, b, each)
			sorted := slices.Clone(rs)
			slices.Sort(sorted)
			what := "delivered/s"
			if each {
				what = "slowest reader's rx/s"
			}
			fmt.Printf("%s %d B over %s %d B (%s): median %.2f, round by round %s", sc.name, sc.size, b.name, b.size,
				what, sorted[len(sorted)/2], fmtRatios(rs))
			if want > 0 {
				verdict := "met"
				if sorted[len(sorted)/2] < want {
					verdict = "NOT met"
				}
				fmt.Printf("; target >= %.1f: %s", want, verdict)
			}
			fmt.Println()
		}
	}
}

func fmtRatios(rs []float64) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.2f", r))
	}
	return strings.Join(s, " ")
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

// openKind opens what throughput measures: the data or stream file
// nreaders times for reading, then once for writing; or a SEQPACKET pair
// (one reader).
func openKind(kind, path string, nreaders int) ([]int, error) {
	if kind != "seqpacket" {
		return openData(path, nreaders)
	}
	if nreaders != 1 {
		return nil, errors.New("a socket pair has one reader")
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return sp[:], nil
}

// frameCounter counts the frames of a VDE stream read piece by piece.
type frameCounter struct {
	nlen int  // bytes of the next length seen (0 or 1)
	hi   byte // its first byte
	left int  // bytes of the current frame still to come
}

func (c *frameCounter) count(b []byte) (frames uint64) {
	for len(b) > 0 {
		if c.left > 0 {
			k := min(c.left, len(b))
			c.left -= k
			b = b[k:]
			if c.left == 0 {
				frames++
			}
			continue
		}
		if c.nlen == 0 {
			c.hi, c.nlen = b[0], 1
			b = b[1:]
			continue
		}
		c.left, c.nlen = int(c.hi)<<8|int(b[0]), 0
		b = b[1:]
		if c.left == 0 {
			frames++ // never sent; counted, not to stall
		}
	}
	return frames
}

// streamWrite is a write(2) of as many whole frames of size bytes as fit
// in -wbuf, and how many it holds.
func streamWrite(size int) ([]byte, uint64) {
	k := max(*wbuf/(size+2), 1)
	var b []byte
	for range k {
		b = binary.BigEndian.AppendUint16(b, uint16(size))
		b = append(b, make([]byte, size)...)
	}
	return b, uint64(k)
}

// openData opens data nreaders times for reading, then once for writing.
func openData(data string, nreaders int) ([]int, error) {
	var fds []int
	for i := range nreaders + 1 {
		mode := unix.O_RDONLY
		if i == nreaders {
			mode = unix.O_WRONLY
		}
		fd, err := unix.Open(data, mode|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, fmt.Errorf("open %s: %v", data, err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// tput is what one throughput window counted.
type tput struct {
	secs  float64
	sent  uint64   // write(2)s completed
	rx    []uint64 // packets each reader received
	rxAll uint64   // packets the readers received from open to close
	drops int64    // the network's drops (stats file); -1 if there is none
	// CPU time (user+system) the server daemon and this process (the
	// readers and the writer) used in the window, in seconds.
	srvCPU, cliCPU float64
}

// delivered is the packets per second the readers received, all together.
func (t tput) delivered() float64 {
	var n uint64
	for _, x := range t.rx {
		n += x
	}
	return float64(n) / t.secs
}

// throughput runs one writer, writing size-byte packets as fast as it can,
// and nreaders readers on data, and counts over one window of -d what the
// writer sent, what each reader received and what the network dropped.
// Then the writer stops; every reader returns after the next packet it
// reads, the writer poking with small packets until all have. Each
// goroutine closes its own descriptors, so a stuck one can never touch a
// reused descriptor number after we have given up on it. With epoll, each
// reader waits in its own edge-triggered epoll and reads to EAGAIN, as an
// event loop does.
func throughput(kind, data, stats string, srvPid, size, nreaders int, epoll bool) (tput, error) {
	fds, err := openKind(kind, data, nreaders)
	if err != nil {
		return tput{}, err
	}
	rfds, wfd := fds[:nreaders], fds[nreaders]

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
			if epoll {
				if err := epollReader(fd, buf, &rx[i], &writerDone); err != nil {
					errs <- fmt.Errorf("reader %d: %v", i, err)
				}
				return
			}
			var frames frameCounter
			for {
				n, err := unix.Read(fd, buf)
				if err == unix.EINTR {
					continue
				}
				if err != nil || n == 0 {
					errs <- fmt.Errorf("reader %d: read returned %d, %v", i, n, err)
					return
				}
				if kind == "stream" {
					rx[i].Add(frames.count(buf[:n]))
				} else {
					rx[i].Add(1)
				}
				if writerDone.Load() {
					return
				}
			}
		})
	}
	wg.Go(func() {
		runtime.LockOSThread()
		defer unix.Close(wfd)
		pkt, perWrite := make([]byte, size), uint64(1)
		poke := pkt[:1]
		if kind == "stream" {
			pkt, perWrite = streamWrite(size)
			poke = []byte{0, 1, 0}
		}
		for !stop.Load() {
			_, err := unix.Write(wfd, pkt)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				errs <- fmt.Errorf("writer: %v", err)
				break
			}
			sent.Add(perWrite)
		}
		writerDone.Store(true)
		for readersLeft.Load() > 0 {
			unix.Write(wfd, poke)
			time.Sleep(time.Millisecond)
		}
	})
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	type snapshot struct {
		t              time.Time
		sent           uint64
		rx             []uint64
		drops          int64
		srvCPU, cliCPU float64
	}
	snap := func() snapshot {
		var ru unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru)
		now, s := time.Now(), sent.Load()
		r := make([]uint64, nreaders)
		for i := range rx {
			r[i] = rx[i].Load()
		}
		d := int64(-1)
		if stats != "" {
			d = readStat(stats, "drops")
		}
		return snapshot{now, s, r, d, procCPU(srvPid),
			time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()}
	}
	time.Sleep(warmup)
	s0 := snap()
	time.Sleep(*dur)
	s1 := snap()
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
	t := tput{secs: s1.t.Sub(s0.t).Seconds(), sent: s1.sent - s0.sent, drops: -1,
		srvCPU: s1.srvCPU - s0.srvCPU, cliCPU: s1.cliCPU - s0.cliCPU}
	for i := range s1.rx {
		t.rx = append(t.rx, s1.rx[i]-s0.rx[i])
		t.rxAll += rx[i].Load()
	}
	if stats != "" {
		if s0.drops < 0 || s1.drops < 0 {
			return t, errors.New("cannot read drops from " + stats)
		}
		t.drops = s1.drops - s0.drops
	}
	return t, nil
}

// epollReader is one event-loop reader: fd non-blocking in an
// edge-triggered epoll, each wakeup read until EAGAIN. It returns after the
// first packet it reads once done is set.
func epollReader(fd int, buf []byte, rx *atomic.Uint64, done *atomic.Bool) error {
	ep, err := epollFor(fd)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	events := make([]unix.EpollEvent, 1)
	for {
		n, err := unix.EpollWait(ep, events, 5000)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("no event in 5 s")
		}
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				break
			}
			if err != nil || n == 0 {
				return fmt.Errorf("read returned %d, %v", n, err)
			}
			rx.Add(1)
			if done.Load() {
				return nil
			}
		}
	}
}

// epollFor makes fd non-blocking and returns a new epoll that watches it
// for input, edge-triggered.
func epollFor(fd int) (int, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return -1, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		unix.Close(ep)
		return -1, err
	}
	return ep, nil
}

// pollReleases returns the "polled file released" lines of mnet's log.
func pollReleases(log string) []string {
	b, _ := os.ReadFile(log)
	var lines []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, `msg="polled file released"`) {
			lines = append(lines, line)
		}
	}
	return lines
}

// pollCounts waits for the log line of the next polled file released
// after the first before of them (the epoll reader's file: the writer's is
// never polled) and returns its counts.
func pollCounts(log string, before int) (polls, notifies uint64, err error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		lines := pollReleases(log)
		if len(lines) > before {
			line := lines[before]
			for f := range strings.FieldsSeq(line) {
				if v, ok := strings.CutPrefix(f, "polls="); ok {
					polls, _ = strconv.ParseUint(v, 10, 64)
				}
				if v, ok := strings.CutPrefix(f, "notifies="); ok {
					notifies, _ = strconv.ParseUint(v, 10, 64)
				}
			}
			return polls, notifies, nil
		}
		if time.Now().After(deadline) {
			return 0, 0, errors.New("mnet logged no polled file released (is it run with -v?)")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// idleEpollReader measures what a reader waiting in epoll on an idle
// network costs: the CPU time of this process (the reader, parked in
// epoll_wait) and of the daemon over 3 s.
func idleEpollReader(mnt string, srvPid int) (string, error) {
	dir := filepath.Join(mnt, "ipn", "idle")
	if err := os.Mkdir(dir, 0o777); err != nil {
		return "", err
	}
	fds, err := openData(filepath.Join(dir, "data"), 1)
	if err != nil {
		return "", err
	}
	rfd, wfd := fds[0], fds[1]
	var rx atomic.Uint64
	var done atomic.Bool
	finished := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer unix.Close(rfd)
		finished <- epollReader(rfd, make([]byte, *rbuf), &rx, &done)
	}()
	time.Sleep(200 * time.Millisecond) // the reader is in epoll_wait
	cpu := func() float64 {
		var ru unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	const window = 3 * time.Second
	c0, s0 := cpu(), procCPU(srvPid)
	time.Sleep(window)
	c1, s1 := cpu(), procCPU(srvPid)
	done.Store(true)
	unix.Write(wfd, []byte{0})
	unix.Close(wfd)
	if err := <-finished; err != nil {
		return "", err
	}
	return fmt.Sprintf("idle epoll reader over %v: this process %.0f ms CPU, mnet %.0f ms CPU (10 ms ticks)",
		window, (c1-c0)*1000, (s1-s0)*1000), nil
}

// readStat returns the value of one "key N" line of an mnet stats file, or
// -1 if it cannot be read.
func readStat(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return -1
}

// procCPU returns the user+system CPU seconds process pid has used so far,
// from /proc/PID/stat (in clock ticks: 100 a second on Linux), or 0.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, rest, _ := strings.Cut(string(b), ") ") // the command may hold spaces
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64) // fields 14 and 15 of stat(5)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return float64(ut+st) / 100
}

// latencyMagic marks latency packets (bytes 16..23), so that packets a
// throughput run left in the bare relay's single channel are skipped.
const latencyMagic = 0x68636e6562657375

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
// With epoll, the reader reads until EAGAIN and then waits in an
// edge-triggered epoll: each sample also has the wake-up through FUSE poll
// (NOTIFY_POLL, then a POLL request) and the extra read that found nothing.
// Packet layout: sequence number, send time (ns since base), magic. It
// returns the packets the reader read.
func latency(data string, size int, epoll bool) (p50, p99 time.Duration, read uint64, err error) {
	size = max(size, 24)
	fds, err := openData(data, 1)
	if err != nil {
		return 0, 0, 0, err
	}
	rfd, wfd := fds[0], fds[1]
	defer unix.Close(wfd)

	base := time.Now()
	got := make(chan uint64, 1)
	readerDone := make(chan error, 1)
	samples := make([]time.Duration, 0, 1<<18)
	var readCount atomic.Uint64
	go func() {
		runtime.LockOSThread()
		defer unix.Close(rfd)
		buf := make([]byte, *rbuf)
		ep := -1
		if epoll {
			var err error
			if ep, err = epollFor(rfd); err != nil {
				readerDone <- err
				return
			}
			defer unix.Close(ep)
		}
		events := make([]unix.EpollEvent, 1)
		for {
			n, err := unix.Read(rfd, buf)
			now := time.Since(base)
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN && epoll {
				if _, err := unix.EpollWait(ep, events, 5000); err != nil && err != unix.EINTR {
					readerDone <- fmt.Errorf("reader: epoll_wait: %v", err)
					return
				}
				continue
			}
			if err != nil || n == 0 {
				readerDone <- fmt.Errorf("reader: read returned %d, %v", n, err)
				return
			}
			readCount.Add(1)
			if n < 24 || binary.LittleEndian.Uint64(buf[16:]) != latencyMagic {
				continue // left in the bare relay's channel by a throughput run
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
	binary.LittleEndian.PutUint64(pkt[16:], latencyMagic)
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
			return 0, 0, 0, fmt.Errorf("writer: %v", err)
		}
		timer.Reset(time.Second)
		select {
		case s := <-got:
			if s != seq {
				return 0, 0, 0, fmt.Errorf("sent packet %d, received %d", seq, s)
			}
		case err := <-readerDone:
			return 0, 0, 0, fmt.Errorf("reader stopped early: %v", err)
		case <-timer.C:
			return 0, 0, 0, fmt.Errorf("packet %d not received within 1s", seq)
		}
	}
	if err := send(math.MaxUint64); err != nil {
		return 0, 0, 0, fmt.Errorf("writer: %v", err)
	}
	timer.Reset(5 * time.Second)
	select {
	case err := <-readerDone:
		if err != nil {
			return 0, 0, 0, err
		}
	case <-timer.C:
		return 0, 0, 0, errors.New("reader did not stop")
	}
	s := samples[len(samples)/100:]
	if len(s) == 0 {
		return 0, 0, 0, errors.New("no samples")
	}
	slices.Sort(s)
	return s[len(s)/2], s[len(s)*99/100], readCount.Load(), nil
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

// The bare relay: a file, data, whose Write hands a copy of each write to a
// buffered channel (blocking while 256 packets wait) and whose Read takes one
// packet from it. It does what a FUSE packet relay cannot avoid (one WRITE
// and one READ request, a copy out of go-fuse's buffer, a goroutine
// hand-off) and nothing else. data-drop is the same but drops a packet that
// finds the channel full, as mnet does with lossless off.
type relayDir struct{ gofs.Inode }

type relayFile struct {
	gofs.Inode
	ch   chan []byte
	drop bool
}

var (
	_ gofs.NodeOnAdder   = (*relayDir)(nil)
	_ gofs.NodeOpener    = (*relayFile)(nil)
	_ gofs.NodeGetattrer = (*relayFile)(nil)
	_ gofs.NodeReader    = (*relayFile)(nil)
	_ gofs.NodeWriter    = (*relayFile)(nil)
)

func (d *relayDir) OnAdd(ctx context.Context) {
	for _, drop := range []bool{false, true} {
		f := &relayFile{ch: make(chan []byte, 256), drop: drop}
		name := map[bool]string{false: "data", true: "data-drop"}[drop]
		d.AddChild(name, d.NewPersistentInode(ctx, f, gofs.StableAttr{Mode: syscall.S_IFREG}), false)
	}
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
	if f.drop {
		select {
		case f.ch <- pkt:
		default:
		}
		return uint32(len(data)), 0
	}
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
