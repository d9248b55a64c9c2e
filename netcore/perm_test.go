// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"sync"
	"syscall"
	"testing"
)

// ChangeMode and ChangeOwner apply chmod(2)'s and chown(2)'s rules to a
// node's fields under its lock, and leave them as they were on EPERM.
func TestChangeModeAndOwner(t *testing.T) {
	owner := &Cred{Uid: 1000, Gid: 1000, Groups: []uint32{20}, GroupsKnown: true, CapsKnown: true}
	other := &Cred{Uid: 1001, Gid: 1001, GroupsKnown: true, CapsKnown: true}
	chowner := &Cred{Uid: 1001, Gid: 1001, GroupsKnown: true, CapsKnown: true, CapEff: 1 << CapChown}
	var mu sync.Mutex
	uid, gid, mode := uint32(1000), uint32(1000), uint32(0o750)
	setMode := func(m uint32) func() { return func() { mode = m } }

	if err := ChangeMode(&mu, other, &uid, setMode(0o777)); err != syscall.EPERM || mode != 0o750 {
		t.Errorf("chmod by another uid: %v, mode %03o; want EPERM, 750", err, mode)
	}
	if err := ChangeMode(&mu, owner, &uid, setMode(0o700)); err != nil || mode != 0o700 {
		t.Errorf("chmod by the owner: %v, mode %03o; want nil, 700", err, mode)
	}

	changed := 0
	count := func(uint32) { changed++ }
	if err := ChangeOwner(&mu, owner, &uid, &gid, 1001, -1, count); err != syscall.EPERM || uid != 1000 || changed != 0 {
		t.Errorf("owner gives the node away: %v, uid %d, changed %d; want EPERM, 1000, 0", err, uid, changed)
	}
	if err := ChangeOwner(&mu, owner, &uid, &gid, -1, 30, count); err != syscall.EPERM || gid != 1000 {
		t.Errorf("owner picks a group it is not in: %v, gid %d; want EPERM, 1000", err, gid)
	}
	if err := ChangeOwner(&mu, owner, &uid, &gid, -1, 20, count); err != nil || uid != 1000 || gid != 20 || changed != 1 {
		t.Errorf("owner picks its own group: %v, %d:%d, changed %d; want nil, 1000:20, 1", err, uid, gid, changed)
	}
	if err := ChangeOwner(&mu, chowner, &uid, &gid, 1001, 1001, nil); err != nil || uid != 1001 || gid != 1001 {
		t.Errorf("CAP_CHOWN gives the node away: %v, %d:%d; want nil, 1001:1001", err, uid, gid)
	}
}
