// SPDX-License-Identifier: BSD-3-Clause

// Package detach starts a daemon in the background the way a mount helper
// must: in a session of its own, with no terminal and standard input and
// output on /dev/null, and returns only once the daemon reports that it
// serves, or with the first error it reports.
//
// The daemon's end is a pipe inherited as a file descriptor named by an
// environment variable: the daemon writes "ok" once it serves, or its error,
// and closes it.
package detach

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// readyEnv names the daemon's end of the readiness pipe.
const readyEnv = "MNET_READY_FD"

const readyWord = "ok"

// Start runs exe with args as a detached daemon in directory "/" and waits
// for its report. It returns the daemon's pid once the daemon is ready;
// otherwise the daemon's error (or how it ended) and no daemon is left.
func Start(exe string, args []string) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return 0, err
	}
	defer devNull.Close()

	closeInheritedOnExec()
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/" // hold no directory of the caller busy
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devNull, devNull, devNull
	cmd.ExtraFiles = []*os.File{w} // descriptor 3
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close() // the daemon holds the only write end now
	if err != nil {
		return 0, err
	}
	// The report is short; a daemon that writes more than that is not
	// believed.
	msg, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	msg = bytes.TrimSpace(msg)
	if string(msg) == readyWord {
		pid := cmd.Process.Pid
		cmd.Process.Release() // it outlives us
		return pid, nil
	}
	// The daemon failed or died: it is exiting, so waiting is short.
	// Kill it should it linger (it reported an error, so it serves nothing).
	cmd.Process.Signal(syscall.SIGTERM)
	werr := cmd.Wait()
	if len(msg) > 0 {
		return 0, errors.New(string(msg))
	}
	return 0, fmt.Errorf("the daemon ended before mounting: %v", werr)
}

// closeInheritedOnExec keeps descriptors this process inherited (mount(8)'s,
// its caller's) from the daemon: one holding the write end of a shell's
// command substitution would make it wait for as long as mnet runs. Go
// opens its own descriptors close-on-exec already.
func closeInheritedOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// Reporter is the daemon's end of the readiness pipe; nil when the daemon
// was not started by Start. Its methods do nothing on nil.
type Reporter struct{ f *os.File }

// FromEnv returns the daemon's end of the readiness pipe and removes the
// variable, so that no program the daemon starts sees it.
func FromEnv() *Reporter {
	v, ok := os.LookupEnv(readyEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(readyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return &Reporter{f: os.NewFile(uintptr(fd), "readiness pipe")}
}

// Ready tells the waiting helper the daemon serves.
func (r *Reporter) Ready() { r.report(readyWord) }

// Fail hands the helper the error that ends the daemon.
func (r *Reporter) Fail(err error) { r.report(err.Error()) }

func (r *Reporter) report(msg string) {
	if r == nil || r.f == nil {
		return
	}
	r.f.WriteString(msg + "\n")
	r.f.Close()
	r.f = nil
}
