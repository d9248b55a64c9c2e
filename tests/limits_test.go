// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of SPEC "Per-uid limits": queued bytes are budgeted
// per uid (drops, or a lossless writer that waits and that a signal
// interrupts), mhost names and endpoints are bounded per uid, kernel
// sockets of every family share one per-uid budget, users filling a
// global limit leave root (CAP_SYS_ADMIN) a reserve, and each refusal is
// logged with the uid. Limits are made small with mount flags.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// limitsHold runs script as c in the background (it must print "held"
// once it holds what it opened, then sleep), until the test ends.
func limitsHold(t *testing.T, c *cred, script string) *proc {
	t.Helper()
	p := startProc(t, "setpriv", fmt.Sprintf("--reuid=%d", c.uid), fmt.Sprintf("--regid=%d", c.gid),
		"--clear-groups", "bash", "-c", script+" && echo held && exec sleep 120")
	p.waitOutput(t, "held")
	return p
}

// portDrops returns the DROPS column of each port of net, by PORT.
func portDrops(t *testing.T, net string) map[string]int {
	t.Helper()
	drops := map[string]int{}
	for _, r := range portRows(t, net) {
		n, _ := strconv.Atoi(r[9])
		drops[r[0]] = n
	}
	return drops
}

// A uid past its budget of queued bytes (256K here): with lossless off its
// packets are dropped at each reader that never reads, counted in ports
// and stats; the log names the uid.
func TestLimitsQueuedBytesDrop(t *testing.T) {
	require(t, "setpriv", "dd")
	d := startMnet(t, "--max-queued-per-uid", "256K")
	u := &cred{uid: 1000, gid: 1000}
	net := d.path("ipn", "limits-q")
	if out, err := shAs(t, u, 15*time.Second, "mkdir "+net+" && echo 'qlen 65536' > "+net+"/ctl"); err != nil {
		t.Fatalf("uid 1000 makes the network: %v %s", err, out)
	}
	limitsHold(t, u, "exec 3<"+net+"/data 4<"+net+"/data")
	// 400 packets of 1000 bytes: 256K holds 232 of them (each is 1000
	// bytes once and 64 per queue holding it).
	if out, err := shAs(t, u, 30*time.Second, "dd if=/dev/zero bs=1000 count=400 of="+net+"/data 2>&1"); err != nil {
		t.Fatalf("uid 1000 writes: %v %s", err, out)
	}
	drops := portDrops(t, net)
	readers := 0
	for port, n := range drops {
		if n > 0 {
			readers++
			if n != 400-232 {
				t.Errorf("port %s dropped %d packets, want %d", port, n, 400-232)
			}
		}
	}
	if readers != 2 {
		t.Errorf("drops per port %v, want drops at the two readers", drops)
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "drops"); got != strconv.Itoa(2*(400-232)) {
		t.Errorf("stats drops %s, want %d", got, 2*(400-232))
	}
	waitFor(t, "a log line naming uid 1000", func() bool {
		return strings.Contains(d.log.String(), `msg="limit reached" resource=queued-bytes uid=1000 scope=per-uid`)
	})
}

// With lossless on, a uid past its budget of queued bytes waits in
// write(2) (nothing is dropped), and a signal ends the wait.
func TestLimitsQueuedBytesLosslessWaits(t *testing.T) {
	require(t, "setpriv", "dd", "timeout")
	d := startMnet(t, "--max-queued-per-uid", "256K")
	u := &cred{uid: 1000, gid: 1000}
	net := d.path("ipn", "limits-ql")
	if out, err := shAs(t, u, 15*time.Second, "mkdir "+net+" && printf 'qlen 65536\\nlossless on\\n' > "+net+"/ctl"); err != nil {
		t.Fatalf("uid 1000 makes the network: %v %s", err, out)
	}
	limitsHold(t, u, "exec 3<"+net+"/data 4<"+net+"/data")
	start := time.Now()
	out, err := shAs(t, u, 30*time.Second, "timeout -s INT 2 dd if=/dev/zero bs=1000 count=400 of="+net+"/data; echo status=$?")
	if err != nil || !strings.Contains(out, "status=124") {
		t.Fatalf("the writer past its budget: %v %q, want it blocked until timeout's SIGINT (status=124)", err, out)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("the interrupted writer took %v to go", el)
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "drops"); got != "0" {
		t.Errorf("lossless network dropped %s packets", got)
	}
	if got := keyValue(t, filepath.Join(net, "stats"), "packets"); got != "232" {
		t.Errorf("%s packets sent before the writer waited, want 232", got)
	}
}

// mhost names past a uid's limit are ENOSPC and its endpoints EMFILE;
// another uid and root are not held back; the log names the uid.
func TestLimitsMhostNamesAndEndpoints(t *testing.T) {
	require(t, "setpriv")
	d := startMnet(t, "--max-hosts-per-uid", "2", "--max-endpoints-per-uid", "2")
	u1, u2 := &cred{uid: 1000, gid: 1000}, &cred{uid: 1001, gid: 1001}
	for _, n := range []string{"limits-a", "limits-b"} {
		if out, err := shAs(t, u1, 15*time.Second, "mkdir -m 0777 "+d.path("mhost", n)); err != nil {
			t.Fatalf("uid 1000 names %s: %v %s", n, err, out)
		}
	}
	if out, err := shAs(t, u1, 15*time.Second, "mkdir "+d.path("mhost", "limits-c")); err == nil || !strings.Contains(out, "No space left on device") {
		t.Errorf("uid 1000's third mhost name: %v %q, want No space left on device", err, out)
	}
	if out, err := shAs(t, u2, 15*time.Second, "mkdir "+d.path("mhost", "limits-u2")); err != nil {
		t.Errorf("uid 1001 names a host while uid 1000 is at its limit: %v %s", err, out)
	}
	if err := os.Mkdir(d.path("mhost", "limits-root"), 0o755); err != nil {
		t.Errorf("root names a host: %v", err)
	}
	ep := d.path("mhost", "limits-a", "udp", "9")
	limitsHold(t, u1, "exec 3<>"+ep+" 4<>"+ep)
	if out, err := shAs(t, u1, 15*time.Second, "exec 5<>"+ep); err == nil || !strings.Contains(out, "Too many open files") {
		t.Errorf("uid 1000's third mhost endpoint: %v %q, want Too many open files", err, out)
	}
	if out, err := shAs(t, nil, 15*time.Second, "exec 5<>"+ep+" && echo ok"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("root's endpoint while uid 1000 is at its limit: %v %q", err, out)
	}
	waitFor(t, "log lines naming uid 1000", func() bool {
		l := d.log.String()
		return strings.Contains(l, "resource=mhost-hosts uid=1000 scope=per-uid") &&
			strings.Contains(l, "resource=mhost-endpoints uid=1000 scope=per-uid")
	})
}

// One budget of kernel sockets per uid across families: inet sockets and
// mhost's (mhost/any binds one per address family) count together, and
// inet6 with inet.
func TestLimitsSocketsAcrossFamilies(t *testing.T) {
	requireInet(t, false, "setpriv")
	d := startMnet(t, "--max-sockets-per-uid", "3")
	u := &cred{uid: 1000, gid: 1000}
	port := freePort(t, "udp4")
	file := d.path("inet", "udp", "127.0.0.1", strconv.Itoa(port))
	limitsHold(t, u, "exec 3<>"+file+" 4<>"+file)
	anyPort := strconv.Itoa(freePort(t, "udp4"))
	if out, err := shAs(t, u, 15*time.Second, "exec 5<>"+d.path("mhost", "any", "udp", anyPort)); err == nil || !strings.Contains(out, "Too many open files") {
		t.Errorf("uid 1000 with 2 inet sockets opening mhost/any (2 more sockets): %v %q, want Too many open files", err, out)
	}
	if out, err := shAs(t, u, 15*time.Second, "exec 5<>"+file+" && echo ok"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("uid 1000's third socket: %v %q", err, out)
	}
	if b, _ := os.ReadFile("/proc/net/if_inet6"); strings.Contains(string(b), "00000000000000000000000000000001") {
		limitsHold(t, u, "exec 5<>"+file)
		if out, err := shAs(t, u, 15*time.Second, "exec 6<>"+d.path("inet6", "udp", "::1", strconv.Itoa(port))); err == nil || !strings.Contains(out, "Too many open files") {
			t.Errorf("uid 1000's inet6 socket with 3 inet ones: %v %q, want Too many open files", err, out)
		}
	}
	if out, err := shAs(t, nil, 15*time.Second, "exec 5<>"+d.path("mhost", "any", "udp", anyPort)+" && echo ok"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("root opening mhost/any: %v %q", err, out)
	}
	waitFor(t, "a log line naming uid 1000", func() bool {
		return strings.Contains(d.log.String(), "resource=sockets uid=1000 scope=per-uid")
	})
}

// Users who together fill the global limits of networks and sockets
// leave root (CAP_SYS_ADMIN) their reserve: it still makes a network and
// opens a socket. The global refusal is logged with the uid.
func TestLimitsRootReserve(t *testing.T) {
	requireInet(t, false, "setpriv")
	d := startMnet(t, "--max-networks", "8", "--max-networks-per-uid", "2",
		"--max-sockets", "8", "--max-sockets-per-uid", "2", "--root-reserve", "25")
	port := freePort(t, "udp4")
	file := d.path("inet", "udp", "127.0.0.1", strconv.Itoa(port))
	for i := range 3 {
		u := &cred{uid: 1000 + i, gid: 1000 + i}
		for j := range 2 {
			name := d.path("ipn", fmt.Sprintf("limits-r%d-%d", i, j))
			if out, err := shAs(t, u, 15*time.Second, "mkdir "+name); err != nil {
				t.Fatalf("uid %d's network %d: %v %s", u.uid, j+1, err, out)
			}
		}
		limitsHold(t, u, "exec 3<>"+file+" 4<>"+file)
	}
	late := &cred{uid: 1003, gid: 1003}
	if out, err := shAs(t, late, 15*time.Second, "mkdir "+d.path("ipn", "limits-late")); err == nil || !strings.Contains(out, "No space left on device") {
		t.Errorf("uid 1003's first network with the users' share full: %v %q, want No space left on device", err, out)
	}
	if out, err := shAs(t, late, 15*time.Second, "exec 3<>"+file); err == nil || !strings.Contains(out, "Too many open files in system") {
		t.Errorf("uid 1003's first socket with the users' share full: %v %q, want Too many open files in system", err, out)
	}
	for _, n := range []string{"limits-root1", "limits-root2"} {
		if err := os.Mkdir(d.path("ipn", n), 0o755); err != nil {
			t.Errorf("root's network %s in the reserve: %v", n, err)
		}
	}
	if out, err := shAs(t, nil, 15*time.Second, "exec 3<>"+file+" 4<>"+file+" && echo ok"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("root's sockets in the reserve: %v %q", err, out)
	}
	waitFor(t, "log lines naming uid 1003", func() bool {
		l := d.log.String()
		return strings.Contains(l, "resource=networks uid=1003 scope=global") &&
			strings.Contains(l, "resource=sockets uid=1003 scope=global")
	})
}

// A ctl file opened for writing from another network namespace holds that
// namespace open, by a descriptor of the daemon's: it counts as a socket
// of the opener's, so opens from ever new namespaces cannot use up the
// daemon's descriptors.
func TestLimitsCtlNamespaceCounts(t *testing.T) {
	require(t, "setpriv", "unshare")
	d := startMnet(t, "--max-sockets-per-uid", "2")
	u := &cred{uid: 1000, gid: 1000}
	if out, err := shAs(t, u, 15*time.Second, "mkdir "+d.path("ipn", "nsctl")); err != nil {
		t.Fatalf("mkdir as uid 1000: %v %s", err, out)
	}
	ctlPath := d.path("ipn", "nsctl", "ctl")
	script := fmt.Sprintf("unshare -Urn bash -c 'exec 3>%s 4>%s && echo two && exec 5>%s && echo three'", ctlPath, ctlPath, ctlPath)
	out, err := shAs(t, u, 15*time.Second, script)
	if !strings.Contains(out, "two") || strings.Contains(out, "three") || !strings.Contains(out, "Too many open files") {
		t.Fatalf("three ctl opens from a namespace of uid 1000's, with 2 sockets allowed: %v %q, want the third EMFILE", err, out)
	}
	// Closed, they are given back; from the daemon's namespace nothing
	// is held and nothing counted.
	script = fmt.Sprintf("unshare -Urn bash -c 'exec 3>%s 4>%s && echo again' && exec 3>%s 4>%s 5>%s && echo host", ctlPath, ctlPath, ctlPath, ctlPath, ctlPath)
	if out, err := shAs(t, u, 15*time.Second, script); err != nil || !strings.Contains(out, "again") || !strings.Contains(out, "host") {
		t.Errorf("ctl opens after the first were closed: %v %q", err, out)
	}
}
