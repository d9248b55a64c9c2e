// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/mnet-project/mnet/netcore"
)

// framed puts pkts in VDE's stream format.
func framed(pkts ...[]byte) []byte {
	var b []byte
	for _, p := range pkts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	return b
}

func openStream(t *testing.T, nd netcore.Dir, cred *netcore.Cred, flags int) netcore.Handle {
	t.Helper()
	return openFile(t, nd, "stream", cred, flags)
}

// numbered are n packets of the given size, each starting with its number.
func numbered(n, size int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		p := bytes.Repeat([]byte{byte(i)}, size)
		copy(p, fmt.Sprintf("%04d", i))
		pkts[i] = p
	}
	return pkts
}

func writeAll(t *testing.T, h netcore.Handle, b []byte) {
	t.Helper()
	n, err := h.Write(context.Background(), b, 0, false)
	if err != nil || n != len(b) {
		t.Fatalf("stream Write(%d bytes) = %d, %v", len(b), n, err)
	}
}

// Frames written to a stream file come out of a data file one packet per
// read, wherever the writes cut them: inside a length, inside a frame, at
// a boundary, many frames per write.
func TestStreamWriteCutAnywhere(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "stw", 0777)
	s := openStream(t, nd, rootCred, syscall.O_WRONLY)
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	pkts := numbered(5, 10)
	pkts[2] = bytes.Repeat([]byte("z"), 300) // a length whose high byte is not 0
	all := framed(pkts...)
	for cut := 0; cut <= len(all); cut++ {
		for _, part := range [][]byte{all[:cut], all[cut:]} {
			if len(part) > 0 {
				writeAll(t, s, part)
			}
		}
		for i, p := range pkts {
			expectPkt(t, r, p, fmt.Sprintf("cut at %d, packet %d", cut, i))
		}
		expectEmpty(t, r, fmt.Sprintf("cut at %d", cut))
	}
	// One byte per write.
	for i := range all {
		writeAll(t, s, all[i:i+1])
	}
	for i, p := range pkts {
		expectPkt(t, r, p, fmt.Sprintf("byte writes, packet %d", i))
	}
	if h := s.(*streamHandle); h.in.kept() != 0 {
		t.Fatalf("%d bytes kept after whole frames", h.in.kept())
	}
}

// A write of more frames than one batch delivers sends them all, in order.
func TestStreamWriteManyFrames(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "stmany", 0777)
	mustCtl(t, nd, "qlen 4096\n")
	s := openStream(t, nd, rootCred, syscall.O_WRONLY)
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	pkts := numbered(3*framesPerLock+7, 20)
	writeAll(t, s, framed(pkts...))
	for i, p := range pkts {
		expectPkt(t, r, p, fmt.Sprintf("packet %d", i))
	}
	expectEmpty(t, r, "after all")
	st := nd.n.Stats()
	if st.Packets != uint64(len(pkts)) || st.Delivered != uint64(len(pkts)) {
		t.Fatalf("stats %+v: want %d packets, each delivered once", st, len(pkts))
	}
}

// A read returns as many whole frames as fit; a buffer too small for the
// next frame gets its first bytes and the rest on the next reads, so a
// reader of one byte at a time gets the stream exactly.
func TestStreamReadFramesAndPieces(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "str", 0777)
	w := openData(t, nd, rootCred, syscall.O_WRONLY)
	s := openStream(t, nd, rootCred, syscall.O_RDONLY)
	pkts := numbered(10, 40)
	for _, p := range pkts {
		send(t, w, p)
	}
	// Room for 3 frames and a half: 3 frames.
	got, err := recvNow(s, 3*42+20)
	if err != nil || !bytes.Equal(got, framed(pkts[:3]...)) {
		t.Fatalf("read of 3.5 frames = %x, %v; want the first 3 frames", got, err)
	}
	got, err = recvNow(s, 65536)
	if err != nil || !bytes.Equal(got, framed(pkts[3:]...)) {
		t.Fatalf("read of the rest = %d bytes, %v; want %d", len(got), err, len(framed(pkts[3:]...)))
	}
	expectEmpty(t, s, "stream after all")

	// One byte at a time, and pieces of 5.
	for _, size := range []int{1, 5, 41} {
		for _, p := range pkts {
			send(t, w, p)
		}
		var all []byte
		for {
			got, err := recvNow(s, size)
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 || len(got) > size {
				t.Fatalf("read of %d returned %d bytes", size, len(got))
			}
			all = append(all, got...)
		}
		if !bytes.Equal(all, framed(pkts...)) {
			t.Fatalf("reads of %d bytes gave %x, want %x", size, all, framed(pkts...))
		}
	}
}

// One read takes more packets than one hold of the queue's lock does.
func TestStreamReadManyChunks(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "strchunks", 0777)
	mustCtl(t, nd, "qlen 4096\n")
	w := openStream(t, nd, rootCred, syscall.O_WRONLY)
	s := openStream(t, nd, rootCred, syscall.O_RDONLY)
	pkts := numbered(3*readChunk+5, 10)
	writeAll(t, w, framed(pkts...))
	got, err := recvNow(s, 65536)
	if err != nil || !bytes.Equal(got, framed(pkts...)) {
		t.Fatalf("one read of %d packets: %d bytes, %v; want %d", len(pkts), len(got), err, len(framed(pkts...)))
	}
	if used := c.Quota().Used(netcore.Queued); used != 0 {
		t.Fatalf("%d bytes still charged after the read", used)
	}
}

// A reader of a stream waits only while nothing is queued, and a packet
// wakes it.
func TestStreamReadWaits(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "strw", 0777)
	w := openData(t, nd, rootCred, syscall.O_WRONLY)
	s := openStream(t, nd, rootCred, syscall.O_RDONLY)
	ch := goRead(context.Background(), s, 1000)
	expectBlocked(t, ch, "read of an empty stream")
	send(t, w, []byte("wake"))
	if r := waitResult(t, ch, "read"); r.err != nil || !bytes.Equal(r.buf, framed([]byte("wake"))) {
		t.Fatalf("read = %x, %v", r.buf, r.err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch = goRead(ctx, s, 1000)
	expectBlocked(t, ch, "read of an empty stream")
	cancel()
	if r := waitResult(t, ch, "interrupted read"); !errors.Is(r.err, syscall.EINTR) {
		t.Fatalf("interrupted read = %d, %v; want EINTR", r.n, r.err)
	}
}

// Stream and data ports mix on one network, both ways, and a stream
// port is a port to another stream port.
func TestStreamAndDataMix(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "stmix", 0777)
	d := openData(t, nd, rootCred, syscall.O_RDWR)
	s1 := openStream(t, nd, rootCred, syscall.O_RDWR)
	s2 := openStream(t, nd, rootCred, syscall.O_RDWR)
	writeAll(t, s1, framed([]byte("one"), []byte("two")))
	expectPkt(t, d, []byte("one"), "data")
	expectPkt(t, d, []byte("two"), "data")
	expectPkt(t, s2, framed([]byte("one"), []byte("two")), "stream 2")
	expectEmpty(t, s1, "the sending stream (no echo)")
	send(t, d, []byte("three"))
	expectPkt(t, s1, framed([]byte("three")), "stream 1")
	expectPkt(t, s2, framed([]byte("three")), "stream 2")
	if ls := nd.List(rootCred); !hasEntry(ls, "stream") {
		t.Fatalf("stream not listed in %v", ls)
	}
}

func hasEntry(ents []netcore.DirEntry, name string) bool {
	for _, e := range ents {
		if e.Name == name {
			return true
		}
	}
	return false
}

// Bad frames: length 0 or above the mtu. The frames before one are sent
// and the write returns their bytes; a write that starts with one fails
// with EINVAL and sends nothing; the same for a frame the policy refuses.
func TestStreamBadFrames(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "stbad", 0777)
	mustCtl(t, nd, "mtu 100\n")
	s := openStream(t, nd, rootCred, syscall.O_WRONLY)
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	good := framed([]byte("good1"), []byte("good2"))
	for _, bad := range [][]byte{{0, 0, 'x'}, framed(make([]byte, 101)), {0xff, 0xff}} {
		n, err := s.Write(context.Background(), append(append([]byte{}, good...), bad...), 0, false)
		if err != nil || n != len(good) {
			t.Fatalf("good frames then %x: %d, %v; want %d", bad[:2], n, err, len(good))
		}
		expectPkt(t, r, []byte("good1"), "r")
		expectPkt(t, r, []byte("good2"), "r")
		n, err = s.Write(context.Background(), bad, 0, false)
		if !errors.Is(err, syscall.EINVAL) || n != 0 {
			t.Fatalf("write starting with %x: %d, %v; want EINVAL", bad[:2], n, err)
		}
		expectEmpty(t, r, "after a bad frame")
	}
	// 100 bytes is the mtu: good.
	writeAll(t, s, framed(make([]byte, 100)))
	expectPkt(t, r, make([]byte, 100), "r")

	// A length cut after its first byte is kept; completed to a bad one
	// by the next write, that write fails and the kept byte is dropped:
	// the next write starts a new frame.
	writeAll(t, s, []byte{0})
	if n, err := s.Write(context.Background(), []byte{0}, 0, false); !errors.Is(err, syscall.EINVAL) || n != 0 {
		t.Fatalf("write completing a zero length: %d, %v; want EINVAL", n, err)
	}
	if k := s.(*streamHandle).in.kept(); k != 0 {
		t.Fatalf("%d bytes kept after a bad length", k)
	}
	writeAll(t, s, framed([]byte("after")))
	expectPkt(t, r, []byte("after"), "r")
	writeAll(t, s, []byte{1})
	if _, err := s.Write(context.Background(), []byte{0, 'x'}, 0, false); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("write completing a length of 256 (mtu 100): %v; want EINVAL", err)
	}
	expectEmpty(t, r, "after bad lengths")

	// A switch refuses frames shorter than an Ethernet header: a bad
	// frame too.
	mustCtl(t, nd, "policy switch\n")
	f := eth(macBcast, macA, "to all")
	n, err := s.Write(context.Background(), framed(f, []byte("short")), 0, false)
	if err != nil || n != len(framed(f)) {
		t.Fatalf("a frame, then a short one to a switch: %d, %v; want %d", n, err, len(framed(f)))
	}
	expectPkt(t, r, f, "r")
	if n, err := s.Write(context.Background(), framed([]byte("short")), 0, false); !errors.Is(err, syscall.EINVAL) || n != 0 {
		t.Fatalf("a short frame to a switch: %d, %v; want EINVAL", n, err)
	}
	if !bytes.Contains([]byte(readAll(t, nd, "ctl")), []byte("last-error")) {
		t.Errorf("no last-error after refused frames")
	}
}

// Lossless: a write blocks until all its frames are queued; a signal ends
// it with the bytes of the frames already sent, or EINTR if none was; a
// non-blocking one returns what went, or EAGAIN.
func TestStreamLosslessWrite(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "stll", 0777)
	mustCtl(t, nd, "lossless on\nqlen 3\n")
	s := openStream(t, nd, rootCred, syscall.O_WRONLY)
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	pkts := numbered(5, 30)
	all := framed(pkts...)

	// Blocks after 3; reading one lets the 4th go, another the 5th.
	ch := goWrite(context.Background(), s, all)
	expectBlocked(t, ch, "lossless write of 5 frames to a queue of 3")
	expectPkt(t, r, pkts[0], "r")
	expectPkt(t, r, pkts[1], "r")
	if res := waitResult(t, ch, "lossless write"); res.err != nil || res.n != len(all) {
		t.Fatalf("lossless write = %d, %v; want %d", res.n, res.err, len(all))
	}
	for _, p := range pkts[2:] {
		expectPkt(t, r, p, "r")
	}

	// Interrupted after 3 of 5: the bytes of those 3.
	ctx, cancel := context.WithCancel(context.Background())
	ch = goWrite(ctx, s, all)
	expectBlocked(t, ch, "lossless write")
	cancel()
	res := waitResult(t, ch, "interrupted lossless write")
	if want := len(framed(pkts[:3]...)); res.err != nil || res.n != want {
		t.Fatalf("interrupted lossless write = %d, %v; want %d (3 frames)", res.n, res.err, want)
	}
	// Interrupted before any: EINTR, and nothing taken.
	ctx, cancel = context.WithCancel(context.Background())
	ch = goWrite(ctx, s, all[len(framed(pkts[:3]...)):])
	expectBlocked(t, ch, "lossless write to a full queue")
	cancel()
	if res := waitResult(t, ch, "interrupted write"); !errors.Is(res.err, syscall.EINTR) || res.n != 0 {
		t.Fatalf("interrupted write with nothing sent = %d, %v; want EINTR", res.n, res.err)
	}
	// Non-blocking: EAGAIN, then after a read, one frame's worth.
	if n, err := s.Write(context.Background(), framed(pkts[3:]...), 0, true); !errors.Is(err, syscall.EAGAIN) || n != 0 {
		t.Fatalf("non-blocking write to a full queue = %d, %v; want EAGAIN", n, err)
	}
	expectPkt(t, r, pkts[0], "r")
	if n, err := s.Write(context.Background(), framed(pkts[3:]...), 0, true); err != nil || n != len(framed(pkts[3])) {
		t.Fatalf("non-blocking write with room for one = %d, %v; want %d", n, err, len(framed(pkts[3])))
	}
	// A frame cut by an interrupted write stays kept: completing it
	// later sends it whole.
	for _, p := range pkts[1:4] {
		expectPkt(t, r, p, "r")
	}
	half := framed(pkts[4])
	writeAll(t, s, half[:10])
	expectEmpty(t, r, "after half a frame")
	writeAll(t, s, half[10:])
	expectPkt(t, r, pkts[4], "r")
}

// Readiness: readable when a frame is queued, and while a frame a short
// read began is left; writable as data.
func TestStreamPoll(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "stpoll", 0777)
	w := openData(t, nd, rootCred, syscall.O_WRONLY)
	s := openStream(t, nd, rootCred, syscall.O_RDWR)
	wk := &waker{}
	if got := pollOf(t, s).Poll(pollIn|pollOut, wk.wake); got != pollOut {
		t.Fatalf("idle stream: revents %#x, want POLLOUT only", got)
	}
	send(t, w, []byte("abcdef"))
	if wk.n.Load() != 1 {
		t.Fatalf("a packet woke the poll %d times, want 1", wk.n.Load())
	}
	if got := pollOf(t, s).Poll(pollIn, nil); got != pollIn {
		t.Fatalf("stream with a frame: revents %#x, want POLLIN", got)
	}
	if got, err := recvNow(s, 3); err != nil || !bytes.Equal(got, framed([]byte("abcdef"))[:3]) {
		t.Fatalf("short read = %x, %v", got, err)
	}
	if got := pollOf(t, s).Poll(pollIn, nil); got != pollIn {
		t.Fatalf("stream with half a frame read: revents %#x, want POLLIN", got)
	}
	if got, err := recvNow(s, 100); err != nil || !bytes.Equal(got, framed([]byte("abcdef"))[3:]) {
		t.Fatalf("rest = %x, %v", got, err)
	}
	if got := pollOf(t, s).Poll(pollIn, nil); got != 0 {
		t.Fatalf("drained stream: revents %#x, want 0", got)
	}
	// Lossless with a full receiver: not writable.
	mustCtl(t, nd, "lossless on\nqlen 1\n")
	r := openData(t, nd, rootCred, syscall.O_RDONLY)
	writeAll(t, s, framed([]byte("x")))
	if got := pollOf(t, s).Poll(pollOut, nil); got != 0 {
		t.Fatalf("lossless stream with a full receiver: revents %#x, want 0", got)
	}
	expectPkt(t, r, []byte("x"), "r")
	if got := pollOf(t, s).Poll(pollOut, nil); got != pollOut {
		t.Fatalf("lossless stream with room: revents %#x, want POLLOUT", got)
	}
}

// Rights as data: r receives, w sends, the half without a right fails
// with EBADF, no right EACCES.
func TestStreamRights(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "strights", 0744) // others: r only
	if _, err := netFileOf(t, nd, "stream").Open(context.Background(), ownerCred, syscall.O_WRONLY); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("O_WRONLY without w: %v, want EACCES", err)
	}
	s := openStream(t, nd, ownerCred, syscall.O_RDWR) // r half only
	if _, err := s.Write(context.Background(), framed([]byte("x")), 0, false); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("write without w: %v, want EBADF", err)
	}
	w := openStream(t, nd, rootCred, syscall.O_WRONLY)
	if _, err := w.Read(context.Background(), make([]byte, 10), 0, true); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("read of a write-only stream: %v, want EBADF", err)
	}
	writeAll(t, w, framed([]byte("hello")))
	expectPkt(t, s, framed([]byte("hello")), "reader")
	nd.Chmod(rootCred, 0700)
	if _, err := netFileOf(t, nd, "stream").Open(context.Background(), ownerCred, syscall.O_RDONLY); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("open without rights: %v, want EACCES", err)
	}
	if a := netFileOf(t, nd, "stream").Attr(ownerCred); a.Mode&0777 != 0600 {
		t.Fatalf("stream mode %#o, want 0600 (as data)", a.Mode&0777)
	}
}

// Counters and pcap see packets, not writes.
func TestStreamCountsPackets(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "stcount", 0777)
	ph := openFile(t, nd, "pcap", rootCred, syscall.O_RDONLY)
	s := openStream(t, nd, rootCred, syscall.O_RDWR)
	r := openData(t, nd, rootCred, syscall.O_RDWR)
	pkts := [][]byte{eth(macBcast, macA, "one"), eth(macB, macA, "two"), eth(macBcast, macA, "three")}
	all := framed(pkts...)
	writeAll(t, s, all[:20])
	writeAll(t, s, all[20:])
	send(t, r, []byte("back"))
	row := portRow(t, nd, s.(*streamHandle).p.id)
	txBytes := len(pkts[0]) + len(pkts[1]) + len(pkts[2])
	if row["TXPKTS"] != "3" || row["TXBYTES"] != fmt.Sprint(txBytes) || row["RXPKTS"] != "1" || row["RXBYTES"] != "4" ||
		row["KIND"] != "file" || row["MODE"] != "rw" {
		t.Fatalf("stream port row %v: want TXPKTS 3 TXBYTES %d RXPKTS 1 RXBYTES 4", row, txBytes)
	}
	if st := statsOf(t, nd); st["packets"] != 4 || st["delivered"] != 4 {
		t.Fatalf("stats %v: want 4 packets, 4 delivered", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	pr, err := pcapgo.NewReader(handleReader{ph, ctx})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range append(pkts, []byte("back")) {
		data, _, err := pr.ReadPacketData()
		if err != nil || !bytes.Equal(data, want) {
			t.Fatalf("pcap record %d = %x, %v; want %x", i, data, err, want)
		}
	}
}

// The writer's queued-bytes budget holds for stream writes as for data:
// past it, frames are dropped and counted.
func TestStreamQueuedBudget(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), Limits: netcore.Limits{}.With(netcore.Queued, 64<<10, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nd := mkNet(t, c, ownerCred, "stbudget", 0777)
	mustCtl(t, nd, "qlen 65536\n")
	r := openData(t, nd, ownerCred, syscall.O_RDONLY)
	s := openStream(t, nd, ownerCred, syscall.O_WRONLY)
	pkts := numbered(100, 1000)
	writeAll(t, s, framed(pkts...))
	fit := int((64 << 10) / (1000 + entryCost))
	if got := c.Quota().UsedBy(1000, netcore.Queued); got != int64(fit)*(1000+entryCost) {
		t.Fatalf("uid 1000 has %d bytes queued, want %d (%d packets)", got, int64(fit)*(1000+entryCost), fit)
	}
	if st := nd.n.Stats(); st.Drops != uint64(100-fit) {
		t.Fatalf("stats %+v: want %d drops", st, 100-fit)
	}
	for range fit {
		if _, err := r.Read(context.Background(), make([]byte, 2000), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Quota().UsedBy(1000, netcore.Queued); got != 0 {
		t.Fatalf("after draining uid 1000 has %d bytes queued", got)
	}
}

// Removing the network under a blocked stream reader ends its read with
// end of file, after what a short read left.
func TestStreamEndOfFile(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "steof", 0777)
	s := openStream(t, nd, rootCred, syscall.O_RDONLY)
	ch := goRead(context.Background(), s, 100)
	expectBlocked(t, ch, "read")
	nd.n.shutdown(false)
	if r := waitResult(t, ch, "read at shutdown"); r.err != nil || r.n != 0 {
		t.Fatalf("read at shutdown = %d, %v; want end of file", r.n, r.err)
	}
	if _, err := s.Write(context.Background(), framed([]byte("x")), 0, false); err == nil {
		t.Fatalf("write to a removed network succeeded")
	}
}

// Lossless with the writer's budget spent: a stream write waits for
// readers to free it, as a data write does, and a signal ends it with
// the bytes of the frames sent.
func TestStreamLosslessBudgetWaits(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), Limits: netcore.Limits{}.With(netcore.Queued, 64<<10, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nd := mkNet(t, c, ownerCred, "stllbudget", 0777)
	mustCtl(t, nd, "qlen 65536\nlossless on\n")
	r := openData(t, nd, ownerCred, syscall.O_RDONLY)
	s := openStream(t, nd, ownerCred, syscall.O_WRONLY)
	pkts := numbered(100, 1000)
	fit := int((64 << 10) / (1000 + entryCost))
	ctx, cancel := context.WithCancel(context.Background())
	ch := goWrite(ctx, s, framed(pkts...))
	expectBlocked(t, ch, "a lossless write past the budget")
	for i := range 10 {
		expectPkt(t, r, pkts[i], "r")
	}
	deadline := time.Now().Add(waitLimit)
	for nd.n.Stats().Packets < uint64(fit+10) {
		if time.Now().After(deadline) {
			t.Fatalf("reads freed the budget, but %d packets went, want %d", nd.n.Stats().Packets, fit+10)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	res := waitResult(t, ch, "interrupted write")
	if want := len(framed(pkts[:fit+10]...)); res.err != nil || res.n != want {
		t.Fatalf("interrupted write = %d, %v; want %d (%d frames)", res.n, res.err, want, fit+10)
	}
	if st := nd.n.Stats(); st.Drops != 0 {
		t.Fatalf("lossless dropped %d", st.Drops)
	}
}

// A panic under a stream write's batch (contained by the caller) still
// lets go of the charges of the frames the batch dropped, once.
func TestStreamBatchPanicReleases(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), Limits: netcore.Limits{}.With(netcore.Queued, 64<<10, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nd := mkNet(t, c, ownerCred, "stpanic", 0777)
	r := openData(t, nd, ownerCred, syscall.O_RDONLY)
	s := openStream(t, nd, ownerCred, syscall.O_WRONLY)
	testHookBatchFrame = func(n *Network, frame int) {
		if frame == 1 {
			r.(*dataHandle).p.shut() // its queue refuses what the batch holds for it
			panic("boom")
		}
	}
	t.Cleanup(func() { testHookBatchFrame = nil })
	func() {
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		s.Write(context.Background(), framed(numbered(3, 100)...), 0, false)
	}()
	testHookBatchFrame = nil
	if got := c.Quota().UsedBy(1000, netcore.Queued); got != 0 {
		t.Fatalf("after the panic uid 1000 has %d bytes queued, want 0", got)
	}
}

// budgetCore is a core whose uids may each have perUid queued bytes.
func budgetCore(t *testing.T, perUid int64) *netcore.Core {
	t.Helper()
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), Limits: netcore.Limits{}.With(netcore.Queued, perUid, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func queuedBy(c *netcore.Core, uid uint32) int64 { return c.Quota().UsedBy(uid, netcore.Queued) }

// The frame a stream write ends inside is kept in a buffer that grows as
// its bytes arrive, and its writer pays for them until it is sent or the
// file closed.
func TestStreamKeptFrameCharged(t *testing.T) {
	c := budgetCore(t, 64<<10)
	nd := mkNet(t, c, ownerCred, "stkept", 0777)
	mustCtl(t, nd, "mtu 9000\n")
	s := openStream(t, nd, ownerCred, syscall.O_WRONLY)
	h := s.(*streamHandle)
	f := bytes.Repeat([]byte{'k'}, 9000)
	b := framed(f)
	writeAll(t, s, b[:2])
	if cap(h.in.body) != 0 || queuedBy(c, 1000) != 0 {
		t.Fatalf("a length alone: buffer of %d, %d bytes charged", cap(h.in.body), queuedBy(c, 1000))
	}
	writeAll(t, s, b[2:1002])
	if got := queuedBy(c, 1000); got != 1000 || cap(h.in.body) > 2000 {
		t.Fatalf("1000 bytes kept: %d charged, buffer of %d", got, cap(h.in.body))
	}
	writeAll(t, s, b[1002:5000])
	if got := queuedBy(c, 1000); got != 4998 {
		t.Fatalf("4998 bytes kept: %d charged", got)
	}
	writeAll(t, s, b[5000:])
	if got := queuedBy(c, 1000); got != 0 {
		t.Fatalf("frame sent: %d charged", got)
	}
	writeAll(t, s, b[:3000])
	s.Close()
	if got := queuedBy(c, 1000); got != 0 {
		t.Fatalf("closed with a kept frame: %d charged", got)
	}
}

// A kept frame its writer's budget cannot hold is dropped and counted,
// its bytes taken and let go: the stream stays in step.
func TestStreamKeptFrameOverBudget(t *testing.T) {
	c := budgetCore(t, 2048)
	nd := mkNet(t, c, ownerCred, "stkeptbudget", 0777)
	mustCtl(t, nd, "mtu 9000\n")
	r := openData(t, nd, ownerCred, syscall.O_RDONLY)
	s := openStream(t, nd, ownerCred, syscall.O_WRONLY)
	b := framed(bytes.Repeat([]byte{'k'}, 3000), []byte("next"))
	writeAll(t, s, b[:1000])
	writeAll(t, s, b[1000:2500])
	if got := queuedBy(c, 1000); got != 0 {
		t.Fatalf("past the budget: %d charged", got)
	}
	if st := nd.n.Stats(); st.Drops != 1 {
		t.Fatalf("stats %+v: want 1 drop", st)
	}
	writeAll(t, s, b[2500:])
	expectPkt(t, r, []byte("next"), "reader")
	expectEmpty(t, r, "reader")
	if got := queuedBy(c, 1000); got != 0 {
		t.Fatalf("after reading: %d charged", got)
	}
	small := framed(bytes.Repeat([]byte{'s'}, 1000))
	writeAll(t, s, small[:500])
	writeAll(t, s, small[500:])
	expectPkt(t, r, small[2:], "reader, a kept frame within the budget")
}

// On a lossless network a blocking writer whose kept frame finds the
// budget spent waits for room instead of losing the frame; a signal
// ends the wait, and then the frame is a drop.
func TestStreamKeptFrameLosslessWaits(t *testing.T) {
	c := budgetCore(t, 4096)
	nd := mkNet(t, c, ownerCred, "stkeptwait", 0777)
	mustCtl(t, nd, "mtu 9000\nlossless on\n")
	r := openData(t, nd, ownerCred, syscall.O_RDONLY)
	w := openData(t, nd, ownerCred, syscall.O_WRONLY)
	s := openStream(t, nd, ownerCred, syscall.O_WRONLY)
	send(t, w, bytes.Repeat([]byte{'q'}, 3000)) // most of the budget, queued for r
	b := framed(bytes.Repeat([]byte{'k'}, 2000))
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(context.Background(), b[:1500], 0, false)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("kept frame past the budget: write returned (%v), want it to wait", err)
	case <-time.After(100 * time.Millisecond):
	}
	expectPkt(t, r, bytes.Repeat([]byte{'q'}, 3000), "reader, making room")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write after room: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write still waits after a read made room")
	}
	writeAll(t, s, b[1500:])
	expectPkt(t, r, b[2:], "reader, the kept frame")
	if st := nd.n.Stats(); st.Drops != 0 {
		t.Fatalf("stats %+v: want no drop on a lossless network", st)
	}

	// A signal while waiting: the frame is dropped, its bytes taken.
	send(t, w, bytes.Repeat([]byte{'q'}, 3000))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n, err := s.Write(ctx, b[:1500], 0, false); n != 1500 || err != nil {
		t.Fatalf("interrupted wait: %d, %v; want 1500, nil", n, err)
	}
	if st := nd.n.Stats(); st.Drops != 1 {
		t.Fatalf("stats %+v: want the interrupted frame dropped", st)
	}
}

// A packet a short read began stays charged as it was in the queue until
// its end is read, or the file closed.
func TestStreamPendingCharged(t *testing.T) {
	c := budgetCore(t, 64<<10)
	nd := mkNet(t, c, ownerCred, "stpend", 0777)
	w := openData(t, nd, ownerCred, syscall.O_WRONLY)
	s := openStream(t, nd, rootCred, syscall.O_RDONLY)
	pkt := bytes.Repeat([]byte{'p'}, 1000)
	send(t, w, pkt)
	buf := make([]byte, 2000)
	if k, err := s.Read(context.Background(), buf[:10], 0, true); k != 10 || err != nil {
		t.Fatalf("short read %d, %v", k, err)
	}
	if got := queuedBy(c, 1000); got != 1000 {
		t.Fatalf("pending: %d charged, want 1000", got)
	}
	if k, err := s.Read(context.Background(), buf, 0, true); k != 992 || err != nil {
		t.Fatalf("rest read %d, %v", k, err)
	}
	if got := queuedBy(c, 1000); got != 0 {
		t.Fatalf("read whole: %d charged", got)
	}
	send(t, w, pkt)
	if k, err := s.Read(context.Background(), buf[:10], 0, true); k != 10 || err != nil {
		t.Fatalf("short read %d, %v", k, err)
	}
	s.Close()
	if got := queuedBy(c, 1000); got != 0 {
		t.Fatalf("closed with a pending packet: %d charged", got)
	}
}
