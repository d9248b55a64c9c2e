// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

func TestCtlDefaults(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "defaults", 0777)
	txt := readAll(t, nd, "ctl")
	want := "policy hub\nmtu 65535\nqlen 256\nlossless off\nmaxports 1024\ndescr\npersist off\n" + memSvc + " on\n"
	if txt != want {
		t.Fatalf("ctl of a new network:\n%s\nwant:\n%s", txt, want)
	}
}

func TestCtlEveryWordParses(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "words", 0777)
	long := strings.Repeat("d", MaxDescr)
	for _, tc := range []struct{ cmd, key, val string }{
		{"policy switch", "policy", "switch"},
		{"policy hub", "policy", "hub"},
		{"mtu 64", "mtu", "64"},
		{"mtu 65535", "mtu", "65535"},
		{"mtu 1500", "mtu", "1500"},
		{"qlen 1", "qlen", "1"},
		{"qlen 65536", "qlen", "65536"},
		{"qlen 10", "qlen", "10"},
		{"lossless on", "lossless", "on"},
		{"lossless off", "lossless", "off"},
		{"maxports 1", "maxports", "1"},
		{"maxports 7", "maxports", "7"},
		{"descr lab network one", "descr", "lab network one"},
		{"descr " + long, "descr", long},
		{"persist on", "persist", "on"},
		{"persist off", "persist", "off"},
	} {
		if err := ctl(t, nd, rootCred, tc.cmd+"\n"); err != nil {
			t.Errorf("ctl %q: %v", tc.cmd, err)
			continue
		}
		if got := keyValues(readAll(t, nd, "ctl"))[tc.key]; got != tc.val {
			t.Errorf("after %q ctl shows %s %q, want %q", tc.cmd, tc.key, got, tc.val)
		}
	}
	// Several lines in one write apply in order; blank lines and comments
	// are ignored; a missing final newline is fine.
	if err := ctl(t, nd, rootCred, "mtu 100\n\n# comment\nmtu 200\nqlen 5"); err != nil {
		t.Fatal(err)
	}
	kv := keyValues(readAll(t, nd, "ctl"))
	if kv["mtu"] != "200" || kv["qlen"] != "5" {
		t.Errorf("multi-line write gave mtu %s qlen %s, want 200 and 5", kv["mtu"], kv["qlen"])
	}
	// An empty descr clears it.
	mustCtl(t, nd, "descr x\n")
	mustCtl(t, nd, "descr\n")
	if txt := readAll(t, nd, "ctl"); !strings.Contains(txt, "\ndescr\n") {
		t.Errorf("descr not cleared:\n%s", txt)
	}
	// The settings really apply: qlen 5 drops the 6th packet.
	a := openData(t, nd, rootCred, syscall.O_WRONLY)
	b := openData(t, nd, rootCred, syscall.O_RDONLY)
	for range 6 {
		send(t, a, []byte("x"))
	}
	if st := statsOf(t, nd); st["drops"] != 1 {
		t.Errorf("qlen 5: stats %v, want drops 1", st)
	}
	_ = b
}

func TestCtlBadWords(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "bad", 0777)
	before := readAll(t, nd, "ctl")
	for _, line := range []string{
		"mtu 63", "mtu 65536", "mtu", "mtu abc", "mtu -1",
		"qlen 0", "qlen 65537", "qlen x",
		"lossless yes", "lossless", "persist 1", "persist",
		"policy ring", "policy", "maxports 0", "maxports many",
		"descr " + strings.Repeat("d", MaxDescr+1),
		"frobnicate", "frobnicate 3", "MTU 1500",
	} {
		err := ctl(t, nd, rootCred, line+"\n")
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("ctl %q = %v, want EINVAL", line, err)
			continue
		}
		txt := readAll(t, nd, "ctl")
		i := strings.Index(txt, "last-error ")
		if i < 0 {
			t.Errorf("after %q no last-error in ctl:\n%s", line, txt)
			continue
		}
		if strings.TrimSpace(txt[i+len("last-error "):]) == "" {
			t.Errorf("after %q last-error is empty", line)
		}
		if txt[:i] != before {
			t.Errorf("bad line %q changed settings:\n%s\nwas:\n%s", line, txt[:i], before)
		}
	}
}

func TestCtlBadLineChangesNothing(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "atomic", 0777)
	before := readAll(t, nd, "ctl")
	err := ctl(t, nd, rootCred, "mtu 1500\nqlen 5\npolicy switch\nbogus\nlossless on\n")
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("write with a bad line = %v, want EINVAL", err)
	}
	txt := readAll(t, nd, "ctl")
	i := strings.Index(txt, "last-error ")
	if i < 0 {
		t.Fatalf("no last-error:\n%s", txt)
	}
	if !strings.Contains(txt[i:], "bogus") {
		t.Errorf("last-error does not name the bad word: %q", txt[i:])
	}
	if txt[:i] != before {
		t.Fatalf("a write with one bad line changed settings:\n%s\nwas:\n%s", txt[:i], before)
	}
	// The bad line is first here: still nothing changes.
	if err := ctl(t, nd, rootCred, "qlen 0\nmtu 1500\n"); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("write with bad first line = %v", err)
	}
	if kv := keyValues(readAll(t, nd, "ctl")); kv["mtu"] != "65535" {
		t.Fatalf("mtu %s after a refused write", kv["mtu"])
	}
}

func TestCtlInterfacesNeedRoot(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, ownerCred, "ifs", 0700)
	for _, line := range []string{"tap tap0", "grab eth0", "detach tap0"} {
		if err := ctl(t, nd, ownerCred, line+"\n"); !errors.Is(err, syscall.EPERM) {
			t.Errorf("ctl %q by the (non-root) owner = %v, want EPERM", line, err)
		}
		if kv := keyValues(readAll(t, nd, "ctl")); kv["last-error"] == "" {
			t.Errorf("ctl %q: no last-error", line)
		}
	}
	// The first bad line decides the errno and the reason.
	if err := ctl(t, nd, ownerCred, "tap tap0\nfrobnicate\n"); !errors.Is(err, syscall.EPERM) {
		t.Errorf("tap then unknown word: %v, want EPERM (first bad line)", err)
	}
	if kv := keyValues(readAll(t, nd, "ctl")); !strings.Contains(kv["last-error"], "tap") {
		t.Errorf("last-error %q should be about the first bad line (tap)", kv["last-error"])
	}
	if err := ctl(t, nd, ownerCred, "frobnicate\ntap tap0\n"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("unknown word then tap: %v, want EINVAL (first bad line)", err)
	}
	if kv := keyValues(readAll(t, nd, "ctl")); !strings.Contains(kv["last-error"], "frobnicate") {
		t.Errorf("last-error %q should name frobnicate", kv["last-error"])
	}
	// The owner may still manage everything else.
	if err := ctl(t, nd, ownerCred, "mtu 1500\n"); err != nil {
		t.Fatalf("owner ctl: %v", err)
	}
}

func TestCtlRights(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, ownerCred, "ctlrights", 0764) // group rw (no x), other r
	ctlFile := netFileOf(t, nd, "ctl")
	group := &netcore.Cred{Uid: 2000, Gid: 1000}
	other := &netcore.Cred{Uid: 3000, Gid: 3000}
	if _, err := ctlFile.Open(context.Background(), group, syscall.O_WRONLY); !errors.Is(err, syscall.EACCES) {
		t.Errorf("open ctl for writing without x: %v, want EACCES", err)
	}
	for _, cr := range []*netcore.Cred{group, other, ownerCred} {
		h, err := ctlFile.Open(context.Background(), cr, syscall.O_RDONLY)
		if err != nil {
			t.Errorf("uid %d: open ctl for reading: %v", cr.Uid, err)
			continue
		}
		if _, err := h.Write(context.Background(), []byte("mtu 100\n"), 0, false); err == nil {
			t.Errorf("uid %d: write on a read-only ctl handle succeeded", cr.Uid)
		}
		h.Close()
	}
	if err := ctl(t, nd, ownerCred, "mtu 100\n"); err != nil {
		t.Errorf("owner with x: %v", err)
	}
	if err := netDirOf(nd).Chmod(ownerCred, 0760); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ctl", "ports", "stats", "pcap"} {
		if h, err := netFileOf(t, nd, name).Open(context.Background(), other, syscall.O_RDONLY); !errors.Is(err, syscall.EACCES) {
			if h != nil {
				h.Close()
			}
			t.Errorf("open %s by a caller with no right: %v, want EACCES", name, err)
		}
	}
}

func netDirOf(nd netcore.Dir) netcore.Owned { return nd.(netcore.Owned) }

// ctlPadded is a ctl write of exactly size bytes: first, comment lines,
// then last.
func ctlPadded(size int, first, last string) string {
	var b strings.Builder
	b.WriteString(first + "\n")
	for b.Len()+len(last)+len("# \n") < size {
		b.WriteString("# " + strings.Repeat("x", min(70, size-b.Len()-len(last)-len("# \n"))) + "\n")
	}
	b.WriteString(strings.Repeat("\n", size-b.Len()-len(last)))
	b.WriteString(last)
	return b.String()
}

// A write longer than MaxCtlWrite fails whole with EFBIG, its valid
// lines unapplied, the reason in last-error; one of exactly MaxCtlWrite
// bytes applies every line.
func TestCtlWriteSizeBound(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, rootCred, "big", 0777)
	long := ctlPadded(netcore.MaxCtlWrite+1, "mtu 1000", "qlen 7\n")
	if len(long) != netcore.MaxCtlWrite+1 {
		t.Fatalf("padded write of %d bytes", len(long))
	}
	if err := ctl(t, nd, rootCred, long); err != syscall.EFBIG {
		t.Fatalf("write of %d bytes: %v, want EFBIG", len(long), err)
	}
	kv := keyValues(readAll(t, nd, "ctl"))
	if kv["mtu"] != "65535" || kv["qlen"] != "256" {
		t.Errorf("a refused write applied lines: mtu %s qlen %s", kv["mtu"], kv["qlen"])
	}
	if !strings.Contains(kv["last-error"], "write too long: at most 65536 bytes") {
		t.Errorf("last-error %q", kv["last-error"])
	}
	whole := ctlPadded(netcore.MaxCtlWrite, "mtu 1000", "qlen 7\n")
	if err := ctl(t, nd, rootCred, whole); err != nil {
		t.Fatalf("write of %d bytes: %v", len(whole), err)
	}
	kv = keyValues(readAll(t, nd, "ctl"))
	if kv["mtu"] != "1000" || kv["qlen"] != "7" {
		t.Errorf("a write of MaxCtlWrite bytes: mtu %s qlen %s, want 1000 and 7", kv["mtu"], kv["qlen"])
	}
	// A line cut where a write ends is a line of its own: "mtu 10" of
	// "mtu 1000" is out of range and fails the write, not half applied.
	if err := ctl(t, nd, rootCred, "qlen 9\nmtu 10"); err != syscall.EINVAL {
		t.Errorf("a cut line: %v, want EINVAL", err)
	}
	if kv = keyValues(readAll(t, nd, "ctl")); kv["qlen"] != "7" {
		t.Errorf("qlen %s after a write with a cut line", kv["qlen"])
	}
}
