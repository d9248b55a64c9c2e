// SPDX-License-Identifier: BSD-3-Clause

package tap

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Socket buffers of a grabbed interface: large enough to ride out a burst
// of 64 KiB segments while the network is busy.
const grabSocketBuffer = 4 << 20

// ErrLoopback is returned by Grab for the loopback interface, which has no
// Ethernet to share.
var ErrLoopback = errors.New("the loopback interface cannot be grabbed")

// Grabbed is an existing interface attached through an AF_PACKET socket,
// the way a bridge port takes a NIC: every frame it receives is read here
// (promiscuous), and frames written here leave through it. Frames the
// interface sends itself are not seen, so what the network writes out does
// not come back in.
type Grabbed struct {
	name  string
	index int
	mtu   int
	f     *FrameFile
}

// Grab attaches the existing interface name and brings it up. Errors:
// EINVAL for a bad name, ENODEV when there is no such interface,
// ErrLoopback for a loopback interface.
func Grab(name string) (*Grabbed, error) {
	if err := CheckName(name); err != nil {
		return nil, unix.EINVAL
	}
	index, err := Index(name)
	if err != nil {
		return nil, err
	}
	if isLoopback(name) {
		return nil, ErrLoopback
	}
	mtu, err := MTU(name)
	if err != nil {
		return nil, err
	}
	// Up first: binding to an interface that is down leaves ENETDOWN
	// pending on the socket, which the first write would get.
	if err := Up(name); err != nil {
		return nil, err
	}
	// Protocol 0 receives nothing until bind names the interface and
	// ETH_P_ALL, so no frame of another interface slips in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Grabbed, error) {
		unix.Close(fd)
		return nil, err
	}
	for _, opt := range []struct{ level, name, value int }{
		{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1},
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, grabSocketBuffer},
		{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, grabSocketBuffer},
	} {
		if err := unix.SetsockoptInt(fd, opt.level, opt.name, opt.value); err != nil {
			return fail(err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		return fail(err)
	}
	// The membership is counted by the kernel and dropped with the socket,
	// so the interface leaves promiscuous mode when we let go.
	mreq := &unix.PacketMreq{Ifindex: int32(index), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
		return fail(err)
	}
	f, err := NewFrameFile(fd, "packet:"+name)
	if err != nil {
		return nil, err
	}
	return &Grabbed{name: name, index: index, mtu: mtu, f: f}, nil
}

func isLoopback(name string) bool {
	loop := false
	withIfreq(name, func(fd int, ifr *unix.Ifreq) error {
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		loop = ifr.Uint16()&unix.IFF_LOOPBACK != 0
		return nil
	})
	return loop
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Name is the grabbed interface's name.
func (g *Grabbed) Name() string { return g.name }

// Index is the grabbed interface's index.
func (g *Grabbed) Index() int { return g.index }

// MTU is the interface's MTU when it was grabbed.
func (g *Grabbed) MTU() int { return g.mtu }

// Read returns the next frame the interface received. ENETDOWN means the
// interface went down or away: the caller decides whether to go on.
func (g *Grabbed) Read(p []byte) (int, error) { return g.f.Read(p) }

// Write sends one frame out of the interface.
func (g *Grabbed) Write(p []byte) (int, error) { return g.f.Write(p) }

// Close lets the interface go.
func (g *Grabbed) Close() error { return g.f.Close() }

// TryRead returns the next frame if one is there now; EAGAIN if not. It
// may run while another goroutine waits in Read.
func (g *Grabbed) TryRead(p []byte) (int, error) { return g.f.TryRead(p) }

// PollFD is as Tap's, for the packet socket.
func (g *Grabbed) PollFD() int { return g.f.PollFD() }

// Exists reports whether the grabbed interface is still there, in the
// network namespace the socket was made in (an interface ioctl on a
// socket acts in the socket's namespace, wherever the caller is): false
// once it is deleted or moved to another namespace.
func (g *Grabbed) Exists() bool {
	err := g.f.ioctl(func(fd int) error {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return err
		}
		ifr.SetUint32(uint32(g.index))
		return unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr)
	})
	return err == nil
}
