// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// watchMount reports, by closing the returned channel, when no mount of
// the filesystem with device number dev is left in this process's mount
// namespace: someone unmounted it (mnet umount, umount, umount -l). The
// kernel ends the FUSE connection only when the last copy of the mount
// goes, and a copy in another mount namespace (unshare -m, ip netns exec)
// may never go, so the daemon stops on this, as on SIGTERM. stop ends the
// watch.
func watchMount(dev uint64, log *slog.Logger) (gone <-chan struct{}, stop func(), err error) {
	// The kernel marks /proc/self/mountinfo with POLLPRI when the mount
	// table changed since the file was opened or last polled; not for
	// every unmount of a mount with copies elsewhere, so the table is
	// also read every watchEvery.
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		f.Close()
		return nil, nil, err
	}
	ch := make(chan struct{})
	done := make(chan struct{})
	devField := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	go func() {
		defer close(done)
		defer f.Close()
		defer unix.Close(p[0])
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLPRI}, {Fd: int32(p[0]), Events: unix.POLLIN}}
		for {
			mounted, err := hasMountOf(devField)
			if err != nil {
				log.Warn("watching the mount", "err", err)
				return
			}
			if !mounted {
				close(ch)
				return
			}
			for {
				_, err := unix.Poll(fds, int(watchEvery/time.Millisecond))
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					log.Warn("watching the mount", "err", err)
					return
				}
				break
			}
			if fds[1].Revents != 0 {
				return
			}
		}
	}()
	stop = func() {
		unix.Close(p[1])
		<-done
	}
	return ch, stop, nil
}

// watchEvery is how often watchMount reads the mount table without
// being told of a change.
const watchEvery = 500 * time.Millisecond

// hasMountOf reports whether a mount of device devField (MAJOR:MINOR)
// is in this process's mount namespace.
func hasMountOf(devField string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == devField {
			return true, nil
		}
	}
	return false, nil
}
