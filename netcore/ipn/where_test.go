// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/testenv"
	"github.com/mnet-project/mnet/netcore/link"
)

// stateWith writes a state file with one persistent network "w" whose
// attachments are links (JSON objects).
func stateWith(t *testing.T, links ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	doc := `{"networks":[{"name":"w","uid":0,"gid":0,"mode":448,
	  "settings":{"policy":"hub","mtu":65535,"qlen":256,"lossless":false,"maxports":1024,"descr":"","persist":true},
	  "ifaces":[` + strings.Join(links, ",") + `]}]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// savedLinkNames are the names of network w's attachments in the state file.
func savedLinkNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Networks []struct {
			Ifaces []struct{ Name, Netns string } `json:"ifaces"`
		} `json:"networks"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Networks) != 1 {
		t.Fatalf("state file %s: %v", b, err)
	}
	var names []string
	for _, l := range doc.Networks[0].Ifaces {
		names = append(names, l.Name+"@"+l.Netns)
	}
	return names
}

// An attachment whose namespace is gone at start waits: ctl shows it, a
// save keeps it as it was, detach drops it, and an attachment of its name
// written to ctl replaces it. Written back, ctl's comment is ignored.
func TestWaitingAttachment(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "gone")
	path := stateWith(t, `{"kind":"mem","name":"wm0"}`,
		fmt.Sprintf(`{"kind":"mem","name":"wm1","netns":%q,"netns_dev":1,"netns_ino":2}`, gone),
		fmt.Sprintf(`{"kind":"mem","name":"wm2","netns":%q,"netns_dev":1,"netns_ino":2}`, gone))
	c := newTestCore(t, path)
	node, err := ipnRoot(t, c).Lookup(rootCred, "w")
	if err != nil {
		t.Fatal(err)
	}
	nd := node.(*netDir)
	txt := readAll(t, nd, "ctl")
	for _, want := range []string{"\nmem wm0\n", "\nmem wm1 # waiting: namespace " + gone + " gone\n",
		"\nmem wm2 # waiting: namespace " + gone + " gone\n"} {
		if !strings.Contains(txt, want) {
			t.Errorf("ctl lacks %q:\n%s", want, txt)
		}
	}
	if rows := strings.Count(readAll(t, nd, "ports"), "\n") - 1; rows != 1 {
		t.Errorf("%d ports, want 1 (waiting attachments are no ports)", rows)
	}
	mustCtl(t, nd, "descr saved again\n")
	want := fmt.Sprintf("[wm0@ wm1@%s wm2@%s]", gone, gone)
	if got := fmt.Sprint(savedLinkNames(t, path)); got != want {
		t.Errorf("saved %s, want %s", got, want)
	}
	mustCtl(t, nd, "detach wm1\nmem wm2 # not persistent: unnamed namespace\n")
	txt = readAll(t, nd, "ctl")
	if strings.Contains(txt, "wm1") || !strings.Contains(txt, "\nmem wm2\n") || strings.Contains(txt, "waiting") {
		t.Errorf("after detach wm1 and mem wm2, ctl:\n%s", txt)
	}
	if got := fmt.Sprint(savedLinkNames(t, path)); got != "[wm0@ wm2@]" {
		t.Errorf("saved %s, want [wm0@ wm2@]", got)
	}
}

// A waiting attachment comes up by itself, without a read of ctl, once
// its path is its namespace again.
func TestWaitingAttachmentRetried(t *testing.T) {
	testenv.Require(t, "root") // a bind mount of a namespace
	defer func(d time.Duration) { WaitingRetry = d }(WaitingRetry)
	WaitingRetry = 20 * time.Millisecond
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	id := netns.ID{Dev: st.Dev, Ino: st.Ino}
	name := filepath.Join(t.TempDir(), "ns")
	path := stateWith(t, fmt.Sprintf(`{"kind":"mem","name":"wr0","netns":%q,"netns_dev":%d,"netns_ino":%d}`,
		name, id.Dev, id.Ino))
	c := newTestCore(t, path)
	node, err := ipnRoot(t, c).Lookup(rootCred, "w")
	if err != nil {
		t.Fatal(err)
	}
	nd := node.(*netDir)
	if !strings.Contains(readAll(t, nd, "ports"), "\n") || strings.Contains(readAll(t, nd, "ports"), "wr0") {
		t.Fatalf("attached before its namespace is there:\n%s", readAll(t, nd, "ports"))
	}
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * WaitingRetry)
	if strings.Contains(readAll(t, nd, "ports"), "wr0") {
		t.Fatal("attached at a path that is no namespace")
	}
	if err := unix.Mount("/proc/self/ns/net", name, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount of a namespace: %v", err)
	}
	defer unix.Unmount(name, unix.MNT_DETACH)
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(readAll(t, nd, "ports"), "wr0") {
		if time.Now().After(deadline) {
			t.Fatalf("not attached once its namespace is back:\n%s", readAll(t, nd, "ports"))
		}
		time.Sleep(WaitingRetry)
	}
}

// An attachment of a kind that lives in a network namespace, in a state
// file from before namespaces were recorded, may have been made in a
// container's: it waits instead of being made in the daemon's namespace,
// keeps waiting across saves, and a version 2 file's entry is restored.
func TestOldStateAttachmentWaits(t *testing.T) {
	registerNsMem.Do(func() {
		mem := link.Lookup("mem")
		link.Register(&link.Kind{Name: "nsmem", Privilege: link.PrivNetAdmin, Parse: mem.Parse, Restore: mem.Restore})
	})
	path := stateWith(t, `{"kind":"nsmem","name":"old0"}`, `{"kind":"mem","name":"plain0"}`)
	c := newTestCore(t, path)
	node, err := ipnRoot(t, c).Lookup(rootCred, "w")
	if err != nil {
		t.Fatal(err)
	}
	nd := node.(*netDir)
	txt := readAll(t, nd, "ctl")
	if !strings.Contains(txt, "\nnsmem old0 # waiting: namespace was not recorded") || !strings.Contains(txt, "\nmem plain0\n") {
		t.Fatalf("ctl after an old state file:\n%s", txt)
	}
	mustCtl(t, nd, "descr saved again\n")
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"netns_unknown": true`) || !strings.Contains(string(b), `"version": 2`) {
		t.Fatalf("saved state lost the unknown namespace mark:\n%s", b)
	}
	c.Close()
	c2 := newTestCore(t, path)
	node, _ = ipnRoot(t, c2).Lookup(rootCred, "w")
	if txt := readAll(t, node.(*netDir), "ctl"); !strings.Contains(txt, "\nnsmem old0 # waiting") {
		t.Fatalf("after a second restart:\n%s", txt)
	}

	path2 := filepath.Join(t.TempDir(), "state.json")
	doc, _ := os.ReadFile(stateWith(t, `{"kind":"nsmem","name":"new0"}`))
	os.WriteFile(path2, []byte(strings.Replace(string(doc), `{"networks"`, `{"version":2,"networks"`, 1)), 0o600)
	c3 := newTestCore(t, path2)
	node, _ = ipnRoot(t, c3).Lookup(rootCred, "w")
	if txt := readAll(t, node.(*netDir), "ctl"); !strings.Contains(txt, "\nnsmem new0\n") {
		t.Fatalf("a version 2 entry in the daemon's namespace is not restored:\n%s", txt)
	}
}

var registerNsMem sync.Once

// ctl shows the VLAN lines of an attachment that waits for its namespace,
// marked so; written back after its attachment line, they set its VLAN.
func TestWaitingAttachmentVLAN(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "gone")
	path := stateWith(t, fmt.Sprintf(`{"kind":"mem","name":"wv1","netns":%q,"netns_dev":1,"netns_ino":2,"vlan":10,"trunk":"20"}`, gone))
	node, err := ipnRoot(t, newTestCore(t, path)).Lookup(rootCred, "w")
	if err != nil {
		t.Fatal(err)
	}
	nd := node.(*netDir)
	want := "\nvlan wv1 10 # waiting\ntrunk wv1 20 # waiting\n"
	if txt := readAll(t, nd, "ctl"); !strings.Contains(txt, want) {
		t.Fatalf("ctl lacks %q:\n%s", want, txt)
	}
	mustCtl(t, nd, "mem wv1\nvlan wv1 10 # waiting\ntrunk wv1 20 # waiting\n")
	if row := linkRow(t, nd, "wv1"); row["VLAN"] != "10+20" {
		t.Errorf("VLAN column %q, want 10+20", row["VLAN"])
	}
}
