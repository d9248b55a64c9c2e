// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ctlText is a ctl write of exactly size bytes: first, comment lines
// padding it, then last.
func ctlText(size int, first, last string) []byte {
	var b strings.Builder
	b.WriteString(first + "\n")
	for b.Len()+len(last)+len("# \n") < size {
		b.WriteString("# " + strings.Repeat("x", min(70, size-b.Len()-len(last)-len("# \n"))) + "\n")
	}
	b.WriteString(strings.Repeat("\n", size-b.Len()-len(last)))
	b.WriteString(last)
	return []byte(b.String())
}

// writeAt writes p to path in one write(2) from a buffer starting at byte
// offset of a page: the kernel cuts a long direct write where the page
// limit of one request ends, earlier when the buffer starts late in a
// page.
func writeAt(t *testing.T, path string, p []byte, offset int) (int, error) {
	t.Helper()
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, (len(p)+offset)/page*page+2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	buf := mem[offset : offset+len(p)]
	copy(buf, p)
	fd, err := openFile(path, unix.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return unix.Write(fd, buf)
}

// A ctl write is atomic whatever its size: one longer than 64 KiB fails
// whole with EFBIG and applies nothing, even where the kernel splits it
// into FUSE requests and its first part alone would be valid; one of
// 64 KiB applies every line. Buffers start at the beginning, the middle
// and the last byte of a page, where the kernel's first request is
// shortest.
func TestCtlWriteAtomicAnySize(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "robust-big")
	mh := d.path("mhost", "robust-big")
	if err := os.Mkdir(mh, 0o755); err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	for _, off := range []int{0, page / 2, page - 1} {
		// The write: a good line, comment padding, a bad line.
		for _, c := range []struct {
			path, first, last string
		}{
			{filepath.Join(net, "ctl"), "mtu 1000", "mtu 1\n"},
			{filepath.Join(net, "ctl"), "mtu 1000", "qlen 7\n"}, // every line valid
			{filepath.Join(mh, "ctl"), "inet 198.18.0.1", "bogus\n"},
			{filepath.Join(mh, "ctl"), "inet 198.18.0.1", "inet6 2001:db8::1\n"},
		} {
			p := ctlText(131079, c.first, c.last)
			n, err := writeAt(t, c.path, p, off)
			if !errors.Is(err, unix.EFBIG) {
				t.Errorf("%s: write of %d bytes at page offset %d: %d, %v; want -1 EFBIG", c.path, len(p), off, n, err)
			}
		}
		if got := readFile(t, filepath.Join(net, "ctl")); !strings.Contains(got, "\nmtu 65535\n") || !strings.Contains(got, "\nqlen 256\n") ||
			!strings.Contains(got, "last-error write too long") {
			t.Fatalf("page offset %d: a refused write applied something:\n%s", off, got)
		}
		if got := readFile(t, filepath.Join(mh, "ctl")); !strings.HasPrefix(got, "last-error write too long") {
			t.Fatalf("page offset %d: mhost ctl after a refused write:\n%s", off, got)
		}
		// Just above the bound, and a line cut by every boundary of
		// the long write: still nothing.
		for _, size := range []int{65537, 126977, 131072, 200000} {
			p := ctlText(size, "mtu 1000", "qlen 7\n")
			if n, err := writeAt(t, filepath.Join(net, "ctl"), p, off); !errors.Is(err, unix.EFBIG) {
				t.Errorf("write of %d bytes at page offset %d: %d, %v; want EFBIG", size, off, n, err)
			}
		}
		if got := readFile(t, filepath.Join(net, "ctl")); !strings.Contains(got, "\nmtu 65535\n") || !strings.Contains(got, "\nqlen 256\n") {
			t.Fatalf("page offset %d: a refused write applied something:\n%s", off, got)
		}

		// 64 KiB of valid lines applies all of them.
		p := ctlText(65536, "mtu 1000", "qlen 7\n")
		if n, err := writeAt(t, filepath.Join(net, "ctl"), p, off); err != nil || n != len(p) {
			t.Fatalf("write of 64 KiB at page offset %d: %d, %v", off, n, err)
		}
		if got := readFile(t, filepath.Join(net, "ctl")); !strings.Contains(got, "\nmtu 1000\n") || !strings.Contains(got, "\nqlen 7\n") {
			t.Fatalf("a 64 KiB write did not apply all its lines:\n%s", got)
		}
		p = ctlText(65536, "inet 198.18.0.1", "inet6 2001:db8::1\n")
		if n, err := writeAt(t, filepath.Join(mh, "ctl"), p, off); err != nil || n != len(p) {
			t.Fatalf("mhost write of 64 KiB at page offset %d: %d, %v", off, n, err)
		}
		if got := readFile(t, filepath.Join(mh, "ctl")); !strings.HasPrefix(got, "inet 198.18.0.1\ninet6 2001:db8::1\n") {
			t.Fatalf("mhost ctl after a 64 KiB write:\n%s", got)
		}
		mustCtl(t, net, "mtu 65535\nqlen 256")
		mustCtl(t, mh, "\n")
	}
}
