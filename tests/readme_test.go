// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mnet-project/mnet/internal/testenv"
)

// readmeBlock returns the fenced block in lang whose first line starts
// with name (a comment naming it), from the README or mnet(7), as written.
func readmeBlock(t *testing.T, lang, name string) string {
	t.Helper()
	return testenv.DocBlock(t, lang, name, "README.md", "man/mnet.7.md")
}

// The README's short tour, as written (with this test's network, TAP and
// subnet): every line works, in order, and it cleans up after itself.
func TestReadmeTour(t *testing.T) {
	e := newIfEnv(t, "tcpdump", "ping")
	d := startMnet(t)
	tap := e.link(e.name("l0"))
	// 198.19/16, not the 198.18 subnets of other tests: the tour puts its
	// address on a TAP in the host's namespace.
	subnet := fmt.Sprintf("198.19.%d.", 100+rand.IntN(150))
	r := strings.NewReplacer("/mnt/mnet", d.mp, "lab0", tap, "lab", "tour"+e.tag, "198.18.0.", subnet)
	script := r.Replace(readmeBlock(t, "sh", "# tour\n"))
	out, err := bg(t, "set -e\n"+script)()
	if err != nil {
		t.Fatalf("the tour failed: %v\n%s\nscript:\n%s", err, out, script)
	}
	for _, want := range []string{"hello\n", "PORT KIND", "policy switch\n", "ICMP echo request", "ICMP echo reply", "2 received"} {
		if !strings.Contains(out, want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(d.path("ipn", "tour"+e.tag)); !os.IsNotExist(err) {
		t.Errorf("the tour left its network: %v", err)
	}
	if linkExists("", tap) {
		t.Errorf("the tour left its TAP %s", tap)
	}
	t.Logf("tour output:\n%s", out)
}

// HACKING.md's worked family compiles against today's netcore, as the
// package netcore/loop it says it is (an overlay: nothing is written into
// the tree).
func TestHackingFamilyExample(t *testing.T) {
	code := testenv.DocBlock(t, "go", "// Package loop ", "HACKING.md")
	tmp := t.TempDir()
	src := filepath.Join(tmp, "loop.go")
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(root, "netcore", "loop", "loop.go"): src}})
	if err := os.WriteFile(filepath.Join(tmp, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "-overlay="+filepath.Join(tmp, "overlay.json"), "./netcore/loop")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go build of HACKING.md's loop family: %v\n%s", err, out)
	}
}
