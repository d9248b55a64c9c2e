// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

func savedNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("state file %q: %v", b, err)
	}
	var names []string
	for _, n := range doc.Networks {
		names = append(names, n.Name)
	}
	return names
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "state.json")
	owner := &netcore.Cred{Uid: 1234, Gid: 567}

	c1, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	nd := mkNet(t, c1, owner, "keep", 0750)
	mkNet(t, c1, owner, "transient", 0777)
	if err := ctl(t, nd, owner, "persist on\nmtu 1500\n"); err != nil {
		t.Fatal(err)
	}
	if err := ctl(t, nd, owner, "descr saved net\nqlen 9\npolicy switch\n"); err != nil {
		t.Fatal(err)
	}
	wantCtl := readAll(t, nd, "ctl")
	if got := savedNames(t, path); len(got) != 1 || got[0] != "keep" {
		t.Fatalf("state file holds %q, want [keep]", got)
	}
	c1.Close()

	c2 := newTestCore(t, path)
	ipn := ipnRoot(t, c2)
	if _, err := ipn.Lookup(owner, "transient"); err != syscall.ENOENT {
		t.Errorf("non-persistent network survived a restart: %v", err)
	}
	node, err := ipn.Lookup(owner, "keep")
	if err != nil {
		t.Fatalf("persistent network not restored: %v", err)
	}
	nd2 := node.(*netDir)
	a := nd2.Attr(owner)
	if a.Uid != 1234 || a.Gid != 567 || a.Mode&0777 != 0750 || a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("restored attr %+v, want dir 0750 owned by 1234:567", a)
	}
	if got := readAll(t, nd2, "ctl"); got != wantCtl {
		t.Errorf("restored ctl:\n%s\nwant:\n%s", got, wantCtl)
	}
	if kv := keyValues(wantCtl); kv["mtu"] != "1500" || kv["persist"] != "on" {
		t.Fatalf("saved ctl %q", wantCtl)
	}
	// The restored network works.
	w := openData(t, nd2, owner, syscall.O_WRONLY)
	r := openData(t, nd2, owner, syscall.O_RDONLY)
	f := eth(macBcast, macA, "restored")
	send(t, w, f)
	expectPkt(t, r, f, "reader on restored network")

	// persist off removes it from the file.
	if err := ctl(t, nd2, owner, "persist off\n"); err != nil {
		t.Fatal(err)
	}
	if got := savedNames(t, path); len(got) != 0 {
		t.Fatalf("after persist off the state file holds %q", got)
	}
	c3 := newTestCore(t, path)
	if _, err := ipnRoot(t, c3).Lookup(owner, "keep"); err != syscall.ENOENT {
		t.Errorf("network with persist off restored: %v", err)
	}
}

func TestPersistenceChmodAndRmdir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c1 := newTestCore(t, path)
	nd := mkNet(t, c1, ownerCred, "p", 0777)
	if err := ctl(t, nd, ownerCred, "persist on\n"); err != nil {
		t.Fatal(err)
	}
	if err := netDirOf(nd).Chmod(ownerCred, 0705); err != nil {
		t.Fatal(err)
	}
	c2 := newTestCore(t, path)
	node, err := ipnRoot(t, c2).Lookup(ownerCred, "p")
	if err != nil {
		t.Fatalf("not restored: %v", err)
	}
	if m := node.Attr(ownerCred).Mode & 0777; m != 0705 {
		t.Errorf("restored mode %#o, want 0705 (chmod after persist on)", m)
	}
	if err := ipnRoot(t, c1).(netcore.Rmdirer).Rmdir(ownerCred, "p"); err != nil {
		t.Fatal(err)
	}
	if got := savedNames(t, path); len(got) != 0 {
		t.Fatalf("after rmdir the state file holds %q", got)
	}
	// No persistent network left: an empty list, not null.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"networks": []`) {
		t.Errorf("state file with no network:\n%s\nwant \"networks\": []", b)
	}
}

func TestBrokenStateFileStillServes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newTestCore(t, path)
	mkNet(t, c, ownerCred, "fresh", 0777)
	// The broken file is kept for a person to look at, not overwritten.
	aside, _ := filepath.Glob(path + ".broken-*")
	if len(aside) != 1 {
		t.Fatalf("broken state file not moved aside: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != "{not json" {
		t.Fatalf("moved-aside file holds %q", b)
	}
}

// TestConcurrentSavesKeepLatestState: concurrent saves must reach the file
// in the order of their snapshots, or an older list of persistent networks
// overwrites a newer one. The race is timing-dependent: the test repeats
// concurrent "persist on/off" rounds for up to a second and fails on the
// first stale state file.
func TestConcurrentSavesKeepLatestState(t *testing.T) {
	dir := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		// tmpfs makes fsync cheap: more rounds per second.
		if d, err := os.MkdirTemp("/dev/shm", "netcore-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
	}
	path := filepath.Join(dir, "state.json")
	c := newTestCore(t, path)
	const nets = 16
	var nds []*netDir
	for i := range nets {
		nds = append(nds, mkNet(t, c, rootCred, "race"+strconv.Itoa(i), 0777))
	}
	deadline := time.Now().Add(time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		on := round%2 == 0
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, nd := range nds {
			wg.Go(func() {
				<-start
				h, err := nd.n.ctl.Open(context.Background(), rootCred, syscall.O_WRONLY)
				if err != nil {
					t.Error(err)
					return
				}
				defer h.Close()
				if _, err := h.Write(context.Background(), []byte("persist "+onOff(on)+"\n"), 0, false); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		want := 0
		if on {
			want = nets
		}
		if got := savedNames(t, path); len(got) != want {
			t.Fatalf("round %d: after every concurrent \"persist %s\" returned, "+
				"the state file lists %d persistent networks, want %d: a stale snapshot was written last",
				round, onOff(on), len(got), want)
		}
	}
}

// persist on with a state file that cannot be written fails the ctl write
// with EIO and says why in last-error; the settings still apply.
func TestPersistUnwritableStateFile(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A regular file where the state directory should be: even root
	// cannot create the state file under it.
	c := newTestCore(t, filepath.Join(blocker, "state.json"))
	nd := mkNet(t, c, rootCred, "p", 0777)
	if err := ctl(t, nd, rootCred, "mtu 1500\npersist on\n"); err != syscall.EIO {
		t.Fatalf("persist on with an unwritable state file: %v, want EIO", err)
	}
	text := readAll(t, nd, "ctl")
	if !strings.Contains(text, "mtu 1500\n") || !strings.Contains(text, "last-error persist: cannot write the state file") {
		t.Fatalf("ctl after the failed save:\n%s", text)
	}
}

// A state file (edited by hand) that lists a network twice restores the
// first; the second's attachments are not opened, so none is left
// behind when the daemon stops.
func TestStateFileNetworkListedTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	doc := `{"networks":[
		{"name":"twice","settings":{"policy":"hub","mtu":1500,"qlen":8,"maxports":8},"ifaces":[{"kind":"mem","name":"twice1"}]},
		{"name":"twice","settings":{"policy":"switch","mtu":1500,"qlen":8,"maxports":8},"ifaces":[{"kind":"mem","name":"twice2"}]}]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler), StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	node, err := ipnRoot(t, c).Lookup(rootCred, "twice")
	if err != nil {
		t.Fatal(err)
	}
	if kv := keyValues(readAll(t, node.(*netDir), "ctl")); kv["policy"] != "hub" {
		t.Errorf("restored policy %q, want the first entry's hub", kv["policy"])
	}
	c.Close()
	for _, name := range []string{"twice1", "twice2"} {
		if memlink.Far(name) != nil {
			t.Errorf("mem link %s still open after the daemon stopped", name)
		}
	}
}
