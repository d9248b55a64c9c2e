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
