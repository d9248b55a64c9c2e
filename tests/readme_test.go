// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

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
