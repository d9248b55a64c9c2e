// SPDX-License-Identifier: BSD-3-Clause

package mhost

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

// FuzzCtl: any writes (separated by NUL) to one open of a host's ctl, as
// a shell writes line by line. Each write succeeds or fails with an errno
// the spec's ctl words name, and the list stays valid: at most
// MaxLocators, none twice, each a locator parseLocator reads back; the
// locators reading ctl shows, written to a new open, make the same list.
func FuzzCtl(f *testing.F) {
	for _, seed := range []string{
		"inet 198.18.0.1\ninet6 2001:db8::1\n",
		"inet 198.18.0.1\x00inet 198.18.0.2\x00-inet 198.18.0.1",
		"+ipn lab 198.18.0.9\x00+ipn lab 198.18.0.9",
		"inet 0.0.0.0\ninet6 ::ffff:1.2.3.4\ninet fe80::1%eth0\nipn .x 1.2.3.4",
		"# comment\n\n  inet   198.18.0.3  \n",
		strings.Repeat("+inet 198.18.1.1\x00", 2) + "-inet6 2001:db8::9",
	} {
		f.Add(seed)
	}
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	famNode, _ := c.Root().Lookup(root, "mhost")
	fam := famNode.(netcore.Dir)
	open := func(t *testing.T, flags int) netcore.Handle {
		t.Helper()
		d, err := fam.Lookup(root, "fuzz")
		if err != nil {
			t.Fatal(err)
		}
		ctl, err := d.(netcore.Dir).Lookup(root, "ctl")
		if err != nil {
			t.Fatal(err)
		}
		h, err := ctl.(netcore.File).Open(context.Background(), root, flags)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	read := func(t *testing.T) string {
		h := open(t, syscall.O_RDONLY)
		defer h.Close()
		b := make([]byte, 64<<10)
		n, _ := h.Read(context.Background(), b, 0, false)
		return string(b[:n])
	}
	f.Fuzz(func(t *testing.T, writes string) {
		if _, err := fam.(netcore.Mkdirer).Mkdir(root, "fuzz", 0o755); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := fam.(netcore.Rmdirer).Rmdir(root, "fuzz"); err != nil {
				t.Fatalf("rmdir: %v", err)
			}
		}()
		w := open(t, syscall.O_WRONLY)
		for _, text := range strings.Split(writes, "\x00") {
			_, err := w.Write(context.Background(), []byte(text), 0, false)
			var errno syscall.Errno
			if err != nil && (!errors.As(err, &errno) || (errno != syscall.EINVAL && errno != syscall.EEXIST &&
				errno != syscall.ENOENT && errno != syscall.ENOSPC)) {
				t.Fatalf("write %q: %v", text, err)
			}
		}
		w.Close()
		var shown string
		lines := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSuffix(read(t), "\n"), "\n") {
			if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "last-error ") {
				continue
			}
			shown += line + "\n"
			l, err := parseLocator(line)
			if err != nil || l.line() != line || lines[line] {
				t.Fatalf("ctl shows %q: %v", line, err)
			}
			lines[line] = true
		}
		if len(lines) > MaxLocators {
			t.Fatalf("%d locators", len(lines))
		}
		w = open(t, syscall.O_WRONLY)
		if _, err := w.Write(context.Background(), []byte(shown), 0, false); err != nil {
			t.Fatalf("ctl's own text %q written back: %v", shown, err)
		}
		w.Close()
		if again := read(t); again != shown && !strings.HasPrefix(again, shown+"last-error ") {
			t.Fatalf("ctl %q written back shows %q", shown, again)
		}
	})
}
