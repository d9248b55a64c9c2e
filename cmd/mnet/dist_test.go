// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

// The systemd unit lets the daemon hold the descriptors its default global
// limits need (2 per network, one per kernel socket of any family),
// whatever systemd's default is.
func TestUnitLimitNOFILE(t *testing.T) {
	b, err := os.ReadFile("../../dist/mnet.service.in")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LimitNOFILE=(\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("dist/mnet.service.in sets no LimitNOFILE=N")
	}
	got, _ := strconv.Atoi(string(m[1]))
	need := 2*flagDefault(t, "max-networks") + flagDefault(t, "max-sockets")
	if got < need {
		t.Errorf("LimitNOFILE=%d, below the %d descriptors of the global limits", got, need)
	}
}

// go test -race, the README's and CI's test command, builds with cgo: a
// fresh Debian with Go has no C compiler, so CI installs one.
func TestCIInstallsCompiler(t *testing.T) {
	b, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^apt-get install [^\n]*(\\\n[^\n]*)*\bgcc\b`).Match(b) {
		t.Error(".ci/run installs no gcc, which go test -race needs (cgo)")
	}
}

// flagDefault is the default of a registered flag that is a number.
func flagDefault(t *testing.T, name string) int {
	t.Helper()
	for _, f := range netcore.Flags() {
		if f.Name == name {
			n, err := strconv.Atoi(f.Default)
			if err != nil {
				t.Fatalf("--%s: default %q: %v", name, f.Default, err)
			}
			return n
		}
	}
	t.Fatalf("no flag --%s", name)
	return 0
}
