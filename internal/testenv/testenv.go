// SPDX-License-Identifier: BSD-3-Clause

// Package testenv is what mnet's tests share: the rule for a machine that
// cannot run a test (skip on a developer's machine, fail in CI), the code
// blocks of the documentation that tests run as written, and network
// namespaces and interfaces that are removed even when a test fails.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where every
// prerequisite is installed: a missing one is a failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// SkipOrFail stops t, which this machine cannot run for reason (a line
// such as "needs ethtool"): a skip on a developer's machine, a failure in
// CI.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatal(reason + " (CI=true: prerequisites must be installed)")
	}
	t.Skip(reason)
}

// Require stops t (SkipOrFail) unless every need is met, naming all that
// are not. A need is "root" (effective uid 0), an absolute path that must
// exist (a device such as /dev/net/tun), or a program on PATH.
func Require(t testing.TB, needs ...string) {
	t.Helper()
	if missing := Missing(needs...); len(missing) > 0 {
		SkipOrFail(t, "needs "+strings.Join(missing, ", "))
	}
}

// Optional reports whether every need (as for Require) is met, for a
// check a test can do without: the test goes on without it, and in CI,
// where nothing may be missing, it fails at its end.
func Optional(t testing.TB, needs ...string) bool {
	t.Helper()
	missing := Missing(needs...)
	if len(missing) == 0 {
		return true
	}
	msg := fmt.Sprintf("needs %s for a check; not checked", strings.Join(missing, ", "))
	if InCI() {
		t.Error(msg + " (CI=true: prerequisites must be installed)")
	} else {
		t.Log(msg)
	}
	return false
}

// Missing returns the needs (as for Require) that are not met.
func Missing(needs ...string) []string {
	var missing []string
	for _, need := range needs {
		var ok bool
		switch {
		case need == "root":
			ok = os.Geteuid() == 0
		case strings.HasPrefix(need, "/"):
			_, err := os.Stat(need)
			ok = err == nil
		default:
			_, err := exec.LookPath(need)
			ok = err == nil
		}
		if !ok {
			missing = append(missing, need)
		}
	}
	return missing
}
