// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"sync"
	"syscall"
)

// Permission checks as the kernel makes them for any file
// (generic_permission, chmod's owner-or-CAP_FOWNER, chown_ok): the mode's
// bits for the caller's class first, and a capability only where they
// refuse. So a caller the mode serves never has /proc read, and uid 0
// holds nothing its capabilities do not give it.

// ClassBits returns the r, w and x bits (4, 2, 1) that mode gives c on a
// node owned by uid:gid: the owner class, else the group class (primary
// or supplementary group), else other; the first class that matches
// applies alone.
func ClassBits(c *Cred, mode, uid, gid uint32) uint32 {
	switch {
	case c.Uid == uid:
		return mode >> 6 & 7
	case c.InGroup(gid):
		return mode >> 3 & 7
	default:
		return mode & 7
	}
}

// Permitted returns the r, w and x bits c holds on a node that is a
// directory in kind (an ipn network, an mhost host: x is manage), when it
// wants the bits of want (0: any one): its class bits, or all three if
// those lack something wanted and c holds CAP_DAC_OVERRIDE.
func Permitted(c *Cred, want, mode, uid, gid uint32) uint32 {
	bits := ClassBits(c, mode, uid, gid)
	if (bits&want != want || bits == 0) && c.HasCap(CapDacOverride) {
		return 7
	}
	return bits
}

// MayChmod reports whether c may change the mode of a node owned by
// owner: the owner, or a holder of CAP_FOWNER.
func MayChmod(c *Cred, owner uint32) bool {
	return c.Uid == owner || c.HasCap(CapFowner)
}

// MayChown reports whether c may give a node owned by owner:group the
// owner uid and group gid (negative: unchanged), as chown(2) allows: the
// owner may keep itself the owner and choose the group among its own
// groups (or keep it); anything else needs CAP_CHOWN.
func MayChown(c *Cred, owner, group uint32, uid, gid int64) bool {
	if c.Uid == owner && (uid < 0 || uint32(uid) == owner) &&
		(gid < 0 || uint32(gid) == group || c.InGroup(uint32(gid))) {
		return true
	}
	return c.HasCap(CapChown)
}

// ChangeMode is chmod(2) by c of a node whose owner *uid mu guards: if
// MayChmod allows it, set (which changes the mode) runs with mu held (given the owner before);
// otherwise EPERM. The capability is read from /proc without mu held,
// and an owner changed meanwhile is checked again.
func ChangeMode(mu sync.Locker, c *Cred, uid *uint32, set func()) error {
	mu.Lock()
	owner := *uid
	mu.Unlock()
	ok := MayChmod(c, owner)
	mu.Lock()
	defer mu.Unlock()
	if !ok || *uid != owner {
		return syscall.EPERM
	}
	set()
	return nil
}

// ChangeOwner is chown(2) by c to newUID and newGID (negative: unchanged)
// of a node whose owner *uid and group *gid mu guards: if MayChown allows
// it, they are changed and then changed (if not nil) runs, with mu held (given the owner before);
// otherwise EPERM. As in ChangeMode, capabilities are read without mu.
func ChangeOwner(mu sync.Locker, c *Cred, uid, gid *uint32, newUID, newGID int64, changed func(oldUID uint32)) error {
	mu.Lock()
	owner, group := *uid, *gid
	mu.Unlock()
	ok := MayChown(c, owner, group, newUID, newGID)
	mu.Lock()
	defer mu.Unlock()
	if !ok || *uid != owner || *gid != group {
		return syscall.EPERM
	}
	if newUID >= 0 {
		*uid = uint32(newUID)
	}
	if newGID >= 0 {
		*gid = uint32(newGID)
	}
	if changed != nil {
		changed(owner)
	}
	return nil
}

// NewDirMode is the mode of an ipn network or mhost host made by mkdir
// with mode (the umask already applied): x is manage there, and a umask
// made for files and directories must not hand strangers that, so group
// and others lose x (umask 022 gives 0744); only a chmod grants it.
func NewDirMode(mode uint32) uint32 {
	return mode & 0777 &^ 0011
}

// ModeAccess is access(2)'s check of mask (R_OK=4, W_OK=2, X_OK=1) against
// a node of mode owned by uid:gid. CAP_DAC_OVERRIDE passes what the class
// bits refuse, except x of a file no class may execute.
func ModeAccess(c *Cred, mask, mode, uid, gid uint32) error {
	mask &= 7
	if ClassBits(c, mode, uid, gid)&mask == mask {
		return nil
	}
	if c.HasCap(CapDacOverride) &&
		(mask&1 == 0 || mode&syscall.S_IFMT == syscall.S_IFDIR || mode&0111 != 0) {
		return nil
	}
	return syscall.EACCES
}
