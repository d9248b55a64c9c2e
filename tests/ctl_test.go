// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestNetworkNames(t *testing.T) {
	d := startMnet(t)
	for _, bad := range []string{".hidden", "a b", "semi;colon", "ü", strings.Repeat("x", 65), "-"[:0] + "tab\tname"} {
		if err := os.Mkdir(d.path("ipn", bad), 0o755); !errors.Is(err, unix.EINVAL) {
			t.Errorf("mkdir %q: %v, want EINVAL", bad, err)
		}
	}
	for _, good := range []string{"a", "Lab-1.test_x", strings.Repeat("y", 64), "-dash"} {
		if err := os.Mkdir(d.path("ipn", good), 0o755); err != nil {
			t.Errorf("mkdir %q: %v", good, err)
		}
	}
	if err := os.Mkdir(d.path("ipn", "a"), 0o755); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second mkdir: %v, want EEXIST", err)
	}
	out, err := shAs(t, nil, 10*time.Second, "mkdir '"+d.path("ipn", "bad name")+"'")
	if err == nil || !strings.Contains(out, "Invalid argument") {
		t.Errorf("shell mkdir of a bad name: %v %s", err, out)
	}
	if !strings.Contains(d.log.String(), "bad network name") {
		t.Errorf("a refused mkdir left no log line")
	}
	// The mkdir mode after umask is the network's mode, less x (manage)
	// for group and others.
	sh(t, "umask 027; mkdir "+d.path("ipn", "masked"))
	if out := sh(t, "stat -c %a "+d.path("ipn", "masked")); strings.TrimSpace(out) != "740" {
		t.Errorf("mode after umask 027: %s, want 740", out)
	}
}

func TestCtlSettingsAndErrors(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "c")
	// Last the userspace host's MAC, made from the network's name.
	ctlText := readFile(t, filepath.Join(net, "ctl"))
	mac := regexp.MustCompile(`(?m)^mac [0-9a-f]{2}(:[0-9a-f]{2}){5}\n`).FindString(ctlText)
	if mac == "" {
		t.Fatalf("ctl has no mac line:\n%s", ctlText)
	}
	want := "policy hub\nmtu 65535\nqlen 256\nlossless off\nmaxports 1024\ndescr\npersist off\nvde on\n" + mac
	if ctlText != want {
		t.Fatalf("default ctl:\n%s\nwant:\n%s", ctlText, want)
	}
	sh(t, "printf 'policy switch\\nmtu 9000\\nqlen 64\\nlossless on\\nmaxports 8\\ndescr the lab network\\n' > "+filepath.Join(net, "ctl"))
	want = "policy switch\nmtu 9000\nqlen 64\nlossless on\nmaxports 8\ndescr the lab network\npersist off\nvde on\n" + mac
	if got := readFile(t, filepath.Join(net, "ctl")); got != want {
		t.Fatalf("ctl after commands:\n%s\nwant:\n%s", got, want)
	}
	for _, c := range []struct {
		cmd   string
		errno unix.Errno
		why   string
	}{
		{"mtu 63", unix.EINVAL, "mtu"},
		{"mtu 65536", unix.EINVAL, "mtu"},
		{"qlen 0", unix.EINVAL, "qlen"},
		{"qlen 65537", unix.EINVAL, "qlen"},
		{"qlen many", unix.EINVAL, "qlen"},
		{"policy ring", unix.EINVAL, "policy"},
		{"lossless maybe", unix.EINVAL, "lossless"},
		{"persist yes", unix.EINVAL, "persist"},
		{"frobnicate 1", unix.EINVAL, "frobnicate"},
		{"descr " + strings.Repeat("d", 129), unix.EINVAL, "descr"},
		{"mtu 1500\nqlen 0\n", unix.EINVAL, "qlen"},
	} {
		if err := ctl(net, c.cmd); !errors.Is(err, c.errno) {
			t.Errorf("ctl %q: %v, want %v", c.cmd, err, c.errno)
			continue
		}
		got := readFile(t, filepath.Join(net, "ctl"))
		i := strings.Index(got, "last-error ")
		if i < 0 || !strings.Contains(got[i:], c.why) {
			t.Errorf("after %q ctl shows no last-error about %s:\n%s", c.cmd, c.why, got)
		}
	}
	if !strings.Contains(d.log.String(), `msg="ctl refused"`) {
		t.Errorf("refused ctl commands left no log line")
	}
	// The failed multi-line write changed nothing, mtu included.
	if !strings.Contains(readFile(t, filepath.Join(net, "ctl")), "mtu 9000\n") {
		t.Errorf("a write with a bad line applied its good lines")
	}
	// From a shell, the error shows.
	out, err := shAs(t, nil, 10*time.Second, "echo 'mtu 1' > "+filepath.Join(net, "ctl"))
	if err == nil || !strings.Contains(out, "Invalid argument") {
		t.Errorf("shell echo of a bad ctl line: %v %s", err, out)
	}
	// Root asking for an interface that this build cannot attach yet gets
	// an errno and a reason, never silence.
	if err := ctl(net, "tap"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("tap without a name: %v, want EINVAL", err)
	}
}
