// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore/link"
)

// A persistent network's attachments keep their network namespace
// across restarts (SPEC, Confinement). One in the daemon's own namespace
// is saved as it always was. One in another namespace is saved only if
// that namespace has a name, a bind mount in one of the netns
// directories (--netns-dir), which is recorded with the namespace's
// inode; at the next start it is made there only if that path is still
// that namespace. Otherwise it waits (waitingLink) and is tried again
// every WaitingRetry and at each read of ctl, and it is never made in
// the daemon's namespace instead. One in an unnamed namespace (a
// container's) is not saved at all: nothing could find it again.

// savedWhere is the namespace of a saved attachment, beside its "kind"
// and "name": the path of its named namespace and that namespace's
// identity, or nothing for the daemon's own. ("netns" alone, without
// the inode, is from a daemon that recorded only where a TAP was moved.)
type savedWhere struct {
	Netns string `json:"netns,omitempty"`
	Dev   uint64 `json:"netns_dev,omitempty"`
	Ino   uint64 `json:"netns_ino,omitempty"`
	// Unknown: saved by a daemon that did not record namespaces, by a
	// kind that lives in one. It may have been made in a container's
	// namespace, so it is never made in the daemon's: it waits until the
	// line is written again.
	Unknown bool `json:"netns_unknown,omitempty"`
}

// markUnknownWhere marks the attachments of an old state file whose
// namespace was not recorded (state.go, stateVersion): those of a kind
// that needs CAP_NET_ADMIN, which lives in a network namespace, and has
// no "netns" with an inode. A TAP moved into a named namespace was
// recorded by path alone; OpenNamed accepts such a path if it is still a
// namespace.
func markUnknownWhere(links []json.RawMessage) {
	for i, raw := range links {
		var head struct {
			Kind string `json:"kind"`
			savedWhere
		}
		if json.Unmarshal(raw, &head) != nil || head.Netns != "" || head.Unknown {
			continue
		}
		k := link.Lookup(head.Kind)
		if k == nil || k.Privilege != link.PrivNetAdmin {
			continue
		}
		fields := map[string]json.RawMessage{}
		if json.Unmarshal(raw, &fields) != nil {
			continue
		}
		fields["netns_unknown"] = json.RawMessage("true")
		if b, err := json.Marshal(fields); err == nil {
			links[i] = b
		}
	}
}

func (w savedWhere) id() netns.ID { return netns.ID{Dev: w.Dev, Ino: w.Ino} }

// WaitingRetry is how often attachments waiting for their namespace are
// tried again.
var WaitingRetry = 5 * time.Second

// waitingLink is a saved attachment whose namespace was not there at start.
type waitingLink struct {
	kind  *link.Kind
	spec  link.Spec
	raw   json.RawMessage // as saved: saved again as it is
	where savedWhere
	why   string // what keeps it waiting, after "namespace PATH"
}

func (w *waitingLink) line() string { return w.kind.Name + " " + w.spec.Args() }

// savedLinksLocked lists the attachments for the state file: each is an
// object with "kind" and "name", its namespace (savedWhere) and the
// fields its link saves; waiting ones as they were read. Called with
// n.mu held.
func (n *Network) savedLinksLocked() []json.RawMessage {
	var out []json.RawMessage
	for _, p := range n.portList {
		s, ok := p.link.(link.Saver)
		if p.spec == nil || !ok || p.kind.Restore == nil {
			continue
		}
		where, named := n.whereLocked(p)
		if !named {
			if !p.unnamed {
				n.fam.log.Warn("attachment in a network namespace without a name: not persistent", "network", n.name,
					"kind", p.kind.Name, "name", p.name, "netns-dirs", n.fam.netnsDirs)
			}
			p.unnamed = true
			continue
		}
		p.unnamed = false
		b, err := savedLink(p.kind.Name, p.name, where, s, p.vlan)
		if err != nil {
			n.fam.log.Error("cannot save attachment; it is not restored after a restart",
				"network", n.name, "kind", p.kind.Name, "name", p.name, "err", err)
			continue
		}
		out = append(out, b)
	}
	for _, w := range n.waiting {
		out = append(out, w.raw)
	}
	return out
}

// whereLocked is where p's link is now, for the state file; false if that
// is a namespace without a name. Called with n.mu held.
func (n *Network) whereLocked(p *Port) (savedWhere, bool) {
	id := p.nsID
	if l, ok := p.link.(link.Located); ok {
		now, err := l.Netns()
		if err != nil {
			n.fam.log.Warn("cannot tell which network namespace the link is in", "network", n.name,
				"kind", p.kind.Name, "name", p.name, "err", err)
			return savedWhere{}, false
		}
		id = now
	}
	if id == (netns.ID{}) || id == netns.Self().ID() {
		return savedWhere{}, true
	}
	path := netns.NameOf(n.fam.netnsDirs, id)
	if path == "" {
		return savedWhere{}, false
	}
	return savedWhere{Netns: path, Dev: id.Dev, Ino: id.Ino}, true
}

// savedLink is what s saves, with kind, name, namespace and VLAN setting
// set.
func savedLink(kind, name string, where savedWhere, s link.Saver, vl *portVLAN) (json.RawMessage, error) {
	b, err := s.Save()
	if err != nil {
		return nil, err
	}
	fields := map[string]json.RawMessage{}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, err
		}
	}
	fields["kind"], _ = json.Marshal(kind)
	fields["name"], _ = json.Marshal(name)
	addVLANFields(fields, vl)
	delete(fields, "netns")
	delete(fields, "netns_dev")
	delete(fields, "netns_ino")
	if where.Netns != "" {
		fields["netns"], _ = json.Marshal(where.Netns)
		fields["netns_dev"], _ = json.Marshal(where.Dev)
		fields["netns_ino"], _ = json.Marshal(where.Ino)
	}
	return json.Marshal(fields)
}

// restoreLinks attaches the links of a restored persistent network, each
// in its namespace. One whose namespace is not there waits; one that
// cannot be attached is logged and left out, and the network serves
// without it. It reports whether any waits.
func (n *Network) restoreLinks(saved []json.RawMessage) bool {
	for _, raw := range saved {
		var head struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
			savedWhere
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			n.fam.log.Error("state file: bad attachment, skipped", "network", n.name, "err", err)
			continue
		}
		kind := link.Lookup(head.Kind)
		if kind == nil || kind.Restore == nil {
			n.fam.log.Error("state file: bad attachment kind, skipped", "network", n.name, "kind", head.Kind)
			continue
		}
		spec, err := kind.Restore(raw)
		if err != nil {
			n.fam.log.Error("state file: bad attachment, skipped", "network", n.name, "kind", head.Kind, "err", err)
			continue
		}
		w := &waitingLink{kind: kind, spec: spec, raw: raw, where: head.savedWhere}
		if n.restoreLink(w, false) {
			continue
		}
		n.mu.Lock()
		n.waiting = append(n.waiting, w)
		n.mu.Unlock()
		n.fam.log.Warn("attachment waits for its network namespace; it is not made in the daemon's",
			"network", n.name, "kind", head.Kind, "name", spec.Name(), "netns", w.where.Netns, "why", w.why)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.waiting) > 0
}

// restoreLink attaches w in its namespace. It reports false, with w.why
// set, if the namespace is not there; an attachment that fails otherwise
// is logged and dropped (true). A retry (w in n.waiting) takes w out of
// the waiting ones when it is attached or dropped.
func (n *Network) restoreLink(w *waitingLink, retry bool) bool {
	ns := netns.Self()
	if w.where.Unknown {
		n.mu.Lock()
		w.why = "was not recorded (an older state file): write the line again to attach it"
		n.mu.Unlock()
		return false
	}
	if w.where.Netns != "" {
		var err error
		ns, err = netns.OpenNamed(w.where.Netns, w.where.id())
		if err != nil {
			why := "cannot be opened: " + err.Error()
			switch {
			case errors.Is(err, netns.ErrGone):
				why = "gone"
			case errors.Is(err, netns.ErrChanged):
				why = "is another namespace than the one it was made in"
			}
			n.mu.Lock()
			w.why = why
			n.mu.Unlock()
			return false
		}
		defer ns.Close() // what the link made there holds the namespace
	}
	a := &attachment{kind: w.kind, spec: w.spec}
	if err := a.open(n, nil, ns); err != nil {
		n.fam.log.Error("cannot restore attachment", "network", n.name, "err", err.reason)
		if retry {
			n.mu.Lock()
			n.waiting = slices.DeleteFunc(n.waiting, func(x *waitingLink) bool { return x == w })
			n.mu.Unlock()
			n.fam.saveState()
		}
		return true
	}
	n.mu.Lock()
	if n.closed || retry && !slices.Contains(n.waiting, w) {
		// Detached or replaced by a ctl write meanwhile, or the network
		// is gone.
		n.mu.Unlock()
		a.abort(n)
		return true
	}
	p := n.attachLocked(a)
	if p.vlan = n.restoredVLAN(w.raw); p.vlan != nil {
		n.vlanOn = true
	}
	n.waiting = slices.DeleteFunc(n.waiting, func(x *waitingLink) bool { return x == w })
	n.mu.Unlock()
	go p.pump()
	n.fam.log.Info("attachment restored", "network", n.name, "kind", w.kind.Name, "name", w.spec.Name(),
		"netns", w.where.Netns)
	return true
}

// retryWaiting tries the waiting attachments again and returns how many
// still wait.
func (n *Network) retryWaiting() int {
	n.waitMu.Lock()
	defer n.waitMu.Unlock()
	n.mu.Lock()
	ws := slices.Clone(n.waiting)
	n.mu.Unlock()
	for _, w := range ws {
		n.restoreLink(w, true)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0
	}
	return len(n.waiting)
}

// hasWaiting reports whether an attachment of n waits for its namespace.
func (n *Network) hasWaiting() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.waiting) > 0
}

// retryWaiting tries the waiting attachments of every network again,
// every period, until none waits or the family closes.
func (f *ipnFamily) retryWaiting(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		f.mu.Lock()
		nets := make([]*Network, 0, len(f.nets))
		for _, n := range f.nets {
			nets = append(nets, n)
		}
		f.mu.Unlock()
		left := 0
		for _, n := range nets {
			if n.hasWaiting() {
				left += n.retryWaiting()
			}
		}
		if left == 0 {
			return
		}
	}
}
