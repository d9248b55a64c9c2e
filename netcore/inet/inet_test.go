// SPDX-License-Identifier: BSD-3-Clause

package inet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
)

// root is a caller in the test's own network namespace (its pid, so that
// the family finds the namespace) with every capability.
var root = &netcore.Cred{Uid: 0, Pid: uint32(os.Getpid()), CapEff: ^uint64(0), CapsKnown: true}

func testFamily(t *testing.T, v *version) *Family {
	t.Helper()
	f := newFamily(&netcore.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, v)
	t.Cleanup(f.Close)
	return f
}

// file walks PROTO/HOST/PORT in f.
func file(t *testing.T, f *Family, proto, hostName string, port int) *portFile {
	t.Helper()
	d, err := f.root.Lookup(root, proto)
	if err != nil {
		t.Fatal(err)
	}
	h, err := d.(netcore.Dir).Lookup(root, hostName)
	if err != nil {
		t.Fatalf("lookup %s: %v", hostName, err)
	}
	p, err := h.(netcore.Dir).Lookup(root, strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	return p.(*portFile)
}

func open(t *testing.T, pf *portFile, c *netcore.Cred) *sock {
	t.Helper()
	h, err := pf.Open(context.Background(), c, syscall.O_RDWR)
	if err != nil {
		t.Fatalf("open %s: %v", pf.path(), err)
	}
	t.Cleanup(h.Close)
	return h.(*sock)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// freeTCPPort is a TCP port nothing listens on now, on any address (a
// port free for UDP may be a TCP listener's: EADDRINUSE).
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		v        *version
		name     string
		ok       bool
		wildcard bool
	}{
		{v4, "127.0.0.1", true, false},
		{v4, "0.0.0.0", true, true},
		{v4, "localhost", true, false},
		{v4, "example.com.", true, false},
		{v4, "a_b-c.example", true, false},
		{v4, "::1", false, false},
		{v4, "1.2.3", false, false},
		{v4, "127.0.0.01", false, false},
		{v4, "256.1.1.1", false, false},
		{v4, "", false, false},
		{v4, ".", false, false},
		{v4, "a..b", false, false},
		{v4, "-a", false, false},
		{v4, "a b", false, false},
		{v4, "host:80", false, false},
		// What inet_aton reads as an address, not in canonical form.
		{v4, "0x7f000001", false, false},
		{v4, "0X7F000001", false, false},
		{v4, "127.1", false, false},
		{v4, "017700000001", false, false},
		{v4, "2130706433", false, false},
		{v4, "127.0x1", false, false},
		{v4, "0x7f.0.0.1", false, false},
		{v4, "0x7f.1.", false, false},
		{v4, "0x", false, false},
		{v4, "0xa.0xb.0xc.0xd", false, false},
		// Names that only look numeric somewhere.
		{v4, "0x7f.example", true, false},
		{v4, "0xg", true, false},
		{v4, "1.2.3.4.5a", true, false},
		{v4, "cafe", true, false},
		{v4, "0x1.0x2.0x3.0x4.0x5", true, false}, // five parts: not inet_aton's
		{v6, "0x7f000001", false, false},
		{v6, "::1", true, false},
		{v6, "::", true, true},
		{v6, "fe80::1%lo", true, false},
		{v6, "localhost", true, false},
		{v6, "127.0.0.1", false, false},
		{v6, "::ffff:127.0.0.1", false, false},
		{v6, "[::1]", false, false},
	} {
		h, err := tc.v.parsePeer(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("%s parsePeer(%q): %v, want ok=%v", tc.v.family, tc.name, err, tc.ok)
			continue
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s parsePeer(%q): %v, want EINVAL", tc.v.family, tc.name, err)
		}
		if tc.ok && h.wildcard() != tc.wildcard {
			t.Errorf("%s parsePeer(%q).wildcard() = %v", tc.v.family, tc.name, h.wildcard())
		}
	}
}

// atonForm is what inet_aton(3) reads as an IPv4 address (one to four C
// integer constants), with the final dot a resolver ignores.
var atonForm = regexp.MustCompile(`^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}\.?$`)

// Paths never panic; what is accepted is a host of the family.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "localhost", "1.2.3", "fe80::1%eth0", "a..b", "80", "0", "0x7f000001", "127.0x1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		for _, v := range []*version{v4, v6} {
			h, err := v.parsePeer(name)
			if err != nil {
				continue
			}
			if h.literal() && (v == v4) != h.addr.Is4() {
				t.Fatalf("%s accepted %q as %v", v.family, name, h.addr)
			}
			if !h.literal() && !validHostName(name) {
				t.Fatalf("%s accepted %q", v.family, name)
			}
			if !h.literal() && atonForm.MatchString(name) {
				t.Fatalf("%s accepted %q, which inet_aton reads as an address", v.family, name)
			}
		}
		if p, err := netcore.ParsePort(name); err == nil && (p == 0 || strconv.Itoa(int(p)) != name) {
			t.Fatalf("netcore.ParsePort(%q) = %d", name, p)
		}
	})
}

// A name keeps its node, so its inode number, while looked up again; the
// cache stays within its bound.
func TestNodesStableAndBounded(t *testing.T) {
	f := testFamily(t, v4)
	a := file(t, f, "udp", "127.0.0.1", 9)
	b := file(t, f, "udp", "127.0.0.1", 9)
	if a.ID() != b.ID() || a.Dir.ID() != b.Dir.ID() {
		t.Fatalf("repeated lookup changed IDs: %d/%d, %d/%d", a.ID(), b.ID(), a.Dir.ID(), b.Dir.ID())
	}
	for i := range maxNodes + 10 {
		file(t, f, "tcp", "h"+strconv.Itoa(i), 1)
	}
	f.mu.Lock()
	n := f.names.Nodes()
	f.mu.Unlock()
	if n > maxNodes {
		t.Fatalf("%d nodes cached, bound %d", n, maxNodes)
	}
}

// Binding below ip_unprivileged_port_start needs CAP_NET_BIND_SERVICE,
// not uid 0.
func TestPrivilegedPort(t *testing.T) {
	self := netns.Self()
	if err := mayBind(&netcore.Cred{Uid: 1000, CapsKnown: true}, self, 81); !errors.Is(err, syscall.EACCES) {
		t.Errorf("uid 1000, port 81: %v, want EACCES", err)
	}
	if err := mayBind(&netcore.Cred{Uid: 0, CapsKnown: true}, self, 81); !errors.Is(err, syscall.EACCES) {
		t.Errorf("uid 0 without capabilities, port 81: %v, want EACCES", err)
	}
	if err := mayBind(root, self, 81); err != nil {
		t.Errorf("root, port 81: %v", err)
	}
	bind := &netcore.Cred{Uid: 1000, CapEff: 1 << netcore.CapNetBindService, CapsKnown: true}
	if err := mayBind(bind, self, 81); err != nil {
		t.Errorf("uid 1000 with CAP_NET_BIND_SERVICE, port 81: %v", err)
	}
	if err := mayBind(&netcore.Cred{Uid: 1000, CapsKnown: true}, self, 65000); err != nil {
		t.Errorf("uid 1000, port 65000: %v", err)
	}
}

// Interrupting one of several reads blocked on one file ends that read
// alone, with EINTR; the others still get their datagrams, none lost.
func TestInterruptOneOfManyReads(t *testing.T) {
	f := testFamily(t, v4)
	port := freeUDPPort(t)
	s := open(t, file(t, f, "udp", "0.0.0.0", port), root)

	const readers = 4
	got := make(chan string, readers)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 100)
			n, err := s.Read(context.Background(), buf, 0, false)
			if err != nil {
				t.Errorf("read: %v", err)
				return
			}
			got <- string(buf[:n])
		}()
	}
	for round := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := s.Read(ctx, make([]byte, 100), 0, false)
			done <- err
		}()
		time.Sleep(time.Millisecond * time.Duration(round%3))
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, syscall.EINTR) {
				t.Fatalf("interrupted read: %v, want EINTR", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("an interrupted read did not return")
		}
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range readers {
		c.Write([]byte("d" + strconv.Itoa(i)))
	}
	seen := map[string]bool{}
	for range readers {
		select {
		case d := <-got:
			seen[d] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("blocked readers got only %v", seen)
		}
	}
	wg.Wait()
	if len(seen) != readers {
		t.Fatalf("readers got %v, want %d distinct datagrams", seen, readers)
	}
}

// A stream write blocked on a peer that does not read is interrupted by
// its context and reports what it sent; non-blocking, it is EAGAIN once
// the send buffer is full.
func TestInterruptedStreamWrite(t *testing.T) {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(10 * time.Second) // never reads
		}
	}()
	f := testFamily(t, v4)
	s := open(t, file(t, f, "tcp", "127.0.0.1", ln.Addr().(*net.TCPAddr).Port), root)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	big := make([]byte, 64<<20)
	n, err := s.Write(ctx, big, 0, false)
	if err != nil || n <= 0 || n >= len(big) {
		t.Fatalf("interrupted write: %d, %v; want a partial count", n, err)
	}
	for {
		m, err := s.Write(context.Background(), big[:65536], 0, true)
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil || m == 0 {
			t.Fatalf("non-blocking write: %d %v", m, err)
		}
	}
}

// A signal that comes while an open does not wait changes nothing: a
// non-blocking accept with no connection queued is EAGAIN, also with the
// request interrupted, and a refused connect is ECONNREFUSED.
func TestOpenAnswersStandAnInterrupt(t *testing.T) {
	f := testFamily(t, v4)
	interrupted, cancel := context.WithCancel(context.Background())
	cancel()
	acc := file(t, f, "tcp", "0.0.0.0", freeTCPPort(t))
	if _, err := acc.Open(interrupted, root, syscall.O_RDWR|syscall.O_NONBLOCK); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("non-blocking accept, interrupted: %v, want EAGAIN", err)
	}
	if _, err := acc.Open(interrupted, root, syscall.O_RDWR); !errors.Is(err, syscall.EINTR) {
		t.Errorf("blocking accept, interrupted: %v, want EINTR", err)
	}
}

// Close wakes every blocked caller: a read sees end of file, an open
// waiting to accept gets ECONNABORTED, and later opens fail.
func TestCloseWakesBlocked(t *testing.T) {
	f := testFamily(t, v4)
	port := freeUDPPort(t)
	s := open(t, file(t, f, "udp", "0.0.0.0", port), root)
	readDone := make(chan error, 1)
	go func() {
		n, err := s.Read(context.Background(), make([]byte, 10), 0, false)
		if err == nil && n != 0 {
			err = errors.New("data")
		}
		readDone <- err
	}()
	openDone := make(chan error, 1)
	acc := file(t, f, "tcp", "0.0.0.0", freeTCPPort(t))
	go func() {
		_, err := acc.Open(context.Background(), root, syscall.O_RDWR)
		openDone <- err
	}()
	time.Sleep(100 * time.Millisecond)
	f.Close()
	for what, ch := range map[string]chan error{"read": readDone, "accept": openDone} {
		select {
		case err := <-ch:
			if what == "read" && err != nil {
				t.Errorf("read after Close: %v, want end of file", err)
			}
			if what == "accept" && !errors.Is(err, syscall.ECONNABORTED) {
				t.Errorf("accept after Close: %v, want ECONNABORTED", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("blocked %s not woken by Close", what)
		}
	}
	if _, err := file(t, f, "udp", "127.0.0.1", 9).Open(context.Background(), root, syscall.O_RDWR); !errors.Is(err, syscall.ECONNABORTED) {
		t.Errorf("open after Close: %v", err)
	}
}

// Resolver failures carry an errno: no such name is EHOSTUNREACH, a
// resolver that does not answer ETIMEDOUT.
func TestResolverErrno(t *testing.T) {
	if err := errnoOf(&net.DNSError{Err: "no such host", IsNotFound: true}); err != syscall.EHOSTUNREACH {
		t.Errorf("not found: %v", err)
	}
	if err := errnoOf(&net.DNSError{Err: "timeout", IsTimeout: true}); err != syscall.ETIMEDOUT {
		t.Errorf("timeout: %v", err)
	}
}
