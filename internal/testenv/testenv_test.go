// SPDX-License-Identifier: BSD-3-Clause

package testenv

import (
	"os"
	"slices"
	"testing"
)

func TestMissing(t *testing.T) {
	got := Missing("sh", "/", "/no/such/device", "no-such-program-mnet", "root")
	want := []string{"/no/such/device", "no-such-program-mnet"}
	if os.Geteuid() != 0 {
		want = append(want, "root")
	}
	if !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
}

// Outside CI a test that cannot run is skipped: it goes no further and
// does not fail.
func TestSkipOrFailSkipsOutsideCI(t *testing.T) {
	t.Setenv("CI", "")
	went := false
	t.Run("sub", func(t *testing.T) {
		Require(t, "no-such-program-mnet")
		went = true
	})
	if went {
		t.Error("Require of a missing program did not stop the test")
	}
	if !Optional(t, "sh") {
		t.Error("Optional(sh) = false")
	}
}

func TestDocBlock(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/go.mod", []byte("module x\n"), 0o644)
	os.WriteFile(dir+"/a.md", []byte("text\n```sh\n# other\nno\n```\n"), 0o644)
	os.WriteFile(dir+"/b.md", []byte("```sh\n# one\necho 1\n```\n```sh\n# two\necho 2\n```\n"), 0o644)
	t.Chdir(dir)
	if got := DocBlock(t, "sh", "# two\n", "a.md", "b.md"); got != "# two\necho 2\n" {
		t.Errorf("DocBlock = %q", got)
	}
}

// What a Net made is gone after its test, the namespace with the
// interface moved into it.
func TestNetCleansUp(t *testing.T) {
	var a, b, tap, ns string
	t.Run("make", func(t *testing.T) {
		n := NewNet(t)
		a, b, tap = n.Name("a"), n.Name("b"), n.Name("t")
		ns = n.VethNS(a, b, "x", "198.18.0.1")
		n.PersistentTap(tap)
		if !LinkExists("", a) || LinkExists("", b) || !LinkExists(ns, b) || !LinkExists("", tap) {
			t.Fatalf("after VethNS and PersistentTap: %s %v, %s %v in %s, %s %v",
				a, LinkExists("", a), b, LinkExists(ns, b), ns, tap, LinkExists("", tap))
		}
	})
	if ns == "" {
		return // skipped, or failed above
	}
	if LinkExists("", a) || LinkExists("", tap) {
		t.Errorf("interfaces %s or %s left after the test", a, tap)
	}
	if _, err := os.Stat("/run/netns/" + ns); err == nil {
		t.Errorf("namespace %s left after the test", ns)
	}
}
