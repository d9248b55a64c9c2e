// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"errors"
	"syscall"
	"testing"
)

func TestModeAccess(t *testing.T) {
	const uid, gid = 1000, 100
	owner := &Cred{Uid: uid, Gid: 1000}
	member := &Cred{Uid: 2000, Gid: 2000, Groups: []uint32{gid}}
	other := &Cred{Uid: 3000, Gid: 3000}
	root := &Cred{CapEff: 1 << CapDacOverride, CapsKnown: true}
	rootNoCaps := &Cred{CapsKnown: true}
	overrider := &Cred{Uid: 4000, Gid: 4000, CapEff: 1 << CapDacOverride, CapsKnown: true}
	for _, tc := range []struct {
		name       string
		c          *Cred
		mask, mode uint32
		ok         bool
	}{
		{"owner rw of 0600", owner, 6, 0600, true},
		{"owner x of 0600", owner, 1, 0600, false},
		{"owner r of 0077 (first match)", owner, 4, 0077, false},
		{"member r of 0040", member, 4, 0040, true},
		{"member w of 0040", member, 2, 0040, false},
		{"member r of 0404 (first match)", member, 4, 0404, false},
		{"other r of 0004", other, 4, 0004, true},
		{"other rw of 0004", other, 6, 0004, false},
		{"root rw of 0000", root, 6, 0000, true},
		{"root x of 0100", root, 1, 0100, true},
		{"root x of 0666", root, 1, 0666, false},
		{"mask 0", other, 0, 0, true},
		{"root without caps rw of 0000", rootNoCaps, 6, 0000, false},
		{"root without caps r of 0004", rootNoCaps, 4, 0004, true},
		{"root without caps rw of 0700", rootNoCaps, 6, 0700, false},
		{"CAP_DAC_OVERRIDE without uid 0, rw of 0000", overrider, 6, 0000, true},
		{"root x of a directory 0000", root, 1, syscall.S_IFDIR, true},
	} {
		err := ModeAccess(tc.c, tc.mask, tc.mode, uid, gid)
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s: ModeAccess = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// A PORT has exactly one name.
func TestParsePort(t *testing.T) {
	for name, want := range map[string]int{
		"1": 1, "80": 80, "65535": 65535,
		"0": -1, "65536": -1, "080": -1, "+80": -1, "-1": -1, "http": -1, "": -1, "99999999999999999999": -1, "8 0": -1,
	} {
		p, err := ParsePort(name)
		if want < 0 {
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("ParsePort(%q) = %d, %v; want EINVAL", name, p, err)
			}
		} else if err != nil || int(p) != want {
			t.Errorf("ParsePort(%q) = %d, %v; want %d", name, p, err, want)
		}
	}
}
