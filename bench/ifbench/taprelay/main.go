// Command taprelay is the smallest userspace forwarder between two TAP
// devices: it creates TAP A and TAP B and copies every frame read from one
// to the other, one thread per direction, one read(2) and one write(2) per
// frame. It has no switch table, no queues, no counters: run.sh uses it as
// the ceiling a userspace TAP switch on this machine can reach (setups
// relay and relay-plain), the way fusebench uses its bare relay.
//
//	taprelay [-vnet] [-netpoll] A B     # as root; runs until SIGTERM or SIGINT
//
// With -vnet the TAPs are opened with IFF_VNET_HDR and accept TSO and
// checksum offload (TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6), as mnet opens its
// TAPs: a TCP segment of up to 64 KiB crosses as one frame, its virtio-net
// header passed on unchanged. Without -vnet each frame is at most MTU
// bytes, as with vde_switch.
//
// With -netpoll the descriptors are non-blocking and each direction is a
// goroutine reading through os.File, which waits in Go's netpoller, as
// mnet's links do: the floor of a Go switch's round trip, with none of
// mnet's code on the path (setup relay-netpoll of run.sh).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

const vnetHdrLen = 10 // struct virtio_net_hdr

func openTap(name string, vnet, nonblock bool) (int, error) {
	oflags := unix.O_RDWR | unix.O_CLOEXEC
	if nonblock {
		oflags |= unix.O_NONBLOCK
	}
	fd, err := unix.Open("/dev/net/tun", oflags, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if vnet {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	if vnet {
		// TUNSETVNETHDRSZ takes a pointer (TUNSETOFFLOAD a value).
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("TUNSETVNETHDRSZ %s: %w", name, err)
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("TUNSETOFFLOAD %s: %w", name, err)
		}
	}
	return fd, nil
}

// relay copies frames from src to dst until an error other than EINTR.
func relay(src, dst int, errc chan<- error) {
	runtime.LockOSThread()
	buf := make([]byte, vnetHdrLen+65536+64)
	for {
		n, err := unix.Read(src, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			errc <- fmt.Errorf("read: %w", err)
			return
		}
		// A frame the other side cannot take (interface down, not
		// yet moved) is dropped, as a switch would.
		if _, err := unix.Write(dst, buf[:n]); err != nil && err != unix.EIO && err != unix.EINTR {
			errc <- fmt.Errorf("write: %w", err)
			return
		}
	}
}

// relayNetpoll is relay through os.File: reads wait in the netpoller.
func relayNetpoll(src, dst *os.File, errc chan<- error) {
	buf := make([]byte, vnetHdrLen+65536+64)
	for {
		n, err := src.Read(buf)
		if err != nil {
			errc <- fmt.Errorf("read: %w", err)
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil && !errors.Is(err, unix.EIO) {
			errc <- fmt.Errorf("write: %w", err)
			return
		}
	}
}

func main() {
	vnet := flag.Bool("vnet", false, "virtio-net header with TSO and checksum offload, as mnet")
	netpoll := flag.Bool("netpoll", false, "non-blocking descriptors, reads waiting in Go's netpoller")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: taprelay [-vnet] TAPA TAPB")
		os.Exit(2)
	}
	var fds [2]int
	for i, name := range flag.Args() {
		fd, err := openTap(name, *vnet, *netpoll)
		if err != nil {
			fmt.Fprintln(os.Stderr, "taprelay:", err)
			os.Exit(1)
		}
		fds[i] = fd
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	errc := make(chan error, 2)
	if *netpoll {
		a, b := os.NewFile(uintptr(fds[0]), flag.Arg(0)), os.NewFile(uintptr(fds[1]), flag.Arg(1))
		go relayNetpoll(a, b, errc)
		go relayNetpoll(b, a, errc)
	} else {
		go relay(fds[0], fds[1], errc)
		go relay(fds[1], fds[0], errc)
	}
	select {
	case <-sigs:
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "taprelay:", err)
		os.Exit(1)
	}
}
