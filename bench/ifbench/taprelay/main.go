// SPDX-License-Identifier: BSD-3-Clause

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
// mnet's links did before it waited in an epoll set of its own (setup
// relay-netpoll of run.sh). The other ways to wait, each a setup of
// run.sh, are what internal/fdpoll chose from:
//
//	-epoll      one locked thread for both sides in its own epoll set,
//	            in a blocking epoll_wait (the runtime knows; -timeout MS
//	            bounds each wait) (relay-epoll)
//	-rawepoll   the same, epoll_wait made as a raw system call with a
//	            10 ms timeout: the thread keeps its P (relay-rawepoll)
//	-rawpoll    one locked thread per direction, each in a raw ppoll on
//	            its own descriptor (relay-rawpoll)
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"

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

// relayEpoll serves both directions from one locked thread that waits in
// its own epoll set, as vde_switch's poll loop does: a frame read from one
// side is written to the other, and every descriptor is read until EAGAIN
// before the thread waits again.
func relayEpoll(fds [2]int, raw bool, timeout int, errc chan<- error) {
	runtime.LockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		errc <- err
		return
	}
	for i, fd := range fds {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			errc <- err
			return
		}
	}
	buf := make([]byte, vnetHdrLen+65536+64)
	events := make([]unix.EpollEvent, 2)
	for {
		var n int
		if raw {
			r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), 2, 10, 0, 0)
			n, err = int(r), nil
			if e != 0 {
				n, err = 0, e
			}
		} else {
			n, err = unix.EpollWait(ep, events, timeout)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			errc <- fmt.Errorf("epoll_wait: %w", err)
			return
		}
		for _, ev := range events[:n] {
			if err := drain(fds[ev.Fd], fds[1-ev.Fd], buf); err != nil {
				errc <- err
				return
			}
		}
	}
}

// drain copies the frames waiting on the non-blocking src to dst until
// src has none (nil) or an error other than EINTR.
func drain(src, dst int, buf []byte) error {
	for {
		m, err := unix.Read(src, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil
		case err != nil:
			return fmt.Errorf("read: %w", err)
		}
		// A frame the other side cannot take is dropped, as a switch
		// would.
		if _, err := unix.Write(dst, buf[:m]); err != nil && err != unix.EIO && err != unix.EINTR && err != unix.EAGAIN {
			return fmt.Errorf("write: %w", err)
		}
	}
}

// relayRawPoll is one direction of the relay on a locked thread that waits
// in a raw ppoll(2) on src alone, with a 10 ms timeout.
func relayRawPoll(src, dst int, errc chan<- error) {
	runtime.LockOSThread()
	buf := make([]byte, vnetHdrLen+65536+64)
	for {
		if err := drain(src, dst, buf); err != nil {
			errc <- err
			return
		}
		pfd := unix.PollFd{Fd: int32(src), Events: unix.POLLIN}
		ts := unix.NsecToTimespec(10e6)
		syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	}
}

func main() {
	vnet := flag.Bool("vnet", false, "virtio-net header with TSO and checksum offload, as mnet")
	netpoll := flag.Bool("netpoll", false, "non-blocking descriptors, reads waiting in Go's netpoller")
	epoll := flag.Bool("epoll", false, "one locked thread waiting in its own epoll set for both sides")
	rawPoll := flag.Bool("rawpoll", false, "one locked thread per direction, each in a raw ppoll on its own descriptor")
	timeout := flag.Int("timeout", -1, "with -epoll, epoll_wait's timeout in ms (-1: none)")
	rawEpoll := flag.Bool("rawepoll", false, "as -epoll, but epoll_pwait is a raw system call with a 10 ms timeout (the thread keeps its P)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: taprelay [-vnet] TAPA TAPB")
		os.Exit(2)
	}
	var fds [2]int
	for i, name := range flag.Args() {
		fd, err := openTap(name, *vnet, *netpoll || *epoll || *rawEpoll || *rawPoll)
		if err != nil {
			fmt.Fprintln(os.Stderr, "taprelay:", err)
			os.Exit(1)
		}
		fds[i] = fd
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	errc := make(chan error, 2)
	if *rawPoll {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 2)
		go relayRawPoll(fds[0], fds[1], errc)
		go relayRawPoll(fds[1], fds[0], errc)
	} else if *epoll || *rawEpoll {
		go relayEpoll(fds, *rawEpoll, *timeout, errc)
	} else if *netpoll {
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
