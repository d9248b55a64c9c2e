// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// SIGTERM unmounts and exits 0, also while a reader is blocked and another
// process holds a port open; the clients end and no mount is left.
func TestSIGTERMLeavesNoMount(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "term")
	cat := exec.Command("cat", filepath.Join(net, "data"))
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("bash", "-c", "exec 3>"+filepath.Join(net, "data")+"; sleep 30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	waitFor(t, "two ports", func() bool { return len(portRows(t, net)) == 2 })

	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit after SIGTERM: %v, want status 0\n%s", err, d.log.String())
	}
	if isMounted(d.mp) {
		t.Fatalf("%s still mounted after SIGTERM", d.mp)
	}
	catDone := make(chan error, 1)
	go func() { catDone <- cat.Wait() }()
	select {
	case <-catDone:
	case <-time.After(5 * time.Second):
		cat.Process.Kill()
		t.Fatal("a blocked cat did not end when mnet stopped")
	}
}

// --cpuprofile writes a Go CPU profile (gzipped protobuf) when the daemon
// stops.
func TestCPUProfileWrittenAtStop(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "mnet.pprof")
	d := startMnet(t, "--cpuprofile", prof)
	d.mkNet(t, "prof")
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit after SIGTERM: %v\n%s", err, d.log.String())
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("%s is not a gzipped profile: %d bytes", prof, len(b))
	}
	if !strings.Contains(d.log.String(), "CPU profile written") {
		t.Errorf("profile not logged:\n%s", d.log.String())
	}
}

// SIGINT works like SIGTERM.
// A mount namespace made while mnet was mounted (ip netns exec, unshare -m)
// holds a copy of the mount; with private propagation the unmount does not
// reach the copy and the kernel keeps the FUSE connection. SIGTERM must
// still stop the daemon (it ends the connection itself), within the 10 s
// the harness allows.
func TestSIGTERMWithMountNamespaceCopy(t *testing.T) {
	require(t, "unshare", "sleep")
	d := startMnet(t)
	copyHolder := exec.Command("unshare", "-m", "--propagation", "private", "sleep", "60")
	if err := copyHolder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { copyHolder.Process.Kill(); copyHolder.Wait() }()
	// The copy exists once unshare has made the namespace and exec'd sleep.
	waitFor(t, "the mount namespace copy", func() bool {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", copyHolder.Process.Pid))
		return strings.HasSuffix(exe, "/sleep")
	})
	if err := d.stop(); err != nil {
		t.Fatalf("mnet exit after SIGTERM: %v\n%s", err, d.log.String())
	}
	if isMounted(d.mp) {
		t.Fatalf("%s still mounted after SIGTERM", d.mp)
	}
}

// A signal at any moment of start-up ends the daemon and leaves no mount.
// Right after mount(2), go-fuse holds a file of the new mount open for its
// poll probe; a signal that killed the process then would leave it
// unkillable, closing that file by asking itself for an answer. SIGTERM is
// sent at fixed delays after start, and at steps of 25 µs after the mount
// appears, so that some land in that window.
func TestSignalDuringStartup(t *testing.T) {
	require(t)
	dir := mountDir(t)
	for i := range 40 {
		mp := filepath.Join(dir, fmt.Sprintf("mnt%d", i))
		var log syncBuffer
		cmd := exec.Command(mnetBin, "mount", "--state", "", mp)
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		when := fmt.Sprintf("%d ms after start", i*5)
		if i < 10 {
			time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		} else {
			deadline := time.Now().Add(10 * time.Second)
			for !isMounted(mp) && time.Now().Before(deadline) {
			}
			time.Sleep(time.Duration(i-10) * 25 * time.Microsecond)
			when = fmt.Sprintf("%d µs after the mount appeared", (i-10)*25)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			var exit *exec.ExitError
			if err != nil && !(errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM) {
				t.Errorf("SIGTERM %s: exit %v\n%s", when, err, log.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("SIGTERM %s: mnet did not end\n%s", when, log.String())
			abortMount(mp)
			cmd.Process.Kill()
			<-done
		}
		if isMounted(mp) {
			t.Errorf("SIGTERM %s left %s mounted", when, mp)
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
}

// abortMount ends the FUSE connection of the mount at mp through fusectl,
// for a test to clean up after a daemon that hangs.
func abortMount(mp string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == mp {
			if _, minor, ok := strings.Cut(f[2], ":"); ok {
				os.WriteFile("/sys/fs/fuse/connections/"+minor+"/abort", []byte("1"), 0)
			}
		}
	}
}

func TestSIGINTStops(t *testing.T) {
	d := startMnet(t)
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("mnet did not stop on SIGINT")
	}
	if d.err != nil || isMounted(d.mp) {
		t.Fatalf("after SIGINT: exit %v, mounted %v", d.err, isMounted(d.mp))
	}
}

// `mnet umount` stops the daemon cleanly, also with a reader blocked.
func TestUmountCommand(t *testing.T) {
	d := startMnet(t)
	net := d.mkNet(t, "um")
	cat := exec.Command("cat", filepath.Join(net, "data"))
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cat.Process.Kill(); cat.Wait() }()
	waitFor(t, "cat to join", func() bool { return len(portRows(t, net)) == 1 })
	if out, err := exec.Command(mnetBin, "umount", d.mp).CombinedOutput(); err != nil {
		t.Fatalf("mnet umount: %v\n%s", err, out)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon still running after mnet umount")
	}
	if d.err != nil {
		t.Errorf("daemon exit after umount: %v, want 0", d.err)
	}
	if isMounted(d.mp) {
		t.Fatal("still mounted after mnet umount")
	}
}

// A daemon killed with SIGKILL leaves a dead mount ("transport endpoint is
// not connected"); the next mnet mount on it recovers without help.
func TestStaleMountRecovered(t *testing.T) {
	d := startMnet(t)
	d.cmd.Process.Kill()
	<-d.done
	var st unix.Stat_t
	if err := unix.Stat(d.mp, &st); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("after SIGKILL stat of the mount: %v, want ENOTCONN", err)
	}
	d2 := startMnetAt(t, d.mp, d.state)
	d2.mkNet(t, "again")
	if out := sh(t, "ls "+d2.path("ipn")); strings.TrimSpace(out) != "again" {
		t.Fatalf("recovered mount lists %q", out)
	}
	if !strings.Contains(d2.log.String(), "stale") {
		t.Errorf("recovery not logged:\n%s", d2.log.String())
	}
}

// Mounting over a live mnet mount is refused, and the live one keeps working.
func TestDoubleMountRefused(t *testing.T) {
	d := startMnet(t)
	out, err := exec.Command(mnetBin, "mount", "--state", "", d.mp).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already mounted") {
		t.Fatalf("second mount: %v %s", err, out)
	}
	if _, err := os.Stat(d.path("families")); err != nil {
		t.Fatal(err)
	}
}

// The root shows README, families and the registered families.
func TestRootLayout(t *testing.T) {
	d := startMnet(t)
	ls := sh(t, "ls -l "+d.mp)
	for _, want := range []string{"-r--r--r--", "README", "families", "drwxrwxrwt", "ipn", "dr-xr-xr-x", "inet", "inet6"} {
		if !strings.Contains(ls, want) {
			t.Errorf("ls -l of the root lacks %q:\n%s", want, ls)
		}
	}
	fam := readFile(t, d.path("families"))
	var names []string
	for line := range strings.Lines(fam) {
		name, descr, ok := strings.Cut(line, "\t")
		if !ok || strings.TrimSpace(descr) == "" {
			t.Errorf("families line %q: want NAME<TAB>description", line)
		}
		names = append(names, name)
	}
	if strings.Join(names, " ") != "inet inet6 ipn mhost" {
		t.Errorf("families: %q", fam)
	}
	readme := readFile(t, d.path("README"))
	for _, want := range []string{"ipn/NAME/data", "inet/udp/HOST/PORT", "inet6/"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README does not describe %s:\n%s", want, readme)
		}
	}
	// Nothing but networks may be created.
	if err := os.Mkdir(d.path("other"), 0o755); !errors.Is(err, unix.EPERM) {
		t.Errorf("mkdir at the root: %v, want EPERM", err)
	}
	if err := os.WriteFile(d.path("ipn", "file"), nil, 0o644); !errors.Is(err, unix.EPERM) {
		t.Errorf("creating a file in ipn: %v, want EPERM", err)
	}
}

// mnet mount refuses to run as another user than root, with a reason.
func TestMountNeedsRoot(t *testing.T) {
	require(t, "setpriv")
	dir := mountDir(t)
	out, err := shAs(t, &cred{uid: 1000, gid: 1000}, 10*time.Second, mnetBin+" mount --state '' "+dir+"/mnt")
	if err == nil || !strings.Contains(out, "must run as root") {
		t.Fatalf("mount as uid 1000: %v %s", err, out)
	}
}

func TestHelp(t *testing.T) {
	require(t)
	out, err := exec.Command(mnetBin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "mnet mount [flags] MOUNTPOINT") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	out, err = exec.Command(mnetBin, "frobnicate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown command") {
		t.Fatalf("unknown command: %v\n%s", err, out)
	}
}

// tcpdump reads the pcap file while packets flow.
func TestPcapWithTcpdump(t *testing.T) {
	require(t, "tcpdump")
	d := startMnet(t)
	net := d.mkNet(t, "cap")
	td := exec.Command("tcpdump", "-n", "-e", "-r", filepath.Join(net, "pcap"), "-c", "3")
	out := &syncBuffer{}
	td.Stdout = out
	td.Stderr = out
	if err := td.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- td.Wait() }()
	defer td.Process.Kill()
	w := openPort(t, net, unix.O_WRONLY)
	// Send until tcpdump has seen three: it may open pcap after the first.
	sent := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tcpdump: %v\n%s", err, out.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var pkts []string
			for _, l := range lines {
				if strings.Contains(l, "0a:0a:0a:0a:0a:0a > ff:ff:ff:ff:ff:ff") {
					pkts = append(pkts, l)
				}
			}
			if len(pkts) != 3 {
				t.Fatalf("tcpdump printed %d packets, want 3:\n%s", len(pkts), out.String())
			}
			t.Logf("sent %d, tcpdump:\n%s", sent, out.String())
			return
		case <-time.After(50 * time.Millisecond):
		}
		if sent > 200 {
			t.Fatalf("tcpdump saw fewer than 3 of %d packets:\n%s", sent, out.String())
		}
		if _, err := unix.Write(w, frame(0xff, 0x0a, fmt.Sprintf("packet %d", sent))); err != nil {
			t.Fatal(err)
		}
		sent++
	}
}

// A network with persist on survives a restart, with its settings, owner
// and mode; one without does not.
func TestPersistAcrossRestart(t *testing.T) {
	d := startMnet(t)
	keep := d.mkNet(t, "keep")
	d.mkNet(t, "gone")
	mustCtl(t, keep, "mtu 1500\npolicy switch\ndescr kept across restarts\npersist on\n")
	sh(t, "chmod 0751 "+keep+" && chown 1000:2000 "+keep)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d2 := startMnetAt(t, d.mp, d.state)
	ls := strings.Fields(sh(t, "ls "+d2.path("ipn")))
	if len(ls) != 1 || ls[0] != "keep" {
		t.Fatalf("after restart ipn holds %v, want [keep]", ls)
	}
	c := readFile(t, d2.path("ipn", "keep", "ctl"))
	for _, want := range []string{"mtu 1500\n", "policy switch\n", "descr kept across restarts\n", "persist on\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("restored ctl lacks %q:\n%s", want, c)
		}
	}
	if out := sh(t, "stat -c '%A %u %g' "+d2.path("ipn", "keep")); strings.TrimSpace(out) != "drwxr-x--x 1000 2000" {
		t.Errorf("restored mode and owner: %s", out)
	}
	mustCtl(t, d2.path("ipn", "keep"), "persist off")
	if err := d2.stop(); err != nil {
		t.Fatal(err)
	}
	d3 := startMnetAt(t, d.mp, d.state)
	if out := sh(t, "ls "+d3.path("ipn")); strings.TrimSpace(out) != "" {
		t.Fatalf("persist off network came back: %q", out)
	}
}

// `mnet umount` stops the daemon as SIGTERM does, also while a mount
// namespace made meanwhile (unshare -m, ip netns exec) holds a copy of
// the mount, which keeps the kernel's FUSE connection: within a few
// seconds, exit 0, and readers blocked here and in the copy end with end
// of file (cat exits 0), whichever way the daemon is stopped.
func TestUmountWithMountNamespaceCopy(t *testing.T) {
	require(t, "unshare", "sleep", "cat")
	for _, c := range []struct {
		name     string
		hereRead bool // a reader in this namespace: umount(2) is EBUSY
		signal   bool // SIGTERM instead of mnet umount
	}{
		{"umount", false, false},
		{"umount-busy", true, false},
		{"sigterm", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := startMnet(t)
			net := d.mkNet(t, "robust-um")
			data := filepath.Join(net, "data")
			var readers []*exec.Cmd
			start := func(cmd *exec.Cmd) {
				t.Helper()
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			}
			// A copy of the mount with a blocked reader in it, and one
			// with nothing open.
			inCopy := exec.Command("unshare", "-m", "--propagation", "private", "cat", data)
			start(inCopy)
			readers = append(readers, inCopy)
			holder := exec.Command("unshare", "-m", "--propagation", "private", "sleep", "1000")
			start(holder)
			if c.hereRead {
				here := exec.Command("cat", data)
				start(here)
				readers = append(readers, here)
			}
			waitFor(t, "the readers to join", func() bool { return len(portRows(t, net)) == len(readers) })
			waitFor(t, "the mount namespace copy", func() bool {
				exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", holder.Process.Pid))
				return strings.HasSuffix(exe, "/sleep")
			})
			readerDone := make([]chan error, len(readers))
			for i, r := range readers {
				readerDone[i] = make(chan error, 1)
				go func() { readerDone[i] <- r.Wait() }()
			}
			began := time.Now()
			if c.signal {
				d.cmd.Process.Signal(syscall.SIGTERM)
			} else if out, err := exec.Command(mnetBin, "umount", d.mp).CombinedOutput(); err != nil {
				t.Fatalf("mnet umount: %v\n%s", err, out)
			}
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("daemon still running %v after the stop", time.Since(began))
			}
			took := time.Since(began)
			t.Logf("daemon stopped %v after the stop began", took)
			if d.err != nil {
				t.Errorf("daemon exit: %v, want 0", d.err)
			}
			if took > 6*time.Second {
				t.Errorf("the daemon took %v to stop", took)
			}
			for i, ch := range readerDone {
				select {
				case err := <-ch:
					if err != nil {
						t.Errorf("reader %d (%v): %v, want end of file and exit 0", i, readers[i].Args, err)
					}
				case <-time.After(5 * time.Second):
					t.Errorf("reader %d (%v) still blocked", i, readers[i].Args)
				}
			}
			if isMounted(d.mp) {
				t.Errorf("still mounted")
			}
		})
	}
}
