// Package inet is the inet and inet6 families: UDP and TCP through kernel
// sockets, one socket per open file, at inet/udp/HOST/PORT and
// inet/tcp/HOST/PORT (and the same under inet6/), the way mnet handed
// AF_INET to the kernel and bash's /dev/udp works, for every program.
package inet

import (
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mnet-project/mnet/netcore"
)

func init() {
	netcore.Register("inet", func(env *netcore.Env) (netcore.Family, error) { return newFamily(env, v4), nil })
	netcore.Register("inet6", func(env *netcore.Env) (netcore.Family, error) { return newFamily(env, v6), nil })
}

// maxNodes bounds the cached HOST and PORT nodes of one family. They are
// cached so that a name keeps its inode number; past the bound the nodes
// of names with no open file are dropped (a later lookup of such a name
// gets a new inode number, which the kernel handles like a file replaced
// under that name). Open files (sockets, bounded by the quota) hold at
// most two nodes each.
const maxNodes = 4*4096 + 1024

// Family is inet or inet6.
type Family struct {
	v     *version
	log   *slog.Logger
	root  *familyDir
	udp   *protoDir
	tcp   *protoDir
	start time.Time

	mu     sync.Mutex
	closed bool
	socks  map[*sock]struct{} // open, for Close
	// quota counts the sockets open or being opened, for their uid,
	// with those of every other family.
	quota     *netcore.Quota
	listeners map[listenerKey]*listener
	nodes     int // cached hostDirs and portFiles
}

func newFamily(env *netcore.Env, v *version) *Family {
	f := &Family{v: v, log: env.Log.With("family", v.family), start: time.Now(),
		socks: make(map[*sock]struct{}), listeners: make(map[listenerKey]*listener),
		quota: env.Quota}
	if f.quota == nil {
		f.quota = netcore.NewQuota(env.Limits, env.Log)
	}
	f.udp = newProtoDir(f, "udp")
	f.tcp = newProtoDir(f, "tcp")
	f.root = &familyDir{id: netcore.NewID(), f: f}
	return f
}

func (f *Family) Name() string        { return f.v.family }
func (f *Family) Description() string { return f.v.descr }
func (f *Family) Root() netcore.Dir   { return f.root }

// Readme is this family's part of the README at the root of the mount.
func (f *Family) Readme() string { return f.v.readme }

var (
	_ netcore.Family  = (*Family)(nil)
	_ netcore.Readmer = (*Family)(nil)
	_ netcore.Poller  = (*sock)(nil)
)

const readme4 = `  inet/udp/HOST/PORT    each open() is a UDP socket connected to HOST:PORT: write one datagram, read one reply
  inet/udp/0.0.0.0/PORT each open() binds PORT: read datagrams from anyone, write back to the last sender
  inet/tcp/HOST/PORT    each open() connects to HOST:PORT; the file is the byte stream
  inet/tcp/0.0.0.0/PORT each open() accepts one connection on PORT
                        HOST: an address or a name; ls lists HOSTs and PORTs with open files
  Ports below net.ipv4.ip_unprivileged_port_start are bound only by root.
  Example:
    exec 3<>/mnt/mnet/inet/tcp/127.0.0.1/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3
`

const readme6 = `  inet6/                the same as inet/ for IPv6: inet6/udp/::1/PORT, wildcard ::
`

// Close closes every socket and listener: blocked readers see end of file,
// blocked writers EPIPE, opens waiting to connect or accept ECONNABORTED.
func (f *Family) Close() {
	f.mu.Lock()
	f.closed = true
	socks := make([]*sock, 0, len(f.socks))
	for s := range f.socks {
		socks = append(socks, s)
	}
	lns := make([]*listener, 0, len(f.listeners))
	for _, l := range f.listeners {
		lns = append(lns, l)
	}
	f.mu.Unlock()
	for _, s := range socks {
		s.conn.Close()
		s.hangUp()
	}
	for _, l := range lns {
		l.close()
	}
}

// reserve counts a socket about to be opened as pf for payer in the
// quota of sockets (EMFILE past the payer's limit, ENFILE past the
// global one); from now on pf's HOST and PORT are listed.
func (f *Family) reserve(pf *portFile, payer *netcore.Payer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return syscall.ECONNABORTED
	}
	if err := payer.Take(netcore.Sockets, 1); err != nil {
		return err
	}
	pf.host.proto.remember(pf.host.h.name, pf.port)
	return nil
}

// unreserve undoes reserve: the open failed, or the file was closed.
func (f *Family) unreserve(pf *portFile, payer *netcore.Payer) {
	payer.Release(netcore.Sockets, 1)
	f.mu.Lock()
	pf.host.proto.forget(pf.host.h.name, pf.port)
	f.mu.Unlock()
}

// adopt makes s the open file pf: closed by Close, and released (with l,
// if it came from a listener) when the file is closed.
func (f *Family) adopt(s *sock, pf *portFile, payer *netcore.Payer, l *listener) error {
	s.onClose = func() {
		f.mu.Lock()
		delete(f.socks, s)
		f.mu.Unlock()
		f.unreserve(pf, payer)
		if l != nil {
			f.unlisten(l, false)
		}
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		s.onClose()
		s.conn.Close()
		return syscall.ECONNABORTED
	}
	f.socks[s] = struct{}{}
	f.mu.Unlock()
	return nil
}

// makeRoom keeps the node cache within maxNodes; f.mu is held.
func (f *Family) makeRoom() {
	if f.nodes < maxNodes {
		return
	}
	f.nodes = 0
	for _, p := range []*protoDir{f.udp, f.tcp} {
		for name, hd := range p.hosts {
			open := p.opened[name]
			for port := range hd.ports {
				if open[port] == 0 {
					delete(hd.ports, port)
				}
			}
			if len(hd.ports) == 0 && len(open) == 0 {
				delete(p.hosts, name)
				continue
			}
			f.nodes += 1 + len(hd.ports)
		}
	}
	f.log.Debug("name cache swept", "nodes", f.nodes)
}

func (f *Family) dirAttr() netcore.Attr {
	return netcore.Attr{Mode: syscall.S_IFDIR | 0555, Mtime: f.start}
}

// familyDir is inet/ (or inet6/): udp/ and tcp/.
type familyDir struct {
	id uint64
	f  *Family
}

func (d *familyDir) ID() uint64                      { return d.id }
func (d *familyDir) Attr(*netcore.Cred) netcore.Attr { return d.f.dirAttr() }

func (d *familyDir) List(*netcore.Cred) []netcore.DirEntry {
	return []netcore.DirEntry{{Name: "tcp", Node: d.f.tcp}, {Name: "udp", Node: d.f.udp}}
}

func (d *familyDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	switch name {
	case "udp":
		return d.f.udp, nil
	case "tcp":
		return d.f.tcp, nil
	}
	return nil, syscall.ENOENT
}

// protoDir is udp/ or tcp/. Any valid HOST can be looked up; the listing
// shows the HOSTs with open files.
type protoDir struct {
	id   uint64
	f    *Family
	name string // udp or tcp

	// Guarded by f.mu.
	hosts  map[string]*hostDir       // node cache, by HOST name
	opened map[string]map[uint16]int // HOST name -> PORT -> open files
}

func newProtoDir(f *Family, name string) *protoDir {
	return &protoDir{id: netcore.NewID(), f: f, name: name,
		hosts: make(map[string]*hostDir), opened: make(map[string]map[uint16]int)}
}

func (d *protoDir) ID() uint64                      { return d.id }
func (d *protoDir) Attr(*netcore.Cred) netcore.Attr { return d.f.dirAttr() }

func (d *protoDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	h, err := d.f.v.parseHost(name)
	if err != nil {
		return nil, err
	}
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	return d.hostNode(h), nil
}

// hostNode returns the cached node of h, making it if needed; f.mu is held.
func (d *protoDir) hostNode(h host) *hostDir {
	if hd := d.hosts[h.name]; hd != nil {
		return hd
	}
	d.f.makeRoom()
	hd := &hostDir{id: netcore.NewID(), proto: d, h: h, ports: make(map[uint16]*portFile)}
	d.hosts[h.name] = hd
	d.f.nodes++
	return hd
}

func (d *protoDir) List(*netcore.Cred) []netcore.DirEntry {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	ents := make([]netcore.DirEntry, 0, len(d.opened))
	for name := range d.opened {
		h, err := d.f.v.parseHost(name)
		if err != nil {
			continue // cannot happen: only parsed names are opened
		}
		ents = append(ents, netcore.DirEntry{Name: name, Node: d.hostNode(h)})
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents
}

// remember and forget count the open files of HOST/PORT, and the opens
// still connecting or accepting; f.mu is held.
func (d *protoDir) remember(hostName string, port uint16) {
	ports := d.opened[hostName]
	if ports == nil {
		ports = make(map[uint16]int)
		d.opened[hostName] = ports
	}
	ports[port]++
}

func (d *protoDir) forget(hostName string, port uint16) {
	ports := d.opened[hostName]
	if ports[port]--; ports[port] <= 0 {
		delete(ports, port)
	}
	if len(ports) == 0 {
		delete(d.opened, hostName)
	}
}

// hostDir is PROTO/HOST: any valid PORT can be looked up; the listing shows
// the PORTs with open files.
type hostDir struct {
	id    uint64
	proto *protoDir
	h     host
	ports map[uint16]*portFile // node cache; guarded by f.mu
}

func (d *hostDir) ID() uint64                      { return d.id }
func (d *hostDir) Attr(*netcore.Cred) netcore.Attr { return d.proto.f.dirAttr() }

func (d *hostDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	port, err := netcore.ParsePort(name)
	if err != nil {
		return nil, err
	}
	d.proto.f.mu.Lock()
	defer d.proto.f.mu.Unlock()
	return d.portNode(port), nil
}

// portNode returns the cached node of port; f.mu is held.
func (d *hostDir) portNode(port uint16) *portFile {
	if pf := d.ports[port]; pf != nil {
		return pf
	}
	d.proto.f.makeRoom()
	pf := &portFile{id: netcore.NewID(), host: d, port: port}
	d.ports[port] = pf
	d.proto.f.nodes++
	return pf
}

func (d *hostDir) List(*netcore.Cred) []netcore.DirEntry {
	f := d.proto.f
	f.mu.Lock()
	defer f.mu.Unlock()
	open := d.proto.opened[d.h.name]
	ports := make([]int, 0, len(open))
	for p := range open {
		ports = append(ports, int(p))
	}
	sort.Ints(ports)
	ents := make([]netcore.DirEntry, 0, len(ports))
	for _, p := range ports {
		ents = append(ents, netcore.DirEntry{Name: strconv.Itoa(p), Node: d.portNode(uint16(p))})
	}
	return ents
}

// portFile is PROTO/HOST/PORT, mode 0666: anyone may open it; what an
// open may do is checked against the caller's uid as the kernel would.
type portFile struct {
	id   uint64
	host *hostDir
	port uint16
}

func (pf *portFile) ID() uint64 { return pf.id }

func (pf *portFile) Attr(*netcore.Cred) netcore.Attr {
	return netcore.Attr{Mode: syscall.S_IFREG | 0666, Mtime: pf.host.proto.f.start}
}

// path is the file's name under the mount, for logs.
func (pf *portFile) path() string {
	d := pf.host.proto
	return d.f.v.family + "/" + d.name + "/" + pf.host.h.name + "/" + strconv.Itoa(int(pf.port))
}
