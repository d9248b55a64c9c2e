// Command udpbench measures how many UDP datagrams per second leave
// through write(2) on an open inet/udp/127.0.0.1/PORT file, against the
// same write(2) loop on a plain connected UDP socket, in the same run.
//
//	go build -o /tmp/mnet ./cmd/mnet
//	go run ./bench/udpbench -mnet /tmp/mnet      # as root
//
// mnet runs as its own daemon process on a fresh mount point. One sink
// socket on 127.0.0.1 drains every datagram on its own thread and counts
// them. Each scenario has one writer, a goroutine locked to its thread, doing
// one unix.Write per datagram for the window. See bench/README.md.
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
	dur     = flag.Duration("d", 3*time.Second, "measuring window of each scenario")
	rounds  = flag.Int("n", 3, "rounds: every scenario runs n times, interleaved; the median is shown")
	sizes   = flag.String("sizes", "64,1400", "datagram sizes in bytes, comma-separated")
)

const warmup = 300 * time.Millisecond

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "udpbench:", err)
		os.Exit(1)
	}
}

// result is one scenario's window.
type result struct {
	sent, recv float64 // datagrams/s written, and received by the sink
}

func run() error {
	var szs []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 65507 {
			return fmt.Errorf("bad size %q", f)
		}
		szs = append(szs, n)
	}
	dir, err := os.MkdirTemp("", "udpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
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
		os.RemoveAll(dir)
		os.Exit(1)
	}()
	defer d.stop()

	sink, err := newSink()
	if err != nil {
		return err
	}
	defer unix.Close(sink.fd)
	go sink.drain()
	file := filepath.Join(mnt, "inet", "udp", "127.0.0.1", strconv.Itoa(sink.port))
	// The FUSE write round trip alone: an IPN network with no other port
	// drops every packet, so a write there costs the request and nothing
	// more.
	if err := os.Mkdir(filepath.Join(mnt, "ipn", "udpbench"), 0o700); err != nil {
		return err
	}
	ipnData := filepath.Join(mnt, "ipn", "udpbench", "data")
	fmt.Printf("udpbench: %d round(s) of %v per scenario, sink 127.0.0.1:%d, %d CPUs\n",
		*rounds, *dur, sink.port, runtime.NumCPU())

	res := map[string][]result{}
	key := func(kind string, size int) string { return fmt.Sprintf("%s/%d", kind, size) }
	for r := range *rounds {
		for _, size := range szs {
			for _, kind := range []string{"socket", "mnet", "ipn"} {
				var fd int
				switch kind {
				case "mnet":
					fd, err = unix.Open(file, unix.O_WRONLY, 0)
				case "ipn":
					fd, err = unix.Open(ipnData, unix.O_WRONLY, 0)
				default:
					fd, err = plainSocket(sink.port)
				}
				if err != nil {
					return fmt.Errorf("%s: %v", kind, err)
				}
				x, err := measure(fd, size, sink)
				unix.Close(fd)
				if err != nil {
					return fmt.Errorf("%s %d B: %v", kind, size, err)
				}
				res[key(kind, size)] = append(res[key(kind, size)], x)
				fmt.Printf("  round %d %-6s %5d B: %9.0f sent/s %9.0f received/s\n", r+1, kind, size, x.sent, x.recv)
			}
		}
	}
	fmt.Printf("\n| path | size | written/s | received/s | over plain socket | rounds |\n|---|---|---|---|---|---|\n")
	for _, size := range szs {
		sock := median(res[key("socket", size)])
		m := median(res[key("mnet", size)])
		var ratios []string
		for i := range res[key("mnet", size)] {
			ratios = append(ratios, fmt.Sprintf("%.3f", res[key("mnet", size)][i].sent/res[key("socket", size)][i].sent))
		}
		fmt.Printf("| plain socket | %d | %.0f | %.0f | | |\n", size, sock.sent, sock.recv)
		fmt.Printf("| inet/udp file | %d | %.0f | %.0f | **%.3f** | %s |\n", size, m.sent, m.recv, m.sent/sock.sent, strings.Join(ratios, " "))
		ip := median(res[key("ipn", size)])
		fmt.Printf("| ipn data, no receiver (FUSE write alone) | %d | %.0f | | %.3f | |\n", size, ip.sent, ip.sent/sock.sent)
		fmt.Printf("| inet/udp file over FUSE write alone | %d | | | %.3f | |\n", size, m.sent/ip.sent)
	}
	if !d.stop() {
		return errors.New("mnet did not exit 0")
	}
	return nil
}

func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.sent < b.sent:
			return -1
		case a.sent > b.sent:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// measure writes size-byte datagrams to fd as fast as it can: a warm-up,
// then the window, counting completed writes and what the sink received.
func measure(fd, size int, s *sink) (result, error) {
	payload := make([]byte, size)
	var stop atomic.Bool
	var sent atomic.Int64
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for !stop.Load() {
			if _, err := unix.Write(fd, payload); err != nil {
				if err == unix.EINTR || err == unix.ENOBUFS || err == unix.EAGAIN {
					continue
				}
				errc <- err
				return
			}
			sent.Add(1)
		}
		errc <- nil
	}()
	time.Sleep(warmup)
	s0, r0, t0 := sent.Load(), s.count.Load(), time.Now()
	time.Sleep(*dur)
	s1, r1, el := sent.Load(), s.count.Load(), time.Since(t0)
	stop.Store(true)
	if err := <-errc; err != nil {
		return result{}, err
	}
	time.Sleep(100 * time.Millisecond) // let the sink drain before the next scenario
	sec := el.Seconds()
	return result{sent: float64(s1-s0) / sec, recv: float64(r1-r0) / sec}, nil
}

// sink drains datagrams on 127.0.0.1 and counts them.
type sink struct {
	fd    int
	port  int
	count atomic.Int64
}

func newSink() (*sink, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &sink{fd: fd, port: sa.(*unix.SockaddrInet4).Port}, nil
}

func (s *sink) drain() {
	runtime.LockOSThread()
	buf := make([]byte, 65536)
	for {
		if _, err := unix.Read(s.fd, buf); err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		s.count.Add(1)
	}
}

// plainSocket is what a program would do without mnet: a UDP socket
// connected to the sink.
func plainSocket(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// daemon is the mnet process under test.
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
		if _, err := os.Stat(filepath.Join(mnt, "inet")); err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("mnet exited: %v", d.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, errors.New("mnet did not mount within 10 s (has it the inet family?)")
		}
	}
}

// stop ends the daemon (SIGTERM, SIGKILL after 5 s) and reports a clean exit.
func (d *daemon) stop() bool {
	select {
	case <-d.done:
		return d.err == nil
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		unix.Unmount(d.mnt, unix.MNT_DETACH)
		return false
	}
	return d.err == nil
}
