// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// boomLink is a link that panics on purpose: its Read when the frame it
// reads holds "BOOM-READ", its Write when the frame written holds
// "BOOM-WRITE".
type boomLink struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	got    [][]byte
}

var (
	boomMu    sync.Mutex
	boomLinks = map[string]*boomLink{}
)

type boomSpec struct{ name string }

func (s boomSpec) Name() string  { return s.name }
func (s boomSpec) Args() string  { return s.name }
func (s boomSpec) Claim() string { return "boom:" + s.name }
func (s boomSpec) Open(link.Env) (link.Link, error) {
	l := &boomLink{in: make(chan []byte, 16), closed: make(chan struct{})}
	boomMu.Lock()
	boomLinks[s.name] = l
	boomMu.Unlock()
	return l, nil
}

func init() {
	link.Register(&link.Kind{Name: "boom", Parse: func(args string) (link.Spec, error) { return boomSpec{args}, nil }})
}

func (l *boomLink) Read(p []byte) (int, error) {
	select {
	case f := <-l.in:
		if bytes.Contains(f, []byte("BOOM-READ")) {
			var s []byte
			_ = s[len(f)] // a parser's slip
		}
		clear(p[:vnet.HdrLen])
		return vnet.HdrLen + copy(p[vnet.HdrLen:], f), nil
	case <-l.closed:
		return 0, link.ErrClosed
	}
}

func (l *boomLink) Write(p []byte) error {
	if bytes.Contains(p, []byte("BOOM-WRITE")) {
		panic("boom")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, append([]byte(nil), p[vnet.HdrLen:]...))
	return nil
}

func (l *boomLink) frames() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

func (l *boomLink) MTU() int        { return 1500 }
func (l *boomLink) Caps() link.Caps { return 0 }
func (l *boomLink) Close(bool) error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func waitPanics(t *testing.T, nd *netDir, want int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for statsOf(t, nd)["panics"] < want {
		if time.Now().After(deadline) {
			t.Fatalf("stats panics %d, want %d", statsOf(t, nd)["panics"], want)
		}
		time.Sleep(time.Millisecond)
	}
}

func readWithin(t *testing.T, h netcore.Handle, want []byte, who string) {
	t.Helper()
	r := waitResult(t, goRead(context.Background(), h, 2000), who)
	if r.err != nil || !bytes.Equal(r.buf, want) {
		t.Fatalf("%s: read %q, %v; want %q", who, r.buf, r.err, want)
	}
}

// A panic in a link's Read is contained to the frame: counted in stats,
// and the pump reads the next frame.
func TestPanicInLinkReadContained(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "boomread", 0o777)
	mustCtl(t, nd, "boom boomread")
	d := openData(t, nd, rootCred, syscall.O_RDWR)
	boomMu.Lock()
	l := boomLinks["boomread"]
	boomMu.Unlock()
	l.in <- eth(macBcast, macA, "BOOM-READ")
	waitPanics(t, nd, 1)
	next := eth(macBcast, macA, "after")
	l.in <- next
	readWithin(t, d, next, "data port")
	if got := statsOf(t, nd)["panics"]; got != 1 {
		t.Errorf("panics %d, want 1", got)
	}
}

// A panic in a link's Write (the userspace host parses what it is given)
// is a drop for that port alone: the writer of data is answered, the
// other receivers get the frame, the link takes the frames that follow.
func TestPanicInLinkWriteContained(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "boomwrite", 0o777)
	mustCtl(t, nd, "boom boomwrite")
	d1 := openData(t, nd, rootCred, syscall.O_RDWR)
	d2 := openData(t, nd, rootCred, syscall.O_RDWR)
	boomMu.Lock()
	l := boomLinks["boomwrite"]
	boomMu.Unlock()
	bad := eth(macBcast, macA, "BOOM-WRITE")
	if r := waitResult(t, goWrite(context.Background(), d1, bad), "write"); r.err != nil {
		t.Fatalf("write: %v", r.err)
	}
	readWithin(t, d2, bad, "other data port")
	good := eth(macBcast, macA, "fine")
	send(t, d1, good)
	readWithin(t, d2, good, "other data port")
	if l.frames() != 1 {
		t.Errorf("the link got %d frames, want 1", l.frames())
	}
	st := statsOf(t, nd)
	if st["panics"] != 1 || st["drops"] != 1 {
		t.Errorf("stats after the panic: %v", st)
	}
}

// The test hook makes a pump panic on a frame holding its marker: a
// link read by its own pump and one served by the network's link waiter
// (an FDPoller) both go on.
func TestPanicHookInPumpContained(t *testing.T) {
	netcore.SetTestHooks(true)
	t.Cleanup(func() { netcore.SetTestHooks(false) })
	for _, fd := range []bool{false, true} {
		name := "hookpump"
		if fd {
			name = "hookwaiter"
		}
		t.Run(name, func(t *testing.T) {
			c := newTestCore(t, "")
			nd := mkNet(t, c, rootCred, name, 0o777)
			memlink.Prepare(name, memlink.Options{FD: fd})
			mustCtl(t, nd, "mem "+name)
			d := openData(t, nd, rootCred, syscall.O_RDWR)
			far := memlink.Far(name)
			for i := range 3 {
				if !far.InjectFrame(eth(macBcast, macA, "MNET-TEST-PANIC-PUMP")) {
					t.Fatal("inject failed")
				}
				waitPanics(t, nd, i+1)
				next := eth(macBcast, macA, strings.Repeat("x", i+1))
				far.InjectFrame(next)
				readWithin(t, d, next, "data port")
			}
		})
	}
}

// A stream write's frames reach links too, in order; a link that panics
// on one of them drops that one alone, and the write and the network go
// on.
func TestPanicInLinkWriteFromStreamContained(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "boomstream", 0o777)
	mustCtl(t, nd, "boom boomstream")
	s := openStream(t, nd, rootCred, syscall.O_WRONLY)
	d := openData(t, nd, rootCred, syscall.O_RDONLY)
	boomMu.Lock()
	l := boomLinks["boomstream"]
	boomMu.Unlock()
	pkts := [][]byte{eth(macBcast, macA, "one"), eth(macBcast, macA, "BOOM-WRITE"), eth(macBcast, macA, "three")}
	writeAll(t, s, framed(pkts...))
	for _, p := range pkts {
		expectPkt(t, d, p, "data port")
	}
	waitPanics(t, nd, 1)
	l.mu.Lock()
	got := l.got
	l.mu.Unlock()
	if len(got) != 2 || !bytes.Equal(got[0], pkts[0]) || !bytes.Equal(got[1], pkts[2]) {
		t.Fatalf("the link got %q, want the first and last frames", got)
	}
	writeAll(t, s, framed(pkts[0]))
	expectPkt(t, d, pkts[0], "data port after the panic")
}
