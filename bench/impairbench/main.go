// SPDX-License-Identifier: BSD-3-Clause

// Command impairbench measures how exactly mnet's link emulation keeps
// its figures: the delay each frame gets at a steady frame rate, and the
// rate a rate-limited port delivers, against the same path without
// impairment and, where the kernel has it, netem on a veth pair, in the
// same run.
//
//	go build -o /tmp/mnet ./cmd/mnet
//	go run ./bench/impairbench -mnet /tmp/mnet      # as root
//
// Delay: a writer port sends -pps timestamped frames a second for -d to a
// reader port of the same network, with `impair #READER delay D` and
// without, in -n interleaved rounds; each frame's delay is its arrival
// time less its send time. Rate: the writer offers 1.5 times R in
// 1250-byte frames to `impair #READER rate R`; the delivered rate is what
// the reader gets over -d once the wait queue is full. netem: a veth pair
// with `tc qdisc add dev A root netem delay D` (and `rate R`), frames sent
// and received with packet sockets, if the kernel has sch_netem; else the
// error is printed. See bench/README.md.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	pps     = flag.Int("pps", 1000, "frames a second in the delay test")
	dur     = flag.Duration("d", 5*time.Second, "measuring window of each test")
	delay   = flag.Duration("delay", 50*time.Millisecond, "the delay set")
	rate    = flag.String("rate", "10mbit", "the rate set (mnet's and tc's units)")
	rounds  = flag.Int("n", 3, "rounds, interleaved")
	size    = flag.Int("size", 100, "frame size in the delay test")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "impairbench:", err)
		os.Exit(1)
	}
}

// path is one way frames cross: send writes one frame, recv reads one
// (false when it is closed), set applies an impairment ("" for none).
type path struct {
	name string
	send func([]byte) error
	recv func([]byte) (int, error)
	set  func(string) error
}

func run() error {
	dir, err := os.MkdirTemp("", "impairbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	cmd := exec.Command(*mnetBin, "mount", "--state", "", "--vde-dir", filepath.Join(dir, "vde"), mnt)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		exec.Command("umount", "-l", mnt).Run()
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(mnt, "families")); err == nil {
			break
		}
		if i > 500 {
			return fmt.Errorf("mnet did not mount:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	m, err := mnetPath(mnt)
	if err != nil {
		return err
	}
	paths := []*path{m}
	veth, why := vethPath()
	if veth != nil {
		defer veth.set("cleanup")
		paths = append(paths, veth)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("impairbench: %d frames/s of %d B, delay %v, rate %s, %v windows, %d rounds; load %s",
		*pps, *size, *delay, *rate, *dur, *rounds, load)
	if veth == nil {
		fmt.Printf("netem: unavailable: %s\n", why)
	}
	bps, err := rateBits(*rate)
	if err != nil {
		return err
	}
	for r := 1; r <= *rounds; r++ {
		for _, p := range paths {
			for _, d := range []time.Duration{0, *delay} {
				spec := ""
				if d > 0 {
					spec = "delay " + d.String()
				}
				if err := p.set(spec); err != nil {
					return fmt.Errorf("%s: %s: %v", p.name, spec, err)
				}
				drain(p)
				lat, lost := measureDelay(p)
				within := 0
				dev := make([]float64, len(lat))
				for i, l := range lat {
					dev[i] = float64(l-d) / 1e6
					if l-d <= time.Millisecond && d-l <= time.Millisecond {
						within++
					}
				}
				slices.Sort(dev)
				share := 0.0
				if len(lat) > 0 {
					share = 100 * float64(within) / float64(len(lat))
				}
				fmt.Printf("round %d %-5s delay %-5v frames %5d lost %3d  within 1ms %6.2f%%  deviation ms: median %+.3f p1 %+.3f p99 %+.3f max %+.3f\n",
					r, p.name, d, len(lat), lost, share, pct(dev, 50), pct(dev, 1), pct(dev, 99), pct(dev, 100))
			}
			if err := p.set("rate " + *rate); err != nil {
				return fmt.Errorf("%s: rate: %v", p.name, err)
			}
			got := measureRate(p, bps)
			fmt.Printf("round %d %-5s rate %s delivered %.3f Mbit/s = %.4f of R\n", r, p.name, *rate, got/1e6, got/float64(bps))
			p.set("")
			drain(p) // what the rate left waiting, let go by off
		}
	}
	return nil
}

// drain reads what is left until nothing comes for a while.
func drain(p *path) {
	buf := make([]byte, 70000)
	for {
		if _, err := p.recv(buf); err != nil {
			return
		}
	}
}

func pct(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	i := (len(v) - 1) * p / 100
	return v[i]
}

func rateBits(s string) (uint64, error) {
	for _, u := range []struct {
		n string
		m uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if v, ok := strings.CutSuffix(s, u.n); ok {
			x, err := strconv.ParseUint(v, 10, 64)
			return x * u.m, err
		}
	}
	return 0, fmt.Errorf("rate %q: want N(bit|kbit|mbit|gbit)", s)
}

// frame is a broadcast frame of n bytes carrying a magic, a send time and
// a sequence number.
func frame(n int, seq uint64) []byte {
	f := make([]byte, max(n, 40))
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	copy(f[14:], "IMPB")
	binary.BigEndian.PutUint64(f[18:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(f[26:], seq)
	return f
}

// measureDelay sends pps frames a second for dur and returns the delay
// of each that arrived (and how many did not).
func measureDelay(p *path) (lat []time.Duration, lost int) {
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		total := int64(*pps) * int64(*dur/time.Millisecond) / 1000
		for i := int64(0); i < total; i++ {
			due := start.Add(time.Duration(i) * time.Second / time.Duration(*pps))
			if w := time.Until(due); w > 0 {
				time.Sleep(w)
			}
			if p.send(frame(*size, uint64(i))) == nil {
				sent.Add(1)
			}
		}
	}()
	buf := make([]byte, 70000)
	end := time.Time{}
	for {
		select {
		case <-done:
			if end.IsZero() {
				end = time.Now().Add(*delay + time.Second)
			}
		default:
		}
		if !end.IsZero() && time.Now().After(end) {
			break
		}
		n, err := p.recv(buf)
		if err != nil || n < 34 || string(buf[14:18]) != "IMPB" {
			continue
		}
		sentAt := int64(binary.BigEndian.Uint64(buf[18:]))
		lat = append(lat, time.Duration(time.Now().UnixNano()-sentAt))
	}
	return lat, int(sent.Load()) - len(lat)
}

// measureRate offers 1.5 times bps in 1250-byte frames, and returns what
// arrives a second over dur, counted once the wait queue is full.
func measureRate(p *path, bps uint64) float64 {
	const fsize = 1250
	interval := time.Duration(float64(fsize*8) / (1.5 * float64(bps)) * float64(time.Second))
	stop := make(chan struct{})
	go func() {
		start := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
				time.Sleep(w)
			}
			p.send(frame(fsize, uint64(i)))
		}
	}()
	defer close(stop)
	buf := make([]byte, 70000)
	warm := time.Now().Add(time.Second + time.Duration(float64(1000*fsize*8)/float64(bps)*float64(time.Second)))
	var bytes int
	var first, last time.Time
	giveUp := time.Now().Add(*dur + time.Minute)
	for time.Now().Before(giveUp) {
		n, err := p.recv(buf)
		if err != nil {
			continue
		}
		now := time.Now()
		if now.Before(warm) {
			continue
		}
		if first.IsZero() {
			first = now // counted from the end of this frame
			continue
		}
		bytes += n
		last = now
		if last.Sub(first) >= *dur {
			break
		}
	}
	if last.IsZero() {
		return 0
	}
	return float64(bytes*8) / last.Sub(first).Seconds()
}

// mnetPath is a network with a writer and a reader port; impairments are
// set on the reader's port.
func mnetPath(mnt string) (*path, error) {
	net := filepath.Join(mnt, "ipn", "impb")
	if err := os.Mkdir(net, 0o700); err != nil {
		return nil, err
	}
	w, err := unix.Open(filepath.Join(net, "data"), unix.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	r, err := unix.Open(filepath.Join(net, "data"), unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	ports, _ := os.ReadFile(filepath.Join(net, "ports"))
	ref := ""
	for l := range strings.SplitSeq(string(ports), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == "r" {
			ref = "#" + f[0]
		}
	}
	if ref == "" {
		return nil, fmt.Errorf("no reader port in\n%s", ports)
	}
	ctl := func(s string) error { return os.WriteFile(filepath.Join(net, "ctl"), []byte(s), 0) }
	// A reader the machine holds back must not lose frames to its queue:
	// what is measured is the impairment.
	if err := ctl("qlen 65536"); err != nil {
		return nil, err
	}
	// A deadline on the reader: SO_RCVTIMEO does not exist for a file,
	// so recv polls.
	recv := func(b []byte) (int, error) {
		fds := []unix.PollFd{{Fd: int32(r), Events: unix.POLLIN}}
		if k, err := unix.Poll(fds, 100); err != nil || k == 0 {
			return 0, errors.New("timeout")
		}
		return unix.Read(r, b)
	}
	return &path{name: "mnet", send: func(b []byte) error { _, err := unix.Write(w, b); return err }, recv: recv,
		set: func(s string) error {
			ctl("impair " + ref + " off")
			if s == "" {
				return nil
			}
			return ctl("impair " + ref + " " + s)
		}}, nil
}

// vethPath is a veth pair whose A end has a netem qdisc, frames sent on
// A and read on B with packet sockets; nil and why if netem is missing.
func vethPath() (*path, string) {
	a, b := fmt.Sprintf("impb%da", os.Getpid()%10000), fmt.Sprintf("impb%db", os.Getpid()%10000)
	if out, err := exec.Command("ip", "link", "add", a, "type", "veth", "peer", "name", b).CombinedOutput(); err != nil {
		return nil, fmt.Sprintf("veth: %v: %s", err, out)
	}
	cleanup := func() { exec.Command("ip", "link", "del", a).Run() }
	exec.Command("ip", "link", "set", a, "up").Run()
	exec.Command("ip", "link", "set", b, "up").Run()
	var why []string
	if out, err := exec.Command("modprobe", "sch_netem").CombinedOutput(); err != nil {
		why = append(why, fmt.Sprintf("`modprobe sch_netem`: %v: %s", err, strings.TrimSpace(string(out))))
	}
	if out, err := exec.Command("tc", "qdisc", "add", "dev", a, "root", "netem", "delay", "1ms").CombinedOutput(); err != nil {
		why = append(why, fmt.Sprintf("`tc qdisc add dev %s root netem delay 1ms`: %v: %s", a, err, strings.TrimSpace(string(out))))
		cleanup()
		return nil, strings.Join(why, "; ")
	}
	sock := func(ifname string) (int, error) {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return -1, err
		}
		ifi, err := netInterfaceIndex(ifname)
		if err != nil {
			return -1, err
		}
		return fd, unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi})
	}
	sa, err := sock(a)
	if err != nil {
		cleanup()
		return nil, err.Error()
	}
	sb, err := sock(b)
	if err != nil {
		cleanup()
		return nil, err.Error()
	}
	unix.SetsockoptTimeval(sb, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	return &path{name: "netem",
		send: func(f []byte) error { _, err := unix.Write(sa, f); return err },
		recv: func(f []byte) (int, error) { return unix.Read(sb, f) },
		set: func(s string) error {
			exec.Command("tc", "qdisc", "del", "dev", a, "root").Run()
			switch s {
			case "cleanup":
				unix.Close(sa)
				unix.Close(sb)
				cleanup()
				return nil
			case "":
				return nil
			}
			args := append([]string{"qdisc", "add", "dev", a, "root", "netem"}, strings.Fields(s)...)
			if strings.HasPrefix(s, "rate") {
				args = append(args, "limit", "1000")
			}
			if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}}, ""
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func netInterfaceIndex(name string) (int, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/ifindex")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
