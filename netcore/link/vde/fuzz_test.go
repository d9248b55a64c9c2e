// SPDX-License-Identifier: BSD-3-Clause

package vde

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// FuzzReadRequest: a client's side of the handshake, any bytes in two
// writes split at cut, then its end of the stream, read as the switch
// reads it. readRequest returns at once (no wait for bytes that cannot
// come), and what it accepts is a request parseRequest accepts from what
// arrived: an absolute data socket path without NUL, a description
// within the bound.
func FuzzReadRequest(f *testing.F) {
	req := vdePlugRequest(&testing.T{})
	f.Add(req, uint16(len(req)))
	f.Add(req, uint16(4))
	f.Add(req, uint16(reqFixedLen))
	f.Add(req[:reqFixedLen-1], uint16(0))
	f.Add(append(req, make([]byte, 2000)...), uint16(100))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, cut uint16) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		client := os.NewFile(uintptr(fds[0]), "client")
		sf := os.NewFile(uintptr(fds[1]), "switch")
		fc, err := net.FileConn(sf)
		sf.Close()
		if err != nil {
			client.Close()
			t.Fatal(err)
		}
		conn := fc.(*net.UnixConn)
		defer conn.Close()
		go func() {
			at := min(int(cut), len(b))
			client.Write(b[:at])
			client.Write(b[at:])
			client.Close()
		}()
		start := time.Now()
		r, err := readRequest(conn)
		if time.Since(start) > handshakeTimeout/2 {
			t.Fatalf("readRequest took %v on a closed stream", time.Since(start))
		}
		if err != nil {
			return
		}
		if r.path == "" || r.path[0] != '/' || strings.IndexByte(r.path, 0) >= 0 || len(r.path) >= sunPathLen {
			t.Fatalf("accepted path %q", r.path)
		}
		if len(r.descr) > maxReqLen-reqFixedLen || !strings.HasPrefix(string(b[reqFixedLen:]), r.descr) {
			t.Fatalf("description %q of %q", r.descr, b)
		}
		if p, err := parseRequest(b[:reqFixedLen+len(r.descr)]); err != nil || p != r {
			t.Fatalf("readRequest took %+v, parseRequest of the same bytes %+v, %v", r, p, err)
		}
	})
}
