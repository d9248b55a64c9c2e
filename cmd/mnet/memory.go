// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/mnet-project/mnet/netcore"
)

// Memory goes back to the system once queues drain: the Go runtime keeps
// freed heap for reuse and an idle daemon collects rarely, so after a burst
// its RSS would stay near the peak. When the bytes in queues have fallen
// well below the last high mark, the heap is collected and returned to the
// system, at most once per releaseEvery.
const (
	memoryCheckEvery = time.Second
	releaseEvery     = 5 * time.Second
	// releaseAfter is how much the queues must have shrunk since their
	// high mark for a release to be worth its cost (a full collection).
	releaseAfter = 16 << 20
)

// releaseMemory watches q's queued bytes until stop is called.
func releaseMemory(q *netcore.Quota, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(memoryCheckEvery)
		defer tick.Stop()
		var high int64
		var last time.Time
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			used := q.Used(netcore.Queued)
			high = max(high, used)
			if high-used < releaseAfter || used > high/2 || time.Since(last) < releaseEvery {
				continue
			}
			debug.FreeOSMemory()
			log.Debug("memory returned to the system after queues drained", "queued-high", high, "queued", used)
			high, last = used, time.Now()
		}
	}()
	return func() { close(done) }
}
