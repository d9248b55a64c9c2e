// SPDX-License-Identifier: BSD-3-Clause

package tap

import (
	"encoding/binary"
	"syscall"

	"golang.org/x/sys/unix"
)

// attachedQueues is how many queues of the multi-queue TAP name are
// attached to a descriptor (held by some process); 0 for a TAP that is
// not multi-queue. The kernel refuses a second holder of a single-queue
// TAP (EBUSY) but attaches it to a multi-queue one, so OpenTapQueues asks
// first. The answer is rtnetlink's (IFLA_TUN_NUM_QUEUES, what
// `ip -d link` shows), in the calling thread's network namespace.
func attachedQueues(name string) (int, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return 0, err
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return 0, err
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWLINK {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			continue
		}
		var info []byte
		match := false
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFLA_IFNAME:
				match = unix.ByteSliceToString(a.Value) == name
			case unix.IFLA_LINKINFO:
				info = a.Value
			}
		}
		if !match {
			continue
		}
		data := nested(info, unix.IFLA_INFO_DATA)
		if q := nested(data, unix.IFLA_TUN_NUM_QUEUES); len(q) >= 4 {
			return int(binary.NativeEndian.Uint32(q)), nil
		}
		return 0, nil
	}
	return 0, nil
}

// nested returns the value of attribute typ among the netlink attributes
// in b, or nil.
func nested(b []byte, typ uint16) []byte {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return nil
		}
		if t == typ {
			return b[4:l]
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return nil
}
