// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// The resources ipn counts for the owner of a network, per uid and in
// all (netcore.Quota, shared with the other families).
var (
	// Networks are the networks each uid owns.
	Networks = netcore.RegisterResource(netcore.ResourceSpec{Name: "networks", Owner: "ipn",
		PerUid: 256, Global: 4096, Flag: "max-networks-per-uid", GlobalFlag: "max-networks",
		Usage:       "IPN networks one uid may own (default 256; ENOSPC)",
		GlobalUsage: "networks in all (default 4096; ENOSPC)",
		Refusal:     syscall.ENOSPC, GlobalRefusal: syscall.ENOSPC})
	// PersistentNetworks are networks with persist on, bounded per uid
	// only (they are networks too), counted by ipn itself when persist
	// is turned on rather than charged.
	PersistentNetworks = netcore.RegisterResource(netcore.ResourceSpec{Name: "persistent-networks", Owner: "ipn",
		PerUid: 32, Flag: "max-persistent-per-uid",
		Usage:   "of which persistent (default 32; ENOSPC)",
		Refusal: syscall.ENOSPC})
)

func init() {
	netcore.Register("ipn", func(env *netcore.Env) (netcore.Family, error) {
		f, err := newIPN(env)
		if err != nil {
			return nil, err // not f: a nil *ipnFamily would be a non-nil Family
		}
		return f, nil
	})
	// ipn reads it: a persistent attachment is kept by the name of its
	// namespace.
	netcore.RegisterFlag(netcore.Flag{Name: netns.DirFlag, Default: netns.DefaultDir, Arg: "DIR[:DIR...]",
		Usage: "where named network namespaces are (default " + netns.DefaultDir + "):\n" +
			"a persistent attachment made in another namespace than the\n" +
			"daemon's is kept only if that namespace has a name there",
		Option: "netns_dir", CheckOption: netcore.AbsolutePaths})
}

type ipnFamily struct {
	env   *netcore.Env
	log   *slog.Logger
	dir   *ipnDir
	state *stateFile

	mu   sync.Mutex
	nets map[string]*Network
	// claims are what links of any network hold (interfaces), by key.
	claims map[string]linkClaim
	// services are the registered services (package link), by name; set
	// up once, at start.
	services []*service

	// saveMu orders saves: the list a save builds is the one it writes, and
	// a later save's list is never overwritten by an earlier one.
	saveMu sync.Mutex
	// persistMu is held from the per-uid check of a "persist on" to its
	// apply, so that two writes cannot both pass the check; it is taken
	// before f.mu and any network's lock.
	persistMu sync.Mutex
	// quota counts networks for their owners and the bytes that wait in
	// ports' queues, with every other family's charges.
	quota *netcore.Quota

	// netnsDirs are where named network namespaces are (--netns-dir).
	netnsDirs []string
	// done is closed when the family closes (Close may be called twice).
	done     chan struct{}
	doneOnce sync.Once
}

var (
	_ netcore.Family  = (*ipnFamily)(nil)
	_ netcore.Readmer = (*ipnFamily)(nil)
	_ netcore.Dir     = (*ipnDir)(nil)
	_ netcore.Mkdirer = (*ipnDir)(nil)
	_ netcore.Rmdirer = (*ipnDir)(nil)
	_ netcore.Dir     = (*netDir)(nil)
	_ netcore.Owned   = (*netDir)(nil)
	_ netcore.File    = (*netFile)(nil)
	_ netcore.Handle  = (*dataHandle)(nil)
	_ netcore.Handle  = (*pcapHandle)(nil)
	_ netcore.Poller  = (*dataHandle)(nil)
	_ netcore.Poller  = (*pcapHandle)(nil)
	_ netcore.Handle  = (*ctlHandle)(nil)
)

func newIPN(env *netcore.Env) (*ipnFamily, error) {
	for _, k := range link.Kinds() {
		if ctlWords[k.Name] {
			return nil, fmt.Errorf("link kind %q is also a ctl word of ipn", k.Name)
		}
	}
	for _, s := range link.Services() {
		if ctlWords[s.Name] {
			return nil, fmt.Errorf("service %q is also a ctl word of ipn", s.Name)
		}
	}
	for _, e := range link.Extensions() {
		for _, w := range e.Words {
			if ctlWords[w] {
				return nil, fmt.Errorf("extension %s's word %q is also a ctl word of ipn", e.Name, w)
			}
		}
	}
	f := &ipnFamily{env: env, log: env.Log.With("family", "ipn"), nets: make(map[string]*Network),
		claims: make(map[string]linkClaim), quota: env.Quota,
		netnsDirs: netns.Dirs(env.Flags[netns.DirFlag]), done: make(chan struct{})}
	if f.quota == nil {
		f.quota = netcore.NewQuota(env.Limits, env.Log)
	}
	f.dir = &ipnDir{id: netcore.NewID(), f: f, mtime: time.Now()}
	f.state = &stateFile{path: env.StatePath}
	f.openServices()
	saved, err := f.state.load()
	if err != nil {
		// A broken state file must not keep the daemon from serving, nor
		// be overwritten by the next save: it is moved aside for a person.
		aside := f.state.moveAside()
		f.log.Error("state file unreadable; starting without saved networks", "path", env.StatePath, "err", err, "moved-to", aside)
	}
	waiting := false
	for _, s := range saved {
		if !netcore.ValidName(s.Name) {
			f.log.Error("state file: bad network name, skipped", "network", s.Name)
			continue
		}
		s.Settings.Persist = true
		if err := checkSettings(s.Settings); err != nil {
			f.log.Error("state file: bad settings, network skipped", "network", s.Name, "err", err)
			continue
		}
		if f.nets[s.Name] != nil {
			// A second network of one name would replace the first
			// and leave its attachments open with nothing to close them.
			f.log.Error("state file: network listed twice, the first kept", "network", s.Name)
			continue
		}
		n := newNetwork(f, s.Name, s.Uid, s.Gid, s.Mode, s.Settings)
		n.owner.Force(Networks, 1) // it exists: counted, whatever the limits
		f.nets[s.Name] = n
		f.log.Info("network restored", "network", s.Name)
		n.restoreExts(s.Ext)
		n.restoreSvcVLANs(s.VLANs)
		if n.restoreLinks(s.Links) {
			waiting = true
		}
		n.restoreImpairs(s.Impair)
		n.syncServices()
	}
	if waiting {
		go f.retryWaiting(WaitingRetry)
	}
	return f, nil
}

func (f *ipnFamily) Name() string { return "ipn" }
func (f *ipnFamily) Description() string {
	return "Inter Process Networking: hub and switch networks joined by files"
}
func (f *ipnFamily) Root() netcore.Dir { return f.dir }

// Readme is ipn's part of the README at the root of the mount.
func (f *ipnFamily) Readme() string { return readme }

const readme = `  ipn/                  IPN networks; mkdir ipn/NAME creates one, rmdir destroys it
  ipn/NAME/data         each open() is a port: one write sends one packet, one read receives one
  ipn/NAME/stream       the same, as a byte stream of frames, each a 2-byte big-endian length
                        then the packet (VDE's stream format: cat, socat, dpipe vde_plug)
  ipn/NAME/ctl          read: settings; write: commands, one per line:
                          policy hub|switch   mtu N   qlen N   lossless on|off
                          maxports N   descr TEXT   persist on|off
                          tap IFNAME   grab IFNAME   detach IFNAME   vde on|off
                          vxlan VNI REMOTE[:PORT]...   vxlan VNI group MCAST[:PORT] [dev IFNAME]
                          detach vxlan VNI
                          addr CIDR   addr -CIDR   mac XX:XX:XX:XX:XX:XX
                          impair PORT|all [delay D] [jitter J] [loss P%] [dup P%] [reorder P%]
                                 [corrupt P%] [rate R] [limit N] [seed N]   impair PORT|all off
  ipn/NAME/vlan/VID/data, .../stream  a port of VLAN VID (untagged); ctl: vlan PORT VID, trunk PORT VIDS|all|none
  ipn/NAME/ports        table of ports
  ipn/NAME/stats        counters
  ipn/NAME/pcap         live capture in pcap format: tcpdump -r ipn/NAME/pcap
  ipn/NAME/udp/HOST/PORT  UDP through mnet's own host on the network (after addr), as inet/udp
  ipn/NAME/host         that host: MAC, addresses, neighbours, counters
  Rights come from the mode of ipn/NAME: r = receive, w = send, x = manage
  (mkdir gives group and others no x: chmod g+x ipn/NAME grants it).
  Example:
    mkdir /mnt/mnet/ipn/lab
    cat /mnt/mnet/ipn/lab/data &
    echo hello > /mnt/mnet/ipn/lab/data
`

func (f *ipnFamily) Close() {
	f.doneOnce.Do(func() { close(f.done) })
	f.mu.Lock()
	nets := make([]*Network, 0, len(f.nets))
	persist := false
	for _, n := range f.nets {
		nets = append(nets, n)
		n.mu.Lock()
		persist = persist || n.set.Persist && !n.closed
		n.mu.Unlock()
	}
	f.mu.Unlock()
	if persist {
		// Once more, for where the TAPs are now: moved into other
		// namespaces since they were attached, they are looked for there
		// at the next start.
		f.saveState()
	}
	for _, n := range nets {
		n.shutdown(true)
	}
	f.closeServices()
}

// network returns the network called name, or nil.
func (f *ipnFamily) network(name string) *Network {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nets[name]
}

// saveState writes every persistent network to the state file. A failure
// is logged and returned.
func (f *ipnFamily) saveState() error {
	f.saveMu.Lock()
	defer f.saveMu.Unlock()
	f.mu.Lock()
	var saved []savedNetwork
	for _, n := range f.nets {
		n.mu.Lock()
		if n.set.Persist && !n.closed {
			saved = append(saved, savedNetwork{Name: n.name, Uid: n.uid, Gid: n.gid, Mode: n.mode, Settings: n.set,
				Links: n.savedLinksLocked(), Ext: n.savedExts(), Impair: n.impairLinesLocked(true),
				VLANs: n.savedSvcVLANs()})
		}
		n.mu.Unlock()
	}
	f.mu.Unlock()
	sort.Slice(saved, func(i, j int) bool { return saved[i].Name < saved[j].Name })
	err := f.state.save(saved)
	if err != nil {
		f.log.Error("cannot write state file", "path", f.state.path, "err", err)
	}
	return err
}

// ipnDir is the family directory, mode 1777: anyone may create a network.
type ipnDir struct {
	id    uint64
	f     *ipnFamily
	mtime time.Time // guarded by f.mu
}

func (d *ipnDir) ID() uint64 { return d.id }

func (d *ipnDir) Attr(*netcore.Cred) netcore.Attr {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	return netcore.Attr{Mode: syscall.S_IFDIR | syscall.S_ISVTX | 0777, Mtime: d.mtime}
}

func (d *ipnDir) List(*netcore.Cred) []netcore.DirEntry {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	ents := make([]netcore.DirEntry, 0, len(d.f.nets))
	for name, n := range d.f.nets {
		ents = append(ents, netcore.DirEntry{Name: name, Node: n.dir})
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents
}

func (d *ipnDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	if n := d.f.network(name); n != nil {
		return n.dir, nil
	}
	return nil, syscall.ENOENT
}

func (d *ipnDir) Mkdir(c *netcore.Cred, name string, mode uint32) (netcore.Node, error) {
	if !netcore.ValidName(name) {
		d.f.log.Info("mkdir refused: bad network name", "name", name, "uid", c.Uid)
		return nil, syscall.EINVAL
	}
	if d.f.network(name) != nil {
		return nil, syscall.EEXIST
	}
	// Counted for its owner, per uid and in all; the quota logs a
	// refusal.
	payer := d.f.quota.PayerOf(c)
	if err := payer.Take(Networks, 1); err != nil {
		return nil, err
	}
	d.f.mu.Lock()
	if _, ok := d.f.nets[name]; ok {
		d.f.mu.Unlock()
		payer.Release(Networks, 1)
		return nil, syscall.EEXIST
	}
	n := newNetwork(d.f, name, c.Uid, c.Gid, netcore.NewDirMode(mode), DefaultSettings())
	d.f.nets[name] = n
	d.mtime = time.Now()
	d.f.mu.Unlock()
	d.f.log.Info("network created", "network", name, "uid", c.Uid, "gid", c.Gid, "mode", octal(n.mode))
	// A service that cannot serve leaves the network without it, with
	// last-error saying why.
	n.syncServices()
	return n.dir, nil
}

func (d *ipnDir) Rmdir(c *netcore.Cred, name string) error {
	n := d.f.network(name)
	if n == nil {
		return syscall.ENOENT
	}
	if n.rights(c, RightManage)&RightManage == 0 {
		d.f.log.Info("rmdir refused: no manage right", "network", name, "uid", c.Uid)
		return syscall.EACCES
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return syscall.ENOENT // another rmdir got there first
	}
	if ports := n.filePorts(); ports > 0 || n.extBusy() {
		n.mu.Unlock()
		d.f.log.Info("rmdir refused: ports open", "network", name, "uid", c.Uid, "ports", ports)
		return syscall.EBUSY
	}
	persist := n.set.Persist
	n.closed = true // opens racing with us now fail
	n.owner.Release(Networks, 1)
	n.mu.Unlock()

	d.f.mu.Lock()
	if d.f.nets[name] == n {
		delete(d.f.nets, name)
	}
	d.mtime = time.Now()
	d.f.mu.Unlock()
	n.shutdown(false)
	if persist {
		d.f.saveState()
	}
	d.f.log.Info("network removed", "network", name, "uid", c.Uid)
	return nil
}

// ownedLocked counts the networks uid owns, and how many of them persist,
// leaving skip out. Called with f.mu held; takes each network's lock.
func (f *ipnFamily) ownedLocked(uid uint32, skip *Network) (owned, persistent int) {
	for _, n := range f.nets {
		if n == skip {
			continue
		}
		n.mu.Lock()
		if n.uid == uid && !n.closed {
			owned++
			if n.set.Persist {
				persistent++
			}
		}
		n.mu.Unlock()
	}
	return owned, persistent
}

// octal formats a mode for logs.
func octal(mode uint32) string { return fmt.Sprintf("%04o", mode) }

// netDir is ipn/NAME.
type netDir struct {
	id uint64
	n  *Network
}

func (d *netDir) ID() uint64 { return d.id }

func (d *netDir) Attr(*netcore.Cred) netcore.Attr {
	n := d.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return netcore.Attr{Mode: syscall.S_IFDIR | n.mode, Uid: n.uid, Gid: n.gid, Mtime: n.mtime}
}

func (d *netDir) List(*netcore.Cred) []netcore.DirEntry {
	n := d.n
	files := []*netFile{n.ctl, n.data, n.pcap, n.ports, n.stats, n.stream}
	ents := make([]netcore.DirEntry, len(files))
	for i, f := range files {
		ents[i] = netcore.DirEntry{Name: f.kind.String(), Node: f}
	}
	ents = append(ents, netcore.DirEntry{Name: "vlan", Node: n.vlanDir})
	return append(ents, n.extEntries()...)
}

func (d *netDir) Lookup(c *netcore.Cred, name string) (netcore.Node, error) {
	return netcore.LookupListed(d, c, name)
}

// Chmod: the owner or a holder of CAP_FOWNER, as on any file.
func (d *netDir) Chmod(c *netcore.Cred, mode uint32) error {
	n := d.n
	var persist bool
	err := netcore.ChangeMode(&n.mu, c, &n.uid, func() {
		n.mode = mode & 0777
		n.mtime = time.Now()
		persist = n.set.Persist
	})
	if err != nil {
		n.fam.log.Info("chmod refused: not the owner", "network", n.name, "uid", c.Uid)
		return err
	}
	n.fam.log.Info("network mode changed", "network", n.name, "mode", octal(mode&0777), "uid", c.Uid)
	n.accessChanged()
	if persist {
		n.fam.saveState()
	}
	return nil
}

// Chown: a holder of CAP_CHOWN may give the network to anyone; the owner
// may only change the group, to one of its own groups (chown(2) rules).
func (d *netDir) Chown(c *netcore.Cred, uid, gid int64) error {
	n := d.n
	var persist bool
	err := netcore.ChangeOwner(&n.mu, c, &n.uid, &n.gid, uid, gid, func(uint32) {
		if n.owner.Uid() != n.uid {
			// The network is counted for its new owner, past its
			// limit if need be: only root gives networks away.
			n.owner.Release(Networks, 1)
			n.owner = n.fam.quota.Payer(n.uid, false)
			n.owner.Force(Networks, 1)
		}
		n.mtime = time.Now()
		persist = n.set.Persist
	})
	if err != nil {
		n.fam.log.Info("chown refused", "network", n.name, "uid", c.Uid, "owner", uid, "group", gid)
		return err
	}
	n.fam.log.Info("network owner changed", "network", n.name, "owner", uid, "group", gid, "uid", c.Uid)
	n.accessChanged()
	if persist {
		n.fam.saveState()
	}
	return nil
}

// netFile is one of the files in a network directory.
type netFile struct {
	id   uint64
	n    *Network
	kind fileKind
	// vlan is the VLAN whose access ports it opens (vlan/VID/); 0
	// for the network's own files, whose ports are of VLAN 1.
	vlan uint16
}

// fileKind says which file of a network a netFile is.
type fileKind int

const (
	fileData fileKind = iota
	fileCtl
	filePorts
	fileStats
	filePcap
	fileStream
)

// String is the file's name in the network directory.
func (k fileKind) String() string {
	return [...]string{"data", "ctl", "ports", "stats", "pcap", "stream"}[k]
}

func (f *netFile) ID() uint64 { return f.id }

// netcore.Attr derives the file's mode from the network's: data shows the r and w
// rights of each class, ctl shows w where x (manage) is held, and every file
// is readable where any right is, so ls -l and test -r/-w tell the truth.
func (f *netFile) Attr(*netcore.Cred) netcore.Attr {
	n := f.n
	n.mu.Lock()
	mode, uid, gid, mtime := n.mode, n.uid, n.gid, n.mtime
	n.mu.Unlock()
	var perm uint32
	for shift := 0; shift <= 6; shift += 3 {
		class := mode >> shift & 7
		var bits uint32
		switch f.kind {
		case fileData, fileStream:
			bits = class & 6
		case fileCtl:
			if class != 0 {
				bits |= 4
			}
			if class&1 != 0 {
				bits |= 2
			}
		default:
			if class != 0 {
				bits = 4
			}
		}
		perm |= bits << shift
	}
	return netcore.Attr{Mode: syscall.S_IFREG | perm, Uid: uid, Gid: gid, Mtime: mtime}
}

// ReadOnly: ports, stats and pcap are never opened for writing.
func (f *netFile) ReadOnly() bool {
	return f.kind == filePorts || f.kind == fileStats || f.kind == filePcap
}

// Open opens the file for c; a refusal is logged with who asked for what.
func (f *netFile) Open(ctx context.Context, c *netcore.Cred, flags int) (netcore.Handle, error) {
	h, err := f.open(c, flags)
	if err != nil {
		f.n.fam.log.Info("open refused", "network", f.n.name, "file", f.kind.String(), "uid", c.Uid, "pid", c.Pid,
			"flags", fmt.Sprintf("%#x", flags), "err", err.Error())
	}
	return h, err
}

func (f *netFile) open(c *netcore.Cred, flags int) (netcore.Handle, error) {
	n := f.n
	acc := flags & syscall.O_ACCMODE
	r := n.rights(c, wantedRights(f.kind, acc))
	switch f.kind {
	case fileData, fileStream:
		return f.openPort(c, r, acc)
	case fileCtl:
		if r == 0 || (acc != syscall.O_RDONLY && r&RightManage == 0) {
			return nil, syscall.EACCES
		}
		h := &ctlHandle{n: n, write: acc != syscall.O_RDONLY, text: netcore.Snapshot{Make: n.ctlRead}}
		if h.write {
			// Writes act with the opener's capabilities and in its
			// network namespace, both taken now, while the opener is
			// blocked in open(2) and its pid names it (as the kernel
			// keeps a file's opener credentials): a later write never
			// looks the pid up, which may name another process by then.
			// A namespace the daemon cannot see stays nil (EACCES for
			// what needs it).
			c.Pin()
			h.ns, _ = netns.OfTask(c.Pid)
			if h.ns != nil && !h.ns.Self() {
				// The namespace is held open, by a descriptor of the
				// daemon's: it counts as a socket of the opener's, so
				// opens from ever new namespaces cannot use up the
				// daemon's descriptors.
				h.payer = n.fam.quota.PayerOf(c)
				if err := h.payer.Take(netcore.Sockets, 1); err != nil {
					h.ns.Close()
					return nil, err
				}
			}
		}
		h.cred = *c
		return h, nil
	}
	if r == 0 {
		return nil, syscall.EACCES
	}
	if acc != syscall.O_RDONLY {
		return nil, syscall.EACCES
	}
	switch f.kind {
	case filePorts:
		return &netcore.TextHandle{Data: n.portsText()}, nil
	case fileStats:
		return &netcore.TextHandle{Data: n.statsText()}, nil
	case filePcap:
		cp, err := n.startCapture(n.fam.quota.PayerOf(c))
		if err != nil {
			return nil, err
		}
		return &pcapHandle{n: n, c: cp}, nil
	}
	return nil, syscall.EINVAL
}

// wantedRights is what an open of a file of kind with access mode acc
// asks for: data and stream r and/or w, ctl written x, anything else any
// right (0).
func wantedRights(kind fileKind, acc int) Rights {
	port := kind == fileData || kind == fileStream
	switch {
	case port && acc == syscall.O_RDONLY:
		return RightRecv
	case port && acc == syscall.O_WRONLY:
		return RightSend
	case port:
		return RightRecv | RightSend
	case kind == fileCtl && acc != syscall.O_RDONLY:
		return RightManage
	}
	return 0
}

// openPort joins the network through the data or the stream file.
func (f *netFile) openPort(c *netcore.Cred, r Rights, acc int) (netcore.Handle, error) {
	n := f.n
	p, err := joinFile(c, r, acc, func(recv, send bool) (*Port, error) {
		return n.join(n.fam.quota.PayerOfCheap(c), c.Pid, "", recv, send, accessPort(f.vlan))
	})
	if err != nil {
		return nil, err
	}
	n.fam.log.Debug("port joined", "network", n.name, "file", f.kind.String(), "port", p.id, "uid", c.Uid, "pid", c.Pid,
		"recv", p.recv, "send", p.send)
	if f.kind == fileStream {
		return newStreamHandle(p), nil
	}
	return &dataHandle{p: p}, nil
}

// joinFile is an open of a file that joins a port (data, stream, and
// those of a VLAN): c opened it with access mode acc holding rights r,
// and join makes the port with the halves it gets. A caller holding only
// one of r and w gets a port of that half even for O_RDWR (IPN's
// automatic shutdown); without the right it asked for, EACCES.
func joinFile(c *netcore.Cred, r Rights, acc int, join func(recv, send bool) (*Port, error)) (*Port, error) {
	wantRecv := acc == syscall.O_RDONLY || acc == syscall.O_RDWR
	wantSend := acc == syscall.O_WRONLY || acc == syscall.O_RDWR
	recv := wantRecv && r&RightRecv != 0
	send := wantSend && r&RightSend != 0
	if (wantRecv && !recv && acc != syscall.O_RDWR) || (wantSend && !send && acc != syscall.O_RDWR) || (!recv && !send) {
		return nil, syscall.EACCES
	}
	return join(recv, send)
}

type dataHandle struct{ p *Port }

func (h *dataHandle) Read(ctx context.Context, b []byte, _ int64, nonblock bool) (int, error) {
	return h.p.Recv(ctx, b, nonblock)
}

func (h *dataHandle) Write(ctx context.Context, b []byte, _ int64, nonblock bool) (int, error) {
	if err := h.p.Send(ctx, b, nonblock); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (h *dataHandle) Poll(events uint32, wake func()) uint32 { return h.p.Poll(events, wake) }

func (h *dataHandle) Close() {
	h.p.Close()
	h.p.net.fam.log.Debug("port left", "network", h.p.net.name, "port", h.p.id)
}

type pcapHandle struct {
	n *Network
	c *capture
}

func (h *pcapHandle) Read(ctx context.Context, b []byte, _ int64, nonblock bool) (int, error) {
	return h.c.read(ctx, b, nonblock)
}

func (h *pcapHandle) Write(context.Context, []byte, int64, bool) (int, error) {
	return 0, syscall.EBADF
}

func (h *pcapHandle) Poll(events uint32, wake func()) uint32 { return h.c.poll(events, wake) }

func (h *pcapHandle) Close() { h.n.stopCapture(h.c) }

// ctlHandle reads the settings (made afresh at offset 0) and applies
// commands written to it.
type ctlHandle struct {
	n     *Network
	cred  netcore.Cred   // of the opener, pinned: rights are those of whoever opened ctl
	ns    *netns.NS      // the opener's network namespace, held open; nil if not seen
	payer *netcore.Payer // charged a socket for ns if it is not the daemon's
	write bool
	text  netcore.Snapshot
}

func (h *ctlHandle) Read(ctx context.Context, b []byte, off int64, nonblock bool) (int, error) {
	return h.text.Read(ctx, b, off, nonblock)
}

func (h *ctlHandle) Write(_ context.Context, b []byte, _ int64, _ bool) (int, error) {
	return netcore.CtlWrite(b, h.write, func(reason string, errno error) { h.n.refuseCtl(&h.cred, reason, errno) },
		func(text string) error { return h.n.applyCtl(&h.cred, h.ns, text) })
}

func (h *ctlHandle) Close() {
	if h.ns != nil {
		h.ns.Close()
		h.ns = nil
	}
	if h.payer != nil {
		h.payer.Release(netcore.Sockets, 1)
		h.payer = nil
	}
}
