// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The flags families and link kinds register are mount flags, with their
// defaults, and in the help text.
func TestRegisteredFlags(t *testing.T) {
	o, err := parseMountFlags([]string{"--vde-dir", "/run/x/vde", "/m"})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.flags["vde-dir"]; got != "/run/x/vde" {
		t.Errorf("vde-dir = %q, want /run/x/vde", got)
	}
	if got := o.flags["netns-dir"]; got != "/run/netns" {
		t.Errorf("netns-dir = %q, want the default /run/netns", got)
	}
	for _, want := range []string{"\n  --vde-dir DIR   where each network", "\n  --netns-dir DIR[:DIR...]  where named", "\n  --log DEST"} {
		if !strings.Contains(usage(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	if _, err := parseMountFlags([]string{"--vde-dir", "/m"}); err == nil || !strings.Contains(err.Error(), "MOUNTPOINT") {
		t.Errorf("--vde-dir taking the mount point: %v, want want exactly one MOUNTPOINT", err)
	}
}

// cmd/mnet reaches families and link kinds through the registry only: it
// imports their packages for their init functions, never for a name.
func TestFamiliesImportedBlank(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/mnet-project/mnet/netcore/") && (imp.Name == nil || imp.Name.Name != "_") {
				t.Errorf("%s imports %s for a name: use the registry", name, path)
			}
		}
	}
}

// The families' limits come from the registry, in the help as they were
// written by hand before, and in Limits.
func TestLimitFlags(t *testing.T) {
	const want = `
  Limits (man 8 mnet): per uid, and in all with a reserve for CAP_SYS_ADMIN;
  SIZE is bytes, or with K, M or G:
  --max-networks-per-uid N     IPN networks one uid may own (default 256; ENOSPC)
  --max-persistent-per-uid N   of which persistent (default 32; ENOSPC)
  --max-hosts-per-uid N        mhost names one uid may own (default 256; ENOSPC)
  --max-endpoints-per-uid N    open mhost udp files of one uid (default 1024; EMFILE)
  --max-sockets-per-uid N      kernel sockets made for one uid, every family counted
                               together: inet, inet6, mhost, vxlan (default 1024; EMFILE)
  --max-queued-per-uid SIZE    bytes of packets waiting in queues for or from one uid
                               (default 64M; beyond: dropped, or a lossless writer waits)
  --max-networks N             networks in all (default 4096; ENOSPC)
  --max-hosts N                mhost names in all (default 4096; ENOSPC)
  --max-endpoints N            mhost endpoints in all (default 4096; ENFILE)
  --max-sockets N              kernel sockets in all (default 8192; ENFILE)
  --max-queued SIZE            queued bytes in all (default 256M)
  --root-reserve PERCENT       share of each global limit only CAP_SYS_ADMIN may use
                               (default 10; 0: none)
  --cpuprofile PATH            write a Go CPU profile of the whole run to PATH (for
`
	if !strings.Contains(usage(), want) {
		t.Errorf("usage lacks the limits as they were:\n%s", usage())
	}
	o, err := parseMountFlags([]string{"--max-hosts-per-uid", "7", "--max-networks", "9", "--max-queued", "1G", "/m"})
	if err != nil {
		t.Fatal(err)
	}
	const limits = "per uid: networks 256, persistent-networks 32, mhost-hosts 7, mhost-endpoints 1024, sockets 1024, " +
		"queued-bytes 67108864; in all: networks 9, mhost-hosts 4096, mhost-endpoints 4096, sockets 8192, " +
		"queued-bytes 1073741824; root reserve 10%"
	if got := o.limits.String(); got != limits {
		t.Errorf("limits %s, want %s", got, limits)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--max-endpoints", "0", "/m"}, "mount: --max-endpoints 0: want at least 1 (see mnet help)"},
		{[]string{"--max-persistent-per-uid", "x", "/m"}, "mount: --max-persistent-per-uid x: want a whole number, at least 1 (see mnet help)"},
		{[]string{"--max-queued-per-uid", "1K", "/m"}, "mount: --max-queued-per-uid 1K: want a size of at least 64K (see mnet help)"},
		{[]string{"--root-reserve", "51", "/m"}, "mount: --root-reserve 51: want a percentage, 0 to 50 (see mnet help)"},
	} {
		if _, err := parseMountFlags(tc.args); err == nil || err.Error() != tc.msg {
			t.Errorf("%q: %v, want %s", tc.args, err, tc.msg)
		}
	}
}
