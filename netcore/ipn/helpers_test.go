// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/mnet-project/mnet/netcore/link/iface" // tap and grab, for the ctl tests

	"github.com/mnet-project/mnet/netcore"
)

// waitLimit bounds every wait for something that should happen; it is a
// failure deadline, never a sleep.
const waitLimit = 5 * time.Second

// quiet is how long a test watches for something that must not happen.
const quiet = 50 * time.Millisecond

var (
	// Capabilities are given, not read from /proc of made-up pids.
	rootCred  = &netcore.Cred{Uid: 0, Gid: 0, Pid: 1, CapEff: ^uint64(0), CapsKnown: true, GroupsKnown: true}
	ownerCred = &netcore.Cred{Uid: 1000, Gid: 1000, Pid: 42, CapsKnown: true, GroupsKnown: true}
	// uid 0 with an empty capability set: a hardened service.
	rootNoCapsCred = &netcore.Cred{Uid: 0, Gid: 0, Pid: 1, CapsKnown: true, GroupsKnown: true}
)

func newTestCore(t *testing.T, statePath string) *netcore.Core {
	t.Helper()
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), StatePath: statePath})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func ipnRoot(t *testing.T, c *netcore.Core) netcore.Dir {
	t.Helper()
	node, err := c.Root().Lookup(rootCred, "ipn")
	if err != nil {
		t.Fatalf("Lookup(ipn): %v", err)
	}
	d, ok := node.(netcore.Dir)
	if !ok {
		t.Fatalf("ipn is a %T, not a netcore.Dir", node)
	}
	return d
}

// mkNet creates ipn/name as cred with mode and returns its directory.
func mkNet(t *testing.T, c *netcore.Core, cred *netcore.Cred, name string, mode uint32) *netDir {
	t.Helper()
	m, ok := ipnRoot(t, c).(netcore.Mkdirer)
	if !ok {
		t.Fatal("ipn directory is not a netcore.Mkdirer")
	}
	node, err := m.Mkdir(cred, name, mode)
	if err != nil {
		t.Fatalf("Mkdir(%s): %v", name, err)
	}
	nd, ok := node.(*netDir)
	if !ok {
		t.Fatalf("Mkdir returned %T", node)
	}
	// mkdir drops x for group and others; the tests want mode as given,
	// as after `mkdir && chmod`.
	if mode&0011 == 0 {
		return nd
	}
	if err := nd.Chmod(cred, mode); err != nil {
		t.Fatalf("Chmod(%s, %#o): %v", name, mode, err)
	}
	return nd
}

func netFileOf(t *testing.T, nd netcore.Dir, name string) netcore.File {
	t.Helper()
	node, err := nd.Lookup(rootCred, name)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", name, err)
	}
	f, ok := node.(netcore.File)
	if !ok {
		t.Fatalf("%s is a %T, not a netcore.File", name, node)
	}
	return f
}

func openFile(t *testing.T, nd netcore.Dir, name string, cred *netcore.Cred, flags int) netcore.Handle {
	t.Helper()
	h, err := netFileOf(t, nd, name).Open(context.Background(), cred, flags)
	if err != nil {
		t.Fatalf("Open(%s, %#o) as uid %d: %v", name, flags, cred.Uid, err)
	}
	t.Cleanup(h.Close)
	return h
}

func openData(t *testing.T, nd netcore.Dir, cred *netcore.Cred, flags int) netcore.Handle {
	t.Helper()
	return openFile(t, nd, "data", cred, flags)
}

// ctl writes text to ctl as cred and returns the write's error.
func ctl(t *testing.T, nd netcore.Dir, cred *netcore.Cred, text string) error {
	t.Helper()
	h, err := netFileOf(t, nd, "ctl").Open(context.Background(), cred, syscall.O_WRONLY)
	if err != nil {
		t.Fatalf("Open(ctl, O_WRONLY) as uid %d: %v", cred.Uid, err)
	}
	defer h.Close()
	n, err := h.Write(context.Background(), []byte(text), 0, false)
	if err == nil && n != len(text) {
		t.Fatalf("ctl write %q returned %d, want %d", text, n, len(text))
	}
	return err
}

func mustCtl(t *testing.T, nd netcore.Dir, text string) {
	t.Helper()
	if err := ctl(t, nd, rootCred, text); err != nil {
		t.Fatalf("ctl %q: %v", text, err)
	}
}

// readAll reads a text file (ctl, ports, stats) to its end.
func readAll(t *testing.T, nd netcore.Dir, name string) string {
	t.Helper()
	h, err := netFileOf(t, nd, name).Open(context.Background(), rootCred, syscall.O_RDONLY)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	defer h.Close()
	return readHandle(t, h)
}

func readHandle(t *testing.T, h netcore.Handle) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 7) // small on purpose: offsets must work
	for {
		n, err := h.Read(context.Background(), buf, int64(len(out)), false)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

// keyValues parses "key value" lines.
func keyValues(text string) map[string]string {
	m := make(map[string]string)
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		m[k] = v
	}
	return m
}

func statsOf(t *testing.T, nd netcore.Dir) map[string]int {
	t.Helper()
	m := make(map[string]int)
	for k, v := range keyValues(readAll(t, nd, "stats")) {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("stats %s: %q is not a number", k, v)
		}
		m[k] = n
	}
	return m
}

// portRow returns the ports-file row of the port with the given number as
// a column map.
func portRow(t *testing.T, nd netcore.Dir, id int) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(readAll(t, nd, "ports"), "\n"), "\n")
	head := strings.Split(lines[0], " ")
	for _, l := range lines[1:] {
		cols := strings.Split(l, " ")
		if len(cols) != len(head) {
			t.Fatalf("ports row %q has %d columns, header %d", l, len(cols), len(head))
		}
		if cols[0] == strconv.Itoa(id) {
			m := make(map[string]string)
			for i, h := range head {
				m[h] = cols[i]
			}
			return m
		}
	}
	t.Fatalf("port %d not in ports file:\n%s", id, strings.Join(lines, "\n"))
	return nil
}

func portID(t *testing.T, h netcore.Handle) int {
	t.Helper()
	dh, ok := h.(*dataHandle)
	if !ok {
		t.Fatalf("data handle is a %T", h)
	}
	return dh.p.id
}

func send(t *testing.T, h netcore.Handle, pkt []byte) {
	t.Helper()
	n, err := h.Write(context.Background(), pkt, 0, false)
	if err != nil || n != len(pkt) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(pkt), n, err)
	}
}

// recvNow reads one packet without blocking.
func recvNow(h netcore.Handle, size int) ([]byte, error) {
	buf := make([]byte, size)
	n, err := h.Read(context.Background(), buf, 0, true)
	return buf[:n], err
}

func expectPkt(t *testing.T, h netcore.Handle, want []byte, who string) {
	t.Helper()
	got, err := recvNow(h, 70000)
	if err != nil {
		t.Fatalf("%s: read: %v, want packet %q", who, err, want)
	}
	if string(got) != string(want) {
		t.Fatalf("%s: got packet %q, want %q", who, got, want)
	}
}

func expectEmpty(t *testing.T, h netcore.Handle, who string) {
	t.Helper()
	got, err := recvNow(h, 70000)
	if !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("%s: read = %q, %v; want EAGAIN (nothing queued)", who, got, err)
	}
}

type result struct {
	n   int
	err error
	buf []byte
}

// goRead starts a blocking Read and reports on the returned channel.
func goRead(ctx context.Context, h netcore.Handle, size int) <-chan result {
	ch := make(chan result, 1)
	go func() {
		buf := make([]byte, size)
		n, err := h.Read(ctx, buf, 0, false)
		ch <- result{n, err, buf[:n]}
	}()
	return ch
}

// goWrite starts a blocking Write and reports on the returned channel.
func goWrite(ctx context.Context, h netcore.Handle, pkt []byte) <-chan result {
	ch := make(chan result, 1)
	go func() {
		n, err := h.Write(ctx, pkt, 0, false)
		ch <- result{n: n, err: err}
	}()
	return ch
}

func waitResult(t *testing.T, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitLimit):
		t.Fatalf("%s did not return within %v", what, waitLimit)
		return result{}
	}
}

func expectBlocked(t *testing.T, ch <-chan result, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned (%d, %v), want it to block", what, r.n, r.err)
	case <-time.After(quiet):
	}
}

// eth builds an Ethernet frame from dst to src with a payload.
func eth(dst, src mac, payload string) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, dst[:]...)
	f = append(f, src[:]...)
	f = append(f, 0x88, 0xb5) // local experimental ethertype
	return append(f, payload...)
}
