// SPDX-License-Identifier: BSD-3-Clause

// Command flood is a small pktgen: it sends UDP datagrams of a fixed
// payload size to one address as fast as one thread can, in sendmmsg(2)
// batches, for a given time, and prints how many it sent. run.sh runs it in
// namespace A of each setup with an 18-byte payload, which makes 60-byte
// Ethernet frames (64 bytes on a wire, with the FCS): the frames/s a switch
// forwards is then what arrives at B's interface, counted by the kernel
// (ip -s link), whatever becomes of the datagrams after that.
//
//	flood [-l 18] [-t 5] [-p 9] ADDR
//
// Output, one line: "sent N seconds S".
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr (x/sys/unix has no type for it).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

const batch = 64

func main() {
	size := flag.Int("l", 18, "UDP payload bytes")
	secs := flag.Float64("t", 5, "seconds to send")
	port := flag.Int("p", 9, "UDP destination port (9: discard)")
	flag.Parse()
	if flag.NArg() != 1 || *size < 0 || *size > 1472 || *secs <= 0 {
		fmt.Fprintln(os.Stderr, "usage: flood [-l BYTES] [-t SECS] [-p PORT] IPV4ADDR")
		os.Exit(2)
	}
	addr, err := netip.ParseAddr(flag.Arg(0))
	if err != nil || !addr.Is4() {
		fmt.Fprintln(os.Stderr, "flood: want an IPv4 address, not", flag.Arg(0))
		os.Exit(2)
	}
	runtime.LockOSThread()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		os.Exit(1)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: *port, Addr: addr.As4()}); err != nil {
		fmt.Fprintln(os.Stderr, "flood: connect:", err)
		os.Exit(1)
	}
	payload := make([]byte, max(*size, 1))
	iov := unix.Iovec{Base: &payload[0]}
	iov.SetLen(*size)
	var msgs [batch]mmsghdr
	for i := range msgs {
		msgs[i].hdr.Iov = &iov
		msgs[i].hdr.SetIovlen(1)
	}
	var sent uint64
	start := time.Now()
	deadline := start.Add(time.Duration(*secs * float64(time.Second)))
	for i := 0; ; i++ {
		if i%16 == 0 && time.Now().After(deadline) {
			break
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), batch, 0, 0, 0)
		switch errno {
		case 0:
			sent += uint64(n)
		case unix.EINTR, unix.ENOBUFS, unix.EAGAIN, unix.ECONNREFUSED:
			// ECONNREFUSED: an ICMP port unreachable came back; go on.
		default:
			fmt.Fprintln(os.Stderr, "flood: sendmmsg:", errno)
			os.Exit(1)
		}
	}
	fmt.Printf("sent %d seconds %.3f\n", sent, time.Since(start).Seconds())
}
