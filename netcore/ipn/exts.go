package ipn

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"syscall"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Extensions (package link) add ctl words, directory entries and ports of
// their own to every network, such as the userspace host (addr, mac,
// udp/). Their ports are link ports without a Spec: ctl does not list
// them as attachments, detach does not find them and they are not saved
// as attachments; what an extension keeps across restarts it saves
// itself (savedNetwork.Ext).

// extension is one extension's instance on one network.
type extension struct {
	ext  *link.Extension
	inst link.Instance
	kind *link.Kind // what the ports table shows; not a ctl verb
}

// newExtensions makes the instances of every registered extension for n.
func (n *Network) newExtensions() {
	for _, e := range link.Extensions() {
		x := &extension{ext: e, kind: &link.Kind{Name: e.Name}}
		x.inst = e.New(&extNet{n: n, kind: x.kind})
		n.exts = append(n.exts, x)
	}
}

// extFor returns the extension owning ctl word w, or nil.
func (n *Network) extFor(w string) *extension {
	for _, x := range n.exts {
		for _, xw := range x.ext.Words {
			if xw == w {
				return x
			}
		}
	}
	return nil
}

// extEntries are the names the extensions add to the network's directory.
func (n *Network) extEntries() []netcore.DirEntry {
	var out []netcore.DirEntry
	for _, x := range n.exts {
		out = append(out, x.inst.Entries()...)
	}
	return out
}

// savedExts is what the extensions keep for a persistent network.
func (n *Network) savedExts() map[string]json.RawMessage {
	var out map[string]json.RawMessage
	for _, x := range n.exts {
		if b := x.inst.Save(); b != nil {
			if out == nil {
				out = map[string]json.RawMessage{}
			}
			out[x.ext.Name] = b
		}
	}
	return out
}

// restoreExts gives the extensions what they saved; a failure is logged
// and the network serves without that part.
func (n *Network) restoreExts(saved map[string]json.RawMessage) {
	for _, x := range n.exts {
		if b, ok := saved[x.ext.Name]; ok {
			if err := x.inst.Restore(b); err != nil {
				n.fam.log.Error("state file: extension not restored", "network", n.name, "extension", x.ext.Name, "err", err)
			}
		}
	}
}

// closeExts closes every extension: their ports leave, their files fail.
func (n *Network) closeExts() {
	for _, x := range n.exts {
		x.inst.Close()
	}
}

// hasPort reports whether p is a port of n. Called with n.mu held.
func (n *Network) hasPort(p *Port) bool {
	for _, q := range n.portList {
		if q == p {
			return true
		}
	}
	return false
}

// extNet is a network as one extension sees it.
type extNet struct {
	n    *Network
	kind *link.Kind
}

var _ link.Network = (*extNet)(nil)

func (h *extNet) Name() string      { return h.n.name }
func (h *extNet) Log() *slog.Logger { return h.n.fam.log }

func (h *extNet) Access() (uid, gid, mode uint32) {
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.uid, n.gid, n.mode
}

func (h *extNet) Rights(c *netcore.Cred) (recv, send, manage bool) {
	r := h.n.rights(c)
	return r&RightRecv != 0, r&RightSend != 0, r&RightManage != 0
}

func (h *extNet) Limits() (mtu, qlen int) {
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.set.MTU, n.set.Qlen
}

func (h *extNet) Join(l link.Link, m link.Member) (func(), error) {
	n := h.n
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, syscall.ENOENT
	}
	if len(n.portList) >= n.set.MaxPorts {
		n.mu.Unlock()
		return nil, syscall.EBUSY
	}
	p := newPort(n, n.nextPort, h.kind, m.UID, m.PID, m.Name, m.Recv, m.Send)
	n.nextPort++
	p.link = l
	p.caps = l.Caps()
	p.stop, p.cancel = context.WithCancel(context.Background())
	p.pumpDone = make(chan struct{})
	n.portList = append(n.portList, p)
	n.mu.Unlock()
	go p.pump()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			member := n.hasPort(p)
			if member {
				n.detachLocked(p)
			}
			n.mu.Unlock()
			if member {
				n.release(p, false)
			}
			// Not a member: whoever took it out (the pump when the
			// link went away, or shutdown) releases it.
			<-p.pumpDone
		})
	}, nil
}
