// SPDX-License-Identifier: BSD-3-Clause

package fs

import (
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

// A ctl write(2) is atomic only if the kernel hands up to MaxCtlWrite
// bytes over in one WRITE and a longer write's first WRITE is longer than
// MaxCtlWrite, wherever its buffer starts in a page, on every page size.
func TestMaxIOKeepsCtlWritesWhole(t *testing.T) {
	for _, page := range []int{4 << 10, 16 << 10, 64 << 10} {
		if got := firstWrite(maxIO, pagesFor(maxIO, page), page); got <= netcore.MaxCtlWrite {
			t.Errorf("page size %d: a long write's first request may be %d bytes, not above %d",
				page, got, netcore.MaxCtlWrite)
		}
	}
	// The bound is tight: a request size of MaxCtlWrite would not do.
	if got := firstWrite(netcore.MaxCtlWrite, pagesFor(netcore.MaxCtlWrite, 4096), 4096); got > netcore.MaxCtlWrite {
		t.Errorf("firstWrite(MaxCtlWrite) = %d", got)
	}
}
