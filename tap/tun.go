package tap

import (
	"fmt"

	"github.com/mnet-project/mnet/vnet"
	"golang.org/x/sys/unix"
)

// Offloads the TAP accepts from the kernel: checksums left to us and TCP
// segments up to 64 KiB. The network passes them through to other
// interfaces as they are and segments them in software for anyone else
// (Segment). UDP offloads stay off: UFO would need IP fragmentation.
const tapOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN

// Tap is a TAP device opened through /dev/net/tun.
type Tap struct {
	name    string
	mtu     int
	created bool
	f       *frameFile
}

// OpenTap creates the TAP device name, or takes over the existing TAP of
// that name, and brings it up. A TAP it creates gets MTU mtu (0 leaves the
// kernel's default) and is not persistent: it disappears when the device is
// closed, also when the daemon dies or the TAP was moved to another network
// namespace. An existing TAP keeps its MTU and its persistence.
//
// Errors: EINVAL for a bad name, ErrNotTap when name is another kind of
// interface, EBUSY when another process holds the TAP.
func OpenTap(name string, mtu int) (*Tap, error) {
	if err := CheckName(name); err != nil {
		return nil, unix.EINVAL
	}
	existed := Exists(name)
	if existed {
		isTap, err := IsTap(name)
		if err != nil {
			return nil, err
		}
		if !isTap {
			return nil, ErrNotTap
		}
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, unix.EINVAL
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, err
	}
	t := &Tap{name: name, created: !existed}
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
	if t.f, err = newFrameFile(fd, "/dev/net/tun:"+name); err != nil {
		return nil, err
	}
	return t, nil
}

// Name is the interface name given to OpenTap.
func (t *Tap) Name() string { return t.name }

// MTU is the interface MTU when the device was opened.
func (t *Tap) MTU() int { return t.mtu }

// Created reports whether OpenTap created the interface (rather than
// taking over an existing one).
func (t *Tap) Created() bool { return t.created }

// Read returns the next frame the interface sent, header first.
func (t *Tap) Read(p []byte) (int, error) { return t.f.read(p) }

// Write hands one frame, header first, to the interface as received.
func (t *Tap) Write(p []byte) (int, error) { return t.f.write(p) }

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
func (t *Tap) Close() error { return t.f.Close() }
