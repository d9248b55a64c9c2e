// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore/link"
)

// detach picks the attachment of its name in the caller's namespace; a
// caller in the daemon's namespace (or one it cannot see) also the only
// one of the name elsewhere; nobody one of several, or one of a third
// namespace.
func TestDetachPick(t *testing.T) {
	tapKind, grabKind := &link.Kind{Name: "tap"}, &link.Kind{Name: "grab"}
	nsA, nsB, nsC := netns.ID{Dev: 1, Ino: 10}, netns.ID{Dev: 1, Ino: 11}, netns.ID{Dev: 1, Ino: 12}
	two := []linkKey{{tapKind, "eth0", nsA}, {tapKind, "eth0", nsB}, {grabKind, "veth1", netns.ID{}}}
	one := []linkKey{{tapKind, "eth0", nsB}}
	for _, tc := range []struct {
		what string
		d    detachment
		keys []linkKey
		want linkKey
		ok   bool
	}{
		{"a's own of two", detachment{name: "eth0", ns: nsA}, two, two[0], true},
		{"b's own of two, by kind", detachment{kind: tapKind, name: "eth0", ns: nsB}, two, two[1], true},
		{"daemon's namespace, two elsewhere", detachment{name: "eth0", anyNS: true}, two, linkKey{}, false},
		{"third namespace, two elsewhere", detachment{name: "eth0", ns: nsC}, two, linkKey{}, false},
		{"daemon's namespace, one elsewhere", detachment{name: "eth0", anyNS: true}, one, one[0], true},
		{"third namespace, one elsewhere", detachment{name: "eth0", ns: nsC}, one, linkKey{}, false},
		{"daemon's own", detachment{name: "veth1", anyNS: true}, two, two[2], true},
		{"another kind", detachment{kind: grabKind, name: "eth0", ns: nsA}, two, linkKey{}, false},
		{"no such name", detachment{name: "eth1", anyNS: true}, two, linkKey{}, false},
	} {
		got, err := tc.d.pick(tc.keys, "detach "+tc.d.name)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.what, got, err, tc.want)
		}
		if !tc.ok && (err == nil || err.errno != syscall.ENODEV) {
			t.Errorf("%s: %v %v, want ENODEV", tc.what, got, err)
		}
	}
}

// A waiting attachment (its namespace gone, or another under its name) is
// detached from any namespace: the one of its name there first.
func TestDetachPickWaiting(t *testing.T) {
	tapKind := &link.Kind{Name: "tap"}
	nsA, nsB, nsC := netns.ID{Dev: 1, Ino: 10}, netns.ID{Dev: 1, Ino: 11}, netns.ID{Dev: 1, Ino: 12}
	keys := []linkKey{{tapKind, "eth0", nsA}, {tapKind, "eth0", nsB}}
	if k, ok := (&detachment{name: "eth0", ns: nsB}).pickWaiting(keys); !ok || k != keys[1] {
		t.Errorf("from b: %v %v, want b's", k, ok)
	}
	if k, ok := (&detachment{name: "eth0", ns: nsC}).pickWaiting(keys); !ok || k != keys[0] {
		t.Errorf("from a new namespace: %v %v, want the first", k, ok)
	}
	if _, ok := (&detachment{name: "eth1", ns: nsA}).pickWaiting(keys); ok {
		t.Error("eth1 found")
	}
}
