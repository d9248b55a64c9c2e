// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/netcore"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// handleReader turns a blocking netcore.Handle into an io.Reader.
type handleReader struct {
	h   netcore.Handle
	ctx context.Context
}

func (r handleReader) Read(p []byte) (int, error) {
	n, err := r.h.Read(r.ctx, p, 0, false)
	if err == nil && n == 0 {
		return 0, fmt.Errorf("unexpected end of pcap stream")
	}
	return n, err
}

func TestPcapStream(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "cap", 0777)
	ph := openFile(t, nd, "pcap", ownerCred, syscall.O_RDONLY)
	if _, err := netFileOf(t, nd, "pcap").Open(context.Background(), rootCred, syscall.O_RDWR); err == nil {
		t.Error("pcap opened for writing")
	}
	a := openData(t, nd, rootCred, syscall.O_RDWR)
	b := openData(t, nd, rootCred, syscall.O_RDWR)

	pkts := [][]byte{
		eth(macBcast, macA, "one"),
		eth(macA, macB, "two, a little longer"),
		bytes.Repeat([]byte{0xab}, 1500),
	}
	start := time.Now().Add(-time.Second)
	send(t, a, pkts[0])
	send(t, b, pkts[1])
	send(t, a, pkts[2])

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	r, err := pcapgo.NewReader(handleReader{ph, ctx})
	if err != nil {
		t.Fatalf("pcapgo.NewReader: %v", err)
	}
	if lt := r.LinkType(); lt != layers.LinkTypeEthernet {
		t.Fatalf("link type %v, want Ethernet", lt)
	}
	for i, want := range pkts {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("record %d: %d bytes %x, want %x", i, len(data), data, want)
		}
		if ci.Length != len(want) || ci.CaptureLength != len(want) {
			t.Errorf("record %d: lengths %d/%d, want %d", i, ci.CaptureLength, ci.Length, len(want))
		}
		if ci.Timestamp.Before(start) || ci.Timestamp.After(time.Now().Add(time.Second)) {
			t.Errorf("record %d: timestamp %v is not now", i, ci.Timestamp)
		}
	}
	// No more records: a nonblocking read says so.
	if n, err := ph.Read(context.Background(), make([]byte, 100), 0, true); err != syscall.EAGAIN {
		t.Errorf("pcap read with nothing pending = %d, %v; want EAGAIN", n, err)
	}
	// Packets sent later keep flowing.
	late := eth(macBcast, macC, "late")
	send(t, b, late)
	data, _, err := r.ReadPacketData()
	if err != nil || !bytes.Equal(data, late) {
		t.Fatalf("late record %x, %v", data, err)
	}
}

func TestPcapSlowReaderDropsWithoutSlowingNetwork(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "slowcap", 0777)
	// Lossless with a deep queue: only the capture could ever hold a sender.
	mustCtl(t, nd, "qlen 65536\nlossless on\n")
	ph := openFile(t, nd, "pcap", rootCred, syscall.O_RDONLY) // never read below
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)

	const extra = 10
	total := captureMaxRecords + extra
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	pkt := eth(macBcast, macA, "x")
	for i := range total {
		if _, err := a.Write(ctx, pkt, 0, true); err != nil {
			t.Fatalf("send %d with an idle capture reader: %v (the network was slowed)", i, err)
		}
	}
	st := statsOf(t, nd)
	if st["packets"] != total || st["delivered"] != total {
		t.Fatalf("stats %v, want packets and delivered %d", st, total)
	}
	if st["pcap-drops"] != extra {
		t.Fatalf("pcap-drops %d, want %d (backlog bound %d)", st["pcap-drops"], extra, captureMaxRecords)
	}
	if got := c.Families()[0].(*ipnFamily).network("slowcap").Stats().PcapDrops; got != extra {
		t.Fatalf("Stats().PcapDrops = %d, want %d", got, extra)
	}
	_ = b
	_ = ph
}

func TestPcapEndsOnRmdir(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "capgone", 0777)
	ph := openFile(t, nd, "pcap", rootCred, syscall.O_RDONLY)
	hdr := make([]byte, 24)
	if n, err := ph.Read(context.Background(), hdr, 0, false); n != 24 || err != nil {
		t.Fatalf("pcap header read = %d, %v", n, err)
	}
	ch := goRead(context.Background(), ph, 100)
	expectBlocked(t, ch, "pcap read with no traffic")
	if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(rootCred, "capgone"); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, ch, "pcap read across rmdir"); r.n != 0 || r.err != nil {
		t.Fatalf("pcap read after rmdir = %d, %v; want end of file", r.n, r.err)
	}
}

// A read that has no reason to wait is not cut short by a signal: the
// header is there, so an interrupted read gets it (every time, not by the
// luck of a select).
func TestPcapReadInterruptedWithDataReady(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "capintr", 0777)
	interrupted, cancel := context.WithCancel(context.Background())
	cancel()
	for range 50 {
		ph := openFile(t, nd, "pcap", rootCred, syscall.O_RDONLY)
		if n, err := ph.Read(interrupted, make([]byte, 24), 0, true); n != 24 || err != nil {
			t.Fatalf("interrupted read with the header ready = %d, %v; want 24 bytes", n, err)
		}
		ph.Close()
	}
}

// The readers of one pcap file are bounded, and a closed one frees its slot.
func TestPcapReadersBounded(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "many", 0777)
	f := netFileOf(t, nd, "pcap")
	var hs []netcore.Handle
	for range MaxCaptures {
		h, err := f.Open(context.Background(), rootCred, syscall.O_RDONLY)
		if err != nil {
			t.Fatalf("pcap reader %d: %v", len(hs)+1, err)
		}
		hs = append(hs, h)
	}
	if _, err := f.Open(context.Background(), rootCred, syscall.O_RDONLY); err != syscall.EBUSY {
		t.Fatalf("pcap reader %d: %v, want EBUSY", MaxCaptures+1, err)
	}
	hs[0].Close()
	h, err := f.Open(context.Background(), rootCred, syscall.O_RDONLY)
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	h.Close()
	for _, h := range hs[1:] {
		h.Close()
	}
}
