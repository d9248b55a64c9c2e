// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/mnet-project/mnet/internal/vnet"
	"github.com/mnet-project/mnet/netcore/link"
)

// IEEE 802.1Q VLANs (SPEC, "VLANs"). Every port is an access port of
// VLAN 1 until a `vlan` or `trunk` line says otherwise. While no port of
// a network has such a setting (vlanOn false) frames cross as they always
// did, tagged ones too, and the frame path pays one flag test per frame.
// Once one has, every frame is classified where it enters (classifyVLAN):
// its tag's VLAN if the port carries that VLAN tagged, the port's access
// VLAN if it is untagged or priority-tagged (VID 0); anything else is
// dropped and counted (vlan-drops), but where it enters a port without a
// setting (foreign). It then reaches only ports of its
// VLAN (route), untagged where that is the receiver's access VLAN and
// tagged where the receiver carries it as a trunk; the switch learns per
// (VLAN, MAC). A frame is converted at most once per form (untagged,
// tagged) whatever the number of receivers.

const (
	minVID     = 1
	maxVID     = 4094
	defaultVID = 1
	// etherTypeVLAN is the TPID of an 802.1Q tag.
	etherTypeVLAN = 0x8100
	vidMask       = 0x0fff
	// maxSvcVLANs bounds the service port numbers (vde:N) a network keeps
	// VLAN settings for, clients or not.
	maxSvcVLANs = 1024
	// maxSvcNumber is the largest service port number a setting names.
	maxSvcNumber = 65535
)

// vidSet is a set of VLAN IDs, one bit each.
type vidSet [(maxVID + 64) / 64]uint64

func (s *vidSet) has(v uint16) bool { return s[v>>6]&(1<<(v&63)) != 0 }
func (s *vidSet) add(v uint16)      { s[v>>6] |= 1 << (v & 63) }

// full reports whether s holds every VID (trunk all).
func (s *vidSet) full() bool {
	for v := uint16(minVID); v <= maxVID; v++ {
		if !s.has(v) {
			return false
		}
	}
	return true
}

// String is the set as a trunk line writes it: "all", or VIDs and
// ranges (of three or more) separated by commas.
func (s *vidSet) String() string {
	if s.full() {
		return "all"
	}
	var b strings.Builder
	for v := uint16(minVID); v <= maxVID; v++ {
		if !s.has(v) {
			continue
		}
		end := v
		for end < maxVID && s.has(end+1) {
			end++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		switch {
		case end-v >= 2:
			fmt.Fprintf(&b, "%d-%d", v, end)
		case end > v:
			fmt.Fprintf(&b, "%d,%d", v, end)
		default:
			fmt.Fprintf(&b, "%d", v)
		}
		v = end
	}
	return b.String()
}

// parseVID reads one VLAN ID, 1..4094, written in decimal as ctl shows it.
func parseVID(s string) (uint16, bool) {
	v, err := strconv.Atoi(s)
	if err != nil || v < minVID || v > maxVID || strconv.Itoa(v) != s {
		return 0, false
	}
	return uint16(v), true
}

// parseVIDList reads the argument of trunk: "none" (nil), "all", or
// VIDs and ranges A-B separated by commas.
func parseVIDList(s string) (*vidSet, error) {
	set := &vidSet{}
	switch s {
	case "none":
		return nil, nil
	case "all":
		for v := uint16(minVID); v <= maxVID; v++ {
			set.add(v)
		}
		return set, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		a, ok := parseVID(lo)
		b := a
		if ok && isRange {
			b, ok = parseVID(hi)
		}
		if !ok || b < a {
			return nil, fmt.Errorf("%q is not a VLAN ID 1..4094 or a range of them", item)
		}
		for v := a; v <= b; v++ {
			set.add(v)
		}
	}
	return set, nil
}

// portVLAN is a port's VLAN setting. nil is the default: an access port
// of VLAN 1 that carries nothing tagged. A setting is never changed in
// place: the ports of one VDE port number share it.
type portVLAN struct {
	access uint16  // untagged VLAN
	trunk  *vidSet // VLANs also carried tagged; nil: none
}

func (v *portVLAN) accessVID() uint16 {
	if v == nil {
		return defaultVID
	}
	return v.access
}

// trunks reports whether the port carries vid tagged.
func (v *portVLAN) trunks(vid uint16) bool {
	return v != nil && v.trunk != nil && v.trunk.has(vid)
}

// carries reports whether the port belongs to VLAN vid.
func (v *portVLAN) carries(vid uint16) bool {
	return v.accessVID() == vid || v.trunks(vid)
}

// column is the VLAN column of ports: the access VLAN, then "+" and the
// tagged ones.
func (v *portVLAN) column() string {
	s := strconv.Itoa(int(v.accessVID()))
	if v != nil && v.trunk != nil {
		s += "+" + v.trunk.String()
	}
	return s
}

// normal returns v, or nil if it is the default.
func (v *portVLAN) normal() *portVLAN {
	if v == nil || v.access == defaultVID && v.trunk == nil {
		return nil
	}
	return v
}

func withAccess(v *portVLAN, vid uint16) *portVLAN {
	nv := portVLAN{access: vid}
	if v != nil {
		nv.trunk = v.trunk
	}
	return nv.normal()
}

func withTrunk(v *portVLAN, set *vidSet) *portVLAN {
	nv := portVLAN{access: v.accessVID(), trunk: set}
	return nv.normal()
}

func sameVLAN(a, b *portVLAN) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.access != b.access || (a.trunk == nil) != (b.trunk == nil) {
		return false
	}
	return a.trunk == nil || *a.trunk == *b.trunk
}

// accessPort is the setting of a port that joins as an access port of
// vid (vlan/VID/data); 0 is the default (data).
func accessPort(vid uint16) *portVLAN {
	if vid == 0 {
		return nil
	}
	return (&portVLAN{access: vid}).normal()
}

// vlanForm is how a frame of one VLAN leaves a port.
type vlanForm uint8

const (
	formUntagged vlanForm = iota
	formTagged
	// formOther is neither: a frame that came with a priority tag (VID
	// 0) leaves every port converted.
	formOther
)

// vlanFrame is the frame being delivered, as 802.1Q sees it. It is
// guarded by the network's mu and valid during one deliver.
type vlanFrame struct {
	vid uint16   // its VLAN
	pcp uint16   // the priority bits of its tag, kept when it is tagged again
	in  vlanForm // the form it came in
	// short: a packet shorter than an Ethernet header, which cannot
	// carry a tag: it reaches only the access ports of its VLAN.
	short bool
	// foreign: a tagged frame from a port without a VLAN setting, of a
	// VLAN it does not carry. It crosses as it is, as on an untouched
	// network, but only to other ports without a setting: a port that
	// joins a VLAN (vlan/VID/data, which needs no ctl right) must not
	// change what the others exchange. Its vid is 0, no VLAN's.
	foreign bool
	// src is the frame the forms in out were made of, when first needed.
	src *byte
	out [2][]byte
}

// frameTag reads the 802.1Q tag of an Ethernet frame: its TCI, whether it
// has one, and false if it has a tag's type but is too short for one.
func frameTag(f []byte) (tci uint16, tagged, ok bool) {
	if len(f) < ethHeaderLen || binary.BigEndian.Uint16(f[12:]) != etherTypeVLAN {
		return 0, false, true
	}
	if len(f) < ethHeaderLen+vlanTagLen {
		return 0, true, false
	}
	return binary.BigEndian.Uint16(f[14:]), true, true
}

// classifyVLAN finds the VLAN of frame, sent by from, into n.vf; false:
// the port does not carry it (or it is a tag cut short), and it is
// dropped and counted. Called with n.mu held, only while n.vlanOn.
func (n *Network) classifyVLAN(from *Port, frame []byte) bool {
	vf := &n.vf
	*vf = vlanFrame{}
	tci, tagged, ok := frameTag(frame)
	vid := tci & vidMask
	switch {
	case !ok && from.vlan != nil:
	case !ok:
		vf.vid, vf.in, vf.foreign = 0, formTagged, true // as it is, as below
		return true
	case !tagged:
		vf.vid, vf.in, vf.short = from.vlan.accessVID(), formUntagged, len(frame) < ethHeaderLen
		return true
	case vid == 0: // priority-tagged: untagged, with a priority
		vf.vid, vf.pcp, vf.in = from.vlan.accessVID(), tci&^vidMask, formOther
		return true
	case from.vlan.trunks(vid):
		vf.vid, vf.pcp, vf.in = vid, tci&^vidMask, formTagged
		return true
	case from.vlan == nil:
		vf.vid, vf.in, vf.foreign = 0, formTagged, true
		return true
	}
	n.vlanDrops++
	return false
}

// reaches reports whether the frame in n.vf is delivered to p.
func (vf *vlanFrame) reaches(p *Port) bool {
	if vf.foreign {
		return p.vlan == nil
	}
	if vf.short {
		return p.vlan.accessVID() == vf.vid
	}
	return p.vlan.carries(vf.vid)
}

// formFor is how the frame in n.vf leaves p, a port of its VLAN.
func (vf *vlanFrame) formFor(p *Port) vlanForm {
	if p.vlan.accessVID() == vf.vid {
		return formUntagged
	}
	return formTagged
}

// as returns f, the frame being delivered or one of its segments, in
// form: f itself if it came so, else a copy converted once per frame.
func (vf *vlanFrame) as(f []byte, form vlanForm) []byte {
	if form == vf.in || vf.short {
		return f
	}
	if vf.src != &f[0] {
		vf.src, vf.out = &f[0], [2][]byte{}
	}
	if vf.out[form] == nil {
		vf.out[form] = retag(f, 0, form, vf.vid|vf.pcp)
	}
	return vf.out[form]
}

// vlanOut is f as p gets it. Called with n.mu held. A converted form is
// charged as the frame is (its size differs by a tag): a frame that
// leaves in both forms holds at most three buffers where one is charged,
// still within every queue's qlen.
func (n *Network) vlanOut(p *Port, f []byte) []byte {
	if !n.vlanOn {
		return f
	}
	return n.vf.as(f, n.vf.formFor(p))
}

// vlanCaptured is f as pcap records it: tagged outside VLAN 1, so that
// `tcpdump vlan 10` selects VLAN 10, and untagged on VLAN 1, as on an
// untouched network. Called with n.mu held.
func (n *Network) vlanCaptured(f []byte) []byte {
	if !n.vlanOn {
		return f
	}
	if n.vf.vid == defaultVID {
		return n.vf.as(f, formUntagged)
	}
	return n.vf.as(f, formTagged)
}

// retag returns b, whose frame starts at off (after a virtio-net header,
// or 0), as a new buffer with the frame in form: untagged, or tagged with
// tci. The header is copied, and an offload's offsets follow the frame's
// headers as the tag comes or goes.
func retag(b []byte, off int, form vlanForm, tci uint16) []byte {
	f := b[off:]
	_, tagged, _ := frameTag(f)
	var out []byte
	switch {
	case form == formUntagged && tagged:
		out = make([]byte, len(b)-vlanTagLen)
		copy(out, b[:off+12])
		copy(out[off+12:], f[16:])
	case form == formUntagged:
		return b
	case tagged:
		out = append([]byte(nil), b...)
		binary.BigEndian.PutUint16(out[off+14:], tci)
	default:
		out = make([]byte, len(b)+vlanTagLen)
		copy(out, b[:off+12])
		binary.BigEndian.PutUint16(out[off+12:], etherTypeVLAN)
		binary.BigEndian.PutUint16(out[off+14:], tci)
		copy(out[off+16:], f[12:])
	}
	if off == vnet.HdrLen {
		if h := vnet.Decode(out); !h.Plain() {
			delta := len(out) - len(b)
			if h.Flags&vnet.FlagNeedsCsum != 0 {
				h.CsumStart = uint16(int(h.CsumStart) + delta)
			}
			if h.GSOType&^vnet.GSOECN != vnet.GSONone && h.HdrLen != 0 {
				h.HdrLen = uint16(int(h.HdrLen) + delta)
			}
			h.Encode(out)
		}
	}
	return out
}

// vlanEgress is what one transmit sends to links in another form than
// the frame came in, written once the network's mu is released.
type vlanEgress struct {
	tci   uint16     // the VLAN and priority of a tag it gets
	links [2][]*Port // by form
}

func (e *vlanEgress) reset() {
	e.links[formUntagged] = e.links[formUntagged][:0]
	e.links[formTagged] = e.links[formTagged][:0]
}

// route adds link port p, a receiver of the frame in n.vf, to e if it
// gets the frame in another form than it came in. Called with n.mu held.
func (e *vlanEgress) route(n *Network, p *Port) bool {
	if !n.vlanOn {
		return false
	}
	form := n.vf.formFor(p)
	if form == n.vf.in {
		return false
	}
	e.tci = n.vf.vid | n.vf.pcp
	e.links[form] = append(e.links[form], p)
	return true
}

// write writes raw (and frames, its segments, if it carries an offload)
// to e's links, converted, as writeLinks does.
func (e *vlanEgress) write(n *Network, raw []byte, frames [][]byte, plain bool) {
	for form, links := range e.links {
		if len(links) == 0 {
			continue
		}
		var segs [][]byte
		if !plain && slices.ContainsFunc(links, func(p *Port) bool { return p.caps&link.CapGSO == 0 }) {
			for _, f := range frames {
				segs = append(segs, retag(f, 0, vlanForm(form), e.tci))
			}
		}
		n.writeLinks(links, retag(raw, vnet.HdrLen, vlanForm(form), e.tci), segs, plain)
	}
}

// batchRuns appends to runs and links what a stream's batch writes to
// e's links for frames[i], a plain frame written to a stream file: the
// frame in each other form, made now, after the frame as it is, so that
// each link gets a batch's frames in order. Called with n.mu held.
func (e *vlanEgress) batchRuns(i int, frame []byte, runs []linkRun, links []*Port) ([]linkRun, []*Port) {
	for form, ls := range e.links {
		if len(ls) == 0 {
			continue
		}
		raw := make([]byte, vnet.HdrLen+len(frame))
		copy(raw[vnet.HdrLen:], frame)
		at := len(links)
		links = append(links, ls...)
		runs = append(runs, linkRun{frame: i, from: at, to: len(links), raw: retag(raw, vnet.HdrLen, vlanForm(form), e.tci)})
	}
	return runs, links
}

// vlanRecount sets vlanOn: whether any port has a VLAN setting. Called
// with n.mu held.
func (n *Network) vlanRecount() {
	n.vlanOn = slices.ContainsFunc(n.portList, func(p *Port) bool { return p.vlan != nil })
}

// setPortVLAN gives p setting v; what the switch learned on p is
// forgotten if it changed. Called with n.mu held.
func (n *Network) setPortVLAN(p *Port, v *portVLAN) {
	if sameVLAN(p.vlan, v) {
		return
	}
	p.vlan = v
	n.fdb.forget(p)
}

// svcKey is the key of a service's port number in n.svcVLANs ("vde:5").
func svcKey(svc string, num int) string { return svc + ":" + strconv.Itoa(num) }

// svcPortKey is p's key in n.svcVLANs, or "" if p is not a numbered port
// of a service.
func (p *Port) svcPortKey() string {
	if p.svcNum == 0 || p.kind == nil {
		return ""
	}
	return svcKey(p.kind.Name, p.svcNum)
}

// vlanCommand is a parsed vlan or trunk line.
type vlanCommand struct {
	port   portRef
	trunk  bool
	access uint16
	set    *vidSet
}

func (c *vlanCommand) change(v *portVLAN) *portVLAN {
	if c.trunk {
		return withTrunk(v, c.set)
	}
	return withAccess(v, c.access)
}

// parseVLANLine reads "vlan PORT VID" or "trunk PORT VID[,VID...]|all|none";
// a comment (as ctl shows a waiting attachment's) is ignored.
func parseVLANLine(word, arg string) (*vlanCommand, *ctlError) {
	f := strings.Fields(uncomment(arg))
	if len(f) != 2 {
		if word == "vlan" {
			return nil, ctlErr(syscall.EINVAL, "want vlan PORT VID")
		}
		return nil, ctlErr(syscall.EINVAL, "want trunk PORT VID[,VID...]|all|none")
	}
	port, bad := parsePortRef(f[0])
	if bad != nil {
		return nil, bad
	}
	c := &vlanCommand{port: port, trunk: word == "trunk"}
	if c.trunk {
		set, err := parseVIDList(f[1])
		if err != nil {
			return nil, ctlErr(syscall.EINVAL, "%v", err)
		}
		c.set = set
		return c, nil
	}
	vid, ok := parseVID(f[1])
	if !ok {
		return nil, ctlErr(syscall.EINVAL, "%q is not a VLAN ID 1..4094", f[1])
	}
	c.access = vid
	return c, nil
}

// checkVLANLocked checks that the PORT of a vlan or trunk line names a
// port (checkPortRefLocked) or a service port number; svcNew counts the
// service numbers the write gives a first setting. Called with n.mu held.
func (n *Network) checkVLANLocked(cmd ctlCommand, attached map[linkKey]bool, svcNew map[string]bool) *ctlError {
	c := cmd.vlan
	if c.port.svc == "" {
		return n.checkPortRefLocked(c.port, attached, cmd.line)
	}
	k := svcKey(c.port.svc, c.port.num)
	if _, ok := n.svcVLANs[k]; !ok && !svcNew[k] {
		if len(n.svcVLANs)+len(svcNew) >= maxSvcVLANs {
			return ctlErr(syscall.EINVAL, "%s: settings for %d %s port numbers already, the most a network keeps",
				cmd.line, maxSvcVLANs, c.port.svc)
		}
		svcNew[k] = true
	}
	return nil
}

// apply applies a vlan or trunk line checked by checkVLANLocked. Called
// with n.mu held.
func (c *vlanCommand) apply(n *Network) *ctlError {
	if c.port.svc != "" {
		k := svcKey(c.port.svc, c.port.num)
		v := c.change(n.svcVLANs[k])
		if v == nil {
			delete(n.svcVLANs, k)
		} else {
			if n.svcVLANs == nil {
				n.svcVLANs = map[string]*portVLAN{}
			}
			n.svcVLANs[k] = v
		}
		for _, p := range n.portList {
			if p.svcPortKey() == k {
				n.setPortVLAN(p, v)
			}
		}
	} else if p := n.portOfRefLocked(c.port); p != nil {
		n.setPortVLAN(p, c.change(p.vlan))
		if c.port.id > 0 {
			p.vlanCtl = true
		}
	}
	n.vlanRecount()
	return nil
}

// vlanCtlLines are the vlan and trunk lines reading ctl shows, after the
// attachments: for attachments (those waiting for their namespace with
// a comment that says so), for service port numbers and for ports set
// by number. Called with n.mu held.
func (n *Network) vlanCtlLines(b *strings.Builder) {
	write := func(port string, v *portVLAN, comment string) {
		if v.accessVID() != defaultVID {
			fmt.Fprintf(b, "vlan %s %d%s\n", port, v.accessVID(), comment)
		}
		if v != nil && v.trunk != nil {
			fmt.Fprintf(b, "trunk %s %s%s\n", port, v.trunk, comment)
		}
	}
	for _, p := range n.portList {
		switch {
		case p.vlan == nil:
		case p.spec != nil:
			write(portRefOf(p), p.vlan, "")
		case p.vlanCtl:
			write("#"+strconv.Itoa(p.id), p.vlan, "")
		}
	}
	for _, w := range n.waiting {
		var s savedVLAN
		if json.Unmarshal(w.raw, &s) == nil {
			if v, err := s.setting(); err == nil {
				write(attachmentRef(w.kind, w.spec), v, " # waiting")
			}
		}
	}
	keys := make([]string, 0, len(n.svcVLANs))
	for k := range n.svcVLANs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		sa, na, _ := strings.Cut(a, ":")
		sb, nb, _ := strings.Cut(b, ":")
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		ia, _ := strconv.Atoi(na)
		ib, _ := strconv.Atoi(nb)
		return ia - ib
	})
	for _, k := range keys {
		write(k, n.svcVLANs[k], "")
	}
}

// joinedService gives p, a service's port with number num (0: none),
// the setting kept for that number. Called with n.mu held.
func (n *Network) joinedService(p *Port, num int) {
	p.svcNum = num
	if k := p.svcPortKey(); k != "" {
		if v := n.svcVLANs[k]; v != nil {
			p.vlan = v
			n.vlanOn = true
		}
	}
}

// savedVLAN is a VLAN setting in the state file: beside an attachment's
// fields, and for each service port number.
type savedVLAN struct {
	VLAN  uint16 `json:"vlan,omitempty"`
	Trunk string `json:"trunk,omitempty"`
}

func (v *portVLAN) saved() savedVLAN {
	if v == nil {
		return savedVLAN{}
	}
	s := savedVLAN{VLAN: v.access}
	if s.VLAN == defaultVID {
		s.VLAN = 0
	}
	if v.trunk != nil {
		s.Trunk = v.trunk.String()
	}
	return s
}

func (s savedVLAN) setting() (*portVLAN, error) {
	v := &portVLAN{access: defaultVID}
	if s.VLAN != 0 {
		if s.VLAN > maxVID {
			return nil, fmt.Errorf("vlan %d is not a VLAN ID 1..4094", s.VLAN)
		}
		v.access = s.VLAN
	}
	if s.Trunk != "" {
		set, err := parseVIDList(s.Trunk)
		if err != nil {
			return nil, err
		}
		v.trunk = set
	}
	return v.normal(), nil
}

// addVLANFields adds v to the fields an attachment is saved with.
func addVLANFields(fields map[string]json.RawMessage, v *portVLAN) {
	delete(fields, "vlan")
	delete(fields, "trunk")
	s := v.saved()
	if s.VLAN != 0 {
		fields["vlan"], _ = json.Marshal(s.VLAN)
	}
	if s.Trunk != "" {
		fields["trunk"], _ = json.Marshal(s.Trunk)
	}
}

// restoredVLAN is the setting saved with an attachment; a bad one is
// logged and the port is left at the default.
func (n *Network) restoredVLAN(raw json.RawMessage) *portVLAN {
	var s savedVLAN
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	v, err := s.setting()
	if err != nil {
		n.fam.log.Error("state file: bad VLAN setting of an attachment, left at the default", "network", n.name, "err", err)
		return nil
	}
	return v
}

// savedSvcVLANs is what the state file keeps of the service port numbers'
// settings. Called with n.mu held.
func (n *Network) savedSvcVLANs() map[string]savedVLAN {
	if len(n.svcVLANs) == 0 {
		return nil
	}
	out := make(map[string]savedVLAN, len(n.svcVLANs))
	for k, v := range n.svcVLANs {
		out[k] = v.saved()
	}
	return out
}

// restoreSvcVLANs takes the service port numbers' settings back from the
// state file; a bad one is logged and left out.
func (n *Network) restoreSvcVLANs(saved map[string]savedVLAN) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, s := range saved {
		port, bad := parsePortRef(k)
		v, err := s.setting()
		switch {
		case bad != nil || port.svc == "" || svcKey(port.svc, port.num) != k:
			n.fam.log.Error("state file: bad VLAN port, skipped", "network", n.name, "port", k)
		case err != nil:
			n.fam.log.Error("state file: bad VLAN setting, skipped", "network", n.name, "port", k, "err", err)
		case v != nil && len(n.svcVLANs) < maxSvcVLANs:
			if n.svcVLANs == nil {
				n.svcVLANs = map[string]*portVLAN{}
			}
			n.svcVLANs[k] = v
		}
	}
}
