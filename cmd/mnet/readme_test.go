// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// The README at the root of the mount names every ctl word of an ipn
// network, those of ipn itself and those of every link kind, service and
// extension this binary registers, so that a word added is a word shown.
func TestMountReadmeListsCtlWords(t *testing.T) {
	core, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	node, err := core.Root().Lookup(&netcore.Cred{}, "README")
	if err != nil {
		t.Fatal(err)
	}
	h, err := node.(netcore.File).Open(t.Context(), &netcore.Cred{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1<<16)
	n, err := h.Read(t.Context(), b, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b[:n])
	words := []string{"policy", "mtu", "qlen", "lossless", "maxports", "descr", "persist", "detach"}
	for _, k := range link.Kinds() {
		words = append(words, k.Name)
	}
	for _, s := range link.Services() {
		words = append(words, s.Name)
	}
	for _, e := range link.Extensions() {
		words = append(words, e.Words...)
	}
	for _, w := range words {
		if !strings.Contains(readme, "  "+w+" ") {
			t.Errorf("the mount's README does not list the ctl word %q:\n%s", w, readme)
		}
	}
}

// mnet(7)'s description of the ports file names every KIND a port can
// have: file, and each link kind, service and extension registered.
func TestManualListsPortKinds(t *testing.T) {
	b, err := os.ReadFile("../../man/mnet.7.md")
	if err != nil {
		t.Fatal(err)
	}
	_, text, ok := strings.Cut(string(b), "; KIND one of ")
	if !ok {
		t.Fatal("mnet.7.md has no \"KIND one of\" list")
	}
	text, _, _ = strings.Cut(text, ";")
	kinds := []string{"file"}
	for _, k := range link.Kinds() {
		kinds = append(kinds, k.Name)
	}
	for _, s := range link.Services() {
		kinds = append(kinds, s.Name)
	}
	for _, e := range link.Extensions() {
		kinds = append(kinds, e.Name)
	}
	for _, k := range kinds {
		if !strings.Contains(text, "**"+k+"**") {
			t.Errorf("mnet(7)'s KIND list %q lacks %s", text, k)
		}
	}
}
