// SPDX-License-Identifier: BSD-3-Clause

package tap

import (
	"errors"
	"fmt"

	"github.com/mnet-project/mnet/internal/vnet"
	"golang.org/x/sys/unix"
)

// Offloads the TAP accepts from the kernel: checksums left to us and TCP
// segments up to 64 KiB. The network passes them through to other
// interfaces as they are and segments them in software for anyone else
// (Segment). UDP offloads stay off: UFO would need IP fragmentation.
const tapOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN

// Tap is a TAP device opened through /dev/net/tun, with one queue or
// several (IFF_MULTI_QUEUE).
type Tap struct {
	name    string
	mtu     int
	created bool
	f       *FrameFile   // queue 0
	queues  []*FrameFile // every queue, f first
}

// MaxQueues bounds the queues OpenTapQueues opens.
const MaxQueues = 16

// OpenTap creates the TAP device name, or takes over the existing TAP of
// that name, and brings it up. A TAP it creates gets MTU mtu (0 leaves the
// kernel's default) and is not persistent: it disappears when the device is
// closed, also when the daemon dies or the TAP was moved to another network
// namespace. An existing TAP keeps its MTU and its persistence.
//
// Errors: EINVAL for a bad name, ErrNotTap when name is another kind of
// interface, EBUSY when another process holds the TAP.
func OpenTap(name string, mtu int) (*Tap, error) { return OpenTapQueues(name, mtu, 1) }

// OpenTapQueues is OpenTap with up to queues queues (IFF_MULTI_QUEUE):
// the kernel hands each flow's frames to one queue, chosen by a hash of
// the flow (symmetric, so a flow's replies come back on the queue its
// frames were written to), and the queues can be read in parallel. A TAP
// that exists without IFF_MULTI_QUEUE is taken over with one queue. A
// multi-queue TAP held by another process is EBUSY too: the kernel would
// attach a second holder's queues, so OpenTapQueues asks it first.
func OpenTapQueues(name string, mtu, queues int) (*Tap, error) {
	if err := CheckName(name); err != nil {
		return nil, unix.EINVAL
	}
	queues = min(max(queues, 1), MaxQueues)
	existed := Exists(name)
	if existed {
		isTap, err := IsTap(name)
		if err != nil {
			return nil, err
		}
		if !isTap {
			return nil, ErrNotTap
		}
		if n, err := attachedQueues(name); err == nil && n > 0 {
			return nil, unix.EBUSY
		}
	}
	t := &Tap{name: name, created: !existed}
	fd, err := openQueue(name, queues > 1)
	if errors.Is(err, unix.EINVAL) && existed && queues > 1 {
		queues = 1 // a single-queue TAP
		fd, err = openQueue(name, false)
	}
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*Tap, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s %s: %w", name, what, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnet.HdrLen); err != nil {
		return fail("set vnet header size", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tapOffloads); err != nil {
		return fail("set offloads", err)
	}
	if t.created && mtu > 0 {
		if err := SetMTU(name, mtu); err != nil {
			return fail("set mtu", err)
		}
	}
	if t.mtu, err = MTU(name); err != nil {
		return fail("get mtu", err)
	}
	if err := Up(name); err != nil {
		return fail("bring up", err)
	}
	if t.f, err = NewFrameFile(fd, "/dev/net/tun:"+name); err != nil {
		return nil, err
	}
	t.queues = []*FrameFile{t.f}
	// More queues: the device is set up; a queue the kernel refuses
	// (another process took the slots) only means fewer.
	for len(t.queues) < queues {
		qfd, err := openQueue(name, true)
		if err != nil {
			break
		}
		f, err := NewFrameFile(qfd, "/dev/net/tun:"+name)
		if err != nil {
			break
		}
		t.queues = append(t.queues, f)
	}
	return t, nil
}

// openQueue opens /dev/net/tun and attaches it to TAP name, creating it
// if it does not exist.
func openQueue(name string, multi bool) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, unix.EINVAL
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Name is the interface name given to OpenTap.
func (t *Tap) Name() string { return t.name }

// MTU is the interface MTU when the device was opened.
func (t *Tap) MTU() int { return t.mtu }

// Created reports whether OpenTap created the interface (rather than
// taking over an existing one).
func (t *Tap) Created() bool { return t.created }

// Read returns the next frame the interface sent on queue 0, header first.
func (t *Tap) Read(p []byte) (int, error) { return t.f.Read(p) }

// Write hands one frame, header first, to the interface as received,
// through the queue of its flow (FlowHash), so that the kernel sends the
// flow's frames back on that queue.
func (t *Tap) Write(p []byte) (int, error) { return t.queues[t.queueOf(p)].Write(p) }

// queueOf is the queue Write writes p (header first) on: where the kernel
// sends the replies of p's flow.
func (t *Tap) queueOf(p []byte) int {
	if len(t.queues) == 1 {
		return 0
	}
	return int(FlowHash(p[min(len(p), vnet.HdrLen):]) % uint32(len(t.queues)))
}

// SetPersist marks the interface persistent (it outlives the device being
// closed, as `ip tuntap add` makes it) or not.
func (t *Tap) SetPersist(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return t.f.ioctl(func(fd int) error { return unix.IoctlSetInt(fd, unix.TUNSETPERSIST, v) })
}

// Close releases the device. A TAP that is not persistent disappears.
func (t *Tap) Close() error {
	var err error
	for i := len(t.queues) - 1; i >= 0; i-- {
		if cerr := t.queues[i].Close(); i == 0 {
			err = cerr
		}
	}
	return err
}

// TryRead returns the next frame on queue 0 if one is there now; EAGAIN if
// not. It may run while another goroutine waits in Read.
func (t *Tap) TryRead(p []byte) (int, error) { return t.f.TryRead(p) }

// PollFD is queue 0's descriptor, for a caller that waits for its
// readiness (POLLIN) itself and then reads with TryRead. It is valid
// until Close; do not close it.
func (t *Tap) PollFD() int { return t.f.PollFD() }

// Queues are the TAP's queues, queue 0 first.
func (t *Tap) Queues() []*Queue {
	qs := make([]*Queue, len(t.queues))
	for i, f := range t.queues {
		qs[i] = &Queue{f}
	}
	return qs
}

// Queue is one queue of a TAP, for reading.
type Queue struct{ f *FrameFile }

// Read returns the next frame of this queue, header first.
func (q *Queue) Read(p []byte) (int, error) { return q.f.Read(p) }

// TryRead is Tap.TryRead on this queue.
func (q *Queue) TryRead(p []byte) (int, error) { return q.f.TryRead(p) }

// PollFD is as Tap's, for this queue.
func (q *Queue) PollFD() int { return q.f.PollFD() }

// Exists is as Tap's.
func (q *Queue) Exists() bool { return tunAttached(q.f) }

// Exists reports whether the TAP is still there, in whatever namespace it
// is now: false once it is deleted (the descriptor is detached from it).
func (t *Tap) Exists() bool { return tunAttached(t.f) }

func tunAttached(f *FrameFile) bool {
	err := f.ioctl(func(fd int) error {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return err
		}
		return unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr)
	})
	return err == nil
}
