// SPDX-License-Identifier: BSD-3-Clause

package fs

import (
	"log"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mnet-project/mnet/netcore"
)

// Config says how to mount.
type Config struct {
	Mountpoint string
	Log        *slog.Logger
	// Debug logs every FUSE request.
	Debug bool
}

// maxIO is the largest READ and WRITE request: above the largest packet
// (mtu 65535), so one write(2) of a packet is one FUSE WRITE and one read(2)
// one FUSE READ.
//
// It also makes ctl writes atomic (netcore.MaxCtlWrite). With direct I/O
// the kernel cuts a write(2) into WRITE requests of at most max_write
// bytes and max_pages pages each, sending the next only once the previous
// one succeeded (go-fuse does not ask for async direct I/O). go-fuse asks
// for max_pages = maxIO in pages, so a buffer that starts anywhere in a
// page fills at least maxIO less one page minus one byte before the page
// limit cuts it (firstWrite). That is above MaxCtlWrite: a write(2) of up
// to MaxCtlWrite bytes is one request, and the first request of a longer
// one is itself longer than MaxCtlWrite, so the ctl file refuses it with
// EFBIG and the write(2) fails having applied nothing.
const maxIO = 128 << 10

// firstWrite is the fewest bytes the first WRITE request of a long
// write(2) from one buffer carries: maxWrite, or maxPages pages less all
// but one byte of the first page when the buffer starts at its end.
func firstWrite(maxWrite, maxPages, pageSize int) int {
	return min(maxWrite, maxPages*pageSize-(pageSize-1))
}

// pagesFor is the max_pages go-fuse asks for with MaxWrite maxWrite.
func pagesFor(maxWrite, pageSize int) int { return (maxWrite-1)/pageSize + 1 }

// checkCtlAtomic warns when the kernel caps max_pages (the
// fs.fuse.max_pages_limit sysctl) so low that a long ctl write's first
// request could be short enough to apply alone.
func checkCtlAtomic(log *slog.Logger) {
	page := os.Getpagesize()
	pages := pagesFor(maxIO, page)
	if b, err := os.ReadFile("/proc/sys/fs/fuse/max_pages_limit"); err == nil {
		if limit, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && limit > 0 {
			pages = min(pages, limit)
		}
	}
	if firstWrite(maxIO, pages, page) <= netcore.MaxCtlWrite {
		log.Error("fs.fuse.max_pages_limit is too low for atomic ctl writes: a ctl write(2) longer "+
			"than the kernel's request may be applied in part", "max_pages", pages, "need", pagesFor(netcore.MaxCtlWrite+page, page))
	}
}

// Mount serves core's tree at cfg.Mountpoint until it is unmounted; call
// Wait on the returned server.
func Mount(core *netcore.Core, cfg Config) (*fuse.Server, error) {
	zero := time.Duration(0)
	root := &node{nc: core.Root(), log: cfg.Log}
	opts := &gofs.Options{
		// Attributes depend on the caller (derived modes) and on ctl
		// commands, entries come and go with mkdir and rmdir: cache nothing.
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		// Mode 0 means no rights, not "default mode".
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: 1},
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			DirectMount:       true,
			DirectMountStrict: true,
			FsName:            "mnet",
			Name:              "mnet",
			MaxWrite:          maxIO,
			DisableXAttrs:     true,
			// poll(2), select(2) and epoll ask the files (handle.Poll)
			// instead of seeing every file always ready. This daemon must
			// then never open files of its own mount: see EnablePoll.
			EnablePoll: true,
			Debug:      cfg.Debug,
			Logger:     log.New(slogWriter{cfg.Log}, "", 0),
			// Every handler of ours contains its panics (contain); this
			// is for go-fuse's own code around them.
			PanicHandler: func(r any) fuse.Status {
				netcore.Contained(cfg.Log, r, "panic serving a FUSE request; answered EIO")
				return fuse.EIO
			},
		},
	}
	checkCtlAtomic(cfg.Log)
	raw := rawFS{gofs.NewNodeFS(root, opts)}
	server, err := fuse.NewServer(raw, cfg.Mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return nil, err
	}
	return server, nil
}

// slogWriter lets go-fuse's log.Logger write into our structured log.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	w.l.Debug(msg, "from", "go-fuse")
	return len(p), nil
}
