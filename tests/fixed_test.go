// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of small things a user meets at a shell: nothing under
// the mount is removed or renamed as a file, read-only files stay so under
// truncate, a refused frame says why, and numeric host names are address
// literals or refused.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rm, mv, ln, ln -s and mkfifo under the mount fail with EPERM and change
// nothing; rmdir stays the way to remove a network.
func TestFixedFilesNotRemoved(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "fixed")
	for _, script := range []string{
		"rm $N/data", "rm -f $N/ctl", "rm $M/README", "rm $M/families",
		"mv $N/data $N/data2", "mv $N $M/ipn/moved", "ln $N/data $N/hard", "ln -s data $N/soft", "mkfifo $N/fifo",
	} {
		out, err := shAs(t, nil, 15*time.Second, fmt.Sprintf("N=%q M=%q; %s", net, d.mp, script))
		if err == nil || !strings.Contains(out, rightsEPERM) {
			t.Errorf("%s: %v %q, want %q", script, err, out, rightsEPERM)
		}
	}
	for _, p := range []string{filepath.Join(net, "data"), filepath.Join(net, "ctl"), d.path("README"), d.path("families")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s after the refusals: %v", p, err)
		}
	}
	for _, p := range []string{filepath.Join(net, "data2"), d.path("ipn", "moved"), filepath.Join(net, "hard"), filepath.Join(net, "soft")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s exists after a refused rename or link", p)
		}
	}
	if err := unix.Unlink(filepath.Join(net, "nosuch")); err != unix.ENOENT {
		t.Errorf("unlink of a name that does not exist: %v, want ENOENT", err)
	}
	sh(t, "rmdir "+net)
}

// truncate(2) of a file that nobody may open for writing (README, ports,
// stats) fails as opening it for writing does, for root too; of data and
// ctl it needs their w bit, and is accepted and ignored with it (as
// O_TRUNC is).
func TestTruncateReadOnly(t *testing.T) {
	require(t, "perl")
	d := startMnet(t)
	net := rightsLab(t, d, 0o744)
	for _, p := range []string{d.path("README"), d.path("families"), filepath.Join(net, "ports"), filepath.Join(net, "stats")} {
		before := readFile(t, p)
		if err := unix.Truncate(p, 0); err != unix.EACCES {
			t.Errorf("truncate %s as root: %v, want EACCES", p, err)
		}
		if p == d.path("README") && readFile(t, p) != before {
			t.Errorf("README changed after a refused truncate")
		}
	}
	if err := unix.Truncate(filepath.Join(net, "pcap"), 0); err != unix.EACCES {
		t.Errorf("truncate pcap as root: %v, want EACCES", err)
	}
	if err := unix.Truncate(d.path("ipn"), 0); err != unix.EISDIR {
		t.Errorf("truncate of a directory: %v, want EISDIR", err)
	}
	// data and ctl: root (w by CAP_DAC_OVERRIDE) and the owner may, others
	// (r only) may not.
	for _, f := range []string{"data", "ctl"} {
		p := filepath.Join(net, f)
		if err := unix.Truncate(p, 0); err != nil {
			t.Errorf("truncate %s as root: %v", p, err)
		}
		rightsOK(t, rightsOwner, net, "truncate -s 0 $N/"+f+" && : > $N/"+f) // truncate(2), O_TRUNC
		// perl's truncate of a name is truncate(2), with no open first.
		out, err := shAs(t, rightsOther, 15*time.Second, fmt.Sprintf(`perl -e 'truncate($ARGV[0], 0) or die "$!\n"' %q`, p))
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("truncate(2) of %s by uid 1002 (r only): %v %q, want EACCES", f, err, out)
		}
	}
}

// With policy switch a frame shorter than an Ethernet header is EINVAL,
// and ctl's last-error says why, for the user who just saw the bare errno.
func TestShortFrameLastError(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "short")
	mustCtl(t, net, "policy switch")
	out, err := shAs(t, nil, 15*time.Second, "echo hello > "+filepath.Join(net, "data"))
	if err == nil || !strings.Contains(out, "Invalid argument") {
		t.Fatalf("echo hello > data with policy switch: %v %q, want Invalid argument", err, out)
	}
	le := lastError(t, net)
	if !strings.Contains(le, "a 6-byte frame refused: shorter than an Ethernet header (14 bytes)") {
		t.Errorf("last-error after a short frame: %q, want the reason", le)
	}
	if !strings.Contains(d.log.String(), "shorter than an Ethernet header") {
		t.Error("the refusal was not logged")
	}
}

// Host names that inet_aton reads as an address but are not its canonical
// dotted quad are EINVAL: they never reach the caller's resolver.
func TestInetNonCanonicalNumeric(t *testing.T) {
	requireInet(t, false)
	d := startMnet(t)
	for _, host := range []string{"0x7f000001", "127.1", "017700000001", "2130706433", "127.0x1", "0x7f.0.0.1"} {
		for _, proto := range []string{"udp", "tcp"} {
			p := d.path("inet", proto, host, "9")
			if fd, err := openRetry(p, unix.O_RDWR, 0); err != unix.EINVAL {
				if err == nil {
					unix.Close(fd)
				}
				t.Errorf("open inet/%s/%s/9: %v, want EINVAL", proto, host, err)
			}
		}
	}
	if _, err := os.Stat(d.path("inet", "udp", "127.0.0.1", "9")); err != nil {
		t.Errorf("the canonical form: %v", err)
	}
}
