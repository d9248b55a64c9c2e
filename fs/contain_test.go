// SPDX-License-Identifier: BSD-3-Clause

package fs

import (
	"context"
	"log/slog"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/mnet-project/mnet/netcore"
)

// panicky is a node and a handle whose every method panics.
type panicky struct{}

func (panicky) ID() uint64                      { return 7 }
func (panicky) Attr(*netcore.Cred) netcore.Attr { panic("attr") }
func (panicky) Read(context.Context, []byte, int64, bool) (int, error) {
	panic("read")
}
func (panicky) Write(context.Context, []byte, int64, bool) (int, error) {
	panic("write")
}
func (panicky) Close() { panic("close") }

// A panic below a FUSE handler is answered with EIO and counted; the
// handler returns (the caller is answered) instead of unwinding into
// go-fuse.
func TestHandlerPanicIsEIO(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	n := &node{nc: panicky{}, log: log}
	h := &handle{h: panicky{}, log: log}
	before := netcore.Panics()
	ctx := context.Background()
	for op, call := range map[string]func() syscall.Errno{
		"getattr": func() syscall.Errno { return n.Getattr(ctx, nil, &fuse.AttrOut{}) },
		"access":  func() syscall.Errno { return n.Access(ctx, 4) },
		"read":    func() syscall.Errno { _, e := h.Read(ctx, make([]byte, 8), 0); return e },
		"write":   func() syscall.Errno { _, e := h.Write(ctx, []byte("x"), 0); return e },
		"release": func() syscall.Errno { return h.Release(ctx) },
	} {
		if errno := call(); errno != syscall.EIO {
			t.Errorf("%s: errno %v, want EIO", op, errno)
		}
	}
	if got := netcore.Panics() - before; got != 5 {
		t.Errorf("%d panics counted, want 5", got)
	}
}
