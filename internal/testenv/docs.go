// SPDX-License-Identifier: BSD-3-Clause

package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Root returns the top of the source tree: the nearest directory holding
// go.mod at or above the working directory, which go test makes the
// package's.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod at or above the working directory")
		}
		dir = up
	}
}

// DocBlock returns the fenced code block in lang (opened by ```lang) whose
// text begins with first, the comment naming it such as "# tour\n", from
// the first of docs (paths from the top of the tree) that has one. What it
// returns begins with first: tests run the documentation's examples as
// written, and find them by that comment.
func DocBlock(t testing.TB, lang, first string, docs ...string) string {
	t.Helper()
	root := Root(t)
	for _, doc := range docs {
		b, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		if _, rest, ok := strings.Cut(string(b), "```"+lang+"\n"+first); ok {
			block, _, _ := strings.Cut(rest, "```")
			return first + block
		}
	}
	t.Fatalf("no %s block beginning with %q in %s", lang, first, strings.Join(docs, ", "))
	return ""
}
