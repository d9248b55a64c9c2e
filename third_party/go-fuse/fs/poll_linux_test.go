// Copyright 2026 the Go-FUSE Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package fs

import (
	"context"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// pollFile becomes readable when ready is called.
type pollFile struct {
	mu     sync.Mutex
	isSet  bool
	waker  PollWaker
	events uint32
}

var _ = (FilePoller)((*pollFile)(nil))

func (f *pollFile) Poll(ctx context.Context, events uint32, waker PollWaker) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = events
	if waker.Valid() {
		f.waker = waker
	}
	if f.isSet {
		return unix.POLLIN, 0
	}
	return 0, 0
}

func (f *pollFile) set() {
	f.mu.Lock()
	f.isSet = true
	w := f.waker
	f.waker = PollWaker{}
	f.mu.Unlock()
	w.Wake()
}

type pollNode struct {
	Inode
	file *pollFile
}

func (n *pollNode) Open(ctx context.Context, flags uint32) (FileHandle, uint32, syscall.Errno) {
	return n.file, fuse.FOPEN_DIRECT_IO, 0
}

func mountPollFile(t *testing.T, enable bool) (string, *pollFile) {
	f := &pollFile{}
	root := &Inode{}
	opts := &Options{
		OnAdd: func(ctx context.Context) {
			ch := root.NewPersistentInode(ctx, &pollNode{file: f}, StableAttr{})
			root.AddChild("file", ch, false)
		},
	}
	opts.EnablePoll = enable
	opts.DirectMount = true // no fusermount needed when root
	dir, _ := testMount(t, root, opts)
	return filepath.Join(dir, "file"), f
}

func TestPollWake(t *testing.T) {
	name, f := mountPollFile(t, true)
	// A raw descriptor: os.File would register it with the runtime's
	// epoll of this process, which serves the mount.
	fd, err := syscall.Open(name, syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)

	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); n != 0 || err != nil {
		t.Fatalf("poll before set: %d %v revents 0x%x, want nothing ready", n, err, fds[0].Revents)
	}
	f.mu.Lock()
	events := f.events
	f.mu.Unlock()
	if events&unix.POLLIN == 0 {
		t.Errorf("events 0x%x, want POLLIN", events)
	}

	time.AfterFunc(50*time.Millisecond, f.set)
	start := time.Now()
	n, err := unix.Poll(fds, 5000)
	if n != 1 || err != nil || fds[0].Revents != unix.POLLIN {
		t.Fatalf("poll: %d %v revents 0x%x, want POLLIN", n, err, fds[0].Revents)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("woken after %v", d)
	}
}

func TestPollDisabled(t *testing.T) {
	name, _ := mountPollFile(t, false)
	fd, err := syscall.Open(name, syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); n != 1 || err != nil {
		t.Fatalf("poll: %d %v, want always ready without EnablePoll", n, err)
	}
}
