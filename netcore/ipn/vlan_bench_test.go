// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link/memlink"
)

// BenchmarkSwitchLinkToLink is one 64-byte frame from one link to another
// of a switch network that learned the destination: a TAP-to-TAP
// stream's path through the network, without the system calls. In
// vlans-elsewhere two other links have VLAN settings (an access port of
// VLAN 20, a trunk of 10 and 20) and the frame is still VLAN 1's, untagged:
// what a network pays for VLANs it does not use on that path.
func BenchmarkSwitchLinkToLink(b *testing.B) {
	for _, vlans := range []bool{false, true} {
		name := "untouched"
		if vlans {
			name = "vlans-elsewhere"
		}
		b.Run(name, func(b *testing.B) {
			c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ipnd, _ := c.Root().Lookup(rootCred, "ipn")
			node, err := ipnd.(netcore.Mkdirer).Mkdir(rootCred, "bench", 0o700)
			if err != nil {
				b.Fatal(err)
			}
			n := node.(*netDir).n
			names := []string{"vlbench-a-" + name, "vlbench-b-" + name, "vlbench-c-" + name, "vlbench-d-" + name}
			text := "policy switch\n"
			for _, l := range names {
				memlink.Prepare(l, memlink.Options{Queue: 1024})
				text += "mem " + l + "\n"
			}
			if err := n.applyCtl(rootCred, netns.Self(), text); err != nil {
				b.Fatal(err)
			}
			if vlans {
				if err := n.applyCtl(rootCred, netns.Self(), "vlan "+names[2]+" 20\ntrunk "+names[3]+" 10,20\n"); err != nil {
					b.Skipf("no VLANs here: %v", err)
				}
			}
			port := func(name string) *Port {
				n.mu.Lock()
				defer n.mu.Unlock()
				for _, p := range n.portList {
					if p.name == name {
						return p
					}
				}
				b.Fatalf("no port %s", name)
				return nil
			}
			pa, pb := port(names[0]), port(names[1])
			lb := memlink.Far(names[1])
			ctx := context.Background()
			// b speaks once: the switch learns where macB is.
			n.transmit(ctx, pb, plain(eth(macBcast, macB, "hello")), false, false)
			for _, l := range names {
				select { // written before transmit returned
				case <-memlink.Far(l).Out:
				default:
				}
			}
			raw := plain(eth(macB, macA, "0123456789012345678901234567890123456789012345"))
			for b.Loop() {
				n.transmit(ctx, pa, raw, false, false)
				<-lb.Out
			}
		})
	}
}
