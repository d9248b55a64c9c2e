package fs

import (
	"log"
	"log/slog"
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
const maxIO = 128 << 10

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
