// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of the CNI plugin (mnet-cni(8)): invoked the way
// runtimes invoke plugins, with host-local for addresses, and under
// podman's CNI backend.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// cniPluginDir is where Debian's containernetworking-plugins installs
// host-local, the IPAM plugin of these tests.
const cniPluginDir = "/usr/lib/cni"

var (
	cniBuild    sync.Once
	cniBinDir   string
	cniBuildErr error
)

// cniPlugin builds the plugin, once, as "mnet" in a directory of its own
// (a CNI_PATH entry) beside the test's mnet binary, and returns that
// directory.
func cniPlugin(t *testing.T) string {
	t.Helper()
	cniBuild.Do(func() {
		cniBinDir = filepath.Join(filepath.Dir(mnetBin), "cni")
		if cniBuildErr = os.MkdirAll(cniBinDir, 0o755); cniBuildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(cniBinDir, "mnet"), "../cmd/mnet-cni").CombinedOutput()
		if err != nil {
			cniBuildErr = fmt.Errorf("building mnet-cni: %v\n%s", err, out)
		}
	})
	if cniBuildErr != nil {
		t.Fatal(cniBuildErr)
	}
	return cniBinDir
}

// cniResult is what the tests read of a CNI result or error.
type cniResult struct {
	Interfaces []struct {
		Name, Mac, Sandbox string
		Mtu                int
	}
	IPs []struct {
		Address   string
		Interface *int
	}
	// An error.
	Code uint
	Msg  string

	raw []byte // the whole of it
}

// asPrev is the result as CHECK's prevResult.
func (r cniResult) asPrev(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// cniEnv is one test's CNI setting: the plugin, a configuration and
// host-local's state in a directory of the test.
type cniEnv struct {
	t    *testing.T
	conf map[string]any
	ipam string // host-local's dataDir
}

// newCNIEnv configures network name on the mount at mp, with addresses of
// subnet from host-local.
func newCNIEnv(t *testing.T, mp, name, subnet string) *cniEnv {
	t.Helper()
	require(t, cniPluginDir+"/host-local") // containernetworking-plugins
	cniPlugin(t)
	ipam := filepath.Join(t.TempDir(), "ipam")
	return &cniEnv{t: t, ipam: ipam, conf: map[string]any{
		"cniVersion": "1.0.0", "name": name, "type": "mnet", "mount": mp,
		"ipam": map[string]any{"type": "host-local", "subnet": subnet, "dataDir": ipam},
	}}
}

// with is the configuration with the fields of kv changed (nil deletes).
func (e *cniEnv) with(kv ...any) map[string]any {
	c := map[string]any{}
	for k, v := range e.conf {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// run invokes the plugin as a runtime does: command, container, namespace
// path and interface name in CNI_* variables, conf on standard input. It
// returns the parsed standard output (the result or the error) and
// whether the plugin exited 0; as c (nil: root), prefixed by wrap.
func (e *cniEnv) run(cmd, container, netns, ifname string, conf map[string]any, wrap ...string) (cniResult, string, bool) {
	e.t.Helper()
	stdin, err := json.Marshal(conf)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := append(slices.Clone(wrap), filepath.Join(cniPlugin(e.t), "mnet"))
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID="+container, "CNI_NETNS="+netns,
		"CNI_IFNAME="+ifname, "CNI_PATH="+cniPlugin(e.t)+":"+cniPluginDir)
	c.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	runErr := c.Run()
	var r cniResult
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
			e.t.Fatalf("CNI %s: standard output is not JSON (%v):\n%s", cmd, err, stdout.String())
		}
		r.raw = stdout.Bytes()
	}
	out := stdout.String() + stderr.String()
	if ctx.Err() != nil {
		e.t.Fatalf("CNI %s timed out:\n%s", cmd, out)
	}
	return r, out, runErr == nil
}

// mustRun is run that fails the test unless the plugin succeeds.
func (e *cniEnv) mustRun(cmd, container, netns, ifname string, conf map[string]any) cniResult {
	e.t.Helper()
	r, out, ok := e.run(cmd, container, netns, ifname, conf)
	if !ok {
		e.t.Fatalf("CNI %s of %s in %s failed:\n%s", cmd, ifname, netns, out)
	}
	return r
}

// wantError checks that a plugin run failed with CNI error code and a
// message containing each of msgs.
func wantError(t *testing.T, what string, r cniResult, out string, ok bool, code uint, msgs ...string) {
	t.Helper()
	if ok {
		t.Errorf("%s: the plugin succeeded:\n%s", what, out)
		return
	}
	if r.Code != code {
		t.Errorf("%s: error code %d, want %d:\n%s", what, r.Code, code, out)
	}
	for _, m := range msgs {
		if !strings.Contains(r.Msg, m) {
			t.Errorf("%s: message %q lacks %q", what, r.Msg, m)
		}
	}
}

// allocated lists host-local's addresses in use for network name.
func (e *cniEnv) allocated(name string) []string {
	ents, _ := os.ReadDir(filepath.Join(e.ipam, name))
	var ips []string
	for _, ent := range ents {
		if net.ParseIP(ent.Name()) != nil {
			ips = append(ips, ent.Name())
		}
	}
	return ips
}

// linkInfo is `ip -d -o link show` of ifname in ns, "" if it is not there.
func linkInfo(ns, ifname string) string {
	out, err := exec.Command("ip", "-n", ns, "-d", "-o", "link", "show", ifname).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// tapPorts counts the network's tap ports named name.
func tapPorts(t *testing.T, nw, name string) int {
	t.Helper()
	n := 0
	for _, r := range portRows(t, nw) {
		if len(r) >= 11 && r[1] == "tap" && r[10] == name {
			n++
		}
	}
	return n
}

// Direct invocation as runtimes do: ADD in two namespaces gives each its
// eth0 on one mnet network with an address, they ping each other through
// the network and pcap shows it; CHECK passes; DEL removes ports and
// interfaces and releases the addresses, and a second DEL succeeds.
func TestCNIAddCheckDel(t *testing.T) {
	e := newIfEnv(t, "ping", "tcpdump")
	a, b := e.netns("cnia"), e.netns("cnib")
	d := startMnet(t)
	c := newCNIEnv(t, d.mp, "cnilab", "198.18.123.0/24")
	confA := c.with("mtu", 1400)
	confB := c.with("mtu", 1400, "mac", "02:cc:00:00:00:0b")
	netA, netB := "/run/netns/"+a, "/run/netns/"+b

	ra := c.mustRun("ADD", "cnia", netA, "eth0", confA)
	rb := c.mustRun("ADD", "cnib", netB, "eth0", confB)
	nw := d.path("ipn", "cnilab")
	var addrs []string
	for _, x := range []struct {
		r       cniResult
		ns, mac string
	}{{ra, a, ""}, {rb, b, "02:cc:00:00:00:0b"}} {
		info := linkInfo(x.ns, "eth0")
		if len(x.r.Interfaces) != 1 || len(x.r.IPs) != 1 {
			t.Fatalf("ADD in %s: result %+v", x.ns, x.r)
		}
		ifc := x.r.Interfaces[0]
		if ifc.Name != "eth0" || ifc.Sandbox != "/run/netns/"+x.ns || ifc.Mtu != 1400 {
			t.Errorf("ADD in %s: interface %+v", x.ns, ifc)
		}
		if x.mac != "" && ifc.Mac != x.mac {
			t.Errorf("ADD in %s: MAC %s, configured %s", x.ns, ifc.Mac, x.mac)
		}
		if !strings.Contains(info, "link/ether "+ifc.Mac+" ") || !strings.Contains(info, "mtu 1400 ") ||
			!strings.Contains(info, "tun type tap") || !strings.Contains(info, ",UP,") {
			t.Errorf("eth0 in %s is not the TAP of the result (%s, up, mtu 1400): %s", x.ns, ifc.Mac, info)
		}
		ip, _, err := net.ParseCIDR(x.r.IPs[0].Address)
		if err != nil || !strings.HasPrefix(ip.String(), "198.18.123.") || x.r.IPs[0].Interface == nil || *x.r.IPs[0].Interface != 0 {
			t.Fatalf("ADD in %s: address %+v", x.ns, x.r.IPs[0])
		}
		if out := sh(t, inNS(x.ns, "ip -o addr show dev eth0")); !strings.Contains(out, " "+x.r.IPs[0].Address+" ") {
			t.Errorf("eth0 in %s lacks %s: %s", x.ns, x.r.IPs[0].Address, out)
		}
		addrs = append(addrs, ip.String())
	}
	fi, err := os.Stat(nw)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("network made by ADD: %v, mode %v, want 0700", err, fi.Mode())
	}
	if n := tapPorts(t, nw, "eth0"); n != 2 {
		t.Errorf("%d tap ports eth0, want 2:\n%s", n, readFile(t, filepath.Join(nw, "ports")))
	}

	// a pings b through the network while tcpdump reads its pcap.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var capture bytes.Buffer
	td := exec.CommandContext(ctx, "tcpdump", "-n", "-r", filepath.Join(nw, "pcap"), "-c", "2", "icmp")
	td.Stdout, td.Stderr = &capture, &capture
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	sh(t, inNS(a, "ping -c 3 -i 0.2 -W 2 "+addrs[1]))
	if err := td.Wait(); err != nil {
		t.Fatalf("tcpdump of pcap: %v\n%s", err, capture.String())
	}
	for _, want := range []string{addrs[0] + " > " + addrs[1] + ": ICMP echo request", addrs[1] + " > " + addrs[0] + ": ICMP echo reply"} {
		if !strings.Contains(capture.String(), want) {
			t.Errorf("pcap lacks %q:\n%s", want, capture.String())
		}
	}

	// CHECK with ADD's result.
	for _, x := range []struct {
		r      cniResult
		id, ns string
		conf   map[string]any
	}{{ra, "cnia", netA, confA}, {rb, "cnib", netB, confB}} {
		c.mustRun("CHECK", x.id, x.ns, "eth0", maps(x.conf, "prevResult", x.r.asPrev(t)))
	}

	// DEL a: its port and interface go, b's stay; again: still success.
	c.mustRun("DEL", "cnia", netA, "eth0", confA)
	if linkInfo(a, "eth0") != "" {
		t.Errorf("eth0 still in %s after DEL", a)
	}
	if n := tapPorts(t, nw, "eth0"); n != 1 {
		t.Errorf("after DEL of one, %d tap ports eth0, want 1", n)
	}
	if linkInfo(b, "eth0") == "" {
		t.Errorf("DEL in %s took eth0 of %s", a, b)
	}
	c.mustRun("DEL", "cnia", netA, "eth0", confA)
	if got := c.allocated("cnilab"); !slices.Equal(got, []string{addrs[1]}) {
		t.Errorf("after DEL of %s, host-local holds %v, want [%s]", a, got, addrs[1])
	}

	// CHECK of what DEL removed fails.
	r, out, ok := c.run("CHECK", "cnia", netA, "eth0", maps(confA, "prevResult", ra.asPrev(t)))
	wantError(t, "CHECK after DEL", r, out, ok, 103, "no interface eth0")

	// DEL b, then again as a runtime does once the namespace is gone
	// (no CNI_NETNS): the address is released once.
	c.mustRun("DEL", "cnib", netB, "eth0", confB)
	c.mustRun("DEL", "cnib", "", "eth0", confB)
	if n := tapPorts(t, nw, "eth0"); n != 0 {
		t.Errorf("after DEL of both, %d tap ports eth0", n)
	}
	if got := c.allocated("cnilab"); len(got) != 0 {
		t.Errorf("after DEL of both, host-local holds %v", got)
	}
}

// With "persist": true the network ADD creates is persistent, so a
// container's TAP (its namespace named, as runtimes name theirs) comes
// back after a daemon restart, in the container's namespace, and CHECK
// passes again.
func TestCNIPersist(t *testing.T) {
	e := newIfEnv(t)
	a := e.netns("cnip")
	netA := "/run/netns/" + a
	d := startMnet(t)
	c := newCNIEnv(t, d.mp, "cnipersist", "198.18.127.0/24")
	conf := c.with("persist", true)
	r := c.mustRun("ADD", "cnip", netA, "eth0", conf)
	nw := d.path("ipn", "cnipersist")
	if !hasLine(ctlLines(t, nw), "persist on") {
		t.Fatalf("the network ADD made is not persistent:\n%s", readFile(t, filepath.Join(nw, "ctl")))
	}
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit: %v", err)
	}
	startMnetAt(t, d.mp, d.state)
	if n := tapPorts(t, nw, "eth0"); n != 1 {
		t.Fatalf("after the restart, %d tap ports eth0:\n%s", n, readFile(t, filepath.Join(nw, "ctl")))
	}
	c.mustRun("CHECK", "cnip", netA, "eth0", maps(conf, "prevResult", r.asPrev(t)))
	c.mustRun("DEL", "cnip", netA, "eth0", conf)
	if linkInfo(a, "eth0") != "" || tapPorts(t, nw, "eth0") != 0 {
		t.Errorf("after DEL: eth0 %q, %d tap ports", linkInfo(a, "eth0"), tapPorts(t, nw, "eth0"))
	}
}

// maps is m with k set to v.
func maps(m map[string]any, k string, v any) map[string]any {
	c := map[string]any{}
	for kk, vv := range m {
		c[kk] = vv
	}
	c[k] = v
	return c
}

// "vlan": two containers on VLAN 10 of one network ping each other, one
// on VLAN 20 in the same subnet reaches neither; the ports show each
// container's VLAN.
func TestCNIVLAN(t *testing.T) {
	e := newIfEnv(t, "ping")
	a, b, x := e.netns("cnva"), e.netns("cnvb"), e.netns("cnvx")
	d := startMnet(t)
	c := newCNIEnv(t, d.mp, "cnivlan", "198.18.126.0/24")
	var addrs []string
	var results []cniResult
	for _, n := range []struct {
		ns   string
		vlan int
	}{{a, 10}, {b, 10}, {x, 20}} {
		r := c.mustRun("ADD", n.ns, "/run/netns/"+n.ns, "eth0", c.with("vlan", n.vlan))
		ip, _, _ := net.ParseCIDR(r.IPs[0].Address)
		addrs = append(addrs, ip.String())
		results = append(results, r)
	}
	nw := d.path("ipn", "cnivlan")
	var vlans []string
	for _, r := range portRows(t, nw) {
		if len(r) == 12 && r[1] == "tap" && r[10] == "eth0" {
			vlans = append(vlans, r[11])
		}
	}
	slices.Sort(vlans)
	if strings.Join(vlans, " ") != "10 10 20" {
		t.Errorf("VLANs of the containers' ports: %v, want 10 10 20:\n%s", vlans, readFile(t, filepath.Join(nw, "ports")))
	}
	ping(t, a, addrs[1])
	ping(t, b, addrs[0])
	noPing(t, x, addrs[0])
	noPing(t, a, addrs[2])
	checkConf := func(vlan int, r cniResult) map[string]any {
		return maps(c.with("vlan", vlan), "prevResult", r.asPrev(t))
	}
	c.mustRun("CHECK", x, "/run/netns/"+x, "eth0", checkConf(20, results[2]))
	for i, ns := range []string{b, x} {
		c.mustRun("DEL", ns, "/run/netns/"+ns, "eth0", c.with("vlan", []int{10, 20}[i]))
	}
	// CHECK sees a's port moved to another VLAN.
	c.mustRun("CHECK", a, "/run/netns/"+a, "eth0", checkConf(10, results[0]))
	mustCtl(t, nw, "vlan eth0 30")
	r, out, ok := c.run("CHECK", a, "/run/netns/"+a, "eth0", checkConf(10, results[0]))
	wantError(t, "CHECK of a port on another VLAN", r, out, ok, 103, "VLAN 10")
	c.mustRun("DEL", a, "/run/netns/"+a, "eth0", c.with("vlan", 10))
	if rows := portRows(t, nw); len(rows) != 0 {
		t.Errorf("DEL left ports: %v", rows)
	}
}

// Errors a user understands, as CNI error JSON with the spec's codes or
// the plugin's: the mount missing, the network's rights refusing the
// caller, the interface name taken, VLANs, a bad configuration, a
// namespace that does not exist; none of them leaves an address or a
// port behind. DEL succeeds when the mount is gone.
func TestCNIErrors(t *testing.T) {
	e := newIfEnv(t, "setpriv")
	ns := e.netns("cnie")
	netns := "/run/netns/" + ns
	d := startMnet(t)
	c := newCNIEnv(t, d.mp, "cnierr", "198.18.125.0/24")

	missing := filepath.Join(t.TempDir(), "nomnt")
	r, out, ok := c.run("ADD", "x", netns, "eth0", c.with("mount", missing))
	wantError(t, "ADD without the mount", r, out, ok, 11, "not mounted at "+missing, "mount -t mnet")
	if _, out, ok := c.run("DEL", "x", netns, "eth0", c.with("mount", missing)); !ok {
		t.Errorf("DEL without the mount failed:\n%s", out)
	}

	// The network exists, root's with mode 0744: uid 1000,
	// though it may enter the namespace and create interfaces, has no
	// manage right.
	nw := d.mkNet(t, "cnierr")
	if err := os.Chmod(nw, 0o744); err != nil {
		t.Fatal(err)
	}
	r, out, ok = c.run("ADD", "x", netns, "eth0", c.conf, "setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
		"--inh-caps=+net_admin,+sys_admin", "--ambient-caps=+net_admin,+sys_admin")
	wantError(t, "ADD as uid 1000", r, out, ok, 100, `network "cnierr" (mode 0744, owner uid 0, group 0) refused for uid 1000`, "manage right (x)")

	// eth0 is a veth already.
	sh(t, fmt.Sprintf("ip -n %s link add eth0 type veth peer name %s", ns, e.name("p")))
	r, out, ok = c.run("ADD", "x", netns, "eth0", c.conf)
	wantError(t, "ADD of a name taken", r, out, ok, 101, `interface name "eth0" is taken`)
	if !strings.Contains(linkInfo(ns, "eth0"), "veth") {
		t.Errorf("the veth eth0 is gone after the refused ADD")
	}
	// The runtime's DEL after the failed ADD leaves the veth alone.
	if _, out, ok := c.run("DEL", "x", netns, "eth0", c.conf); !ok || !strings.Contains(linkInfo(ns, "eth0"), "veth") {
		t.Errorf("DEL after a refused ADD: ok %v, eth0 %q\n%s", ok, linkInfo(ns, "eth0"), out)
	}

	r, out, ok = c.run("ADD", "x", netns, "net1", c.with("vlan", 4095))
	wantError(t, "ADD with vlan 4095", r, out, ok, 7, "vlan 4095")
	if _, out, ok := c.run("DEL", "x", netns, "net1", c.with("vlan", 4095)); !ok {
		t.Errorf("DEL after the ADD refused for vlan: %s", out)
	}
	r, out, ok = c.run("ADD", "x", netns, "net1", c.with("network", "a/b"))
	wantError(t, "ADD to a bad network name", r, out, ok, 7, `network "a/b"`)
	r, out, ok = c.run("ADD", "x", netns, "net1", c.with("mtu", 70000))
	wantError(t, "ADD with mtu 70000", r, out, ok, 7, "mtu 70000")
	r, out, ok = c.run("ADD", "x", "/run/netns/"+e.tag+"-none", "net1", c.conf)
	wantError(t, "ADD in a missing namespace", r, out, ok, 3, "does not exist")
	r, out, ok = c.run("CHECK", "x", netns, "net1", c.conf)
	wantError(t, "CHECK without prevResult", r, out, ok, 7, "prevResult")
	if _, out, ok := c.run("ADD", "x", netns, "net1", map[string]any{"cniVersion": "9.9.9", "name": "x", "type": "mnet"}); ok || !strings.Contains(out, `"code": 1`) {
		t.Errorf("ADD with cniVersion 9.9.9: ok %v\n%s", ok, out)
	}

	if rows := portRows(t, nw); len(rows) != 0 {
		t.Errorf("failed ADDs left ports: %v", rows)
	}
	if got := c.allocated("cnierr"); len(got) != 0 {
		t.Errorf("failed ADDs left addresses %v", got)
	}

	// The IPAM plugin fails after the TAP is made (a /30 has one address
	// to give): its error is passed on, and the TAP is detached and gone.
	small := c.with("network", "cnismall", "ipam", map[string]any{"type": "host-local", "subnet": "198.18.125.4/30", "dataDir": c.ipam})
	other := e.netns("cnie2")
	c.mustRun("ADD", "y", "/run/netns/"+other, "eth0", small)
	r, out, ok = c.run("ADD", "x", netns, "net1", small)
	wantError(t, "ADD with no address left", r, out, ok, 999, "no IP addresses available")
	if linkInfo(ns, "net1") != "" || tapPorts(t, d.path("ipn", "cnismall"), "net1") != 0 {
		t.Errorf("the ADD that IPAM failed left net1 (%q) or its port", linkInfo(ns, "net1"))
	}
	c.mustRun("DEL", "y", "/run/netns/"+other, "eth0", small)

	// STATUS (CNI 1.1): the mount is there, or the plugin is unavailable (50).
	status := map[string]any{"cniVersion": "1.1.0", "name": "cnierr", "type": "mnet", "mount": d.mp}
	if _, out, ok := c.run("STATUS", "", "", "", status); !ok {
		t.Errorf("STATUS with the mount: %s", out)
	}
	r, out, ok = c.run("STATUS", "", "", "", maps(status, "mount", missing))
	wantError(t, "STATUS without the mount", r, out, ok, 50, "not mounted")
	// GC (CNI 1.1): nothing of mnet's to collect.
	if _, out, ok := c.run("GC", "", "", "", maps(status, "cni.dev/valid-attachments", []any{})); !ok {
		t.Errorf("GC: %s", out)
	}
}

// Two namespaces attach an interface of the same name to one network (as
// every container's eth0 does); detach acts on the caller's own, and a
// caller elsewhere cannot take one of them by mistake.
func TestNsSameNameTwoNamespaces(t *testing.T) {
	e := newIfEnv(t)
	a, b, other := e.netns("a"), e.netns("b"), e.netns("o")
	d := startMnet(t)
	nw := d.mkNet(t, "same")
	ctlPath := filepath.Join(nw, "ctl")
	x := e.name("x")
	ctlA, _ := tapInBoth(t, ctlPath, a, b, x)
	if !linkExists(a, x) || !linkExists(b, x) || tapPorts(t, nw, x) != 2 {
		t.Fatalf("tap %s from two namespaces: in a %v, in b %v, ports:\n%s", x, linkExists(a, x), linkExists(b, x),
			readFile(t, filepath.Join(nw, "ports")))
	}
	if n := strings.Count(readFile(t, ctlPath)+"\n", "tap "+x+"\n"); n != 2 {
		t.Errorf("ctl shows tap %s %d times, want 2:\n%s", x, n, readFile(t, ctlPath))
	}
	if err := writeCtlFD(t, ctlA, "tap "+x); err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Errorf("a second tap %s from the same namespace: %v, want EEXIST", x, err)
	}

	// Neither the daemon's namespace nor a third one names one of two.
	if err := ctl(nw, "detach "+x+"\n"); err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Errorf("detach %s from the daemon's namespace with two attached: %v, want ENODEV", x, err)
	}
	if !strings.Contains(readFile(t, ctlPath), "detach it through a ctl opened in its namespace") {
		t.Errorf("last-error does not say how to detach:\n%s", readFile(t, ctlPath))
	}
	if err := writeCtlFD(t, openCtlIn(t, other, ctlPath, true), "detach "+x); err == nil {
		t.Errorf("detach %s from a third namespace succeeded", x)
	}

	if err := writeCtlFD(t, ctlA, "detach "+x); err != nil {
		t.Fatalf("detach %s from a: %v", x, err)
	}
	if linkExists(a, x) || !linkExists(b, x) || tapPorts(t, nw, x) != 1 {
		t.Errorf("after detach from a: in a %v, in b %v, ports %d", linkExists(a, x), linkExists(b, x), tapPorts(t, nw, x))
	}
	// Alone again, it is found from the daemon's namespace, as before.
	if err := ctl(nw, "detach "+x+"\n"); err != nil {
		t.Errorf("detach %s from the daemon's namespace, one attached: %v", x, err)
	}
	if linkExists(b, x) || tapPorts(t, nw, x) != 0 {
		t.Errorf("after detach from the daemon's namespace: in b %v, ports %d", linkExists(b, x), tapPorts(t, nw, x))
	}
}

// tapInBoth makes a TAP called x in namespaces a and b, attached to the
// network of ctlPath, and returns a ctl opened in each.
func tapInBoth(t *testing.T, ctlPath, a, b, x string) (ctlA, ctlB int) {
	t.Helper()
	ctlA, ctlB = openCtlIn(t, a, ctlPath, true), openCtlIn(t, b, ctlPath, true)
	for _, fd := range []int{ctlA, ctlB} {
		if err := writeCtlFD(t, fd, "tap "+x); err != nil {
			t.Fatalf("tap %s: %v", x, err)
		}
	}
	return ctlA, ctlB
}

// podmanEnv runs podman with the CNI backend, its storage, state and
// networks in one test's directories.
type podmanEnv struct {
	t    *testing.T
	dir  string
	conf string // CONTAINERS_CONF
	// flags every podman command gets.
	global []string
}

func newPodmanEnv(t *testing.T) *podmanEnv {
	t.Helper()
	dir := t.TempDir()
	p := &podmanEnv{t: t, dir: dir, conf: filepath.Join(dir, "containers.conf")}
	for _, d := range []string{"net.d", "plugins", "root", "runroot", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The plugin as a runtime finds it, by its type, beside Debian's.
	if err := os.Symlink(filepath.Join(cniPlugin(t), "mnet"), filepath.Join(dir, "plugins", "mnet")); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`[network]
network_backend = "cni"
cni_plugin_dirs = [%q, %q]
network_config_dir = %q

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = %q
`, filepath.Join(dir, "plugins"), cniPluginDir, filepath.Join(dir, "net.d"), filepath.Join(dir, "tmp"))
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// runc, not crun: crun refuses a hybrid cgroup layout whose v2
	// hierarchy has a controller (as on the machines that run CI).
	p.global = []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "runroot"),
		"--storage-driver", "vfs", "--runtime", "runc"}
	t.Cleanup(func() {
		p.podman(time.Minute, "rm", "--all", "--force", "--time", "0")
		if t.Failed() {
			out, _ := p.podman(30*time.Second, "ps", "--all")
			t.Logf("podman ps --all:\n%s", out)
		}
	})
	return p
}

// podman runs podman with args and returns its combined output.
func (p *podmanEnv) podman(timeout time.Duration, args ...string) (string, error) {
	p.t.Helper()
	return run(p.t, timeout, []string{"CONTAINERS_CONF=" + p.conf}, "podman", append(slices.Clone(p.global), args...)...)
}

func (p *podmanEnv) mustPodman(args ...string) string {
	p.t.Helper()
	out, err := p.podman(2*time.Minute, args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// rootfs makes a root filesystem of busybox alone, as no image registry
// can be reached.
func (p *podmanEnv) rootfs(name string) string {
	p.t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		p.t.Fatal(err)
	}
	root := filepath.Join(p.dir, name)
	sh(p.t, fmt.Sprintf("mkdir -p %[1]s/bin %[1]s/etc %[1]s/tmp && cp %[2]s %[1]s/bin/busybox", root, bb))
	return root
}

// podmanUlimits keep the container's limits under the machine's: podman
// as root asks for more than the hard limits, which takes CAP_SYS_RESOURCE
// the machines that run CI do not give. (Root's processes are not held to
// nproc.)
var podmanUlimits = []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

// A real runtime: podman with the CNI backend runs two containers on one
// mnet network (a conflist of type mnet, host-local addresses), and they
// ping each other; removing a container detaches and deletes its
// interface and releases its address.
func TestCNIPodman(t *testing.T) {
	require(t, "podman", "runc", "busybox")
	d := startMnet(t)
	c := newCNIEnv(t, d.mp, "cnipod", "198.18.126.0/24")
	p := newPodmanEnv(t)
	conflist, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": "cnipod",
		"plugins": []any{c.with("cniVersion", nil, "name", nil)},
	})
	if err := os.WriteFile(filepath.Join(p.dir, "net.d", "cnipod.conflist"), conflist, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := p.mustPodman("info", "--format", "{{.Host.NetworkBackend}}"); out != "cni" {
		t.Fatalf("podman's network backend is %q, want cni", out)
	}
	nw := d.path("ipn", "cnipod")
	lim := podmanUlimits

	name := "mnet-cni-" + strings.ReplaceAll(t.Name(), "/", "-")
	args := append([]string{"run", "--detach", "--name", name, "--network", "cnipod"}, lim...)
	p.mustPodman(append(args, "--rootfs", p.rootfs("rootfs1"), "/bin/busybox", "sleep", "120")...)
	ip := p.mustPodman("inspect", "--format", `{{(index .NetworkSettings.Networks "cnipod").IPAddress}}`, name)
	if !strings.HasPrefix(ip, "198.18.126.") {
		t.Fatalf("the container's address on cnipod is %q", ip)
	}
	if n := tapPorts(t, nw, "eth0"); n != 1 {
		t.Errorf("with one container, %d tap ports eth0:\n%s", n, readFile(t, filepath.Join(nw, "ports")))
	}
	args = append([]string{"run", "--rm", "--network", "cnipod"}, lim...)
	out := p.mustPodman(append(args, "--rootfs", p.rootfs("rootfs2"), "/bin/busybox", "ping", "-c", "3", "-W", "5", ip)...)
	if !strings.Contains(out, "3 packets transmitted, 3 packets received") {
		t.Errorf("ping from a second container to %s:\n%s", ip, out)
	}
	if n := tapPorts(t, nw, "eth0"); n != 1 {
		t.Errorf("after the second container's exit, %d tap ports eth0, want 1", n)
	}

	p.mustPodman("rm", "--force", "--time", "0", name)
	if n := tapPorts(t, nw, "eth0"); n != 0 {
		t.Errorf("after podman rm, %d tap ports eth0", n)
	}
	if got := c.allocated("cnipod"); len(got) != 0 {
		t.Errorf("after podman rm, host-local holds %v", got)
	}
}
