// SPDX-License-Identifier: BSD-3-Clause

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
	names     *netcore.HostPorts[peerKey, *peerDir, *portFile] // udp/ and tcp/
}

type peerEntry = netcore.HostEntry[peerKey, *peerDir, *portFile]

// peerKey names a HOST directory: in udp/ or tcp/, by name.
type peerKey struct{ proto, name string }

func newFamily(env *netcore.Env, v *version) *Family {
	f := &Family{v: v, log: env.Log.With("family", v.family), start: time.Now(),
		socks: make(map[*sock]struct{}), listeners: make(map[listenerKey]*listener),
		quota: env.Quota}
	if f.quota == nil {
		f.quota = netcore.NewQuota(env.Limits, env.Log)
	}
	f.names = netcore.NewHostPorts[peerKey](&f.mu, maxNodes, func(d *peerDir, port uint16) *portFile {
		return &portFile{netcore.NewPortFile(d, port)}
	})
	f.names.Swept = func(nodes int) { f.log.Debug("name cache swept", "nodes", nodes) }
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
	f.names.AddOpen(pf.Dir.e.Key(), pf.Port, 1)
	return nil
}

// unreserve undoes reserve: the open failed, or the file was closed.
func (f *Family) unreserve(pf *portFile, payer *netcore.Payer) {
	payer.Release(netcore.Sockets, 1)
	f.mu.Lock()
	f.names.AddOpen(pf.Dir.e.Key(), pf.Port, -1)
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
}

func newProtoDir(f *Family, name string) *protoDir {
	return &protoDir{id: netcore.NewID(), f: f, name: name}
}

func (d *protoDir) ID() uint64                      { return d.id }
func (d *protoDir) Attr(*netcore.Cred) netcore.Attr { return d.f.dirAttr() }

func (d *protoDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	p, err := d.f.v.parsePeer(name)
	if err != nil {
		return nil, err
	}
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	return d.peerNode(p), nil
}

// peerNode returns the cached node of p, making it if needed; f.mu is held.
func (d *protoDir) peerNode(p peer) *peerDir {
	return d.f.names.Host(peerKey{d.name, p.name}, func(e *peerEntry) *peerDir {
		return &peerDir{id: netcore.NewID(), proto: d, peer: p, e: e}
	})
}

func (d *protoDir) List(*netcore.Cred) []netcore.DirEntry {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	var ents []netcore.DirEntry
	for _, k := range d.f.names.OpenHosts() {
		if k.proto != d.name {
			continue
		}
		p, err := d.f.v.parsePeer(k.name)
		if err != nil {
			continue // cannot happen: only parsed names are opened
		}
		ents = append(ents, netcore.DirEntry{Name: k.name, Node: d.peerNode(p)})
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents
}

// peerDir is PROTO/HOST: any valid PORT can be looked up; the listing shows
// the PORTs with open files.
type peerDir struct {
	id    uint64
	proto *protoDir
	peer  peer
	e     *peerEntry
}

func (d *peerDir) ID() uint64                      { return d.id }
func (d *peerDir) Attr(*netcore.Cred) netcore.Attr { return d.proto.f.dirAttr() }

func (d *peerDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	return d.proto.f.names.LookupPort(d.e, name)
}

// List shows the PORTs with open files.
func (d *peerDir) List(*netcore.Cred) []netcore.DirEntry {
	return d.proto.f.names.ListPorts(d.e)
}

// portFile is PROTO/HOST/PORT, mode 0666: anyone may open it; what an
// open may do is checked against the caller's uid as the kernel would.
type portFile struct{ netcore.PortFile[*peerDir] }

func (pf *portFile) Attr(*netcore.Cred) netcore.Attr {
	return netcore.Attr{Mode: syscall.S_IFREG | 0666, Mtime: pf.Dir.proto.f.start}
}

// path is the file's name under the mount, for logs.
func (pf *portFile) path() string {
	d := pf.Dir.proto
	return d.f.v.family + "/" + d.name + "/" + pf.Dir.peer.name + "/" + strconv.Itoa(int(pf.Port))
}
