// SPDX-License-Identifier: BSD-3-Clause

package detach

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary plays the daemon when MNET_DETACH_TEST says how.
func TestMain(m *testing.M) {
	switch os.Getenv("MNET_DETACH_TEST") {
	case "":
		os.Exit(m.Run())
	case "ready":
		r := FromEnv()
		// Where it runs, written before the report, so the test can
		// read it as soon as Start returns.
		sid, _ := unix.Getsid(0)
		cwd, _ := os.Getwd()
		fd0, _ := os.Readlink("/proc/self/fd/0")
		fd1, _ := os.Readlink("/proc/self/fd/1")
		fd2, _ := os.Readlink("/proc/self/fd/2")
		_, inherited := os.LookupEnv(readyEnv)
		if _, err := os.Stat("/proc/self/fd/9"); err == nil {
			inherited = true // the caller's descriptor leaked in
		}
		os.WriteFile(os.Getenv("MNET_DETACH_OUT"), fmt.Appendf(nil, "%d %d %s %s %s %s %v",
			os.Getpid(), sid, cwd, fd0, fd1, fd2, inherited), 0o644)
		r.Ready()
		time.Sleep(100 * time.Millisecond)
		os.Exit(0)
	case "fail":
		FromEnv().Fail(errors.New("/mnt/x is already mounted"))
		os.Exit(1)
	case "die":
		os.Exit(3)
	case "hang-after-fail":
		FromEnv().Fail(errors.New("bad state file"))
		time.Sleep(time.Minute)
	}
}

func start(t *testing.T, how string) (int, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("MNET_DETACH_TEST", how)
	return Start(exe, nil)
}

// waitExit reaps pid (the test is its parent) and returns its status.
func waitExit(t *testing.T, pid int) syscall.WaitStatus {
	t.Helper()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	return ws
}

func TestStartReady(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	t.Setenv("MNET_DETACH_OUT", out)
	// A descriptor the caller inherited without close-on-exec stays out
	// of the daemon.
	if err := syscall.Dup2(1, 9); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(9)
	pid, err := start(t, "ready")
	if err != nil {
		t.Fatal(err)
	}
	defer waitExit(t, pid)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var gotPid, sid int
	var cwd, fd0, fd1, fd2, inherited string
	fmt.Sscan(string(b), &gotPid, &sid, &cwd, &fd0, &fd1, &fd2, &inherited)
	if gotPid != pid {
		t.Errorf("Start returned pid %d, the daemon is %d", pid, gotPid)
	}
	if sid != pid {
		t.Errorf("daemon session %d, want its own (%d)", sid, pid)
	}
	if mySid, _ := unix.Getsid(0); sid == mySid {
		t.Error("daemon in the caller's session")
	}
	if cwd != "/" {
		t.Errorf("daemon runs in %s, want /", cwd)
	}
	for i, fd := range []string{fd0, fd1, fd2} {
		if fd != "/dev/null" {
			t.Errorf("daemon's descriptor %d is %s, want /dev/null", i, fd)
		}
	}
	if inherited != "false" {
		t.Errorf("%s still set in the daemon after FromEnv, or descriptor 9 inherited", readyEnv)
	}
}

func TestStartFailure(t *testing.T) {
	_, err := start(t, "fail")
	if err == nil || err.Error() != "/mnt/x is already mounted" {
		t.Errorf("Start: %v, want the daemon's error", err)
	}
}

func TestStartDaemonDies(t *testing.T) {
	_, err := start(t, "die")
	if err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Start: %v, want the daemon's exit status", err)
	}
}

// A daemon that reported an error but does not exit is not left behind.
func TestStartFailureLeavesNoDaemon(t *testing.T) {
	begin := time.Now()
	_, err := start(t, "hang-after-fail")
	if err == nil || err.Error() != "bad state file" {
		t.Errorf("Start: %v", err)
	}
	if time.Since(begin) > 30*time.Second {
		t.Error("Start waited for the daemon's own end")
	}
}

func TestReporterNil(t *testing.T) {
	t.Setenv(readyEnv, "")
	os.Unsetenv(readyEnv)
	r := FromEnv()
	if r != nil {
		t.Fatal("FromEnv without the variable")
	}
	r.Ready()
	r.Fail(errors.New("x"))
}
