// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"encoding/json"

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
// Each sees the network as services do, through a host (services.go), and
// joins its ports by it.
func (n *Network) newExtensions() {
	for _, e := range link.Extensions() {
		x := &extension{ext: e, kind: &link.Kind{Name: e.Name}}
		x.inst = e.New(&linkNet{n: n, kind: x.kind})
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

// extBusy reports whether an extension has files open.
func (n *Network) extBusy() bool {
	for _, x := range n.exts {
		if x.inst.Busy() {
			return true
		}
	}
	return false
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
