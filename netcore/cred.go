// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"
)

// Cred is the identity of the process behind one file operation: what the
// kernel's FUSE request says (uid, gid, pid), and what /proc says of that
// pid when a check needs it (supplementary groups, capabilities).
type Cred struct {
	Uid, Gid uint32
	// Pid is the calling thread's id as the daemon's pid namespace sees
	// it; 0 when the caller is not visible there (another pid namespace),
	// and then nothing that needs the caller's process (its network
	// namespace, its capabilities) is available: EACCES, or no privilege.
	Pid uint32
	// Groups are the supplementary groups, valid when GroupsKnown;
	// InGroup reads them from /proc on first use (a caller that owns
	// what it opens never needs them).
	Groups      []uint32
	GroupsKnown bool
	// CapEff is the caller's effective capability set as it counts for
	// the daemon: empty for a caller in another user namespace, whose
	// capabilities govern that namespace only. It is valid when
	// CapsKnown; LoadCaps reads it from /proc on first use, so the
	// common path (reads and writes of data files) never does.
	CapEff    uint64
	CapsKnown bool
}

// Capabilities, as numbered in <linux/capability.h>. uid 0 is no
// privilege by itself: every exception to a rule is one of these.
const (
	CapChown          = 0
	CapDacOverride    = 1
	CapFowner         = 3
	CapNetBindService = 10
	CapNetAdmin       = 12
	CapSysAdmin       = 21
)

// HasCap reports whether cap is in the caller's effective set and counts
// for the daemon (the caller is in the daemon's user namespace).
func (c *Cred) HasCap(cap int) bool {
	c.LoadCaps()
	return c.CapEff&(1<<uint(cap)) != 0
}

// LoadCaps fills CapEff from the kernel (capget) unless known. A
// Cred shared by goroutines (kept by an open file) must be loaded before
// it is shared.
func (c *Cred) LoadCaps() {
	if c.CapsKnown {
		return
	}
	c.CapEff = capsOf(c.Pid)
	c.CapsKnown = true
}

// loadGroups fills Groups unless known. A caller that cannot be seen
// keeps what it was given.
func (c *Cred) loadGroups() {
	if c.GroupsKnown {
		return
	}
	c.GroupsKnown = true
	if c.Pid != 0 && ProcMatches() {
		c.Groups = groupsOf(c.Pid)
	}
}

// Pin reads now what later checks of c need of the caller's process (its
// capabilities and supplementary groups), while the caller is blocked in
// the request whose pid names it. A handle that keeps its opener's Cred
// pins it at open, before it is copied: no later write looks the pid up,
// which by then may name another process. (The opener's network namespace
// is pinned with it by package netns, which holds it open.)
func (c *Cred) Pin() {
	c.LoadCaps()
	c.loadGroups()
}

// InGroup reports whether gid is the caller's primary or a supplementary group.
func (c *Cred) InGroup(gid uint32) bool {
	if c.Gid == gid {
		return true
	}
	c.loadGroups()
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// TaskPath is /proc/PID/task/PID/NAME for the calling thread (the
// request's pid is a thread id; namespaces and credentials are per thread).
func (c *Cred) TaskPath(name string) string {
	pid := strconv.FormatUint(uint64(c.Pid), 10)
	return "/proc/" + pid + "/task/" + pid + "/" + name
}

// ProcMatches reports whether /proc shows the daemon's own pid namespace
// (its /proc/self is its pid), so that a FUSE request's pid names the
// caller there. A daemon in a pid namespace of its own with its parent's
// /proc mounted would read another process under that number: then no
// caller's /proc entry is trusted (no groups beyond the primary, no
// capabilities, no network namespace).
var ProcMatches = sync.OnceValue(func() bool {
	self, err := os.Readlink("/proc/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
})

var daemonUserNS = sync.OnceValues(func() (syscall.Stat_t, error) {
	var st syscall.Stat_t
	err := syscall.Stat("/proc/self/ns/user", &st)
	return st, err
})

// groupsOf reads the "Groups:" line of thread pid's status, as libfuse's
// fuse_getgroups does. A thread that is gone has no supplementary groups.
func groupsOf(pid uint32) []uint32 {
	c := Cred{Pid: pid}
	b, err := os.ReadFile(c.TaskPath("status"))
	if err != nil {
		return nil
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Groups:"))
		if !ok {
			continue
		}
		var gs []uint32
		for _, f := range bytes.Fields(rest) {
			if g, err := strconv.ParseUint(string(f), 10, 32); err == nil {
				gs = append(gs, uint32(g))
			}
		}
		return gs
	}
	return nil
}

// capsOf returns the effective capabilities of thread pid if it is in
// the daemon's user namespace, else none. A thread that cannot be seen
// (pid 0, gone) has none.
func capsOf(pid uint32) uint64 {
	if pid == 0 || !ProcMatches() {
		return 0
	}
	c := Cred{Pid: pid}
	self, err := daemonUserNS()
	if err != nil {
		return 0
	}
	var st syscall.Stat_t
	if syscall.Stat(c.TaskPath("ns/user"), &st) != nil || st.Dev != self.Dev || st.Ino != self.Ino {
		return 0
	}
	return capEff(pid)
}

// capget(2)'s header and data, version 3 (64-bit sets in two halves).
type capHeader struct {
	version uint32
	pid     int32
}

type capData struct{ effective, permitted, inheritable uint32 }

const capVersion3 = 0x20080522

// capEff asks the kernel for thread pid's effective set: capget(2) costs a
// system call, where /proc/PID/status is formatted whole for each read,
// and capabilities are read at every open that pins them.
func capEff(pid uint32) uint64 {
	h := capHeader{version: capVersion3, pid: int32(pid)}
	var d [2]capData
	_, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&h)), uintptr(unsafe.Pointer(&d[0])), 0)
	if errno != 0 {
		return 0
	}
	return uint64(d[1].effective)<<32 | uint64(d[0].effective)
}
