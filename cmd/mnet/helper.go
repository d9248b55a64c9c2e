// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mnet-project/mnet/cmd/mnet/internal/detach"
	"github.com/mnet-project/mnet/cmd/mnet/internal/logdest"
	"github.com/mnet-project/mnet/cmd/mnet/internal/mountopt"
)

// helperName is the name mount(8) runs for `mount -t mnet` and fstab
// entries of type mnet: /sbin/mount.mnet, a link to this binary.
const helperName = "mount.mnet"

// Exit statuses of a mount helper, as mount(8) documents them.
const (
	exitUsage   = 1  // incorrect invocation or options
	exitFailure = 32 // mount failure
)

// helperMain is mount.mnet: it starts `mnet mount` detached and returns
// once the mount is live, or with the daemon's first error.
func helperMain(args []string) int {
	req, err := mountopt.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", helperName, err)
		if errors.Is(err, mountopt.ErrUsage) {
			fmt.Fprintf(os.Stderr, "(see mnet(8))\n")
		}
		return exitUsage
	}
	daemonArgs := []string{"mount"}
	if req.LogPath == "" {
		daemonArgs = append(daemonArgs, "--log", logdest.Syslog)
		// A bare container has no system log: say so while somebody
		// reads this, not in a log that nobody will get.
		if err := logdest.Listening(logdest.DevLog); err != nil {
			fmt.Fprintf(os.Stderr, "%s: warning: nothing listens on %s (%v): the daemon's log will be lost; "+
				"give it a file with -o log=PATH (see mnet(8))\n", helperName, logdest.DevLog, errors.Unwrap(err))
		}
	}
	daemonArgs = append(append(daemonArgs, req.Flags...), req.Dir)
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", helperName, err)
		return exitFailure
	}
	if req.Verbose {
		if len(req.Ignored) > 0 {
			fmt.Printf("%s: ignoring options %s\n", helperName, strings.Join(req.Ignored, ","))
		}
		fmt.Printf("%s: starting %s %s\n", helperName, exe, strings.Join(quoted(daemonArgs), " "))
	}
	if req.Fake {
		if req.Verbose {
			fmt.Printf("%s: -f: not mounting\n", helperName)
		}
		return 0
	}
	pid, err := detach.Start(exe, daemonArgs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", helperName, err)
		return exitFailure
	}
	if req.Verbose {
		fmt.Printf("%s: mnet serves %s (pid %d)\n", helperName, req.Dir, pid)
	}
	return 0
}

// quoted shows empty arguments (--state ”) as a shell would need them.
func quoted(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}
