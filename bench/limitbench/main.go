// SPDX-License-Identifier: BSD-3-Clause

// Command limitbench replays issue 18's attacks on the daemon's shared
// limits and reports what they cost it and what each limit refused.
//
//	go build -o /tmp/mnet ./cmd/mnet
//	go run ./bench/limitbench -mnet /tmp/mnet      # as root
//
// The flood: an unprivileged uid makes a network with qlen 65536, opens two
// readers that never read and writes packets of -size bytes as fast as it
// can for -d; the daemon's RSS is sampled throughout (peak), then the
// readers close, the network is removed, and RSS is sampled for -after
// (the figure at the end, and when it first came within 2x of idle).
// Then, unless -flood-only, the limits: one uid makes networks, mhost
// names, mhost endpoints and sockets (inet, then mhost/any) until refused;
// -uids more uids fill the global limit of networks; root then makes a
// network and opens a socket. See bench/README.md.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var (
	mnetBin   = flag.String("mnet", "/tmp/mnet", "mnet binary (go build -o /tmp/mnet ./cmd/mnet)")
	size      = flag.Int("size", 1500, "flood packet size in bytes")
	dur       = flag.Duration("d", 5*time.Second, "flood duration")
	after     = flag.Duration("after", 60*time.Second, "how long RSS is watched after the flood")
	uid       = flag.Int("uid", 60100, "the unprivileged uid of the attacks")
	uids      = flag.Int("uids", 16, "uids filling the global limit of networks")
	floodOnly = flag.Bool("flood-only", false, "the flood alone, not the limits")
	daemonArg = flag.String("args", "", "more `mnet mount` flags, space-separated")
	child     = flag.String("child", "", "internal: run one attack step as the current uid")
)

func main() {
	flag.Parse()
	if *child != "" {
		os.Exit(runChild(*child, flag.Args()))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "limitbench:", err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := os.MkdirTemp("", "limitbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	mnt := filepath.Join(dir, "mnt")
	args := []string{"mount", "--state", "", "--vde-dir", filepath.Join(dir, "vde")}
	args = append(args, strings.Fields(*daemonArg)...)
	cmd := exec.Command(*mnetBin, append(args, mnt)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(mnt, "families")); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			return fmt.Errorf("mnet did not mount:\n%s", log.String())
		}
	}
	pid := cmd.Process.Pid
	time.Sleep(2 * time.Second)
	idle := rss(pid)
	fmt.Printf("mnet %s\nidle RSS %.1f MB\n", strings.Join(cmd.Args[1:], " "), mb(idle))

	// The flood, as the unprivileged uid.
	net := filepath.Join(mnt, "ipn", "flood")
	fl := asUid(*uid, "flood", net, strconv.Itoa(*size), dur.String())
	stdin, _ := fl.StdinPipe()
	out, _ := fl.StdoutPipe()
	fl.Stderr = os.Stderr
	if err := fl.Start(); err != nil {
		return err
	}
	peak := idle
	lines := bufio.NewScanner(out)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				peak = max(peak, rss(pid))
			}
		}
	}()
	if !lines.Scan() { // "sent N" once the flood is over
		close(stop)
		return fmt.Errorf("flood: no report")
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	peak = max(peak, rss(pid))
	stats := readFile(filepath.Join(net, "stats"))
	stdin.Close() // the readers close
	fl.Wait()
	if err := os.Remove(net); err != nil {
		fmt.Printf("rmdir %s: %v\n", net, err)
	}
	fmt.Printf("flood: uid %d, qlen 65536, 2 readers that never read, %d-byte packets for %v: %s\n",
		*uid, *size, *dur, lines.Text())
	fmt.Printf("  stats: %s\n", strings.Join(strings.Fields(stats), " "))
	fmt.Printf("  RSS peak %.1f MB\n", mb(peak))
	start := time.Now()
	within := time.Duration(-1)
	for time.Since(start) < *after {
		time.Sleep(time.Second)
		r := rss(pid)
		if within < 0 && r <= 2*idle {
			within = time.Since(start)
		}
	}
	fmt.Printf("  RSS %v after the readers closed and rmdir: %.1f MB (%.2fx idle)", *after, mb(rss(pid)), float64(rss(pid))/float64(idle))
	if within >= 0 {
		fmt.Printf("; within 2x idle after %v", within.Round(time.Second))
	}
	fmt.Println()
	fmt.Printf("  refusals logged: %d line(s), e.g. %s\n", strings.Count(log.String(), "limit reached"), firstLine(log.String(), "limit reached"))
	if *floodOnly {
		return nil
	}
	return limits(mnt, &log)
}

// limits fills each limit as one uid, then the global limit of networks
// as many, and checks that root still gets a network and a socket.
func limits(mnt string, log *bytes.Buffer) error {
	for _, step := range []string{"networks", "hosts", "endpoints", "sockets"} {
		out, _ := asUid(*uid, step, mnt).CombinedOutput()
		fmt.Printf("uid %d %s: %s", *uid, step, out)
	}
	total := 0
	for _, e := range readDir(filepath.Join(mnt, "ipn")) {
		if strings.HasPrefix(e, fmt.Sprintf("u%d-", *uid)) {
			total++
		}
	}
	for i := range *uids {
		out, _ := asUid(*uid+1+i, "networks", mnt).CombinedOutput()
		f := strings.Fields(string(out))
		if len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			total += n
		}
		if i == *uids-1 {
			fmt.Printf("uid %d and %d more made %d networks in all; the last: %s", *uid, *uids, total, out)
		}
	}
	rootNet := filepath.Join(mnt, "ipn", "root-after-users")
	if err := os.Mkdir(rootNet, 0o755); err != nil {
		fmt.Printf("root mkdir after the users: %v\n", err)
	} else {
		fmt.Println("root mkdir after the users: ok")
	}
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err == nil {
		defer ln.Close()
		p := ln.LocalAddr().(*net.UDPAddr).Port
		f, err := os.OpenFile(filepath.Join(mnt, "inet", "udp", "127.0.0.1", strconv.Itoa(p)), os.O_RDWR, 0)
		if err != nil {
			fmt.Printf("root socket after the users: %v\n", err)
		} else {
			fmt.Println("root socket after the users: ok")
			f.Close()
		}
	}
	fmt.Printf("refusal lines in the log: %d\n", strings.Count(log.String(), "limit reached"))
	for _, res := range []string{"networks", "mhost-hosts", "mhost-endpoints", "sockets", "queued-bytes"} {
		if l := firstLine(log.String(), "resource="+res); l != "" {
			fmt.Printf("  %s\n", l)
		}
	}
	return nil
}

// asUid runs this program's step as uid (gid the same), no groups, no
// capabilities.
func asUid(uid int, step string, args ...string) *exec.Cmd {
	self, _ := os.Executable()
	c := exec.Command(self, append([]string{"-child", step}, args...)...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	return c
}

func runChild(step string, args []string) int {
	switch step {
	case "flood":
		return flood(args[0], args[1], args[2])
	case "networks":
		n, err := fill(func(i int) error {
			return os.Mkdir(filepath.Join(args[0], "ipn", fmt.Sprintf("u%d-%d", os.Getuid(), i)), 0o755)
		})
		fmt.Printf("%d made, then %v\n", n, err)
	case "hosts":
		n, err := fill(func(i int) error {
			return os.Mkdir(filepath.Join(args[0], "mhost", fmt.Sprintf("u%d-%d", os.Getuid(), i)), 0o755)
		})
		fmt.Printf("%d made, then %v\n", n, err)
	case "endpoints":
		h := filepath.Join(args[0], "mhost", fmt.Sprintf("u%d-0", os.Getuid())) // made by "hosts"
		var fds []int
		n, err := fill(func(i int) error {
			fd, err := unix.Open(filepath.Join(h, "udp", strconv.Itoa(1000+i)), unix.O_RDWR, 0)
			fds = append(fds, fd)
			return err
		})
		fmt.Printf("%d open, then %v\n", n, err)
		for _, fd := range fds {
			unix.Close(fd)
		}
	case "sockets":
		ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		p := ln.LocalAddr().(*net.UDPAddr).Port
		var fds []int
		n, err := fill(func(i int) error {
			fd, err := unix.Open(filepath.Join(args[0], "inet", "udp", "127.0.0.1", strconv.Itoa(p)), unix.O_RDWR, 0)
			fds = append(fds, fd)
			return err
		})
		_, anyErr := unix.Open(filepath.Join(args[0], "mhost", "any", "udp", "40999"), unix.O_RDWR, 0)
		fmt.Printf("%d inet sockets open, then %v; then mhost/any/udp: %v\n", n, err, anyErr)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	return 0
}

// fill calls mk until it fails (or 100000 times), returning how many
// succeeded and the error.
func fill(mk func(i int) error) (int, error) {
	for i := range 100000 {
		for {
			err := mk(i)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return i, err
			}
			break
		}
	}
	return 100000, nil
}

// flood makes the network, opens two readers that never read and writes
// as fast as it can; it reports, then holds the readers until its
// standard input closes.
func flood(net, sizeArg, durArg string) int {
	if err := os.Mkdir(net, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(net, "ctl"), []byte("qlen 65536\n"), 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var readers []int
	for range 2 {
		fd, err := unix.Open(filepath.Join(net, "data"), unix.O_RDONLY, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		readers = append(readers, fd)
	}
	w, err := unix.Open(filepath.Join(net, "data"), unix.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	n, _ := strconv.Atoi(sizeArg)
	d, _ := time.ParseDuration(durArg)
	pkt := make([]byte, n)
	sent, fails := 0, 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		if _, err := unix.Write(w, pkt); err != nil {
			fails++
			continue
		}
		sent++
	}
	fmt.Printf("%d packets written (%d failed writes)\n", sent, fails)
	os.Stdin.Read(make([]byte, 1))
	unix.Close(w)
	for _, fd := range readers {
		unix.Close(fd)
	}
	return 0
}

// rss is pid's resident set in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mb(b int64) float64 { return float64(b) / 1e6 }

func readDir(p string) []string {
	ents, _ := os.ReadDir(p)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func firstLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
