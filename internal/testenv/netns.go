// SPDX-License-Identifier: BSD-3-Clause

package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Net is the network namespaces and interfaces of one test. Their names
// carry a tag unique to the test and the run, so that parallel runs and
// the leftovers of killed ones never collide, and all of them are deleted
// at the test's cleanup, also when it fails.
type Net struct {
	t     testing.TB
	Tag   string // "m" and 5 hex digits
	nss   []string
	links []string
}

var netSeq atomic.Uint32

// NewNet needs root and ip(8). Its cleanup runs after the cleanups
// registered later (a daemon's stop, for one), so make it first.
func NewNet(t testing.TB) *Net {
	t.Helper()
	Require(t, "root", "ip")
	// Names of 6 + a few characters, well under IFNAMSIZ.
	n := (uint32(os.Getpid())<<8 ^ netSeq.Add(1)<<4 ^ rand.Uint32()) & 0xfffff
	e := &Net{t: t, Tag: fmt.Sprintf("m%05x", n)}
	t.Cleanup(e.cleanup)
	return e
}

// Name is an interface name of this test: the tag and s.
func (e *Net) Name(s string) string {
	n := e.Tag + s
	if len(n) > 15 {
		e.t.Fatalf("interface name %q too long", n)
	}
	return n
}

// NetnsName is the name of this test's namespace s, deleted at cleanup,
// for a namespace that something else (a script under test) creates.
func (e *Net) NetnsName(s string) string {
	ns := "mnet-" + e.Tag + "-" + s
	e.nss = append(e.nss, ns)
	return ns
}

// Netns creates the namespace NetnsName(s) with lo up and returns its
// name.
func (e *Net) Netns(s string) string {
	e.t.Helper()
	ns := e.NetnsName(s)
	run(e.t, fmt.Sprintf("ip netns add %s && ip -n %s link set lo up", ns, ns))
	return ns
}

// Link registers an interface of the test's namespace for deletion at
// cleanup (a TAP the code under test should have deleted, for one).
func (e *Net) Link(name string) string {
	e.links = append(e.links, name)
	return name
}

// Veth creates the pair a (in the test's namespace, up) and b.
func (e *Net) Veth(a, b string) {
	e.t.Helper()
	e.Link(a)
	run(e.t, fmt.Sprintf("ip link add %s type veth peer name %s && ip link set %s up", a, b, a))
}

// VethNS creates the pair a and b (Veth), moves b into a new namespace
// Netns(s) with address addr/24 (none if addr is "") and returns the
// namespace.
func (e *Net) VethNS(a, b, s, addr string) string {
	e.t.Helper()
	e.Veth(a, b)
	ns := e.Netns(s)
	IntoNS(e.t, b, ns, addr)
	return ns
}

// PersistentTap creates a TAP the way an administrator does, with
// `ip tuntap add`.
func (e *Net) PersistentTap(name string) {
	e.t.Helper()
	e.Link(name)
	run(e.t, fmt.Sprintf("ip tuntap add dev %s mode tap", name))
}

// cleanup deletes the namespaces (and with them every interface inside),
// the registered links, and any other link carrying the tag.
func (e *Net) cleanup() {
	for _, ns := range e.nss {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	for _, l := range e.links {
		if LinkExists("", l) {
			exec.Command("ip", "link", "del", l).Run()
		}
	}
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, e.Tag) {
			exec.Command("ip", "link", "del", name).Run()
		}
	}
}

// IntoNS moves an interface of the test's namespace into ns, gives it
// addr/24 (none when addr is "") and brings it up.
func IntoNS(t testing.TB, ifname, ns, addr string) {
	t.Helper()
	script := fmt.Sprintf("ip link set %s netns %s && ip -n %s link set %s up", ifname, ns, ns, ifname)
	if addr != "" {
		script += fmt.Sprintf(" && ip -n %s addr add %s/24 dev %s", ns, addr, ifname)
	}
	run(t, script)
}

// InNS prefixes a command with `ip netns exec NS` unless ns is "" (the
// test's own namespace).
func InNS(ns, cmd string) string {
	if ns == "" {
		return cmd
	}
	return "ip netns exec " + ns + " " + cmd
}

// IP is ip(8) for namespace ns ("" is the test's own).
func IP(ns string) string {
	if ns == "" {
		return "ip"
	}
	return "ip -n " + ns
}

// LinkExists reports whether interface name exists in ns.
func LinkExists(ns, name string) bool {
	args := []string{"link", "show", "dev", name}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return exec.Command("ip", args...).Run() == nil
}

// run runs a bash script that sets up the test's network, failing the
// test if it fails.
func run(t testing.TB, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.WaitDelay = 2 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}
