// SPDX-License-Identifier: BSD-3-Clause

// Command hostbench measures the userspace host of an IPN network against
// the kernel, in the same run, with interleaved rounds:
//
//   - datagrams/s written to ipn/NET/udp/PEER/PORT (the userspace host,
//     then a TAP) against inet/udp/PEER/PORT (a kernel socket, then a
//     veth), both to one sink socket in a namespace;
//
//   - ping RTT from that namespace to the userspace host's address against
//     a kernel host (a second namespace behind a TAP) on the same network.
//
//     go build -o /tmp/mnet ./cmd/mnet
//     go run ./bench/hostbench -mnet /tmp/mnet      # as root
//
// Addresses: 198.18.200.0/24 (the network) and 198.18.201.0/24 (the veth),
// inside namespaces this program makes and deletes. See bench/README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
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
	dur     = flag.Duration("d", 3*time.Second, "measuring window of each throughput scenario")
	rounds  = flag.Int("n", 3, "rounds, interleaved; medians are shown")
	size    = flag.Int("size", 64, "datagram payload in bytes")
	pings   = flag.Int("pings", 200, "pings per RTT scenario per round")
)

const (
	port    = 9999
	hostV4  = "198.18.200.1"
	peerV4  = "198.18.200.2"
	kernV4  = "198.18.200.3"
	vethV4  = "198.18.201.1"
	vethPV4 = "198.18.201.2"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hostbench:", err)
		os.Exit(1)
	}
}

func sh(script string) error {
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", script, err, out)
	}
	return nil
}

func run() error {
	dir, err := os.MkdirTemp("", "hostbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tag := fmt.Sprintf("hb%d", os.Getpid()%100000)
	nsPeer, nsKern := tag+"p", tag+"k"
	tapPeer, tapKern, vethA, vethB := tag+"t", tag+"u", tag+"a", tag+"b"
	cleanup := func() {
		exec.Command("ip", "netns", "del", nsPeer).Run()
		exec.Command("ip", "netns", "del", nsKern).Run()
		exec.Command("ip", "link", "del", vethA).Run()
	}
	mnt := filepath.Join(dir, "mnt")
	d, err := startDaemon(mnt)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		d.stop()
		cleanup()
		os.RemoveAll(dir)
		os.Exit(1)
	}()
	defer func() { d.stop(); cleanup() }()

	net := filepath.Join(mnt, "ipn", tag)
	setup := fmt.Sprintf(`set -e
mkdir %[1]s
echo 'policy switch' > %[1]s/ctl
echo 'addr %[2]s/24' > %[1]s/ctl
echo 'tap %[3]s' > %[1]s/ctl
echo 'tap %[4]s' > %[1]s/ctl
ip netns add %[5]s; ip netns add %[6]s
ip link set %[3]s netns %[5]s; ip -n %[5]s addr add %[7]s/24 dev %[3]s; ip -n %[5]s link set %[3]s up
ip link set %[4]s netns %[6]s; ip -n %[6]s addr add %[8]s/24 dev %[4]s; ip -n %[6]s link set %[4]s up
ip link add %[9]s type veth peer name %[10]s
ip link set %[10]s netns %[5]s; ip -n %[5]s addr add %[11]s/24 dev %[10]s; ip -n %[5]s link set %[10]s up
ip addr add %[12]s/24 dev %[9]s; ip link set %[9]s up
ip -n %[5]s link set lo up
ip netns exec %[5]s ping -c 1 -W 2 %[2]s >/dev/null
ip netns exec %[5]s ping -c 1 -W 2 %[8]s >/dev/null
ping -c 1 -W 2 %[11]s >/dev/null
`, net, hostV4, tapPeer, tapKern, nsPeer, nsKern, peerV4, kernV4, vethA, vethB, vethPV4, vethV4)
	if err := sh(setup); err != nil {
		return err
	}
	sink, err := sinkIn(nsPeer)
	if err != nil {
		return err
	}
	var received atomic.Uint64
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := unix.Read(sink, buf); err != nil && err != unix.EINTR {
				return
			}
			received.Add(1)
		}
	}()

	type scen struct {
		name string
		path string
	}
	scens := []scen{
		{"userspace host (ipn/" + tag + "/udp, TAP)", filepath.Join(net, "udp", peerV4, strconv.Itoa(port))},
		{"kernel (inet/udp, veth)", filepath.Join(mnt, "inet", "udp", vethPV4, strconv.Itoa(port))},
	}
	sent := make([][]float64, len(scens))
	recv := make([][]float64, len(scens))
	rttHost, rttKern := []float64{}, []float64{}
	for r := 0; r < *rounds; r++ {
		for i, s := range scens {
			tx, rx, err := blast(s.path, &received)
			if err != nil {
				return fmt.Errorf("%s: %v", s.name, err)
			}
			sent[i] = append(sent[i], tx)
			recv[i] = append(recv[i], rx)
		}
		h, err := rtt(nsPeer, hostV4)
		if err != nil {
			return err
		}
		k, err := rtt(nsPeer, kernV4)
		if err != nil {
			return err
		}
		rttHost, rttKern = append(rttHost, h), append(rttKern, k)
	}
	fmt.Printf("hostbench: %d rounds, %v windows, %d-byte datagrams, %s\n", *rounds, *dur, *size, runtime.GOARCH)
	for i, s := range scens {
		fmt.Printf("  %-45s sent %9.0f/s  received %9.0f/s  (rounds sent: %s)\n", s.name, median(sent[i]), median(recv[i]), list(sent[i]))
	}
	cost := median(ratios(sent[1], sent[0]))
	fmt.Printf("  cost per datagram, userspace host / kernel: %.2fx (median of per-round ratios)\n", cost)
	fmt.Printf("  ping RTT avg: userspace host %.1f us, kernel host %.1f us: %.2fx (rounds: %s / %s)\n",
		median(rttHost), median(rttKern), median(ratios(rttHost, rttKern)), list(rttHost), list(rttKern))
	return nil
}

// ratios are a[i]/b[i], per round.
func ratios(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func list(v []float64) string {
	var out []string
	for _, x := range v {
		out = append(out, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(out, ",")
}

// sinkIn makes a UDP socket bound to 0.0.0.0:port inside namespace ns,
// with a large receive buffer; the socket stays there whatever thread
// reads it.
func sinkIn(ns string) (int, error) {
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies in ns with the goroutine
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ch <- res{-1, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			ch <- res{-1, err}
			return
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
			ch <- res{-1, err}
			return
		}
		ch <- res{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

// blast writes datagrams to path for the window from one thread and
// returns the rates sent and received by the sink.
func blast(path string, received *atomic.Uint64) (float64, float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd, err := unix.Open(path, unix.O_WRONLY, 0)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(fd)
	buf := make([]byte, *size)
	warm := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(warm) {
		unix.Write(fd, buf)
	}
	time.Sleep(100 * time.Millisecond)
	r0 := received.Load()
	start := time.Now()
	end := start.Add(*dur)
	n := 0
	for ; ; n++ {
		if n%64 == 0 && time.Now().After(end) {
			break
		}
		if _, err := unix.Write(fd, buf); err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
			return 0, 0, err
		}
	}
	el := time.Since(start).Seconds()
	time.Sleep(200 * time.Millisecond) // what is in flight arrives
	return float64(n) / el, float64(received.Load()-r0) / el, nil
}

// rtt pings addr from ns and returns the average RTT in microseconds.
func rtt(ns, addr string) (float64, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-q", "-i", "0.005", "-c", strconv.Itoa(*pings), addr).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ping %s: %v\n%s", addr, err, out)
	}
	// rtt min/avg/max/mdev = 0.031/0.045/0.101/0.010 ms
	s := string(out)
	i := strings.Index(s, " = ")
	if i < 0 {
		return 0, fmt.Errorf("ping output: %s", s)
	}
	f := strings.Split(strings.Fields(s[i+3:])[0], "/")
	avg, err := strconv.ParseFloat(f[1], 64)
	return avg * 1000, err
}

type daemon struct {
	cmd  *exec.Cmd
	mnt  string
	done chan struct{}
	err  error
}

func startDaemon(mnt string) (*daemon, error) {
	cmd := exec.Command(*mnetBin, "mount", "--state", "", mnt)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, mnt: mnt, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(mnt, "ipn")); err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("mnet exited: %v", d.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, errors.New("mnet did not mount within 10 s")
		}
	}
}

// stop ends the daemon (SIGTERM, SIGKILL after 5 s).
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		unix.Unmount(d.mnt, unix.MNT_DETACH)
	}
}
