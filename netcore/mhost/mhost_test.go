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
	if err := h.applyCtl(root, "inet 198.18.0.1\n", true); err != nil {
		t.Fatal(err)
	}
	if err := h.applyCtl(root, "inet6 2001:db8::1\n", false); err != nil {
		t.Fatal(err)
	}
	if got := lines(h); got != "inet 198.18.0.1\ninet6 2001:db8::1\n" {
		t.Errorf("after two writes of one open: %q", got)
	}
	if err := h.applyCtl(root, "+ipn lab 198.18.0.2\n-inet 198.18.0.1", true); err != nil {
		t.Fatal(err)
	}
	if got := lines(h); got != "inet6 2001:db8::1\nipn lab 198.18.0.2\n" {
		t.Errorf("after edits: %q", got)
	}
	if err := h.applyCtl(root, "inet 198.18.0.3\nbogus", true); err != syscall.EINVAL {
		t.Errorf("bad line: %v", err)
	}
	if !strings.Contains(lines(h), "last-error bad locator \"bogus\"") || strings.Contains(lines(h), "198.18.0.3") {
		t.Errorf("after a bad write: %q", lines(h))
	}
	if err := h.applyCtl(root, "inet 198.18.0.1\ninet 198.18.0.1", true); err != syscall.EEXIST {
		t.Errorf("a locator twice: %v", err)
	}
	if err := h.applyCtl(root, "", true); err != nil || !strings.HasPrefix(lines(h), "last-error") {
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
	if err := h.applyCtl(root, "inet 127.0.0.1\ninet6 ::1\n", true); err != nil {
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
