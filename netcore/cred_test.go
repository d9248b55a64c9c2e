// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
)

// statusCapEff is the CapEff line of /proc/PID/status.
func statusCapEff(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("CapEff:")); ok {
			v, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("no CapEff line")
	return 0
}

// Pin reads the effective set the kernel shows for the caller's thread,
// for a process with every capability and one with a few.
func TestPinReadsCapabilities(t *testing.T) {
	c := Cred{Pid: uint32(os.Getpid())}
	c.Pin()
	if want := statusCapEff(t, os.Getpid()); !c.CapsKnown || c.CapEff != want {
		t.Errorf("own process: CapEff %#x known %v, want %#x", c.CapEff, c.CapsKnown, want)
	}
	testenv.Require(t, "root", "setpriv") // a process with fewer capabilities
	cmd := exec.Command("setpriv", "--inh-caps=-all,+net_admin", "--ambient-caps=+net_admin",
		"--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	var want uint64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != "" && bytes.HasSuffix([]byte(exe), []byte("sleep")) {
			want = statusCapEff(t, pid)
			break
		}
	}
	if want != 1<<CapNetAdmin {
		t.Fatalf("the sleep's CapEff is %#x, want CAP_NET_ADMIN alone", want)
	}
	c = Cred{Pid: uint32(pid)}
	c.Pin()
	if c.CapEff != want {
		t.Errorf("CapEff %#x, want %#x", c.CapEff, want)
	}
	if c := (Cred{Pid: 0}); c.HasCap(CapNetAdmin) {
		t.Error("pid 0 has CAP_NET_ADMIN")
	}
}

// The cost of pinning a caller's capabilities, paid by every open that
// keeps its Cred (ctl for writing, mhost endpoints).
func BenchmarkPin(b *testing.B) {
	pid := uint32(os.Getpid())
	for b.Loop() {
		c := Cred{Pid: pid}
		c.Pin()
	}
}
