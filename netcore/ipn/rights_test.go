// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

func TestRightsOf(t *testing.T) {
	const uid, gid = 1000, 100
	owner := &netcore.Cred{Uid: uid, Gid: 1000}
	member := &netcore.Cred{Uid: 2000, Gid: gid}
	supp := &netcore.Cred{Uid: 2001, Gid: 2001, Groups: []uint32{7, gid}}
	other := &netcore.Cred{Uid: 3000, Gid: 3000, Groups: []uint32{7}}
	root := &netcore.Cred{Uid: 0, Gid: 0, CapEff: 1 << netcore.CapDacOverride, CapsKnown: true}
	// uid 0 is no exception by itself: without CAP_DAC_OVERRIDE its
	// class bits are all it has; with it, any uid has every right.
	rootNoCaps := &netcore.Cred{Uid: 0, Gid: 0, CapsKnown: true}
	overrider := &netcore.Cred{Uid: 3001, Gid: 3001, CapEff: 1 << netcore.CapDacOverride, CapsKnown: true}
	otherCaps := &netcore.Cred{Uid: 3002, Gid: 3002, CapEff: ^uint64(0) &^ (1 << netcore.CapDacOverride), CapsKnown: true}
	for _, tc := range []struct {
		name string
		c    *netcore.Cred
		mode uint32
		want Rights
	}{
		{"owner class", owner, 0741, RightRecv | RightSend | RightManage},
		{"owner r only", owner, 0477, RightRecv},
		{"owner first match: no owner bits", owner, 0077, 0},
		{"group class", member, 0741, RightRecv},
		{"group w", member, 0721, RightSend},
		{"group first match: no group bits", member, 0707, 0},
		{"supplementary group", supp, 0751, RightRecv | RightManage},
		{"other class", other, 0742, RightSend},
		{"other none", other, 0770, 0},
		{"root all on 000", root, 0, RightRecv | RightSend | RightManage},
		{"root owner of nothing", root, 0700, RightRecv | RightSend | RightManage},
		{"root without caps: other class", rootNoCaps, 0700, 0},
		{"root without caps: other bits", rootNoCaps, 0704, RightRecv},
		{"CAP_DAC_OVERRIDE, not root", overrider, 0700, RightRecv | RightSend | RightManage},
		{"every cap but CAP_DAC_OVERRIDE", otherCaps, 0700, 0},
	} {
		if got := rightsOf(tc.c, RightRecv|RightSend|RightManage, tc.mode, uid, gid); got != tc.want {
			t.Errorf("%s: rightsOf(mode %#o) = %03b, want %03b", tc.name, tc.mode, got, tc.want)
		}
	}
	// Owner that is also in the group: the owner class applies alone.
	both := &netcore.Cred{Uid: uid, Gid: gid}
	if got := rightsOf(both, RightRecv, 0070, uid, gid); got != 0 {
		t.Errorf("owner in group with mode 0070: %03b, want none (first match)", got)
	}
}

func TestOpenDataRights(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, ownerCred, "rights", 0777)
	data := netFileOf(t, nd, "data")
	chmod := func(mode uint32) {
		t.Helper()
		if err := netDirOf(nd).Chmod(ownerCred, mode); err != nil {
			t.Fatalf("chmod %#o: %v", mode, err)
		}
	}
	peer := openData(t, nd, rootCred, syscall.O_RDWR)
	ctx := context.Background()

	// Only w: O_RDONLY refused, O_RDWR gives a send-only port.
	chmod(0200)
	if _, err := data.Open(context.Background(), ownerCred, syscall.O_RDONLY); !errors.Is(err, syscall.EACCES) {
		t.Errorf("O_RDONLY without r: %v, want EACCES", err)
	}
	h, err := data.Open(context.Background(), ownerCred, syscall.O_RDWR)
	if err != nil {
		t.Fatalf("O_RDWR with w only: %v", err)
	}
	send(t, h, []byte("w-only"))
	expectPkt(t, peer, []byte("w-only"), "peer")
	send(t, peer, []byte("to-w-only"))
	if _, err := h.Read(ctx, make([]byte, 100), 0, true); !errors.Is(err, syscall.EBADF) {
		t.Errorf("read on the send-only half: %v, want EBADF", err)
	}
	if row := portRow(t, nd, portID(t, h)); row["MODE"] != "w" || row["RXPKTS"] != "0" {
		t.Errorf("send-only port row %v", row)
	}
	h.Close()

	// Only r: O_WRONLY refused, O_RDWR gives a receive-only port.
	chmod(0400)
	if _, err := data.Open(context.Background(), ownerCred, syscall.O_WRONLY); !errors.Is(err, syscall.EACCES) {
		t.Errorf("O_WRONLY without w: %v, want EACCES", err)
	}
	h, err = data.Open(context.Background(), ownerCred, syscall.O_RDWR)
	if err != nil {
		t.Fatalf("O_RDWR with r only: %v", err)
	}
	if _, err := h.Write(ctx, []byte("x"), 0, false); !errors.Is(err, syscall.EBADF) {
		t.Errorf("write on the receive-only half: %v, want EBADF", err)
	}
	send(t, peer, []byte("to-r-only"))
	expectPkt(t, h, []byte("to-r-only"), "receive-only port")
	h.Close()

	// No right: EACCES for every mode.
	chmod(0100)
	for _, fl := range []int{syscall.O_RDONLY, syscall.O_WRONLY, syscall.O_RDWR} {
		if _, err := data.Open(context.Background(), ownerCred, fl); !errors.Is(err, syscall.EACCES) {
			t.Errorf("open %#o with no r/w: %v, want EACCES", fl, err)
		}
	}

	// Group via a supplementary group; O_TRUNC|O_APPEND are ignored.
	chmod(0060)
	member := &netcore.Cred{Uid: 5000, Gid: 5000, Groups: []uint32{ownerCred.Gid}}
	h, err = data.Open(context.Background(), member, syscall.O_WRONLY|syscall.O_TRUNC|syscall.O_APPEND)
	if err != nil {
		t.Fatalf("group member via supplementary group: %v", err)
	}
	h.Close()
	if _, err := data.Open(context.Background(), &netcore.Cred{Uid: 6000, Gid: 6000}, syscall.O_WRONLY); !errors.Is(err, syscall.EACCES) {
		t.Errorf("other with mode 0060: %v, want EACCES", err)
	}
	// Root with CAP_DAC_OVERRIDE holds every right; uid 0 without it
	// none on mode 000.
	chmod(0)
	h, err = data.Open(context.Background(), rootCred, syscall.O_RDWR)
	if err != nil {
		t.Fatalf("root on mode 000: %v", err)
	}
	h.Close()
	for _, fl := range []int{syscall.O_RDONLY, syscall.O_WRONLY, syscall.O_RDWR} {
		if _, err := data.Open(context.Background(), rootNoCapsCred, fl); !errors.Is(err, syscall.EACCES) {
			t.Errorf("uid 0 without capabilities: open %#o on mode 000: %v, want EACCES", fl, err)
		}
	}
}

// The owner's open of data never looks at /proc: no capability or group
// is read when the owner class grants what is asked.
func TestOwnerOpenReadsNothing(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, ownerCred, "cheap", 0700)
	data := netFileOf(t, nd, "data")
	owner := &netcore.Cred{Uid: ownerCred.Uid, Gid: ownerCred.Gid, Pid: 1}
	for _, fl := range []int{syscall.O_RDONLY, syscall.O_WRONLY, syscall.O_RDWR} {
		h, err := data.Open(context.Background(), owner, fl)
		if err != nil {
			t.Fatalf("owner open %#o: %v", fl, err)
		}
		h.Close()
	}
	if owner.CapsKnown || owner.GroupsKnown {
		t.Errorf("the owner's open of data read /proc (caps %v, groups %v)", owner.CapsKnown, owner.GroupsKnown)
	}
}

func TestChmodChown(t *testing.T) {
	c := newTestCore(t, "")
	nd := mkNet(t, c, ownerCred, "own", 0750)
	o := netDirOf(nd)
	stranger := &netcore.Cred{Uid: 4000, Gid: 4000}
	if err := o.Chmod(stranger, 0777); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod by a stranger: %v, want EPERM", err)
	}
	if err := o.Chown(ownerCred, 4000, -1); !errors.Is(err, syscall.EPERM) {
		t.Errorf("owner giving away the network: %v, want EPERM", err)
	}
	// uid 0 without CAP_FOWNER / CAP_CHOWN is a stranger here; a
	// stranger holding them may.
	if err := o.Chmod(rootNoCapsCred, 0777); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod by uid 0 without CAP_FOWNER: %v, want EPERM", err)
	}
	if err := o.Chown(rootNoCapsCred, 0, 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chown by uid 0 without CAP_CHOWN: %v, want EPERM", err)
	}
	fowner := &netcore.Cred{Uid: 4000, Gid: 4000, CapEff: 1 << netcore.CapFowner, CapsKnown: true}
	if err := o.Chmod(fowner, 0750); err != nil {
		t.Errorf("chmod by a holder of CAP_FOWNER: %v", err)
	}
	if err := o.Chown(fowner, 4000, -1); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chown by a holder of CAP_FOWNER only: %v, want EPERM", err)
	}
	// The owner may chgrp to a group of its own, or keep the group.
	if err := o.Chown(ownerCred, -1, int64(ownerCred.Gid)); err != nil {
		t.Errorf("owner keeping its group: %v", err)
	}
	if err := o.Chown(ownerCred, -1, 4321); !errors.Is(err, syscall.EPERM) {
		t.Errorf("owner giving the network to a group it is not in: %v, want EPERM", err)
	}
	if err := o.Chown(rootCred, 4000, 4000); err != nil {
		t.Fatalf("chown by root: %v", err)
	}
	a := nd.Attr(rootCred)
	if a.Uid != 4000 || a.Gid != 4000 || a.Mode&0777 != 0750 || a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Fatalf("attr after chown: %+v", a)
	}
	// The data file shows r/w per class, ctl w where x is held.
	if m := netFileOf(t, nd, "data").Attr(rootCred).Mode & 0777; m != 0640 {
		t.Errorf("data mode %#o for network mode 0750, want 0640", m)
	}
	if m := netFileOf(t, nd, "ctl").Attr(rootCred).Mode & 0777; m != 0660 {
		t.Errorf("ctl mode %#o for network mode 0750, want 0660 (group has x)", m)
	}
	if m := netFileOf(t, nd, "stats").Attr(rootCred).Mode & 0777; m != 0440 {
		t.Errorf("stats mode %#o for network mode 0750, want 0440", m)
	}
}

// mkdir drops the manage right (x) for group and others: a umask made for
// files must not hand strangers the network; chmod still grants it.
func TestMkdirDropsManageForOthers(t *testing.T) {
	c := newTestCore(t, "")
	m := ipnRoot(t, c).(netcore.Mkdirer)
	for mode, want := range map[uint32]uint32{0755: 0744, 0777: 0766, 0750: 0740, 0700: 0700, 0711: 0700, 0644: 0644} {
		name := fmt.Sprintf("m%o", mode)
		node, err := m.Mkdir(ownerCred, name, mode)
		if err != nil {
			t.Fatalf("Mkdir %#o: %v", mode, err)
		}
		if got := node.Attr(ownerCred).Mode & 0777; got != want {
			t.Errorf("mkdir with mode %#o (after umask) gives %#o, want %#o", mode, got, want)
		}
	}
	nd := mkNet(t, c, ownerCred, "granted", 0755)
	if got := nd.Attr(ownerCred).Mode & 0777; got != 0755 {
		t.Errorf("chmod 0755 after mkdir gives %#o", got)
	}
	member := &netcore.Cred{Uid: 2000, Gid: ownerCred.Gid}
	if err := ctl(t, nd, member, "descr by the group\n"); err != nil {
		t.Errorf("group member managing after chmod g+x: %v", err)
	}
}
