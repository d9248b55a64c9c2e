// SPDX-License-Identifier: BSD-3-Clause

package mhost

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"github.com/mnet-project/mnet/netcore"
)

// root is a caller in the test's own network namespace (its pid, so that
// kernel paths are made there) with every capability.
var root = &netcore.Cred{Pid: uint32(os.Getpid()), CapEff: ^uint64(0), CapsKnown: true}

func TestParseLocator(t *testing.T) {
	for _, good := range []string{"inet 198.18.0.1", "inet6 2001:db8::1", "ipn lab 198.18.0.1", "ipn lab 2001:db8::1", "  inet   198.18.0.1 "} {
		if _, err := parseLocator(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for _, bad := range []string{"", "inet", "inet 2001:db8::1", "inet6 198.18.0.1", "inet6 ::ffff:198.18.0.1",
		"ipn 198.18.0.1", "ipn .x 198.18.0.1", "ipn lab", "inet 0.0.0.0", "inet6 ff02::1", "inet6 fe80::1%eth0",
		"tcp 198.18.0.1", "inet 198.18.0.1 x"} {
		if _, err := parseLocator(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func newHostForTest(t *testing.T) (*Family, *Host) {
	t.Helper()
	f := newFamily(&netcore.Env{Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(f.Close)
	node, err := f.dir.Mkdir(root, "h", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	return f, node.(*hostDir).h
}

func lines(h *Host) string { return string(h.ctlText()) }

// The first write of an open replaces the list, later ones add to it;
// + and - edit; a bad line changes nothing.
func TestCtlWrites(t *testing.T) {
	_, h := newHostForTest(t)
	o := &ctlOpen{}
	if err := h.applyCtl(root, "inet 198.18.0.1\n", o); err != nil {
		t.Fatal(err)
	}
	if err := h.applyCtl(root, "inet6 2001:db8::1\n", o); err != nil {
		t.Fatal(err)
	}
	if got := lines(h); got != "inet 198.18.0.1\ninet6 2001:db8::1\n" {
		t.Errorf("after two writes of one open: %q", got)
	}
	if err := h.applyCtl(root, "+ipn lab 198.18.0.2\n-inet 198.18.0.1", &ctlOpen{}); err != nil {
		t.Fatal(err)
	}
	if got := lines(h); got != "inet6 2001:db8::1\nipn lab 198.18.0.2\n" {
		t.Errorf("after edits: %q", got)
	}
	if err := h.applyCtl(root, "inet 198.18.0.3\nbogus", &ctlOpen{}); err != syscall.EINVAL {
		t.Errorf("bad line: %v", err)
	}
	if !strings.Contains(lines(h), "last-error bad locator \"bogus\"") || strings.Contains(lines(h), "198.18.0.3") {
		t.Errorf("after a bad write: %q", lines(h))
	}
	if err := h.applyCtl(root, "inet 198.18.0.1\ninet 198.18.0.1", &ctlOpen{}); err != syscall.EEXIST {
		t.Errorf("a locator twice: %v", err)
	}
	if err := h.applyCtl(root, "", &ctlOpen{}); err != nil || !strings.HasPrefix(lines(h), "last-error") {
		t.Errorf("an empty first write empties the list: %v %q", err, lines(h))
	}
}

// A locator whose port refuses (ICMP port unreachable on loopback) is
// down; the next write leaves by the next locator, whose replies are read
// from the same file.
func TestFailoverOnRefused(t *testing.T) {
	echo, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("needs ::1 on lo: %v", err))
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			echo.WriteToUDP(buf[:n], from)
		}
	}()
	port := echo.LocalAddr().(*net.UDPAddr).Port
	// Nothing listens on 127.0.0.1 at that port (the echo is IPv6 only).
	_, h := newHostForTest(t)
	if err := h.applyCtl(root, "inet 127.0.0.1\ninet6 ::1\n", &ctlOpen{}); err != nil {
		t.Fatal(err)
	}
	node, err := h.dir.udp.Lookup(root, strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	hd, err := node.(*udpFile).Open(context.Background(), root, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	buf := make([]byte, 100)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := hd.Write(context.Background(), []byte("ping"), 0, false); err != nil {
			t.Fatalf("write: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		n, err := hd.Read(context.Background(), buf, 0, true)
		if err == nil && string(buf[:n]) == "ping" {
			st := string(h.statusText())
			if !strings.Contains(st, "inet 127.0.0.1 state down error ECONNREFUSED") || !strings.Contains(st, "inet6 ::1 state up") {
				t.Errorf("locators: %s", st)
			}
			return
		}
	}
	t.Fatalf("no reply over the second locator; locators:\n%s", h.statusText())
}

// A host's mode follows the rule of an ipn network: mkdir drops x
// (manage) for group and others, chmod grants it; uid 0 without
// capabilities is no exception.
func TestHostModeAndRights(t *testing.T) {
	f, h := newHostForTest(t)
	if got := h.dir.Attr(root).Mode & 0777; got != 0744 {
		t.Errorf("mkdir 0755 gives %#o, want 0744", got)
	}
	owner := &netcore.Cred{Uid: 1000, Gid: 1000, CapsKnown: true, GroupsKnown: true}
	node, err := f.dir.Mkdir(owner, "mine", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	mine := node.(*hostDir)
	member := &netcore.Cred{Uid: 2000, Gid: 1000, CapsKnown: true, GroupsKnown: true}
	if r := mine.h.rights(member, rightManage); r&rightManage != 0 {
		t.Errorf("group member of a new host holds manage: %03b", r)
	}
	if err := mine.Chmod(owner, 0o750); err != nil {
		t.Fatal(err)
	}
	if r := mine.h.rights(member, rightManage); r&rightManage == 0 {
		t.Errorf("group member after chmod g+x lacks manage: %03b", r)
	}
	rootNoCaps := &netcore.Cred{CapsKnown: true, GroupsKnown: true}
	if r := mine.h.rights(rootNoCaps, 0); r != 0 {
		t.Errorf("uid 0 without capabilities on 0750: %03b, want none", r)
	}
	if err := mine.Chmod(rootNoCaps, 0o777); err != syscall.EPERM {
		t.Errorf("chmod by uid 0 without CAP_FOWNER: %v, want EPERM", err)
	}
	if err := mine.Chown(rootNoCaps, 0, 0); err != syscall.EPERM {
		t.Errorf("chown by uid 0 without CAP_CHOWN: %v, want EPERM", err)
	}
	if r := mine.h.rights(root, rightManage); r != rightRecv|rightSend|rightManage {
		t.Errorf("uid 0 with capabilities: %03b, want every right", r)
	}
}

// A list written line by line, one write per line as bash's printf does,
// keeps the state, counters and sockets of every locator it keeps, even
// when an endpoint writes between two lines; what the open leaves off is
// gone once it is closed.
func TestCtlLineByLineKeepsState(t *testing.T) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	port := sink.LocalAddr().(*net.UDPAddr).Port
	_, h := newHostForTest(t)
	// The first locator fails at once (no route), so writes use the second.
	if err := h.applyCtl(root, "inet 198.51.100.1\ninet 127.0.0.1\ninet 198.18.0.9\n", &ctlOpen{}); err != nil {
		t.Fatal(err)
	}
	node, err := h.dir.udp.Lookup(root, strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	hd, err := node.(*udpFile).Open(context.Background(), root, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer hd.Close()
	ep := hd.(*endpoint)
	// Mark the first down by hand: whether it has a route here is the
	// machine's business.
	h.locators()[0].markDown(syscall.ENETUNREACH)
	for range 3 {
		if _, err := hd.Write(context.Background(), []byte("x"), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	before := string(h.statusText())
	second := h.locators()[1]
	ep.mu.Lock()
	path := ep.paths[second.line()]
	ep.mu.Unlock()
	if path == nil || !strings.Contains(before, "inet 127.0.0.1 state up sent 3") {
		t.Fatalf("before: path %v, locators:\n%s", path, before)
	}

	ctlNode, err := h.dir.Lookup(root, "ctl")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ctlNode.(netcore.File).Open(context.Background(), root, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range []string{"inet 198.51.100.1\n", "inet 127.0.0.1\n"} {
		if _, err := c.Write(context.Background(), []byte(line), 0, false); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			// Between the lines the list is the first alone: the
			// endpoint's write leaves by it, and its socket to
			// 127.0.0.1 stays.
			hd.Write(context.Background(), []byte("x"), 0, false)
		}
	}
	after := string(h.statusText())
	if want := "\ninet 127.0.0.1 state up sent 3 received 0\n"; !strings.Contains(after, want) || strings.Count(after, "\n") != 2 {
		t.Errorf("after writing the list line by line:\n%s\nwant:\n%s", after, want)
	}
	if h.locators()[1] != second {
		t.Errorf("the second locator was made anew")
	}
	if _, err := hd.Write(context.Background(), []byte("x"), 0, false); err != nil {
		t.Fatal(err)
	}
	ep.mu.Lock()
	same := ep.paths[second.line()] == path
	ep.mu.Unlock()
	if !same {
		t.Errorf("the endpoint's socket to the second locator was made anew")
	}
	// 198.18.0.9 was left off: once the ctl is closed, it is gone, and
	// listing it again starts afresh.
	c.Close()
	h.mu.Lock()
	n := len(h.dropped)
	h.mu.Unlock()
	if n != 0 {
		t.Errorf("%d dropped locators kept after the ctl was closed", n)
	}
}

// A ctl write longer than MaxCtlWrite fails whole with EFBIG.
func TestCtlWriteTooLong(t *testing.T) {
	_, h := newHostForTest(t)
	ctlNode, _ := h.dir.Lookup(root, "ctl")
	c, err := ctlNode.(netcore.File).Open(context.Background(), root, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	text := "inet 198.18.0.1\n" + strings.Repeat("#\n", netcore.MaxCtlWrite/2)
	if _, err := c.Write(context.Background(), []byte(text), 0, false); err != syscall.EFBIG {
		t.Fatalf("write of %d bytes: %v, want EFBIG", len(text), err)
	}
	if got := lines(h); got != "last-error write too long: at most 65536 bytes in one write\n" {
		t.Errorf("ctl after a write too long: %q", got)
	}
}

// A down inet locator is tried again after downHold with one datagram (a
// probe) and passed over until an error, a reply or probeWindow tells how
// it went: a send over a kernel socket proves nothing until the kernel
// had the time to resolve the neighbour.
func TestLocatorProbe(t *testing.T) {
	l, err := parseLocator("inet 198.18.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l.markDown(syscall.EHOSTUNREACH)
	now := time.Now()
	if !l.held(now) || l.held(now.Add(downHold)) {
		t.Fatal("a locator just down: held for downHold, then tried")
	}
	probe := now.Add(downHold)
	l.sentBy(probe, false)
	if !l.held(probe.Add(probeWindow-time.Millisecond)) || !l.down {
		t.Fatal("a probed locator is passed over during probeWindow")
	}
	// The probe's error: held again for downHold from now.
	l.markDown(syscall.EHOSTUNREACH)
	if now := time.Now(); !l.held(now.Add(downHold/2)) || l.held(now.Add(downHold)) {
		t.Error("an error ending a probe holds the locator afresh")
	}
	// A reply over it: up at once.
	l.sentBy(time.Now(), false)
	l.gotOne()
	if l.down || l.held(time.Now()) {
		t.Error("a reply brings the locator up")
	}
	// No answer at all within probeWindow: up.
	l.markDown(syscall.EHOSTUNREACH)
	probe = time.Now()
	l.sentBy(probe, false)
	if l.held(probe.Add(probeWindow)) || l.down {
		t.Error("a probe no error answered brings the locator up")
	}
	// An ipn locator's send is proof enough.
	l.markDown(syscall.EHOSTUNREACH)
	l.sentBy(time.Now(), true)
	if l.down {
		t.Error("a confirmed send brings the locator up")
	}
	if l.sent != 4 || l.received != 1 {
		t.Errorf("sent %d received %d, want 4 and 1", l.sent, l.received)
	}
}

// What one open of ctl keeps aside for its later writes is bounded,
// however long it adds and removes.
func TestCtlDroppedBounded(t *testing.T) {
	_, h := newHostForTest(t)
	o := &ctlOpen{}
	for i := range 100 {
		loc := fmt.Sprintf("inet 198.18.1.%d", i+1)
		for _, line := range []string{"+" + loc, "-" + loc} {
			if err := h.applyCtl(root, line, o); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.mu.Lock()
	n, m := len(o.dropped), len(h.dropped)
	h.mu.Unlock()
	if n > MaxLocators || m > MaxLocators {
		t.Errorf("an open that dropped 100 locators keeps %d aside (host: %d), want at most %d", n, m, MaxLocators)
	}
	h.closeCtl(o)
	if len(h.dropped) != 0 {
		t.Errorf("%d kept aside after close", len(h.dropped))
	}
}
