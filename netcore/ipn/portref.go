// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"strconv"
	"strings"
	"syscall"

	"github.com/mnet-project/mnet/netcore/link"
)

// maxPortRefName bounds the NAME of a port reference: longer than any
// link's name.
const maxPortRefName = 64

// portRef is the PORT of a vlan, trunk or impair line: #N (the number in
// ports), SERVICE:N (vde:N: a service's port number, which its clients
// ask for or get), KIND:NAME or NAME (an attachment, found as detach
// finds it: in the writer's namespace).
type portRef struct {
	id   int
	svc  string
	num  int
	link *detachment
}

// parsePortRef reads a PORT, before any port is looked at.
func parsePortRef(s string) (portRef, *ctlError) {
	if num, ok := strings.CutPrefix(s, "#"); ok {
		id, err := strconv.Atoi(num)
		if err != nil || id < 1 || strconv.Itoa(id) != num {
			return portRef{}, ctlErr(syscall.EINVAL, "%q is not a port number", s)
		}
		return portRef{id: id}, nil
	}
	name := s
	var kind *link.Kind
	if prefix, rest, ok := strings.Cut(s, ":"); ok {
		if svc := link.LookupService(prefix); svc != nil {
			num, err := strconv.Atoi(rest)
			if err != nil || num < 1 || num > maxSvcNumber || strconv.Itoa(num) != rest {
				return portRef{}, ctlErr(syscall.EINVAL, "%q: want %s:N, N a port number 1..%d", s, prefix, maxSvcNumber)
			}
			return portRef{svc: svc.Name, num: num}, nil
		}
		if kind = link.Lookup(prefix); kind == nil {
			return portRef{}, ctlErr(syscall.EINVAL, "%q: no link kind or service %q", s, prefix)
		}
		name = rest
	}
	if name == "" || len(name) > maxPortRefName || strings.ContainsAny(name, ":#/ \t\n") {
		return portRef{}, ctlErr(syscall.EINVAL, "%q: want an interface name, KIND:NAME, SERVICE:N or #N", s)
	}
	return portRef{link: &detachment{kind: kind, name: name}}, nil
}

// String is r as it was written (a KIND:NAME or NAME in that form).
func (r portRef) String() string {
	switch {
	case r.id > 0:
		return "#" + strconv.Itoa(r.id)
	case r.svc != "":
		return svcKey(r.svc, r.num)
	case r.link.kind != nil:
		return r.link.kind.Name + ":" + r.link.name
	}
	return r.link.name
}

// checkPortRefLocked checks that r names a port when its line is
// applied: a port there now (#N, SERVICE:N: a client connected now) and,
// if it is an attachment, still in attached (the links as the lines
// before it leave them). Called with n.mu held.
func (n *Network) checkPortRefLocked(r portRef, attached map[linkKey]bool, line string) *ctlError {
	if r.link != nil {
		keys := make([]linkKey, 0, len(attached))
		for k := range attached {
			keys = append(keys, k)
		}
		_, bad := r.link.pick(keys, line)
		return bad
	}
	p := n.portOfRefLocked(r)
	if p == nil || (p.spec != nil && !attached[p.key()]) {
		// An attachment an earlier line detaches is gone by then: the
		// write fails whole rather than after those lines applied.
		return ctlErr(syscall.ENODEV, "%s: no port %s on this network", line, r)
	}
	return nil
}

// portOfRefLocked is the port r names now, or nil: for SERVICE:N the
// first client of that number. Called with n.mu held.
func (n *Network) portOfRefLocked(r portRef) *Port {
	if r.link != nil {
		return n.detachPortLocked(r.link, "")
	}
	key := ""
	if r.svc != "" {
		key = svcKey(r.svc, r.num)
	}
	for _, p := range n.portList {
		if (r.id > 0 && p.id == r.id) || (key != "" && p.svcPortKey() == key) {
			return p
		}
	}
	return nil
}

// portRefOf is the reference that names p in what ctl shows: an
// attachment as attachmentRef says, a service's client as SERVICE:N,
// else #N.
// Called with n.mu held.
func portRefOf(p *Port) string {
	switch {
	case p.spec != nil:
		return attachmentRef(p.kind, p.spec)
	case p.svcPortKey() != "":
		return p.svcPortKey()
	}
	return "#" + strconv.Itoa(p.id)
}

// attachmentRef is the reference of an attachment, waiting or not: one
// made by "KIND NAME" (an interface) is NAME, others (a cable) KIND:NAME.
func attachmentRef(kind *link.Kind, spec link.Spec) string {
	if spec.Args() == spec.Name() {
		return spec.Name()
	}
	return kind.Name + ":" + spec.Name()
}
