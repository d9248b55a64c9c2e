// SPDX-License-Identifier: BSD-3-Clause

package tests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"golang.org/x/sys/unix"
)

// The repository's root, where the Makefile is.
const repoRoot = ".."

// run runs a command with a timeout and returns its combined output.
func run(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	// A detached daemon must not keep this call waiting: it gets none of
	// mount's descriptors, and WaitDelay bounds the damage if it did.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s timed out after %v", name, timeout)
	}
	return string(out), err
}

// runMake runs make in the repository root with args, failing the test if
// it fails.
func runMake(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, 5*time.Minute, nil, "make", append([]string{"-C", repoRoot, "--no-print-directory"}, args...)...)
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// filesUnder lists everything under root as "path" for files, "path/" for
// directories and "path -> target" for symlinks, relative to root, sorted.
func filesUnder(t *testing.T, root string, skip ...string) []string {
	t.Helper()
	var got []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if slices.Contains(skip, rel) {
			return filepath.SkipDir
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			got = append(got, rel+" -> "+target)
		case fi.IsDir():
			got = append(got, rel+"/")
		default:
			got = append(got, fmt.Sprintf("%s %04o", rel, fi.Mode().Perm()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

// make install DESTDIR=$tmp installs the binary, the mount helper, the unit,
// the man pages, the CNI plugin with its example configuration and the
// state directory, and nothing else; make uninstall removes them (the
// directories it made for them stay, as usual).
func TestMakeInstallFiles(t *testing.T) {
	require(t, "make", "go-md2man")
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "dest")
	runMake(t, "install", "DESTDIR="+dest, "BUILD="+filepath.Join(tmp, "build"))
	want := []string{
		"sbin/",
		"sbin/mount.mnet -> /usr/local/sbin/mnet",
		"usr/",
		"usr/lib/",
		"usr/lib/cni/",
		"usr/lib/cni/mnet 0755",
		"usr/local/",
		"usr/local/lib/",
		"usr/local/lib/systemd/",
		"usr/local/lib/systemd/system/",
		"usr/local/lib/systemd/system/mnet.service 0644",
		"usr/local/sbin/",
		"usr/local/sbin/mnet 0755",
		"usr/local/share/",
		"usr/local/share/doc/",
		"usr/local/share/doc/mnet/",
		"usr/local/share/doc/mnet/examples/",
		"usr/local/share/doc/mnet/examples/mnet-lab.conflist 0644",
		"usr/local/share/man/",
		"usr/local/share/man/man7/",
		"usr/local/share/man/man7/mnet.7 0644",
		"usr/local/share/man/man8/",
		"usr/local/share/man/man8/mnet-cni.8 0644",
		"usr/local/share/man/man8/mnet.8 0644",
		"var/",
		"var/lib/",
		"var/lib/mnet/",
	}
	if got := filesUnder(t, dest); !slices.Equal(got, want) {
		t.Errorf("make install DESTDIR=%s installed\n%s\nwant\n%s", dest, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	unit := readFile(t, filepath.Join(dest, "usr/local/lib/systemd/system/mnet.service"))
	for _, line := range []string{"ExecStart=/usr/local/sbin/mnet mount /mnt/mnet", "ExecStop=/usr/local/sbin/mnet umount /mnt/mnet", "Type=notify"} {
		if !strings.Contains(unit, "\n"+line+"\n") {
			t.Errorf("installed unit lacks %q:\n%s", line, unit)
		}
	}
	out, err := run(t, 10*time.Second, nil, filepath.Join(dest, "usr/local/sbin/mnet"), "--version")
	if err != nil || !strings.HasPrefix(out, "mnet ") {
		t.Errorf("installed mnet --version: %v\n%s", err, out)
	}
	out, err = run(t, 10*time.Second, []string{"CNI_COMMAND=VERSION"}, filepath.Join(dest, "usr/lib/cni/mnet"))
	if err != nil || !strings.Contains(out, `"1.0.0"`) {
		t.Errorf("installed CNI plugin, VERSION: %v\n%s", err, out)
	}

	// PREFIX moves all but the helper and the CNI plugin, which stay
	// where mount(8) and container runtimes look.
	dest2 := filepath.Join(tmp, "dest2")
	runMake(t, "install", "DESTDIR="+dest2, "PREFIX=/opt/mnet", "BUILD="+filepath.Join(tmp, "build"))
	for _, p := range []string{"opt/mnet/sbin/mnet", "opt/mnet/share/man/man7/mnet.7", "opt/mnet/lib/systemd/system/mnet.service",
		"opt/mnet/share/doc/mnet/examples/mnet-lab.conflist", "usr/lib/cni/mnet", "var/lib/mnet"} {
		if _, err := os.Stat(filepath.Join(dest2, p)); err != nil {
			t.Errorf("make install PREFIX=/opt/mnet: %v", err)
		}
	}
	if target, _ := os.Readlink(filepath.Join(dest2, "sbin/mount.mnet")); target != "/opt/mnet/sbin/mnet" {
		t.Errorf("PREFIX=/opt/mnet: sbin/mount.mnet -> %q", target)
	}

	runMake(t, "uninstall", "DESTDIR="+dest)
	for _, f := range filesUnder(t, dest) {
		if !strings.HasSuffix(f, "/") {
			t.Errorf("make uninstall left %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "var/lib/mnet")); err == nil {
		t.Error("make uninstall left the empty state directory")
	}
}

// helperPath is where mount(8) looks for the helper of type mnet.
const helperPath = "/sbin/mount.mnet"

// linkHelper makes /sbin/mount.mnet a link to target for the test. A real
// installed helper is never replaced. A link left by a test run that was
// killed (its target gone, or a temporary file not touched for 10 minutes)
// is; one of a run going on now is waited for a while.
func linkHelper(t *testing.T, target string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := os.Symlink(target, helperPath)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
		old, lerr := os.Readlink(helperPath)
		fi, serr := os.Lstat(helperPath)
		_, terr := os.Stat(old)
		ours := lerr == nil && strings.HasPrefix(old, os.TempDir()+"/")
		switch {
		case lerr == nil && terr != nil, ours && serr == nil && time.Since(fi.ModTime()) > 10*time.Minute:
			os.Remove(helperPath) // stale
			continue
		case ours && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond) // another run's test
			continue
		}
		msg := fmt.Sprintf("%s exists (-> %q); the test will not replace it", helperPath, old)
		testenv.SkipOrFail(t, msg)
	}
	t.Cleanup(func() {
		if now, _ := os.Readlink(helperPath); now == target {
			os.Remove(helperPath)
		}
	})
}

// procStat is what the test needs of /proc/PID/stat.
type procStat struct {
	state            byte
	ppid, pgrp, sess int
	exitCode         int // wait status, once a zombie
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 50 {
		return procStat{}, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	var st procStat
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(f[1])
	st.pgrp, _ = strconv.Atoi(f[2])
	st.sess, _ = strconv.Atoi(f[3])
	st.exitCode, _ = strconv.Atoi(f[49])
	return st, nil
}

// daemonsAt returns the live (not zombie) processes whose command line is
// an `mnet mount` of mp.
func daemonsAt(mp string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "mount" || args[len(args)-1] != mp {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.state != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitDaemonExit waits until pid has exited and returns its wait status
// when it can still be read: the daemon is reparented to init once the
// helper exits, and an init that does not reap leaves it a zombie.
func waitDaemonExit(t *testing.T, pid int) (syscall.WaitStatus, bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := readProcStat(pid)
		if err != nil {
			return 0, false // gone: reaped
		}
		if st.state == 'Z' || st.state == 'X' {
			return syscall.WaitStatus(st.exitCode), true
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d still running (state %c) 10 s after the unmount", pid, st.state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// helperEnv keeps a race-enabled daemon from sleeping a second at exit.
var helperEnv = []string{"GORACE=atexit_sleep_ms=0"}

// cleanupMount unmounts mp and ends its daemons should the test fail.
func cleanupMount(t *testing.T, mp, log string) {
	t.Cleanup(func() {
		if isMounted(mp) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
		for _, pid := range daemonsAt(mp) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if b, err := os.ReadFile(log); err == nil {
			if strings.Contains(string(b), "DATA RACE") {
				t.Error("the daemon reported a data race")
			}
			if t.Failed() {
				t.Logf("mnet log:\n%s", b)
			}
		}
	})
}

// checkDetached checks that pid is a daemon of its own: its own session and
// process group (not the test's), standard input and output on /dev/null,
// standard error on /dev/null or on the log file.
func checkDetached(t *testing.T, pid int, log string) {
	t.Helper()
	st, err := readProcStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.sess != pid || st.pgrp != pid {
		t.Errorf("daemon %d: session %d, process group %d; want its own", pid, st.sess, st.pgrp)
	}
	if st.pgrp == syscall.Getpgrp() {
		t.Errorf("daemon %d is in the test's process group", pid)
	}
	for fd := range 3 {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
		if target != "/dev/null" && (fd != 2 || target != log) {
			t.Errorf("daemon's descriptor %d is %q, want /dev/null", fd, target)
		}
	}
}

var helperPidRE = regexp.MustCompile(`mnet serves .* \(pid (\d+)\)`)

// mount -t mnet returns with the mount live and the daemon detached; a
// second mount of the same directory fails with a clear message; plain
// umount stops the daemon, which exits 0.
func TestMountHelper(t *testing.T) {
	require(t, "mount", "umount")
	linkHelper(t, mnetBin)
	dir := mountDir(t)
	mp := filepath.Join(dir, "mnt")
	log := filepath.Join(dir, "mnet.log")
	cleanupMount(t, mp, log)

	out, err := run(t, 30*time.Second, helperEnv, "mount", "-v", "-t", "mnet",
		"-o", "state="+filepath.Join(dir, "state.json")+",log="+log+",debug", "mnet", mp)
	if err != nil {
		t.Fatalf("mount -t mnet: %v\n%s", err, out)
	}
	// Live as soon as mount returns: no waiting.
	if !isMounted(mp) {
		t.Fatalf("mount returned 0 but %s is not mounted\n%s", mp, out)
	}
	if _, err := os.Stat(filepath.Join(mp, "families")); err != nil {
		t.Fatalf("mount returned 0 but the mount does not serve: %v", err)
	}
	m := helperPidRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("mount -v does not name the daemon's pid:\n%s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	if got := daemonsAt(mp); !slices.Equal(got, []int{pid}) {
		t.Fatalf("daemons of %s: %v, want [%d]", mp, got, pid)
	}
	checkDetached(t, pid, log)
	for _, want := range []string{"ignoring options rw", "starting ", "--log " + log} {
		if !strings.Contains(out, want) {
			t.Errorf("mount -v output lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "msg=mounted") {
		t.Errorf("log=%s does not hold the daemon's log:\n%s", log, b)
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); !strings.Contains(string(cmdline), "\x00-v\x00") {
		t.Errorf("option debug did not give the daemon -v: %q", cmdline)
	}

	// A second mount of the same directory.
	out, err = run(t, 30*time.Second, helperEnv, "mount", "-t", "mnet", "mnet", mp)
	if err == nil {
		t.Errorf("a second mount of %s succeeded", mp)
	}
	if !strings.Contains(out, "mount.mnet: "+mp+" is already mounted") {
		t.Errorf("second mount says %q, want that %s is already mounted", out, mp)
	}
	if got := daemonsAt(mp); !slices.Equal(got, []int{pid}) {
		t.Errorf("after the second mount, daemons of %s: %v, want [%d]", mp, got, pid)
	}

	out, err = run(t, 30*time.Second, nil, "umount", mp)
	if err != nil {
		t.Fatalf("umount %s: %v\n%s", mp, err, out)
	}
	if ws, ok := waitDaemonExit(t, pid); ok && (!ws.Exited() || ws.ExitStatus() != 0) {
		t.Errorf("daemon ended with wait status %#x after umount, want exit 0", int(ws))
	}
	if isMounted(mp) {
		t.Errorf("%s still mounted", mp)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "msg=stopped") {
		t.Errorf("the daemon's log does not end with its stop:\n%s", b)
	}
}

// Bad options fail with a message and leave no daemon: one the helper
// refuses itself, one the daemon refuses, and -f mounts nothing.
func TestMountHelperBadOptions(t *testing.T) {
	require(t, "mount")
	linkHelper(t, mnetBin)
	dir := mountDir(t)
	mp := filepath.Join(dir, "mnt")
	cleanupMount(t, mp, "")
	for _, tc := range []struct {
		opts string
		msg  string
	}{
		{"frobnicate", `mount.mnet: unknown option "frobnicate"`},
		{"state=relative.json", "mount.mnet: option state=relative.json: want an absolute path"},
		{"ro", "mount.mnet: option ro: mnet is always mounted read-write"},
		// The daemon's own error, through the helper.
		{"log=" + filepath.Join(dir, "no", "such", "dir", "mnet.log"), "mount.mnet: mount: log: open " + filepath.Join(dir, "no")},
	} {
		out, err := run(t, 30*time.Second, helperEnv, "mount", "-t", "mnet", "-o", tc.opts, "mnet", mp)
		if err == nil {
			t.Errorf("mount -o %s succeeded", tc.opts)
		}
		if !strings.Contains(out, tc.msg) {
			t.Errorf("mount -o %s says %q, want %q", tc.opts, out, tc.msg)
		}
		if isMounted(mp) {
			t.Errorf("mount -o %s failed but left %s mounted", tc.opts, mp)
			unix.Unmount(mp, unix.MNT_DETACH)
		}
		time.Sleep(50 * time.Millisecond)
		if pids := daemonsAt(mp); len(pids) > 0 {
			t.Errorf("mount -o %s failed but left daemons %v", tc.opts, pids)
		}
	}

	// -f: everything but the mount.
	out, err := run(t, 30*time.Second, helperEnv, "mount", "-f", "-v", "-t", "mnet", "-o", "debug", "mnet", mp)
	if err != nil || !strings.Contains(out, "-f: not mounting") || !strings.Contains(out, " mount --log syslog -v "+mp) {
		t.Errorf("mount -f -v: %v\n%s", err, out)
	}
	if isMounted(mp) || len(daemonsAt(mp)) > 0 {
		t.Error("mount -f mounted")
	}
	out, err = run(t, 30*time.Second, helperEnv, "mount", "-f", "-t", "mnet", "-o", "bogus", "mnet", mp)
	if err == nil || !strings.Contains(out, "unknown option") {
		t.Errorf("mount -f with a bad option: %v\n%s", err, out)
	}
	// -s ignores what it does not know; -n is accepted.
	out, err = run(t, 30*time.Second, helperEnv, "mount", "-f", "-s", "-n", "-t", "mnet", "-o", "bogus", "mnet", mp)
	if err != nil {
		t.Errorf("mount -f -s -n with an unknown option: %v\n%s", err, out)
	}
}

// In a bare container nothing listens on /dev/log, where the helper's
// daemon logs by default: the helper says so when it mounts, and suggests
// log=; with log= it says nothing. (A /dev/log of this machine is hidden
// by /dev/null in a mount namespace of the test's own.)
func TestMountHelperWarnsWithoutSyslog(t *testing.T) {
	require(t, "mount", "unshare")
	linkHelper(t, mnetBin)
	dir := mountDir(t)
	mp := filepath.Join(dir, "mnt")
	cleanupMount(t, mp, "")
	bare := func(opts string) (string, error) {
		script := "if [ -e /dev/log ]; then mount --bind /dev/null /dev/log || exit 1; fi; exec mount -f -t mnet " + opts + " mnet " + mp
		return run(t, 30*time.Second, helperEnv, "unshare", "-m", "--propagation", "private", "sh", "-c", script)
	}
	out, err := bare("")
	if err != nil {
		t.Fatalf("mount -f without /dev/log: %v\n%s", err, out)
	}
	if !strings.Contains(out, "mount.mnet: warning: nothing listens on /dev/log") || !strings.Contains(out, "log=") {
		t.Errorf("mount without a system log says %q, want a warning that suggests log=", out)
	}
	out, err = bare("-o log=" + filepath.Join(dir, "mnet.log"))
	if err != nil || strings.Contains(out, "warning") {
		t.Errorf("mount -f -o log=FILE without /dev/log: %v %q, want no warning", err, out)
	}
}

// An fstab line mounts with plain `mount DIR` (a test fstab, mount -T).
func TestMountHelperFstab(t *testing.T) {
	require(t, "mount", "umount")
	linkHelper(t, mnetBin)
	dir := mountDir(t)
	mp := filepath.Join(dir, "mnt")
	log := filepath.Join(dir, "mnet.log")
	cleanupMount(t, mp, log)
	os.Mkdir(mp, 0o755)
	fstab := filepath.Join(dir, "fstab")
	line := fmt.Sprintf("mnet %s mnet defaults,nofail,state=%s,log=%s 0 0\n", mp, filepath.Join(dir, "state.json"), log)
	if err := os.WriteFile(fstab, []byte("# test fstab\n"+line), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, 30*time.Second, helperEnv, "mount", "-T", fstab, mp)
	if err != nil {
		t.Fatalf("mount -T %s %s: %v\n%s", fstab, mp, err, out)
	}
	if _, err := os.Stat(filepath.Join(mp, "ipn")); err != nil || !isMounted(mp) {
		t.Fatalf("fstab mount returned 0 but does not serve: %v", err)
	}
	pids := daemonsAt(mp)
	if len(pids) != 1 {
		t.Fatalf("daemons of %s: %v", mp, pids)
	}
	checkDetached(t, pids[0], log)
	// The mount serves: a network and a packet.
	sh(t, fmt.Sprintf("mkdir %[1]s/ipn/fstab && (timeout 5 head -c 6 %[1]s/ipn/fstab/data > %[2]s/got &) && sleep 0.3 && echo hello > %[1]s/ipn/fstab/data && sleep 0.3 && rmdir %[1]s/ipn/fstab; true", mp, dir))
	if got := readFile(t, filepath.Join(dir, "got")); got != "hello\n" {
		t.Errorf("a packet through the fstab mount: %q", got)
	}
	if out, err := run(t, 30*time.Second, nil, "umount", mp); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	if ws, ok := waitDaemonExit(t, pids[0]); ok && ws.ExitStatus() != 0 {
		t.Errorf("daemon exit %#x", int(ws))
	}
}

// READY=1 arrives once the mount is live and STOPPING=1 when the daemon
// stops, on the socket named by NOTIFY_SOCKET: on SIGTERM and on umount.
func TestNotifySocket(t *testing.T) {
	require(t)
	for _, stop := range []string{"SIGTERM", "umount"} {
		t.Run(stop, func(t *testing.T) {
			dir := mountDir(t)
			sock := filepath.Join(dir, "notify")
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			t.Setenv("NOTIFY_SOCKET", sock)
			mp := filepath.Join(dir, "mnt")
			d := startMnetAt(t, mp, "")
			msg := readNotify(t, conn)
			if !strings.Contains(msg, "READY=1\n") {
				t.Fatalf("first notification %q, want READY=1", msg)
			}
			if !isMounted(mp) {
				t.Error("READY=1 before the mount")
			}
			if stop == "SIGTERM" {
				d.cmd.Process.Signal(syscall.SIGTERM)
			} else if out, err := run(t, 30*time.Second, nil, "umount", mp); err != nil {
				t.Fatalf("umount: %v\n%s", err, out)
			}
			if msg := readNotify(t, conn); msg != "STOPPING=1\n" {
				t.Errorf("notification on %s: %q, want STOPPING=1", stop, msg)
			}
			if err := d.stop(); err != nil {
				t.Errorf("daemon exit: %v", err)
			}
		})
	}
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

// make deb builds a package with the binary, the helper, the unit and the
// man pages; dpkg installs it into a scratch root, the installed helper
// mounts through an fstab line, and dpkg -P removes everything, the state
// directory included.
func TestDebPackage(t *testing.T) {
	require(t, "make", "go-md2man", "dpkg", "dpkg-deb", "mount", "umount")
	tmp := t.TempDir()
	build := filepath.Join(tmp, "build")
	runMake(t, "deb", "BUILD="+build)
	debs, _ := filepath.Glob(filepath.Join(build, "mnet_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	deb := debs[0]

	out, err := run(t, time.Minute, nil, "dpkg-deb", "-c", deb)
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, out)
	}
	var contents []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l) // mode owner size date time path [-> target]
		contents = append(contents, f[0][:1]+" "+f[1]+" "+strings.Join(f[5:], " "))
	}
	sort.Strings(contents)
	wantFiles := []string{
		"- root/root ./usr/lib/cni/mnet",
		"- root/root ./usr/lib/systemd/system/mnet.service",
		"- root/root ./usr/sbin/mnet",
		"- root/root ./usr/share/doc/mnet/examples/mnet-lab.conflist",
		"- root/root ./usr/share/man/man7/mnet.7.gz",
		"- root/root ./usr/share/man/man8/mnet-cni.8.gz",
		"- root/root ./usr/share/man/man8/mnet.8.gz",
		"l root/root ./usr/sbin/mount.mnet -> mnet",
	}
	var files []string
	for _, c := range contents {
		if !strings.HasPrefix(c, "d ") {
			files = append(files, c)
		}
	}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("package holds\n%s\nwant\n%s", strings.Join(files, "\n"), strings.Join(wantFiles, "\n"))
	}
	if !slices.Contains(contents, "d root/root ./var/lib/mnet/") {
		t.Errorf("package lacks /var/lib/mnet:\n%s", strings.Join(contents, "\n"))
	}
	out, _ = run(t, time.Minute, nil, "dpkg-deb", "-f", deb, "Package", "Depends", "Conffiles")
	if !strings.HasPrefix(out, "Package: mnet\n") || strings.Contains(out, "Depends") {
		t.Errorf("control: %s", out)
	}
	if out, _ := run(t, time.Minute, nil, "dpkg-deb", "--ctrl-tarfile", deb); strings.Contains(out, "conffiles") {
		t.Error("the package has conffiles")
	}

	// Install into a scratch root. Maintainer scripts run without
	// chroot (there is no shell in the scratch root) and honour
	// DPKG_ROOT, as Debian's scripts must.
	root := filepath.Join(tmp, "root")
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644)
	dpkg := func(args ...string) {
		t.Helper()
		out, err := run(t, 2*time.Minute, nil, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless"}, args...)...)
		if err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dpkg("-i", deb)
	for _, p := range []string{"usr/sbin/mnet", "usr/sbin/mount.mnet", "usr/lib/systemd/system/mnet.service", "usr/share/man/man7/mnet.7.gz",
		"usr/share/man/man8/mnet.8.gz", "usr/lib/cni/mnet", "usr/share/man/man8/mnet-cni.8.gz", "var/lib/mnet"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("after dpkg -i: %v", err)
		}
	}

	// The installed helper mounts through fstab, its state in the
	// package's state directory.
	linkHelper(t, filepath.Join(root, "usr/sbin/mount.mnet"))
	dir := mountDir(t)
	mp := filepath.Join(dir, "mnt")
	cleanupMount(t, mp, "")
	fstab := filepath.Join(dir, "fstab")
	os.WriteFile(fstab, fmt.Appendf(nil, "mnet %s mnet defaults,nofail,state=%s 0 0\n", mp, filepath.Join(root, "var/lib/mnet/state.json")), 0o644)
	if out, err := run(t, 30*time.Second, nil, "mount", "-T", fstab, mp); err != nil {
		t.Fatalf("mount -T with the package's helper: %v\n%s", err, out)
	}
	pids := daemonsAt(mp)
	if !isMounted(mp) || len(pids) != 1 {
		t.Fatalf("the package's helper: mounted %v, daemons %v", isMounted(mp), pids)
	}
	// A persistent network leaves state behind for purge to remove.
	sh(t, fmt.Sprintf("mkdir %[1]s/ipn/deb && echo 'persist on' > %[1]s/ipn/deb/ctl", mp))
	if out, err := run(t, 30*time.Second, nil, "umount", mp); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	waitDaemonExit(t, pids[0])
	if _, err := os.Stat(filepath.Join(root, "var/lib/mnet/state.json")); err != nil {
		t.Errorf("no state written by the packaged daemon: %v", err)
	}

	dpkg("-P", "mnet")
	if left := filesUnder(t, root, "var/lib/dpkg"); !slices.Equal(left, []string{"var/", "var/lib/"}) {
		t.Errorf("after dpkg -P the scratch root holds\n%s", strings.Join(left, "\n"))
	}
}

// The man pages render without a warning, and say what they are.
func TestManPages(t *testing.T) {
	require(t, "make", "go-md2man", "man")
	build := filepath.Join(t.TempDir(), "build")
	runMake(t, "man", "BUILD="+build)
	footer := regexp.MustCompile(`mnet 0\.0~git(0|\d{8}\.[0-9a-f]+) \d{4}-\d{2}-\d{2} MNET(-CNI)?\([78]\)$`)
	for _, tc := range []struct{ page, want string }{
		{"mnet.7", "mnet - networking as files: the filesystem interface"},
		{"mnet.8", "mnet, mount.mnet - the mnet filesystem daemon and its mount helper"},
		{"mnet-cni.8", "mnet-cni - CNI plugin that puts containers on mnet networks"},
	} {
		for _, width := range []string{"80", "60"} {
			cmd := exec.Command("man", "--warnings", "-l", filepath.Join(build, tc.page))
			cmd.Env = append(os.Environ(), "MANWIDTH="+width, "MANPAGER=cat", "PAGER=cat")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 {
				t.Errorf("man --warnings -l %s (width %s): %v\n%s", tc.page, width, err, stderr.String())
			}
			// groff sets hyphens as U+2010 in UTF-8 and hyphenates
			// words at line ends.
			text := regexp.MustCompile("\u2010\n\\s*").ReplaceAllString(string(out), "")
			text = strings.Join(strings.Fields(strings.NewReplacer("\u2010", "-", "\u2212", "-").Replace(text)), " ")
			if !strings.Contains(text, tc.want) {
				t.Errorf("man -l %s does not show %q", tc.page, tc.want)
			}
			// The footer names the build (make's VERSION) and its date
			// (cut short at narrow widths).
			if width == "80" && !footer.MatchString(text) {
				t.Errorf("man -l %s: no version and date in the footer:\n%s", tc.page, text[max(0, len(text)-200):])
			}
		}
	}
}

// `mnet help` and the mount's README say where the manual is; --version
// names the build.
func TestManualIsNamed(t *testing.T) {
	d := startMnet(t)
	if readme := readFile(t, d.path("README")); !strings.Contains(readme, "man 7 mnet") {
		t.Errorf("the mount's README does not name the man pages:\n%s", readme)
	}
	out, err := exec.Command(mnetBin, "help").Output()
	if err != nil || !strings.Contains(string(out), "man 7 mnet") || !strings.Contains(string(out), "man 8 mnet") {
		t.Errorf("mnet help: %v\n%s", err, out)
	}
	out, err = exec.Command(mnetBin, "--version").Output()
	if err != nil || !regexp.MustCompile(`^mnet \S+ .*go1\.\d+`).Match(out) {
		t.Errorf("mnet --version: %v %q", err, out)
	}
}

// systemd-analyze verify accepts the installed unit, its ExecStart and
// ExecStop binary and its Documentation pages.
func TestSystemdUnitVerifies(t *testing.T) {
	require(t, "make", "go-md2man", "systemd-analyze")
	tmp := t.TempDir()
	// Installed for real under tmp, so that the paths the unit names
	// exist and verify can check them.
	prefix := filepath.Join(tmp, "usr")
	runMake(t, "install", "PREFIX="+prefix, "HELPERDIR="+filepath.Join(tmp, "sbin"), "CNIDIR="+filepath.Join(tmp, "cni"),
		"STATEDIR="+filepath.Join(tmp, "var/lib/mnet"), "BUILD="+filepath.Join(tmp, "build"))
	unit := filepath.Join(prefix, "lib/systemd/system/mnet.service")
	cmd := exec.Command("systemd-analyze", "verify", unit)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(prefix, "share/man"), "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	var about []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "mnet") {
			about = append(about, l)
		}
	}
	if err != nil || len(about) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// The unit's capability bounding set and NoNewPrivileges keep what the
// daemon needs: a daemon run with exactly them creates a TAP, grabs an
// interface and binds a privileged port for root. (DevicePolicy and
// RestrictAddressFamilies need systemd itself; systemd-analyze checks their
// syntax.)
func TestUnitHardeningKeepsInterfaces(t *testing.T) {
	e := newIfEnv(t, "setpriv")
	unit := readFile(t, filepath.Join(repoRoot, "dist/mnet.service.in"))
	caps := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.*)$`).FindStringSubmatch(unit)
	if caps == nil || !strings.Contains(unit, "\nNoNewPrivileges=yes\n") {
		t.Fatalf("the unit has no CapabilityBoundingSet or NoNewPrivileges:\n%s", unit)
	}
	bounding := "-all"
	for _, c := range strings.Fields(caps[1]) {
		bounding += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	dir := mountDir(t)
	mp := filepath.Join(dir, "mnt")
	log := &syncBuffer{}
	cmd := exec.Command("setpriv", "--bounding-set="+bounding, "--no-new-privs", "--inh-caps=-all",
		mnetBin, "mount", "-v", "--state", "", mp)
	cmd.Env = append(os.Environ(), helperEnv...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mnet log:\n%s", log.String())
		}
	})
	waitFor(t, "the mount", func() bool {
		_, err := os.Stat(filepath.Join(mp, "families"))
		return err == nil && isMounted(mp)
	})
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)); !strings.Contains(string(b), "NoNewPrivs:\t1") {
		t.Errorf("the daemon does not run with no_new_privs:\n%s", b)
	}

	net := filepath.Join(mp, "ipn", "hard")
	if err := os.Mkdir(net, 0o777); err != nil {
		t.Fatal(err)
	}
	tap := e.link(e.name("t"))
	veth, peer := e.link(e.name("v")), e.name("p")
	sh(t, fmt.Sprintf("ip link add %s type veth peer name %s", veth, peer))
	mustCtl(t, net, "tap "+tap+"\ngrab "+veth+"\n")
	sh(t, "ip link show "+tap)
	if rows := portRows(t, net); len(rows) != 2 {
		t.Errorf("ports under the unit's capabilities: %v", rows)
	}
	mustCtl(t, net, "detach "+tap+"\ndetach "+veth+"\n")

	// A privileged port (root holds CAP_NET_BIND_SERVICE): the accepting
	// open with O_NONBLOCK finds no connection (EAGAIN), but it bound.
	port := freePrivilegedPort(t)
	fd, err := openFile(filepath.Join(mp, "inet/tcp/0.0.0.0", strconv.Itoa(port)), unix.O_RDWR|unix.O_NONBLOCK, 0)
	if err == nil {
		unix.Close(fd)
	} else if !errors.Is(err, unix.EAGAIN) {
		t.Errorf("binding port %d under the unit's capabilities: %v", port, err)
	}
}

// freePrivilegedPort finds a TCP port below 1024 nobody listens on.
func freePrivilegedPort(t *testing.T) int {
	t.Helper()
	for p := 1000; p > 600; p-- {
		ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatal("no free port below 1024")
	return 0
}
