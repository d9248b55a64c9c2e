// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"sync"
	"syscall"
	"testing"
)

type testPort struct{ id uint64 }

func (p *testPort) ID() uint64      { return p.id }
func (p *testPort) Attr(*Cred) Attr { return Attr{} }

type testHost = HostEntry[string, string, *testPort]

func listNames(ents []DirEntry) []string {
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	return names
}

// A HOST/PORT tree keeps a name's node while it is looked up again or
// open, lists the PORTs with open files in numeric order, and past its
// bound forgets only nodes without open files.
func TestHostPorts(t *testing.T) {
	var mu sync.Mutex
	tr := NewHostPorts[string](&mu, 8, func(string, uint16) *testPort { return &testPort{id: NewID()} })
	host := func(k string) *testHost {
		var entry *testHost
		mu.Lock()
		defer mu.Unlock()
		dir := tr.Host(k, func(e *testHost) string { entry = e; return "dir " + k })
		if entry == nil { // cached: the entry kept for k
			entry = tr.hosts[k]
		}
		if dir != "dir "+k {
			t.Fatalf("HOST %s: directory %q", k, dir)
		}
		return entry
	}
	lookup := func(e *testHost, name string) Node {
		t.Helper()
		n, err := tr.LookupPort(e, name)
		if err != nil {
			t.Fatalf("LookupPort %s: %v", name, err)
		}
		return n
	}
	a := host("a")
	if host("a") != a {
		t.Fatal("HOST a looked up again has another node")
	}
	p80 := lookup(a, "80")
	if lookup(a, "80") != p80 {
		t.Fatal("PORT 80 looked up again has another node")
	}
	if _, err := tr.LookupPort(a, "080"); err != syscall.EINVAL {
		t.Errorf("PORT 080: %v, want EINVAL", err)
	}
	mu.Lock()
	tr.AddOpen("a", 443, 1)
	tr.AddOpen("a", 80, 1)
	tr.AddOpen("a", 9, 2)
	tr.AddOpen("a", 9, -2)
	mu.Unlock()
	if got := listNames(tr.ListPorts(a)); len(got) != 2 || got[0] != "80" || got[1] != "443" {
		t.Errorf("ports of a: %v, want [80 443]", got)
	}

	// Fill the cache past its bound: the open PORTs and their HOST stay.
	for _, k := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		lookup(host(k), "1")
	}
	mu.Lock()
	nodes, open := tr.Nodes(), tr.OpenHosts()
	mu.Unlock()
	if nodes > 8+1 {
		t.Errorf("%d nodes cached, bound 8", nodes)
	}
	if host("a") != a || lookup(a, "80") != p80 {
		t.Error("a sweep forgot a node with an open file")
	}
	if len(open) != 1 || open[0] != "a" {
		t.Errorf("HOSTs with open files: %v, want [a]", open)
	}
}
