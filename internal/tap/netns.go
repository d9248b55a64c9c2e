// SPDX-License-Identifier: BSD-3-Clause

package tap

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// NetnsID tells which network namespace the TAP is in now (the user may
// have moved it with `ip link set NAME netns NS`): the device and inode
// of its nsfs file.
func (t *Tap) NetnsID() (dev, ino uint64, err error) {
	var nsfd int
	err = t.f.ioctl(func(fd int) (err error) {
		nsfd, err = unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(nsfd)
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		return 0, 0, err
	}
	return st.Dev, st.Ino, nil
}

// OpenTapIn is OpenTap inside the network namespace at path netns ("" is
// the daemon's own): it takes over a TAP left there, or creates one
// there. The device works from any thread once opened.
func OpenTapIn(netns, name string, mtu int) (*Tap, error) {
	return OpenTapInQueues(netns, name, mtu, 1)
}

// OpenTapInQueues is OpenTapQueues inside the network namespace at path
// netns, as OpenTapIn.
func OpenTapInQueues(netns, name string, mtu, queues int) (*Tap, error) {
	if netns == "" {
		return OpenTapQueues(name, mtu, queues)
	}
	target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(target)
	type result struct {
		t   *Tap
		err error
	}
	done := make(chan result, 1)
	// A thread of its own, locked while it is in the other namespace; if
	// it cannot get back, it stays locked and dies with the goroutine.
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		t, err := OpenTapQueues(name, mtu, queues)
		if rerr := unix.Setns(self, unix.CLONE_NEWNET); rerr != nil {
			if t != nil {
				t.Close()
			}
			done <- result{nil, rerr}
			return
		}
		runtime.UnlockOSThread()
		done <- result{t, err}
	}()
	r := <-done
	return r.t, r.err
}
