// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

// BenchmarkPortQueue is a port's receive queue alone: bursts of 32
// charged packets put, then read without blocking.
func BenchmarkPortQueue(b *testing.B) {
	p := newPort(&Network{}, 1, nil, 0, 0, "bench", true, true)
	payer := netcore.NewQuota(netcore.Limits{}, slog.Default()).Payer(0, false)
	pkt := make([]byte, 64)
	buf := make([]byte, 2048)
	ctx := context.Background()
	for b.Loop() {
		for range 32 {
			ch, err := newCharge(payer, len(pkt), 1)
			if err != nil {
				b.Fatal(err)
			}
			if ok, _ := p.enqueue(pkt, ch, 256); !ok {
				b.Fatal("dropped")
			}
		}
		for range 32 {
			if _, err := p.Recv(ctx, buf, true); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPortQueuePingPong is one blocked reader woken per packet.
func BenchmarkPortQueuePingPong(b *testing.B) {
	p := newPort(&Network{}, 1, nil, 0, 0, "bench", true, true)
	payer := netcore.NewQuota(netcore.Limits{}, slog.Default()).Payer(0, false)
	pkt := make([]byte, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if n, err := p.Recv(context.Background(), buf, false); n == 0 || err != nil {
				return
			}
		}
	}()
	for b.Loop() {
		ch, _ := newCharge(payer, len(pkt), 1)
		for ok, _ := p.enqueue(pkt, ch, 256); !ok; ok, _ = p.enqueue(pkt, ch, 256) {
		}
	}
	p.shut()
	<-done
}
