package ipn

import (
	"bytes"
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
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
	mu      sync.Mutex
	recs    []captureRecord
	bytes   int
	closed  bool
	ready   chan struct{}
	out     bytes.Buffer // serialized, not yet read
	w       *pcapgo.Writer
	scratch []captureRecord
	// reading admits one reader of the handle at a time (threads sharing
	// the descriptor), and still lets a signal interrupt the wait.
	reading chan struct{}
}

func newCapture() (*capture, error) {
	c := &capture{ready: make(chan struct{}, 1), reading: make(chan struct{}, 1)}
	c.w = pcapgo.NewWriter(&c.out)
	if err := c.w.WriteFileHeader(pcapSnaplen, layers.LinkTypeEthernet); err != nil {
		return nil, err
	}
	return c, nil
}

// add queues a record; false means it was dropped. Called under the
// network's mutex.
func (c *capture) add(t time.Time, pkt []byte) bool {
	c.mu.Lock()
	if c.closed || len(c.recs) >= captureMaxRecords || c.bytes+len(pkt) > captureMaxBytes {
		c.mu.Unlock()
		return false
	}
	c.recs = append(c.recs, captureRecord{t, pkt})
	c.bytes += len(pkt)
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
	return true
}

func (c *capture) shut() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// read returns the stream's next bytes: the file header first, then
// records as packets flow. Only one read runs at a time per handle.
func (c *capture) read(ctx context.Context, p []byte, nonblock bool) (int, error) {
	select {
	case c.reading <- struct{}{}:
	case <-ctx.Done():
		return 0, syscall.EINTR
	}
	defer func() { <-c.reading }()
	for {
		if c.out.Len() > 0 {
			return c.out.Read(p)
		}
		c.mu.Lock()
		c.scratch, c.recs = c.recs, c.scratch[:0]
		c.bytes = 0
		closed := c.closed
		c.mu.Unlock()
		for i, r := range c.scratch {
			ci := gopacket.CaptureInfo{Timestamp: r.t, CaptureLength: len(r.pkt), Length: len(r.pkt)}
			if err := c.w.WritePacket(ci, r.pkt); err != nil {
				return 0, syscall.EIO
			}
			c.scratch[i] = captureRecord{}
		}
		if c.out.Len() > 0 {
			continue
		}
		if closed {
			return 0, nil
		}
		if nonblock {
			return 0, syscall.EAGAIN
		}
		select {
		case <-c.ready:
		case <-ctx.Done():
			return 0, syscall.EINTR
		}
	}
}

// startCapture adds a capture reader to the network.
func (n *Network) startCapture() (*capture, error) {
	c, err := newCapture()
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
	c.shut()
}
