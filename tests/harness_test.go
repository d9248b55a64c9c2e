// SPDX-License-Identifier: BSD-3-Clause

// Package tests drives a real mnet mount the way users do: the built binary
// as a separate daemon process, shell commands, other uids, tcpdump.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/internal/testenv"
	"golang.org/x/sys/unix"
)

var mnetBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mnet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	mnetBin = filepath.Join(dir, "mnet")
	// The daemon is built with the race detector where cgo allows, so the
	// end-to-end tests also look for data races in the FUSE layer; the log
	// check in startMnet fails a test that provoked one.
	args := []string{"build", "-o", mnetBin}
	if out, _ := exec.Command("go", "env", "CGO_ENABLED").Output(); strings.TrimSpace(string(out)) == "1" {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "../cmd/mnet")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mnet: %v\n%s", err, out)
		os.Exit(1)
	}
	if p := os.Getenv("MNET_TEST_PROGRESS"); p != "" {
		progress, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// progress, if MNET_TEST_PROGRESS names a file, gets a line for each test
// as it ends: go test shows this package's output only when all of it is
// done, minutes later. .ci/run shows the file as it grows.
var (
	progress   *os.File
	progressed sync.Map // the *testing.T already reported
)

// reportProgress writes t's line to progress when t ends. require calls
// it, so every test here that needs the machine has its line.
func reportProgress(t *testing.T) {
	if progress == nil {
		return
	}
	if _, dup := progressed.LoadOrStore(t, true); dup {
		return
	}
	start := time.Now()
	t.Cleanup(func() {
		result := "PASS"
		if t.Failed() {
			result = "FAIL"
		} else if t.Skipped() {
			result = "SKIP"
		}
		fmt.Fprintf(progress, "--- %s: %s (%.2fs)\n", result, t.Name(), time.Since(start).Seconds())
	})
}

// inCI is true in CI, where every prerequisite must be present: a missing
// one fails the test instead of skipping it (testenv.SkipOrFail does both).
//
//lint:ignore U1000 the name for a test that checks a prerequisite by hand
var inCI = testenv.InCI()

// require stops the test when the machine cannot run it: a skip with a
// one-line reason on a developer's machine, a failure in CI. Every test
// here needs root and /dev/fuse; needs are programs on PATH, or devices
// and other absolute paths (testenv.Require).
func require(t *testing.T, needs ...string) {
	t.Helper()
	reportProgress(t)
	testenv.Require(t, append([]string{"root", "/dev/fuse"}, needs...)...)
}

// syncBuffer collects the daemon's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is one running `mnet mount`.
type daemon struct {
	t     *testing.T
	mp    string
	state string
	cmd   *exec.Cmd
	log   *syncBuffer
	done  chan struct{}
	err   error // exit status, once done is closed
	// expectPanics: the test provokes panics on purpose (test hooks);
	// otherwise a panic the daemon contained fails the test.
	expectPanics bool
}

// mountDir makes a directory every uid can reach, removed at cleanup.
func mountDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mnet-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mp := filepath.Join(dir, "mnt")
		if isMounted(mp) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
		os.RemoveAll(dir)
	})
	return dir
}

// startMnet mounts mnet on a fresh directory and stops it at cleanup.
func startMnet(t *testing.T, args ...string) *daemon {
	t.Helper()
	require(t)
	dir := mountDir(t)
	return startMnetAt(t, filepath.Join(dir, "mnt"), filepath.Join(dir, "state.json"), args...)
}

func startMnetAt(t *testing.T, mp, state string, args ...string) *daemon {
	t.Helper()
	return startMnetIn(t, "", mp, state, args...)
}

// startMnetIn is startMnetAt with the daemon in the named network
// namespace netns ("" is the test's own), entered with nsenter so that
// the mount stays in the test's mount namespace.
func startMnetIn(t *testing.T, netns, mp, state string, args ...string) *daemon {
	t.Helper()
	statSourcesOnce.Do(statSources)
	d := &daemon{t: t, mp: mp, state: state, log: &syncBuffer{}, done: make(chan struct{})}
	// VDE switch directories next to the state file, not in the shared
	// /run/mnet/vde where parallel daemons' networks would collide.
	full := append([]string{"mount", "-v", "--state", state, "--vde-dir", vdeDir(state)}, args...)
	full = append(full, mp)
	if netns == "" {
		d.cmd = exec.Command(mnetBin, full...)
	} else {
		d.cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + netns, mnetBin}, full...)...)
	}
	// A race-enabled daemon would otherwise sleep a second on exit.
	d.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	d.cmd.Stdout = d.log
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if strings.Contains(d.log.String(), "DATA RACE") {
			t.Error("the daemon reported a data race")
		}
		// go-fuse recovers a panic in a handler, answers EIO and logs
		// it at debug level only: still a bug.
		if strings.Contains(d.log.String(), "panic in FS handler") {
			t.Error("the daemon panicked in a FUSE handler")
		}
		// A panic the daemon contained (logged with the daemon's
		// count of them) is a bug too, unless the test made it.
		if strings.Contains(d.log.String(), " panics=") && !d.expectPanics {
			t.Error("the daemon contained a panic")
		}
		if t.Failed() {
			t.Logf("mnet log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(mp, "families")); err == nil && isMounted(mp) {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("mnet exited before mounting: %v\n%s", d.err, d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mnet did not mount within 10s\n%s", d.log.String())
		}
	}
}

// vdeDir is where a daemon with state file state serves its networks as
// VDE switches.
func vdeDir(state string) string { return filepath.Join(filepath.Dir(state), "vde") }

// vdePath is the VDE switch directory of network name.
func (d *daemon) vdePath(name string) string { return filepath.Join(vdeDir(d.state), name) }

// stop sends SIGTERM and waits; it returns the exit error.
func (d *daemon) stop() error {
	select {
	case <-d.done:
		return d.err
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.t.Errorf("mnet did not stop within 10s of SIGTERM")
		// SIGQUIT makes the Go runtime print every goroutine to the
		// log, which the failing test then shows.
		d.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-d.done:
		case <-time.After(2 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	return d.err
}

func (d *daemon) path(elem ...string) string {
	return filepath.Join(append([]string{d.mp}, elem...)...)
}

// isMounted reports whether anything is mounted at mp.
func isMounted(mp string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && f[4] == mp {
			return true
		}
	}
	return false
}

// cred is who runs a shell command; nil means root.
type cred struct {
	uid, gid int
	groups   []int
}

// sh runs a bash script as root (or as c), with a timeout, and returns its
// combined output and error.
func shAs(t *testing.T, c *cred, timeout time.Duration, script string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var cmd *exec.Cmd
	if c == nil {
		cmd = exec.CommandContext(ctx, "bash", "-c", script)
	} else {
		require(t, "setpriv")
		groups := "--clear-groups"
		if len(c.groups) > 0 {
			var gs []string
			for _, g := range c.groups {
				gs = append(gs, fmt.Sprint(g))
			}
			groups = "--groups=" + strings.Join(gs, ",")
		}
		cmd = exec.CommandContext(ctx, "setpriv", fmt.Sprintf("--reuid=%d", c.uid),
			fmt.Sprintf("--regid=%d", c.gid), groups, "bash", "-c", script)
	}
	// On timeout kill the whole process group: a blocked child (a cat)
	// would otherwise keep the output pipe, and this call, open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("timed out after %v: %w", timeout, ctx.Err())
	}
	return string(out), err
}

// sh runs a script as root and fails the test if it fails.
func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := shAs(t, nil, 20*time.Second, script)
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return out
}

// mkNet creates ipn/NAME as root and returns its path.
func (d *daemon) mkNet(t *testing.T, name string) string {
	t.Helper()
	p := d.path("ipn", name)
	if err := os.Mkdir(p, 0o777); err != nil {
		t.Fatal(err)
	}
	return p
}

// ctl writes commands to a network's ctl and returns the write's error.
func ctl(net string, cmds string) error {
	fd, err := openFile(filepath.Join(net, "ctl"), unix.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(cmds))
	return err
}

func mustCtl(t *testing.T, net, cmds string) {
	t.Helper()
	if err := ctl(net, cmds); err != nil {
		t.Fatalf("ctl %q: %v", cmds, err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// keyValue returns the value of key in a key-value file such as stats.
func keyValue(t *testing.T, path, key string) string {
	t.Helper()
	for line := range strings.SplitSeq(readFile(t, path), "\n") {
		k, v, _ := strings.Cut(line, " ")
		if k == key {
			return v
		}
	}
	t.Fatalf("%s has no %q line:\n%s", path, key, readFile(t, path))
	return ""
}

// portRows returns the ports table without its header, one field slice per port.
func portRows(t *testing.T, net string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(net, "ports"))), "\n")
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testdata returns the absolute path of testdata/NAME, which stays right
// for programs started in another directory.
func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// openFile is open(2) as os.OpenFile makes it: tried again on EINTR. The
// runtime's preemption signal (SIGURG) reaches a test's threads; one that
// lands while an open waits for the daemon makes the kernel interrupt the
// FUSE request, and the daemon answers an interrupted open with EINTR, as
// it must for a signal a program handles.
func openFile(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openPort opens data with flags; closed at cleanup.
func openPort(t *testing.T, net string, flags int) int {
	t.Helper()
	fd, err := openFile(filepath.Join(net, "data"), flags, 0)
	if err != nil {
		t.Fatalf("open %s/data: %v", net, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// readNB reads one packet without blocking.
func readNB(fd int) ([]byte, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	defer unix.SetNonblock(fd, false)
	buf := make([]byte, 70000)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// readTimeout reads one packet, giving up (EAGAIN) after d.
func readTimeout(fd int, d time.Duration) ([]byte, error) {
	deadline := time.Now().Add(d)
	for {
		p, err := readNB(fd)
		if !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			return p, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var statSourcesOnce sync.Once

// statSources stats every Go source and module file of the daemon. These
// tests build it in a subprocess, which go test's cache cannot see; the
// files a test stats while it runs (not in TestMain) are part of its
// cache key, so a change to the daemon runs the tests that start one
// again instead of reporting a cached pass.
func statSources() {
	filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case d.IsDir() && path != ".." && (path == filepath.Join("..", "tests") || strings.HasPrefix(d.Name(), ".")):
			return filepath.SkipDir // this package (go test sees it), .git
		case !d.IsDir() && (strings.HasSuffix(path, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum"):
			os.Stat(path)
		}
		return nil
	})
}
