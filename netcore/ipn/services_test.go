// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// These tests drive the service seam (link.Service) with an in-memory
// service, "memsvc": it records which networks it serves and lets the
// test join in-memory links through the network's link.Network.

const memSvc = "memsvc"

func init() {
	link.RegisterService(&link.Service{Name: memSvc, Default: true,
		New: func(*netcore.Env) (link.Server, error) { return memServer{}, nil }})
}

var (
	memSvcMu   sync.Mutex
	memServing = map[string]*memStopper{} // by network
	memRefuse  = map[string]bool{}        // networks whose Start fails
)

type memServer struct{}

func (memServer) Close() {}

func (memServer) Start(n link.Network) (link.Stopper, error) {
	memSvcMu.Lock()
	defer memSvcMu.Unlock()
	if memRefuse[n.Name()] {
		return nil, link.Errorf(syscall.EADDRINUSE, "refused on purpose")
	}
	s := &memStopper{net: n}
	memServing[n.Name()] = s
	return s, nil
}

type memStopper struct {
	net     link.Network
	mu      sync.Mutex
	leaves  []func()
	changed int
}

func (s *memStopper) Stop() {
	memSvcMu.Lock()
	if memServing[s.net.Name()] == s {
		delete(memServing, s.net.Name())
	}
	memSvcMu.Unlock()
	s.mu.Lock()
	leaves := s.leaves
	s.mu.Unlock()
	for _, leave := range leaves {
		leave()
	}
}

func (s *memStopper) AccessChanged() {
	s.mu.Lock()
	s.changed++
	s.mu.Unlock()
}

func serving(name string) *memStopper {
	memSvcMu.Lock()
	defer memSvcMu.Unlock()
	return memServing[name]
}

// servedNet makes network name, as cred with mode, on a core of its own,
// and returns it with the memsvc service serving it.
func servedNet(t *testing.T, cred *netcore.Cred, name string, mode uint32) (*netDir, *memStopper) {
	t.Helper()
	nd := mkNet(t, newTestCore(t, ""), cred, name, mode)
	s := serving(name)
	if s == nil {
		t.Fatalf("memsvc does not serve %s", name)
	}
	return nd, s
}

// memLink opens an in-memory link outside ctl, as a service would make
// one for a client.
func memLink(t *testing.T, name string) *memlink.Link {
	t.Helper()
	spec, err := link.Lookup(memlink.Kind).Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := spec.Open(link.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return l.(*memlink.Link)
}

func TestServiceFollowsCtlAndPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c1 := newTestCore(t, path)
	nd := mkNet(t, c1, rootCred, "svc-persist", 0755)
	if serving("svc-persist") == nil {
		t.Fatal("a new network is not served by a default-on service")
	}
	if kv := keyValues(readAll(t, nd, "ctl")); kv[memSvc] != "on" {
		t.Fatalf("ctl shows %s %q, want on", memSvc, kv[memSvc])
	}
	mustCtl(t, nd, "persist on\n"+memSvc+" off\n")
	if serving("svc-persist") != nil {
		t.Fatal("service still serves after off")
	}
	if err := ctl(t, nd, rootCred, memSvc+" maybe\n"); err != syscall.EINVAL {
		t.Fatalf("%s maybe: %v, want EINVAL", memSvc, err)
	}
	c1.Close()

	c2 := newTestCore(t, path)
	node, err := ipnRoot(t, c2).Lookup(rootCred, "svc-persist")
	if err != nil {
		t.Fatal(err)
	}
	nd2 := node.(*netDir)
	if kv := keyValues(readAll(t, nd2, "ctl")); kv[memSvc] != "off" {
		t.Fatalf("after restart ctl shows %s %q, want off", memSvc, kv[memSvc])
	}
	if serving("svc-persist") != nil {
		t.Fatal("service off before the restart serves after it")
	}
	mustCtl(t, nd2, memSvc+" on\n")
	if serving("svc-persist") == nil {
		t.Fatal("service not started by on")
	}
}

// A state file from before services has no "services": they have their
// defaults.
func TestServiceDefaultFromOldStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	old := `{"networks":[{"name":"svc-old","uid":0,"gid":0,"mode":493,
		"settings":{"policy":"hub","mtu":1500,"qlen":256,"lossless":false,"maxports":1024,"descr":"","persist":true},
		"ifaces":[]}]}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newTestCore(t, path)
	node, err := ipnRoot(t, c).Lookup(rootCred, "svc-old")
	if err != nil {
		t.Fatalf("old state file not read: %v", err)
	}
	if kv := keyValues(readAll(t, node.(*netDir), "ctl")); kv[memSvc] != "on" || kv["mtu"] != "1500" {
		t.Fatalf("ctl after an old state file: %v", kv)
	}
	if serving("svc-old") == nil {
		t.Fatal("restored network not served")
	}
}

func TestServiceStartFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c := newTestCore(t, path)
	memSvcMu.Lock()
	memRefuse["svc-fail"] = true
	memSvcMu.Unlock()
	nd := mkNet(t, c, rootCred, "svc-fail", 0755) // the network is made all the same
	if !strings.Contains(readAll(t, nd, "ctl"), "last-error "+memSvc+": refused on purpose") {
		t.Fatalf("ctl does not tell why the service does not serve:\n%s", readAll(t, nd, "ctl"))
	}
	mustCtl(t, nd, "persist on\n"+memSvc+" off\n")
	if err := ctl(t, nd, rootCred, memSvc+" on\n"); err != syscall.EADDRINUSE {
		t.Fatalf("%s on: %v, want the service's EADDRINUSE", memSvc, err)
	}
	// The setting stands and is saved, for the next start to try again.
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), `"`+memSvc+`": true`) {
		t.Errorf("state file after a failed %s on: %s, %v", memSvc, b, err)
	}
	memSvcMu.Lock()
	delete(memRefuse, "svc-fail")
	memSvcMu.Unlock()
	mustCtl(t, nd, memSvc+" on\n")
	if serving("svc-fail") == nil {
		t.Fatal("not served once Start succeeds")
	}
}

func TestServicePorts(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, ownerCred, "svc-ports", 0750)
	s := serving("svc-ports")
	if s == nil {
		t.Fatal("not served")
	}
	if recv, send := s.net.Rights(&netcore.Cred{Uid: 2000, Gid: 1000}); !recv || send {
		t.Errorf("group class of 0750: recv %v send %v, want recv only", recv, send)
	}
	if recv, send := s.net.Rights(&netcore.Cred{Uid: 2000, Gid: 2000}); recv || send {
		t.Errorf("other class of 0750: recv %v send %v, want nothing", recv, send)
	}
	if uid, gid, mode := s.net.Access(); uid != 1000 || gid != 1000 || mode != 0750 {
		t.Errorf("Access() = %d %d %o", uid, gid, mode)
	}
	before := s.changed
	if err := nd.Chmod(ownerCred, 0770); err != nil || s.changed != before+1 {
		t.Errorf("chmod: %v, AccessChanged called %d more times, want 1", err, s.changed-before)
	}

	// A receive-only member: gets frames, sends none.
	l := memLink(t, "svc-a")
	leave, err := s.net.Join(l, link.Member{UID: 2000, PID: 77, Name: "client-a", Recv: true})
	if err != nil {
		t.Fatal(err)
	}
	s.leaves = append(s.leaves, leave)
	file := openData(t, nd, rootCred, syscall.O_RDWR)
	var row map[string]string
	for _, line := range strings.Split(readAll(t, nd, "ports"), "\n") {
		if strings.Contains(line, " client-a ") {
			row = portRow(t, nd, atoiPrefix(line))
		}
	}
	if row == nil || row["KIND"] != memSvc || row["UID"] != "2000" || row["PID"] != "77" || row["MODE"] != "r" {
		t.Fatalf("ports row of the member: %v\n%s", row, readAll(t, nd, "ports"))
	}
	pkt := eth(mac{2, 0, 0, 0, 0, 1}, mac{2, 0, 0, 0, 0, 2}, "to the member")
	send(t, file, pkt)
	if got := expectOut(t, l, nil, "frame to a member"); string(got[len(got)-len(pkt):]) != string(pkt) {
		t.Fatalf("member got %x", got)
	}
	l.InjectFrame(pkt)
	expectEmpty(t, file, "file port, after a frame from a member without the send right")

	// Members are not attachments.
	if strings.Contains(readAll(t, nd, "ctl"), "client-a") {
		t.Error("ctl lists a service's port")
	}
	if err := ctl(t, nd, rootCred, "detach client-a\n"); err != syscall.ENODEV {
		t.Errorf("detach of a service's port: %v, want ENODEV", err)
	}

	// maxports bounds members too.
	mustCtl(t, nd, "maxports 2\n")
	if _, err := s.net.Join(memLink(t, "svc-b"), link.Member{Name: "b", Send: true}); err != syscall.EBUSY {
		t.Errorf("Join past maxports: %v, want EBUSY", err)
	}

	leave()
	select {
	case <-l.Closed():
	default:
		t.Error("leave returned before the link was closed")
	}
	if strings.Contains(readAll(t, nd, "ports"), "client-a") {
		t.Error("a member that left is still a port")
	}
	leave() // twice is harmless

	// rmdir stops the service, which lets its members go; Join then fails.
	l2 := memLink(t, "svc-c")
	leave2, err := s.net.Join(l2, link.Member{Name: "c", Recv: true, Send: true})
	if err != nil {
		t.Fatal(err)
	}
	s.leaves = append(s.leaves, leave2)
	file.Close()
	if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(rootCred, "svc-ports"); err != nil {
		t.Fatal(err)
	}
	if serving("svc-ports") != nil {
		t.Error("service still serves a removed network")
	}
	select {
	case <-l2.Closed():
	default:
		t.Error("a member's link stays open after rmdir")
	}
	if _, err := s.net.Join(memLink(t, "svc-d"), link.Member{Name: "d", Recv: true}); err != syscall.ENOENT {
		t.Errorf("Join after rmdir: %v, want ENOENT", err)
	}
}

func atoiPrefix(line string) int {
	n := 0
	for _, c := range line {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
