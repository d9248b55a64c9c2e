// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"runtime/debug"
	"strings"
)

// version describes the build: the module version (a tag, a pseudo-version,
// or "(devel)"), the VCS revision and time with "modified" when the tree had
// uncommitted changes, and the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "mnet (no build information)"
	}
	return describe(bi)
}

func describe(bi *debug.BuildInfo) string {
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	parts := []string{"mnet", v}
	if rev != "" {
		vcs := "revision " + rev
		if when != "" {
			vcs += " of " + when
		}
		if modified {
			vcs += ", modified"
		}
		parts = append(parts, "("+vcs+")")
	}
	return strings.Join(append(parts, bi.GoVersion), " ")
}
