// SPDX-License-Identifier: BSD-3-Clause

// Command udpbench measures how many UDP datagrams per second leave
// through write(2) on an open inet/udp/127.0.0.1/PORT file, against the
// same write(2) loop on a plain connected UDP socket, in the same run; and
// how many TCP connections per second open(2) of inet/tcp/127.0.0.1/PORT
// makes (open, then close), against connect(2) on plain sockets.
//
//	go build -o /tmp/mnet ./cmd/mnet
//	go run ./bench/udpbench -mnet /tmp/mnet      # as root
//
// mnet runs as its own daemon process on a fresh mount point. One sink
// socket on 127.0.0.1 drains every datagram on its own thread and counts
// them; one listener accepts and closes every connection. Each scenario has
// one writer, a goroutine locked to its thread, doing one unix.Write per
// datagram (or one open and close per connection) for the window.
//
// The "-ns" scenarios run that thread inside another network namespace
// (made for the run, as `ip netns add`; a thread that entered it with
// setns is what `ip netns exec` gives a process, since mnet reads the
// namespace of the calling thread), with a sink and a listener of that
// namespace's own loopback: the path of a confined caller. With -old, a
// second daemon (an mnet binary from before confinement) serves the same
// host-namespace scenarios in the same rounds. See bench/README.md.
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
	oldBin  = flag.String("old", "", "an earlier mnet binary to compare with, in the same rounds (host namespace only)")
	withNS  = flag.Bool("netns", true, "also run every mnet scenario from a thread in another network namespace")
	withTCP = flag.Bool("tcp", true, "also measure TCP connections per second")
	withUDP = flag.Bool("udp", true, "measure UDP datagrams per second")
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
	sent, recv float64 // datagrams (or connections) per second, and received by the sink
}

// place is a network namespace with a sink and a listener on its loopback.
type place struct {
	nsfd  int // -1: the benchmark's own namespace
	sink  *sink
	lport int // the TCP listener's port
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
	var daemons []*daemon
	stopAll := func() bool {
		ok := true
		for _, d := range daemons {
			ok = d.stop() && ok
		}
		return ok
	}
	nsName := fmt.Sprintf("udpbench-%d", os.Getpid())
	cleanup := func() {
		stopAll()
		if *withNS {
			exec.Command("ip", "netns", "del", nsName).Run()
		}
		os.RemoveAll(dir)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cleanup()
		os.Exit(1)
	}()
	defer cleanup()

	mnt := filepath.Join(dir, "mnt")
	d, err := startDaemon(*mnetBin, mnt)
	if err != nil {
		return err
	}
	daemons = append(daemons, d)
	oldMnt := filepath.Join(dir, "old")
	if *oldBin != "" {
		od, err := startDaemon(*oldBin, oldMnt)
		if err != nil {
			return fmt.Errorf("-old: %v", err)
		}
		daemons = append(daemons, od)
	}

	host, err := newPlace(-1)
	if err != nil {
		return err
	}
	var away *place
	if *withNS {
		if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns add: %v %s", err, out)
		}
		if out, err := exec.Command("ip", "-n", nsName, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("ip link set lo up: %v %s", err, out)
		}
		nsfd, err := unix.Open("/run/netns/"+nsName, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if away, err = newPlace(nsfd); err != nil {
			return err
		}
	}
	// The FUSE write round trip alone: an IPN network with no other port
	// drops every packet, so a write there costs the request and nothing
	// more.
	if err := os.Mkdir(filepath.Join(mnt, "ipn", "udpbench"), 0o700); err != nil {
		return err
	}
	ipnData := filepath.Join(mnt, "ipn", "udpbench", "data")
	fmt.Printf("udpbench: %d round(s) of %v per scenario, %d CPUs\n", *rounds, *dur, runtime.NumCPU())

	// A scenario: where its writer runs, and what it opens.
	type scenario struct {
		name string
		at   *place
		open func(at *place) (int, error)
	}
	udpFile := func(m string) func(*place) (int, error) {
		return func(at *place) (int, error) {
			return unix.Open(filepath.Join(m, "inet", "udp", "127.0.0.1", strconv.Itoa(at.sink.port)), unix.O_WRONLY, 0)
		}
	}
	tcpFile := func(m string) func(*place) (int, error) {
		return func(at *place) (int, error) {
			return unix.Open(filepath.Join(m, "inet", "tcp", "127.0.0.1", strconv.Itoa(at.lport)), unix.O_RDWR, 0)
		}
	}
	udp := []scenario{
		{"socket", host, func(at *place) (int, error) { return plainSocket(unix.SOCK_DGRAM, at.sink.port) }},
		{"mnet", host, udpFile(mnt)},
	}
	tcp := []scenario{
		{"socket", host, func(at *place) (int, error) { return plainSocket(unix.SOCK_STREAM, at.lport) }},
		{"mnet", host, tcpFile(mnt)},
	}
	if away != nil {
		udp = append(udp, scenario{"mnet-ns", away, udpFile(mnt)}, scenario{"socket-ns", away, udp[0].open})
		tcp = append(tcp, scenario{"mnet-ns", away, tcpFile(mnt)}, scenario{"socket-ns", away, tcp[0].open})
	}
	if *oldBin != "" {
		udp = append(udp, scenario{"old", host, udpFile(oldMnt)})
		tcp = append(tcp, scenario{"old", host, tcpFile(oldMnt)})
	}
	udp = append(udp, scenario{"ipn", host, func(*place) (int, error) { return unix.Open(ipnData, unix.O_WRONLY, 0) }})
	if !*withTCP {
		tcp = nil
	}
	if !*withUDP {
		udp, szs = nil, nil
	}

	res := map[string][]result{}
	key := func(kind string, size int) string { return fmt.Sprintf("%s/%d", kind, size) }
	for r := range *rounds {
		// Every other round runs the scenarios in reverse order, so that
		// a drift in the machine's load weighs on all alike.
		if r > 0 {
			slices.Reverse(udp)
			slices.Reverse(tcp)
		}
		for _, size := range szs {
			for _, sc := range udp {
				x, err := measure(sc.at, func() (int, error) { return sc.open(sc.at) }, size)
				if err != nil {
					return fmt.Errorf("%s %d B: %v", sc.name, size, err)
				}
				res[key(sc.name, size)] = append(res[key(sc.name, size)], x)
				fmt.Printf("  round %d %-9s %5d B: %9.0f sent/s %9.0f received/s\n", r+1, sc.name, size, x.sent, x.recv)
			}
		}
		for _, sc := range tcp {
			x, err := measureConnects(sc.at, func() (int, error) { return sc.open(sc.at) })
			if err != nil {
				return fmt.Errorf("tcp %s: %v", sc.name, err)
			}
			res[key("tcp-"+sc.name, 0)] = append(res[key("tcp-"+sc.name, 0)], x)
			fmt.Printf("  round %d tcp %-9s: %9.0f connects/s\n", r+1, sc.name, x.sent)
		}
	}

	// ratio is the median of a's over b's in each round, with the rounds.
	ratio := func(a, b string) string {
		var rs []float64
		for i := range res[a] {
			rs = append(rs, res[a][i].sent/res[b][i].sent)
		}
		var txt []string
		for _, r := range rs {
			txt = append(txt, fmt.Sprintf("%.3f", r))
		}
		slices.Sort(rs)
		return fmt.Sprintf("**%.3f** (rounds %s)", rs[len(rs)/2], strings.Join(txt, " "))
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
	if len(szs) > 0 && (away != nil || *oldBin != "") {
		fmt.Printf("\n| comparison | UDP size | same-run ratio (median of rounds) |\n|---|---|---|\n")
		for _, size := range szs {
			if away != nil {
				fmt.Printf("| caller in another namespace over caller in the daemon's | %d | %s |\n", size, ratio(key("mnet-ns", size), key("mnet", size)))
			}
			if *oldBin != "" {
				fmt.Printf("| this mnet over the old one (host namespace) | %d | %s |\n", size, ratio(key("mnet", size), key("old", size)))
			}
		}
	}
	if len(tcp) > 0 {
		fmt.Printf("\n| TCP path | connects/s | |\n|---|---|---|\n")
		for _, name := range []string{"socket", "mnet", "mnet-ns", "socket-ns", "old"} {
			if rs := res[key("tcp-"+name, 0)]; len(rs) > 0 {
				fmt.Printf("| %s | %.0f | |\n", name, median(rs).sent)
			}
		}
		fmt.Printf("| mnet over plain socket | | %s |\n", ratio(key("tcp-mnet", 0), key("tcp-socket", 0)))
		if away != nil {
			fmt.Printf("| mnet, caller in another namespace over caller in the daemon's | | %s |\n", ratio(key("tcp-mnet-ns", 0), key("tcp-mnet", 0)))
			fmt.Printf("| (plain sockets: the other namespace over the benchmark's) | | %s |\n", ratio(key("tcp-socket-ns", 0), key("tcp-socket", 0)))
		}
		if *oldBin != "" {
			fmt.Printf("| this mnet over the old one | | %s |\n", ratio(key("tcp-mnet", 0), key("tcp-old", 0)))
		}
	}
	if !stopAll() {
		return errors.New("an mnet daemon did not exit 0")
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

// enter locks the calling goroutine to its thread and moves the thread
// into at's namespace. The thread never leaves it: the goroutine must end
// locked, and Go then ends the thread.
func enter(at *place) error {
	runtime.LockOSThread()
	if at.nsfd < 0 {
		return nil
	}
	return unix.Setns(at.nsfd, unix.CLONE_NEWNET)
}

// measure opens the file (or socket) on a thread in at's namespace and
// writes size-byte datagrams to it as fast as it can: a warm-up, then the
// window, counting completed writes and what at's sink received.
func measure(at *place, open func() (int, error), size int) (result, error) {
	payload := make([]byte, size)
	var stop atomic.Bool
	var sent atomic.Int64
	errc := make(chan error, 1)
	opened := make(chan error, 1)
	go func() {
		if err := enter(at); err != nil {
			opened <- err
			return
		}
		fd, err := open()
		opened <- err
		if err != nil {
			return
		}
		defer unix.Close(fd)
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
	if err := <-opened; err != nil {
		return result{}, err
	}
	s := at.sink
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

// measureConnects opens and closes connections to at's listener, one at a
// time, from a thread in at's namespace: a warm-up, then the window.
func measureConnects(at *place, open func() (int, error)) (result, error) {
	var stop atomic.Bool
	var done atomic.Int64
	errc := make(chan error, 1)
	go func() {
		if err := enter(at); err != nil {
			errc <- err
			return
		}
		for !stop.Load() {
			fd, err := open()
			if err != nil {
				if err == unix.EINTR {
					continue
				}
				errc <- err
				return
			}
			unix.Close(fd)
			done.Add(1)
		}
		errc <- nil
	}()
	time.Sleep(warmup)
	c0, t0 := done.Load(), time.Now()
	time.Sleep(*dur)
	c1, el := done.Load(), time.Since(t0)
	stop.Store(true)
	if err := <-errc; err != nil {
		return result{}, err
	}
	time.Sleep(300 * time.Millisecond) // closes (FUSE releases) settle
	return result{sent: float64(c1-c0) / el.Seconds()}, nil
}

// newPlace makes a sink and a TCP listener on the loopback of the
// namespace nsfd (-1: our own), from a thread inside it.
func newPlace(nsfd int) (*place, error) {
	p := &place{nsfd: nsfd}
	errc := make(chan error, 1)
	var lfd int
	go func() {
		if err := enter(p); err != nil {
			errc <- err
			return
		}
		var err error
		if p.sink, err = newSink(); err != nil {
			errc <- err
			return
		}
		lfd, p.lport, err = newListener()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	go p.sink.drain()
	go acceptAll(lfd)
	return p, nil
}

// newListener listens on 127.0.0.1 with a long backlog.
func newListener() (int, int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	if err := unix.Listen(fd, 4096); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, sa.(*unix.SockaddrInet4).Port, nil
}

// acceptAll accepts every connection and closes it at once.
func acceptAll(fd int) {
	runtime.LockOSThread()
	for {
		nfd, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err != nil {
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			return
		}
		unix.Close(nfd)
	}
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

// plainSocket is what a program would do without mnet: a socket of typ
// connected to port on 127.0.0.1, from the calling thread's namespace.
func plainSocket(typ, port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if typ == unix.SOCK_STREAM {
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
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

func startDaemon(bin, mnt string) (*daemon, error) {
	cmd := exec.Command(bin, "mount", "--state", "", mnt)
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
