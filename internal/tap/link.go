// SPDX-License-Identifier: BSD-3-Clause

// Package tap opens network interfaces as frame devices: TAP devices through
// /dev/net/tun, and existing interfaces grabbed with an AF_PACKET socket.
// Both carry Ethernet frames with a virtio-net header in front, so that TCP
// segments of up to 64 KiB (TSO/GSO) cross as one frame.
package tap

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Device is one interface as a frame device. Read and Write move one frame
// each, preceded by a vnet.HdrLen-byte virtio-net header. Read blocks until
// a frame arrives or the device is closed. Close may be called while
// another goroutine is in Read or Write.
type Device interface {
	Name() string
	// MTU is the interface's MTU when the device was opened: the largest
	// frame it takes is MTU plus an Ethernet header (and a VLAN tag).
	MTU() int
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
}

// ErrNotTap is returned by OpenTap when an interface of that name exists
// but is not a TAP device.
var ErrNotTap = errors.New("interface exists and is not a TAP device")

// CheckName reports whether name can be an interface name: 1 to 15 bytes,
// no slash, colon or white space, not "." or "..".
func CheckName(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q: want 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\r\v\f") {
		return fmt.Errorf("interface name %q: no '/', ':' or white space", name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x21 || name[i] > 0x7e {
			return fmt.Errorf("interface name %q: printable ASCII only", name)
		}
	}
	return nil
}

// ioctlSocket returns a socket to issue interface ioctls on. The ioctls act
// on the namespace of the calling thread, which is the daemon's.
func ioctlSocket() (int, error) {
	return unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
}

func withIfreq(name string, fn func(fd int, ifr *unix.Ifreq) error) error {
	if err := CheckName(name); err != nil {
		return unix.EINVAL
	}
	fd, err := ioctlSocket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return unix.EINVAL
	}
	return fn(fd, ifr)
}

// Index returns the interface index of name; ENODEV if there is none.
func Index(name string) (int, error) {
	var idx int
	err := withIfreq(name, func(fd int, _ *unix.Ifreq) (err error) {
		idx, err = IndexOn(fd, name)
		return err
	})
	return idx, err
}

// IndexOn is Index asked on socket fd, in the network namespace fd was
// made in (any socket does; an AF_INET datagram one is the usual).
func IndexOn(fd int, name string) (int, error) {
	return getUint32(fd, name, unix.SIOCGIFINDEX)
}

// getUint32 is the ioctl req that reads a number of interface name.
func getUint32(fd int, name string, req uint) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, unix.EINVAL
	}
	if err := unix.IoctlIfreq(fd, req, ifr); err != nil {
		return 0, err
	}
	return int(ifr.Uint32()), nil
}

// Exists reports whether an interface called name is in the daemon's
// network namespace.
func Exists(name string) bool {
	_, err := Index(name)
	return err == nil
}

// IsTap reports whether name is a TAP device (the tun driver in tap mode).
func IsTap(name string) (bool, error) {
	var tap bool
	err := withIfreq(name, func(fd int, _ *unix.Ifreq) error {
		info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
		if err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				return nil // no ethtool: not a tun device either
			}
			return err
		}
		tap = unix.ByteSliceToString(info.Driver[:]) == "tun" &&
			unix.ByteSliceToString(info.Bus_info[:]) == "tap"
		return nil
	})
	return tap, err
}

// MTU returns the MTU of interface name.
func MTU(name string) (int, error) {
	var mtu int
	err := withIfreq(name, func(fd int, _ *unix.Ifreq) (err error) {
		mtu, err = MTUOn(fd, name)
		return err
	})
	return mtu, err
}

// MTUOn is MTU asked on socket fd, in the network namespace fd was made
// in.
func MTUOn(fd int, name string) (int, error) {
	return getUint32(fd, name, unix.SIOCGIFMTU)
}

// SetMTU sets the MTU of interface name.
func SetMTU(name string, mtu int) error {
	return withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		ifr.SetUint32(uint32(mtu))
		return unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr)
	})
}

// Up brings interface name up (IFF_UP) if it is not already.
func Up(name string) error {
	return withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		flags := ifr.Uint16()
		if flags&unix.IFF_UP != 0 {
			return nil
		}
		ifr.SetUint16(flags | unix.IFF_UP)
		return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	})
}
