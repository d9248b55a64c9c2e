// SPDX-License-Identifier: BSD-3-Clause

package tap

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dgramPair is a connected pair of non-blocking datagram sockets, the
// far one as a FrameFile, with small buffers so that it fills quickly.
func dgramPair(t *testing.T) (near int, far *FrameFile) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]) })
	unix.SetsockoptInt(fds[1], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	f, err := NewFrameFile(fds[1], "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return fds[0], f
}

// A FrameFile moves whole datagrams, says EAGAIN when it cannot without
// waiting, and its Close wakes a Read and a Write that wait. Needs no root.
func TestFrameFileDatagrams(t *testing.T) {
	near, f := dgramPair(t)
	buf := make([]byte, 100)
	if _, err := f.TryRead(buf); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("TryRead with nothing waiting: %v, want EAGAIN", err)
	}
	unix.Write(near, []byte("one"))
	unix.Write(near, []byte("two!"))
	if n, err := f.TryRead(buf); err != nil || string(buf[:n]) != "one" {
		t.Fatalf("TryRead: %q %v", buf[:n], err)
	}
	if n, err := f.Read(buf); err != nil || string(buf[:n]) != "two!" {
		t.Fatalf("Read: %q %v", buf[:n], err)
	}
	if n, err := f.TryWrite([]byte("back")); n != 4 || err != nil {
		t.Fatalf("TryWrite: %d %v", n, err)
	}
	if n, _ := unix.Read(near, buf); string(buf[:n]) != "back" {
		t.Fatalf("near end read %q", buf[:n])
	}
	// Fill the far end's way out: TryWrite says EAGAIN, Write waits.
	frame := make([]byte, 1000)
	full := false
	for range 10000 {
		if _, err := f.TryWrite(frame); errors.Is(err, unix.EAGAIN) {
			full = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !full {
		t.Fatal("TryWrite never said EAGAIN")
	}
	wrote := make(chan error, 1)
	go func() { _, err := f.Write(frame); wrote <- err }()
	read := make(chan error, 1)
	_, g := dgramPair(t) // nothing is ever sent to g
	go func() { _, err := g.Read(buf); read <- err }()
	select {
	case err := <-wrote:
		t.Fatalf("Write into a full socket returned at once: %v", err)
	case err := <-read:
		t.Fatalf("Read with nothing waiting returned at once: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	f.Close()
	g.Close()
	for what, ch := range map[string]chan error{"Write": wrote, "Read": read} {
		select {
		case err := <-ch:
			if !errors.Is(err, os.ErrClosed) {
				t.Errorf("waiting %s after Close: %v, want os.ErrClosed", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Close did not wake a waiting %s", what)
		}
	}
	if _, err := f.TryRead(buf); !errors.Is(err, os.ErrClosed) {
		t.Errorf("TryRead after Close: %v, want os.ErrClosed", err)
	}
}
