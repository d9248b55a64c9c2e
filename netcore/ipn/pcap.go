// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/mnet-project/mnet/internal/pktq"
	"github.com/mnet-project/mnet/netcore"
)

// Bounds of one capture reader's backlog: beyond either, records are dropped
// for that reader alone and counted as pcap-drops, so a slow reader never
// slows the network.
const (
	captureMaxRecords = 4096
	captureMaxBytes   = 8 << 20
	pcapSnaplen       = MaxMTU
	// MaxCaptures bounds the readers of one network's pcap file, so their
	// backlogs bound the memory captures can hold.
	MaxCaptures = 64
)

type captureRecord struct {
	t   time.Time
	pkt []byte
}

// capture is one reader of a network's pcap file.
type capture struct {
	// payer is the reader's: records waiting for it are its queued
	// bytes (entryCost each beyond the packet, shared with the queues).
	payer *netcore.Payer
	// q holds the records not yet read, at most captureMaxRecords of at
	// most captureMaxBytes together (bytes).
	q     pktq.Queue[captureRecord]
	bytes atomic.Int64
	// unread is out.Len() for polls, which may not touch out.
	unread atomic.Int64

	out     bytes.Buffer // serialized, not yet read; only the reader touches it
	w       *pcapgo.Writer
	scratch []captureRecord
	// reading admits one reader of the handle at a time (threads sharing
	// the descriptor), and still lets a signal interrupt the wait.
	reading chan struct{}
}

func newCapture(payer *netcore.Payer) (*capture, error) {
	c := &capture{payer: payer, reading: make(chan struct{}, 1)}
	c.q.Init(c.charge, c.release)
	c.w = pcapgo.NewWriter(&c.out)
	if err := c.w.WriteFileHeader(pcapSnaplen, layers.LinkTypeEthernet); err != nil {
		return nil, err
	}
	c.unread.Store(int64(c.out.Len()))
	return c, nil
}

// charge admits a record within the byte bound and the payer's budget;
// it runs under the queue's lock, so admissions do not race each other.
func (c *capture) charge(r captureRecord) bool {
	if c.bytes.Load()+int64(len(r.pkt)) > captureMaxBytes ||
		c.payer.Take(netcore.Queued, chargeOf(len(r.pkt), 1)) != nil {
		return false
	}
	c.bytes.Add(int64(len(r.pkt)))
	return true
}

func (c *capture) release(r captureRecord) {
	c.bytes.Add(-int64(len(r.pkt)))
	c.payer.Release(netcore.Queued, chargeOf(len(r.pkt), 1))
}

// add queues a record; false means it was dropped. Called under the
// network's mutex; it returns the wakeup of a poll armed on the capture,
// if any, for the caller to call once it holds no lock.
func (c *capture) add(t time.Time, pkt []byte) (ok bool, pollWake func()) {
	return c.q.Put(captureRecord{t, pkt}, captureMaxRecords)
}

// shut ends the capture: reads return what is left, then end of file. It
// returns the wakeup of a poll armed on it, as add does.
func (c *capture) shut() (pollWake func()) { return c.q.Close(false) }

// poll reports the pcap file readable when capture bytes are pending or
// the capture has ended (PollHup: reads return end of file once drained).
// It is never writable: writes fail with EBADF.
func (c *capture) poll(events uint32, wake func()) uint32 {
	if events&(netcore.PollIn|netcore.PollRdNorm) == 0 {
		wake = nil
	}
	st := c.q.Poll(wake)
	var ready uint32
	if st.Len > 0 || st.Closed || c.unread.Load() > 0 {
		ready = netcore.PollIn | netcore.PollRdNorm
	}
	if st.Closed {
		ready |= netcore.PollHup
	}
	return ready & (events | netcore.PollHup)
}

// readDone is the end of a read that consumed from out: a poll that
// looked while the read had taken the records but not yet turned them into
// bytes saw nothing pending, so if bytes are left it is woken now.
func (c *capture) readDone() {
	left := c.out.Len()
	c.unread.Store(int64(left))
	if left == 0 {
		return
	}
	if wake := c.q.TakeWake(); wake != nil {
		wake()
	}
}

// read returns the stream's next bytes: the file header first, then
// records as packets flow. Only one read runs at a time per handle.
func (c *capture) read(ctx context.Context, p []byte, nonblock bool) (int, error) {
	select {
	case c.reading <- struct{}{}:
	default:
		// Another read of this handle runs: wait for it (a signal ends
		// the wait), but only then, so that a read with no reason to
		// wait is never EINTR.
		select {
		case c.reading <- struct{}{}:
		case <-ctx.Done():
			return 0, syscall.EINTR
		}
	}
	defer func() { <-c.reading }()
	for {
		if c.out.Len() > 0 {
			n, err := c.out.Read(p)
			c.readDone()
			return n, err
		}
		// Records become bytes as the reader asks for them, so that what
		// waits stays counted in its budget.
		c.scratch = c.scratch[:0]
		for size := 0; len(c.scratch) == 0 || size < len(p); {
			r, err := c.q.Get(ctx, true)
			if err == syscall.EAGAIN && len(c.scratch) == 0 && !nonblock {
				r, err = c.q.Get(ctx, false)
			}
			if err != nil {
				if len(c.scratch) > 0 {
					break
				}
				if err == io.EOF {
					return 0, nil
				}
				return 0, err
			}
			c.scratch = append(c.scratch, r)
			size += len(r.pkt)
		}
		for i, r := range c.scratch {
			ci := gopacket.CaptureInfo{Timestamp: r.t, CaptureLength: len(r.pkt), Length: len(r.pkt)}
			if err := c.w.WritePacket(ci, r.pkt); err != nil {
				return 0, syscall.EIO
			}
			c.scratch[i] = captureRecord{}
		}
	}
}

// discard drops the records no one will read: the file is released.
func (c *capture) discard() { c.q.Drain() }

// startCapture adds a capture reader, paying for its records, to the
// network.
func (n *Network) startCapture(payer *netcore.Payer) (*capture, error) {
	c, err := newCapture(payer)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, syscall.ENOENT
	}
	if len(n.captures) >= MaxCaptures {
		return nil, syscall.EBUSY
	}
	n.captures = append(n.captures, c)
	return c, nil
}

func (n *Network) stopCapture(c *capture) {
	n.mu.Lock()
	for i, x := range n.captures {
		if x == c {
			n.captures = append(n.captures[:i], n.captures[i+1:]...)
			break
		}
	}
	n.mu.Unlock()
	c.shut() // the file is being released: nobody polls it any more
	c.discard()
}
