// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"slices"
	"strconv"
	"syscall"

	"github.com/mnet-project/mnet/netcore"
)

// vlanFileKinds are the files of ipn/NAME/vlan/VID/: each joins the
// network as its namesake in ipn/NAME/ does, as an access port of VID.
var vlanFileKinds = []fileKind{fileData, fileStream}

// vlanDir is ipn/NAME/vlan/: a directory per VLAN, 1..4094. It lists the
// VLANs the network's ports are in; any other is there when looked up.
// The directories are made at each lookup and not kept (anyone may look
// up all 4094 of every network), with IDs reserved once: the same VID
// is the same inode every time.
type vlanDir struct {
	id   uint64
	n    *Network
	base uint64 // the ID of VID 0's directory; vidStride IDs per VID
}

// vidStride is the IDs of one VID: its directory and its files.
var vidStride = 1 + len(vlanFileKinds)

func newVLANDir(n *Network) *vlanDir {
	return &vlanDir{id: netcore.NewID(), n: n, base: netcore.NewIDs((maxVID + 1) * vidStride)}
}

func (d *vlanDir) ID() uint64 { return d.id }

func (d *vlanDir) Attr(c *netcore.Cred) netcore.Attr {
	a := d.n.dir.Attr(c)
	a.Mode = syscall.S_IFDIR | 0555
	return a
}

// testHookVLANList, if set, runs where List walks the settings.
var testHookVLANList func(*Network)

// List names VLAN 1 and every VLAN a port is an access port of or
// carries by name (not those of a trunk of all).
func (d *vlanDir) List(*netcore.Cred) []netcore.DirEntry {
	// The settings are copied out under the lock (they are never changed
	// in place) and walked after it: a trunk's walk looks at every VID,
	// which must not hold up delivery.
	n := d.n
	n.mu.Lock()
	sets := make([]*portVLAN, 0, len(n.portList)+len(n.svcVLANs))
	for _, p := range n.portList {
		if p.vlan != nil {
			sets = append(sets, p.vlan)
		}
	}
	for _, v := range n.svcVLANs {
		if v != nil {
			sets = append(sets, v)
		}
	}
	n.mu.Unlock()
	if testHookVLANList != nil {
		testHookVLANList(n)
	}
	in := map[uint16]bool{defaultVID: true}
	for _, v := range sets {
		in[v.access] = true
		if v.trunk != nil && !v.trunk.full() {
			for vid := uint16(minVID); vid <= maxVID; vid++ {
				if v.trunk.has(vid) {
					in[vid] = true
				}
			}
		}
	}
	vids := make([]uint16, 0, len(in))
	for vid := range in {
		vids = append(vids, vid)
	}
	slices.Sort(vids)
	ents := make([]netcore.DirEntry, len(vids))
	for i, vid := range vids {
		ents[i] = netcore.DirEntry{Name: strconv.Itoa(int(vid)), Node: d.vid(vid)}
	}
	return ents
}

func (d *vlanDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	vid, ok := parseVID(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	return d.vid(vid), nil
}

// vid is the directory of VLAN vid, with the same IDs every time.
func (d *vlanDir) vid(vid uint16) *vidDir {
	id := d.base + uint64(vid)*uint64(vidStride)
	v := &vidDir{id: id, d: d}
	for i, k := range vlanFileKinds {
		v.files = append(v.files, &netFile{id: id + 1 + uint64(i), n: d.n, kind: k, vlan: vid})
	}
	return v
}

// vidDir is ipn/NAME/vlan/VID/.
type vidDir struct {
	id    uint64
	d     *vlanDir
	files []*netFile
}

func (v *vidDir) ID() uint64                        { return v.id }
func (v *vidDir) Attr(c *netcore.Cred) netcore.Attr { return v.d.Attr(c) }

func (v *vidDir) List(*netcore.Cred) []netcore.DirEntry {
	ents := make([]netcore.DirEntry, len(v.files))
	for i, f := range v.files {
		ents[i] = netcore.DirEntry{Name: f.kind.String(), Node: f}
	}
	return ents
}

func (v *vidDir) Lookup(c *netcore.Cred, name string) (netcore.Node, error) {
	return netcore.LookupListed(v, c, name)
}
