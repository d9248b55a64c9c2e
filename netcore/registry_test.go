package netcore

import (
	"context"
	"strings"
	"syscall"
	"testing"
)

func TestRegisterDuplicatePanics(t *testing.T) {
	registryMu.Lock()
	before := len(registry)
	registryMu.Unlock()
	defer func() {
		if recover() == nil {
			t.Fatal("Register of an already registered name (ipn) did not panic")
		}
		registryMu.Lock()
		after := len(registry)
		registryMu.Unlock()
		if after != before {
			t.Fatalf("registry grew from %d to %d after a refused Register", before, after)
		}
	}()
	Register("ipn", func(*Env) (Family, error) { return nil, nil })
}

func TestRootListing(t *testing.T) {
	c := newTestCore(t, "")
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
	want := []string{"README", "families", "ipn"}
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
	node, _ := root.Lookup(rootCred, "ipn")
	if _, ok := node.(Dir); !ok {
		t.Errorf("ipn is a %T, want a Dir", node)
	}
	if _, ok := node.(Mkdirer); !ok {
		t.Errorf("ipn is a %T, want a Mkdirer", node)
	}
	node, _ = root.Lookup(rootCred, "README")
	f, ok := node.(File)
	if !ok {
		t.Fatalf("README is a %T, not a File", node)
	}
	h, err := f.Open(context.Background(), ownerCred, syscall.O_RDONLY)
	if err != nil {
		t.Fatalf("Open(README): %v", err)
	}
	defer h.Close()
	if txt := readHandle(t, h); !strings.Contains(txt, "ipn/") {
		t.Errorf("README does not mention ipn/:\n%s", txt)
	}
	if _, err := f.Open(context.Background(), rootCred, syscall.O_WRONLY); err == nil {
		t.Error("README opened for writing")
	}
}

func TestFamiliesFile(t *testing.T) {
	c := newTestCore(t, "")
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
	lines := strings.Split(strings.TrimSuffix(txt, "\n"), "\n")
	if len(lines) != 1 || !strings.HasSuffix(txt, "\n") {
		t.Fatalf("families = %q, want exactly one newline-terminated line", txt)
	}
	name, descr, ok := strings.Cut(lines[0], "\t")
	if !ok || name != "ipn" || descr == "" || strings.Contains(descr, "\t") {
		t.Fatalf("families line %q, want \"ipn\\t<description>\"", lines[0])
	}
	var ipn Family
	for _, f := range c.Families() {
		if f.Name() == "ipn" {
			ipn = f
		}
	}
	if ipn == nil || ipn.Description() != descr {
		t.Fatalf("families description %q does not match the family's", descr)
	}
	// Reading past the end is end of file.
	if n, err := h.Read(context.Background(), make([]byte, 10), int64(len(txt)), false); n != 0 || err != nil {
		t.Errorf("read at EOF = %d, %v", n, err)
	}
}
