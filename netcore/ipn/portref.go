// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"strconv"
	"strings"
	"syscall"

	"github.com/mnet-project/mnet/internal/netns"
)

// A port reference names one port of a network in a ctl line (impair,
// and vlan/trunk): an interface name (a tap or grab attachment),
// vxlan:VNI (a cable), vde:N (a VDE client by the port number it asked
// for or got) or #N (the number in ports).

// checkPortRef checks the form of a reference, before any port is looked
// at; "all" is no port but passes.
func checkPortRef(ref string) *ctlError {
	kind, num, ok := splitPortRef(ref)
	if !ok {
		return ctlErr(syscall.EINVAL, "%q: want an interface name, vxlan:VNI, vde:N or #N", ref)
	}
	if kind != "" && num < 0 {
		return ctlErr(syscall.EINVAL, "%q: not a number after %s", ref, kind)
	}
	return nil
}

// splitPortRef splits "#N", "vxlan:N", "vde:N" into the prefix and the
// number (-1 if it is not one); an interface name has no prefix.
func splitPortRef(ref string) (kind string, num int, ok bool) {
	if ref == "" || len(ref) > 64 {
		return "", 0, false
	}
	for _, k := range []string{"#", "vxlan:", "vde:"} {
		if s, found := strings.CutPrefix(ref, k); found {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 || strings.HasPrefix(s, "+") {
				v = -1
			}
			return k, v, true
		}
	}
	if strings.ContainsAny(ref, ":#/ \t") {
		return "", 0, false
	}
	return "", 0, true
}

// resolvePortRef returns the port ref names, or ENODEV. An interface name
// is an attachment of a kind other than vxlan, in the daemon's namespace
// or else the only one of that name. Called with n.mu held.
func (n *Network) resolvePortRef(ref string) (*Port, *ctlError) {
	kind, num, ok := splitPortRef(ref)
	if !ok || (kind != "" && num < 0) {
		return nil, checkPortRef(ref)
	}
	var found *Port
	for _, p := range n.portList {
		switch kind {
		case "#":
			if p.id == num {
				return p, nil
			}
		case "vxlan:":
			if p.spec != nil && p.kind.Name == "vxlan" && p.name == strconv.Itoa(num) {
				return p, nil
			}
		case "vde:":
			if p.kindName() == "vde" && p.svcNum == num {
				return p, nil
			}
		default:
			if p.spec != nil && p.kind.Name != "vxlan" && p.name == ref {
				if p.nsID == (netns.ID{}) {
					return p, nil
				}
				if found != nil {
					return nil, ctlErr(syscall.ENODEV, "%q: attached in several namespaces; name it by #N", ref)
				}
				found = p
			}
		}
	}
	if found != nil {
		return found, nil
	}
	return nil, ctlErr(syscall.ENODEV, "%q: no such port on this network", ref)
}

// portRefOf is the reference that names p in what ctl shows: the
// attachment's name (vxlan:VNI for a cable), vde:N for a VDE client (its
// port number, link.Member.Number), else #N. Called with n.mu held.
func portRefOf(p *Port) string {
	switch {
	case p.spec != nil && p.kind.Name == "vxlan":
		return "vxlan:" + p.name
	case p.spec != nil:
		return p.name
	}
	if p.kindName() == "vde" && p.svcNum > 0 {
		return "vde:" + strconv.Itoa(p.svcNum)
	}
	return "#" + strconv.Itoa(p.id)
}
