// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"
)

// testFamily is a family with an empty directory, registered by this test
// binary only, so that the registry is tested without any real family.
type testFamily struct {
	name, descr, readme string
	root                Dir
	closed              bool
}

func (f *testFamily) Name() string        { return f.name }
func (f *testFamily) Description() string { return f.descr }
func (f *testFamily) Root() Dir           { return f.root }
func (f *testFamily) Close()              { f.closed = true }
func (f *testFamily) Readme() string      { return f.readme }

var (
	_ Family  = (*testFamily)(nil)
	_ Readmer = (*testFamily)(nil)
)

// emptyDir is a directory with nothing in it.
type emptyDir struct{ id uint64 }

func (d *emptyDir) ID() uint64                         { return d.id }
func (d *emptyDir) Attr(*Cred) Attr                    { return Attr{Mode: syscall.S_IFDIR | 0555} }
func (d *emptyDir) List(*Cred) []DirEntry              { return nil }
func (d *emptyDir) Lookup(*Cred, string) (Node, error) { return nil, syscall.ENOENT }

func init() {
	Register("zeta", func(*Env) (Family, error) {
		return &testFamily{name: "zeta", descr: "the last test family", readme: "  zeta/    last\n",
			root: &emptyDir{NewID()}}, nil
	})
	Register("alpha", func(*Env) (Family, error) {
		return &testFamily{name: "alpha", descr: "the first test family", readme: "  alpha/   first\n",
			root: &emptyDir{NewID()}}, nil
	})
}

var (
	rootCred  = &Cred{Uid: 0, Gid: 0, Pid: 1, CapEff: ^uint64(0), CapsKnown: true, GroupsKnown: true}
	ownerCred = &Cred{Uid: 1000, Gid: 1000, Pid: 42, CapsKnown: true, GroupsKnown: true}
)

func newTestCore(t *testing.T) *Core {
	t.Helper()
	c, err := New(Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func readHandle(t *testing.T, h Handle) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 7) // small on purpose: offsets must work
	for {
		n, err := h.Read(context.Background(), buf, int64(len(out)), false)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	registryMu.Lock()
	before := len(registry)
	registryMu.Unlock()
	defer func() {
		if recover() == nil {
			t.Fatal("Register of an already registered name did not panic")
		}
		registryMu.Lock()
		after := len(registry)
		registryMu.Unlock()
		if after != before {
			t.Fatalf("registry grew from %d to %d after a refused Register", before, after)
		}
	}()
	Register("alpha", func(*Env) (Family, error) { return nil, nil })
}

func TestRootListing(t *testing.T) {
	c := newTestCore(t)
	root := c.Root()
	if root.ID() != 1 {
		t.Errorf("root ID = %d, want 1", root.ID())
	}
	if a := root.Attr(rootCred); a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("root mode %#o is not a directory", a.Mode)
	}
	var names []string
	for _, e := range root.List(rootCred) {
		names = append(names, e.Name)
	}
	want := []string{"README", "families", "alpha", "zeta"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("root lists %q, want %q", names, want)
	}
	for _, name := range want {
		if _, err := root.Lookup(rootCred, name); err != nil {
			t.Errorf("Lookup(%s): %v", name, err)
		}
	}
	if _, err := root.Lookup(rootCred, "nosuch"); err != syscall.ENOENT {
		t.Errorf("Lookup(nosuch) = %v, want ENOENT", err)
	}
	node, _ := root.Lookup(rootCred, "alpha")
	if _, ok := node.(Dir); !ok {
		t.Errorf("alpha is a %T, want a Dir", node)
	}
}

// The README is assembled from what each family contributes, in registry
// order, after the lines about the root itself.
func TestReadmeAssembledFromFamilies(t *testing.T) {
	c := newTestCore(t)
	node, _ := c.Root().Lookup(rootCred, "README")
	f, ok := node.(File)
	if !ok {
		t.Fatalf("README is a %T, not a File", node)
	}
	h, err := f.Open(context.Background(), ownerCred, syscall.O_RDONLY)
	if err != nil {
		t.Fatalf("Open(README): %v", err)
	}
	defer h.Close()
	txt := readHandle(t, h)
	a, z := strings.Index(txt, "  alpha/   first\n"), strings.Index(txt, "  zeta/    last\n")
	if !strings.HasPrefix(txt, readmeHead) || a < 0 || z < a {
		t.Errorf("README is not the head, then alpha's lines, then zeta's:\n%s", txt)
	}
	if _, err := f.Open(context.Background(), rootCred, syscall.O_WRONLY); err == nil {
		t.Error("README opened for writing")
	}
}

func TestFamiliesFile(t *testing.T) {
	c := newTestCore(t)
	node, err := c.Root().Lookup(ownerCred, "families")
	if err != nil {
		t.Fatal(err)
	}
	h, err := node.(File).Open(context.Background(), ownerCred, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	txt := readHandle(t, h)
	if want := "alpha\tthe first test family\nzeta\tthe last test family\n"; txt != want {
		t.Fatalf("families = %q, want %q", txt, want)
	}
	// Reading past the end is end of file.
	if n, err := h.Read(context.Background(), make([]byte, 10), int64(len(txt)), false); n != 0 || err != nil {
		t.Errorf("read at EOF = %d, %v", n, err)
	}
}

func TestCloseClosesEveryFamily(t *testing.T) {
	c, err := New(Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, f := range c.Families() {
		if !f.(*testFamily).closed {
			t.Errorf("family %s not closed", f.Name())
		}
	}
}
