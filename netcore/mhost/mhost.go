// SPDX-License-Identifier: BSD-3-Clause

// Package mhost is the mhost family: named hosts reachable over several
// families, as the mnet kernel module's AF_MHOST. mkdir mhost/NAME names a
// host; its ctl lists its locators in order of preference (inet ADDR,
// inet6 ADDR, ipn NET ADDR through that network's userspace host), and
// each open of mhost/NAME/udp/PORT is a UDP endpoint to NAME:PORT that
// leaves by the first locator that works and moves on when one fails.
// mhost/any/udp/PORT binds PORT on every family the caller may use and
// answers each sender the way its datagram came.
package mhost

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/netcore"
)

// The resources mhost counts for a uid, per uid and in all
// (netcore.Quota, shared with the other families); the endpoints' kernel
// sockets are netcore.Sockets.
var (
	// Hosts are host names, counted for their owner.
	Hosts = netcore.RegisterResource(netcore.ResourceSpec{Name: "mhost-hosts", Owner: "mhost",
		PerUid: 256, Global: 4096, Flag: "max-hosts-per-uid", GlobalFlag: "max-hosts",
		Usage:       "mhost names one uid may own (default 256; ENOSPC)",
		GlobalUsage: "mhost names in all (default 4096; ENOSPC)",
		Refusal:     syscall.ENOSPC, GlobalRefusal: syscall.ENOSPC})
	// Endpoints are open udp files, bounded as a process's descriptors
	// are and the system's.
	Endpoints = netcore.RegisterResource(netcore.ResourceSpec{Name: "mhost-endpoints", Owner: "mhost",
		PerUid: 1024, Global: 4096, Flag: "max-endpoints-per-uid", GlobalFlag: "max-endpoints",
		Usage:       "open mhost udp files of one uid (default 1024; EMFILE)",
		GlobalUsage: "mhost endpoints in all (default 4096; ENFILE)",
		Refusal:     syscall.EMFILE, GlobalRefusal: syscall.ENFILE})
)

func init() {
	netcore.Register("mhost", func(env *netcore.Env) (netcore.Family, error) { return newFamily(env), nil })
}

const (
	// MaxLocators bounds the locators of one host.
	MaxLocators = 16
	// Any is the reserved name of the host that binds on every family.
	Any = "any"
	// maxPortFiles bounds the PORT files a udp directory keeps while
	// none has an open file.
	maxPortFiles = 16384
)

// Family is mhost/.
type Family struct {
	log   *slog.Logger
	dir   *familyDir
	any   *anyDir
	start time.Time

	quota *netcore.Quota

	mu      sync.Mutex
	hosts   map[string]*Host
	closing bool
	open    map[closer]*netcore.Payer // each open file and who pays for it
}

type closer interface{ Close() }

var (
	_ netcore.Family  = (*Family)(nil)
	_ netcore.Readmer = (*Family)(nil)
)

func newFamily(env *netcore.Env) *Family {
	f := &Family{log: env.Log.With("family", "mhost"), start: time.Now(), hosts: map[string]*Host{},
		open: map[closer]*netcore.Payer{}, quota: env.Quota}
	if f.quota == nil {
		f.quota = netcore.NewQuota(env.Limits, env.Log)
	}
	f.dir = &familyDir{id: netcore.NewID(), f: f, mtime: f.start}
	f.any = newAnyDir(f)
	return f
}

func (f *Family) Name() string        { return "mhost" }
func (f *Family) Description() string { return "named hosts over several families: NAME/udp/PORT" }
func (f *Family) Root() netcore.Dir   { return f.dir }
func (f *Family) Readme() string      { return readme }

const readme = `  mhost/                named hosts reachable over several families; mkdir mhost/NAME names one
  mhost/NAME/ctl        its locators, one per line, preferred first: inet ADDR, inet6 ADDR, ipn NET ADDR
                        (a write replaces them; +LOCATOR adds, -LOCATOR removes)
  mhost/NAME/locators   each locator's state (up, or down with the last error), datagrams sent and received
  mhost/NAME/udp/PORT   each open() is a UDP endpoint to NAME:PORT over the first locator that works
  mhost/any/udp/PORT    binds PORT on inet, inet6 and every network's host; answers by the way a datagram came
`

// Close ends every open file.
func (f *Family) Close() {
	f.mu.Lock()
	f.closing = true
	var cs []closer
	for c := range f.open {
		cs = append(cs, c)
	}
	f.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// reserve counts an endpoint about to open for payer in the quota of
// endpoints: EMFILE past the payer's limit, ENFILE past the global one.
func (f *Family) reserve(c closer, payer *netcore.Payer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return syscall.ECONNABORTED
	}
	if err := payer.Take(Endpoints, 1); err != nil {
		return err
	}
	f.open[c] = payer
	return nil
}

func (f *Family) release(c closer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if payer, ok := f.open[c]; ok {
		delete(f.open, c)
		payer.Release(Endpoints, 1)
	}
}

// familyDir is mhost/, mode 1777: anyone may name a host.
type familyDir struct {
	id    uint64
	f     *Family
	mtime time.Time // guarded by f.mu
}

var (
	_ netcore.Mkdirer = (*familyDir)(nil)
	_ netcore.Rmdirer = (*familyDir)(nil)
)

func (d *familyDir) ID() uint64 { return d.id }

func (d *familyDir) Attr(*netcore.Cred) netcore.Attr {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	return netcore.Attr{Mode: syscall.S_IFDIR | syscall.S_ISVTX | 0777, Mtime: d.mtime}
}

func (d *familyDir) List(*netcore.Cred) []netcore.DirEntry {
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	ents := []netcore.DirEntry{{Name: Any, Node: d.f.any}}
	for name, h := range d.f.hosts {
		ents = append(ents, netcore.DirEntry{Name: name, Node: h.dir})
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	return ents
}

func (d *familyDir) Lookup(_ *netcore.Cred, name string) (netcore.Node, error) {
	if name == Any {
		return d.f.any, nil
	}
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if h := d.f.hosts[name]; h != nil {
		return h.dir, nil
	}
	return nil, syscall.ENOENT
}

func (d *familyDir) Mkdir(c *netcore.Cred, name string, mode uint32) (netcore.Node, error) {
	if !netcore.ValidName(name) {
		return nil, syscall.EINVAL
	}
	payer := d.f.quota.PayerOf(c)
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	if name == Any || d.f.hosts[name] != nil {
		return nil, syscall.EEXIST
	}
	// Counted for its owner, per uid and in all (the quota logs a
	// refusal).
	if err := payer.Take(Hosts, 1); err != nil {
		return nil, err
	}
	h := newHost(d.f, name, c.Uid, c.Gid, netcore.NewDirMode(mode))
	d.f.hosts[name] = h
	d.mtime = time.Now()
	d.f.log.Info("host named", "host", name, "uid", c.Uid)
	return h.dir, nil
}

func (d *familyDir) Rmdir(c *netcore.Cred, name string) error {
	if name == Any {
		return syscall.EBUSY
	}
	d.f.mu.Lock()
	defer d.f.mu.Unlock()
	h := d.f.hosts[name]
	if h == nil {
		return syscall.ENOENT
	}
	if h.rights(c, rightManage)&rightManage == 0 {
		return syscall.EACCES
	}
	h.mu.Lock()
	busy := h.files > 0
	h.mu.Unlock()
	if busy {
		return syscall.EBUSY
	}
	delete(d.f.hosts, name)
	h.mu.Lock()
	h.owner().Release(Hosts, 1)
	h.mu.Unlock()
	d.mtime = time.Now()
	d.f.log.Info("host removed", "host", name, "uid", c.Uid)
	return nil
}

type rights uint32

const (
	rightManage rights = 1
	rightSend   rights = 2
	rightRecv   rights = 4
)

// Host is one named host: its locators and their state.
type Host struct {
	f    *Family
	name string
	dir  *hostDir

	mu        sync.Mutex
	uid, gid  uint32
	mode      uint32
	mtime     time.Time
	locs      []*locator
	lastError string
	files     int // open udp files
	// dropped are locators that writes of a ctl file still open took off
	// the list, with the number of such opens: a later write of that open
	// may list them again (shells write line by line), and they come back
	// with their state, and endpoints keep their sockets meanwhile.
	dropped map[*locator]int
}

func newHost(f *Family, name string, uid, gid, mode uint32) *Host {
	h := &Host{f: f, name: name, uid: uid, gid: gid, mode: mode & 0777, mtime: time.Now(), dropped: map[*locator]int{}}
	h.dir = &hostDir{id: netcore.NewID(), h: h}
	h.dir.ctl = &ctlFile{id: netcore.NewID(), h: h}
	h.dir.status = netcore.NewTextFile(h.readAttr, func(*netcore.Cred) []byte { return h.statusText() })
	h.dir.udp = &udpDir{id: netcore.NewID(), h: h, ports: portFiles[*udpFile]{}}
	return h
}

// rights is what c may do with the host when it wants want (0: any one
// right): the class bits of its mode, as for an ipn network.
func (h *Host) rights(c *netcore.Cred, want rights) rights {
	h.mu.Lock()
	mode, uid, gid := h.mode, h.uid, h.gid
	h.mu.Unlock()
	return rights(netcore.Permitted(c, uint32(want), mode, uid, gid))
}

// readAttr: readable where any right is held.
func (h *Host) readAttr(*netcore.Cred) netcore.Attr {
	h.mu.Lock()
	defer h.mu.Unlock()
	var perm uint32
	for shift := 0; shift <= 6; shift += 3 {
		if h.mode>>shift&7 != 0 {
			perm |= 4 << shift
		}
	}
	return netcore.Attr{Mode: syscall.S_IFREG | perm, Uid: h.uid, Gid: h.gid, Mtime: h.mtime}
}

// locators returns the current list (the slice is never changed in place).
func (h *Host) locators() []*locator {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.locs
}

func (h *Host) statusText() []byte {
	var b strings.Builder
	for _, l := range h.locators() {
		l.mu.Lock()
		state := "up"
		if l.down {
			state = "down error " + unix.ErrnoName(l.err)
		}
		fmt.Fprintf(&b, "%s state %s sent %d received %d\n", l.line(), state, l.sent, l.received)
		l.mu.Unlock()
	}
	return []byte(b.String())
}

// locator is one way to reach a host.
type locator struct {
	family string // inet, inet6 or ipn
	net    string // ipn only
	addr   netip.Addr

	mu       sync.Mutex
	down     bool
	err      syscall.Errno
	downAt   time.Time
	probeAt  time.Time // when a write tried it again while down; zero if none did
	sent     uint64
	received uint64
}

func (l *locator) line() string {
	if l.family == "ipn" {
		return "ipn " + l.net + " " + l.addr.String()
	}
	return l.family + " " + l.addr.String()
}

// downHold is how long a locator that failed is passed over before a
// write tries it again (an ipn locator is retried without waiting: its
// neighbour is resolved in the background and it is used once answered).
const downHold = 1 * time.Second

// probeWindow is how long a down inet locator that a write tried again
// stays passed over unless an error or a reply comes back by it: the
// kernel resolves an unknown neighbour with 3 probes 1 s apart before it
// reports EHOSTUNREACH, so a send that "worked" proves nothing sooner.
// A reply ends it at once.
const probeWindow = 3400 * time.Millisecond

// markDown: an error says l does not work. One that ends a probe holds l
// again from now.
func (l *locator) markDown(errno syscall.Errno) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down || !l.probeAt.IsZero() {
		l.downAt = time.Now()
	}
	l.down, l.err = true, errno
	l.probeAt = time.Time{}
}

// sentBy counts a datagram that left by l. A down locator that took one
// is up again if the send itself proves it (confirmed: an ipn locator's
// neighbour answered); otherwise (a kernel socket) the send is a probe
// (probeWindow).
func (l *locator) sentBy(now time.Time, confirmed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	switch {
	case !l.down:
	case confirmed:
		l.down, l.probeAt = false, time.Time{}
	case l.probeAt.IsZero():
		l.probeAt = now
	}
}

// held reports whether writes pass l over now: down within downHold, or
// probed within probeWindow. A probe that no error answered in time
// brings it up.
func (l *locator) held(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.down {
		return false
	}
	if !l.probeAt.IsZero() {
		if now.Sub(l.probeAt) < probeWindow {
			return true
		}
		l.down, l.probeAt = false, time.Time{}
		return false
	}
	return now.Sub(l.downAt) < downHold
}

// gotOne counts a datagram that came by l: l works.
func (l *locator) gotOne() {
	l.mu.Lock()
	l.received++
	l.down, l.probeAt = false, time.Time{}
	l.mu.Unlock()
}

// parseLocator reads "inet ADDR", "inet6 ADDR" or "ipn NET ADDR".
func parseLocator(s string) (*locator, error) {
	f := strings.Fields(s)
	bad := fmt.Errorf("bad locator %q: want inet ADDR, inet6 ADDR or ipn NET ADDR", s)
	if len(f) < 2 {
		return nil, bad
	}
	l := &locator{family: f[0]}
	var a string
	switch {
	case f[0] == "inet" && len(f) == 2, f[0] == "inet6" && len(f) == 2:
		a = f[1]
	case f[0] == "ipn" && len(f) == 3 && netcore.ValidName(f[1]):
		l.net, a = f[1], f[2]
	default:
		return nil, bad
	}
	addr, err := netip.ParseAddr(a)
	if err != nil || addr.Zone() != "" || addr.Is4In6() || addr.IsUnspecified() || addr.IsMulticast() ||
		(l.family == "inet" && !addr.Is4()) || (l.family == "inet6" && !addr.Is6()) {
		return nil, bad
	}
	l.addr = addr
	return l, nil
}

// ctlOpen is what the writes of one open of ctl share.
type ctlOpen struct {
	wrote bool // a write succeeded: plain lines add to the list
	// dropped are the locators this open's writes took off the list
	// (counted in Host.dropped until the open is closed).
	dropped []*locator
}

// applyCtl: lines without a sign make the new list, as writing a file
// makes its content: the first write of an open replaces the list (a
// write of only such lines, even none, is the new list) and later writes
// of the same open append to it, since shells write line by line;
// +LOCATOR adds, -LOCATOR removes. A locator that stays, or that a write
// of the same open took off and lists again, keeps its state. Every line
// of a write is checked first; a bad one changes nothing.
func (h *Host) applyCtl(c *netcore.Cred, text string, o *ctlOpen) error {
	first := !o.wrote
	var plain []*locator
	type edit struct {
		add bool
		l   *locator
	}
	var edits []edit
	var bad error
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		sign := line[0]
		body := strings.TrimSpace(strings.TrimLeft(line, "+-"))
		l, err := parseLocator(body)
		if err != nil {
			bad = err
			break
		}
		switch sign {
		case '+':
			edits = append(edits, edit{true, l})
		case '-':
			edits = append(edits, edit{false, l})
		default:
			plain = append(plain, l)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	errno := syscall.EINVAL
	if bad == nil {
		locs := h.locs
		if first && (len(edits) == 0 || len(plain) > 0) {
			locs = nil
		}
		if len(plain) > 0 || first && len(edits) == 0 {
			locs = slices.Clone(locs)
			for _, l := range plain {
				if idx(locs, l) >= 0 {
					bad, errno = fmt.Errorf("%s: listed twice", l.line()), syscall.EEXIST
					break
				}
				locs = append(locs, h.keep(l))
			}
		}
		for _, e := range edits {
			if bad != nil {
				break
			}
			i := idx(locs, e.l)
			switch {
			case e.add && i >= 0:
				bad, errno = fmt.Errorf("+%s: already a locator", e.l.line()), syscall.EEXIST
			case e.add:
				locs = append(slices.Clone(locs), h.keep(e.l))
			case i < 0:
				bad, errno = fmt.Errorf("-%s: not a locator", e.l.line()), syscall.ENOENT
			default:
				locs = slices.Delete(slices.Clone(locs), i, i+1)
			}
		}
		if bad == nil && len(locs) > MaxLocators {
			bad, errno = fmt.Errorf("%d locators, at most %d", len(locs), MaxLocators), syscall.ENOSPC
		}
		if bad == nil {
			h.setLocatorsLocked(o, locs)
			o.wrote = true
			h.mtime = time.Now()
			h.f.log.Info("locators", "host", h.name, "uid", c.Uid, "locators", len(locs))
			return nil
		}
	}
	h.lastError = bad.Error()
	h.f.log.Info("ctl refused", "host", h.name, "uid", c.Uid, "err", bad)
	return errno
}

// refuseCtl records a write refused whole before any line was read (too
// long: EFBIG) for last-error and the log.
func (h *Host) refuseCtl(c *netcore.Cred, reason string, errno error) {
	h.mu.Lock()
	h.lastError = reason
	h.mu.Unlock()
	h.f.log.Info("ctl refused", "host", h.name, "uid", c.Uid, "err", reason, "errno", errno.Error())
}

// keep returns the locator equal to l that is listed, or that a write of
// a ctl still open took off the list (its state goes on), or l. h.mu is
// held.
func (h *Host) keep(l *locator) *locator {
	if i := idx(h.locs, l); i >= 0 {
		return h.locs[i]
	}
	for d := range h.dropped {
		if d.line() == l.line() {
			return d
		}
	}
	return l
}

// setLocatorsLocked makes locs the list, written through open o: the
// locators it drops are kept aside for o's later writes (at most
// MaxLocators of them). h.mu is held.
func (h *Host) setLocatorsLocked(o *ctlOpen, locs []*locator) {
	for _, l := range h.locs {
		if !slices.Contains(locs, l) && !slices.Contains(o.dropped, l) {
			o.dropped = append(o.dropped, l)
			h.dropped[l]++
		}
	}
	o.dropped = slices.DeleteFunc(o.dropped, func(l *locator) bool {
		if !slices.Contains(locs, l) {
			return false
		}
		h.releaseDroppedLocked(l)
		return true
	})
	// An open that keeps adding and removing is bounded: what it
	// dropped longest ago is gone for good first.
	for len(o.dropped) > MaxLocators {
		h.releaseDroppedLocked(o.dropped[0])
		o.dropped = slices.Delete(o.dropped, 0, 1)
	}
	h.locs = locs
}

func (h *Host) releaseDroppedLocked(l *locator) {
	if h.dropped[l]--; h.dropped[l] <= 0 {
		delete(h.dropped, l)
	}
}

// closeCtl ends open o: what its writes dropped is gone for good.
func (h *Host) closeCtl(o *ctlOpen) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range o.dropped {
		h.releaseDroppedLocked(l)
	}
	o.dropped = nil
}

// keepsPath reports whether an endpoint keeps its path for the locator
// of line although it is not listed: an open ctl may list it again.
func (h *Host) keepsPath(line string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.dropped {
		if l.line() == line {
			return true
		}
	}
	return false
}

func idx(locs []*locator, l *locator) int {
	for i, x := range locs {
		if x.line() == l.line() {
			return i
		}
	}
	return -1
}

func (h *Host) ctlText() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, l := range h.locs {
		b.WriteString(l.line() + "\n")
	}
	if h.lastError != "" {
		fmt.Fprintf(&b, "last-error %s\n", h.lastError)
	}
	return []byte(b.String())
}

// hostDir is mhost/NAME.
type hostDir struct {
	id     uint64
	h      *Host
	ctl    *ctlFile
	status *netcore.TextFile
	udp    *udpDir
}

var _ netcore.Owned = (*hostDir)(nil)

func (d *hostDir) ID() uint64 { return d.id }

func (d *hostDir) Attr(*netcore.Cred) netcore.Attr {
	h := d.h
	h.mu.Lock()
	defer h.mu.Unlock()
	return netcore.Attr{Mode: syscall.S_IFDIR | h.mode, Uid: h.uid, Gid: h.gid, Mtime: h.mtime}
}

func (d *hostDir) List(*netcore.Cred) []netcore.DirEntry {
	return []netcore.DirEntry{{Name: "ctl", Node: d.ctl}, {Name: "locators", Node: d.status}, {Name: "udp", Node: d.udp}}
}

func (d *hostDir) Lookup(c *netcore.Cred, name string) (netcore.Node, error) {
	return netcore.LookupListed(d, c, name)
}

// Chmod and Chown: as for a network (netcore.ChangeMode, ChangeOwner).
func (d *hostDir) Chmod(c *netcore.Cred, mode uint32) error {
	h := d.h
	return netcore.ChangeMode(&h.mu, c, &h.uid, func() { h.mode, h.mtime = mode&0777, time.Now() })
}

func (d *hostDir) Chown(c *netcore.Cred, uid, gid int64) error {
	h := d.h
	return netcore.ChangeOwner(&h.mu, c, &h.uid, &h.gid, uid, gid, func(old uint32) {
		if h.uid != old {
			// Counted for the new owner, past its limit if need be:
			// only root gives a host away.
			h.f.quota.Payer(old, false).Release(Hosts, 1)
			h.f.quota.Payer(h.uid, false).Force(Hosts, 1)
		}
		h.mtime = time.Now()
	})
}

// owner is the payer the host is counted for. h.mu is held.
func (h *Host) owner() *netcore.Payer { return h.f.quota.Payer(h.uid, false) }

// ctlFile is mhost/NAME/ctl: read by any right, written with x.
type ctlFile struct {
	id uint64
	h  *Host
}

func (f *ctlFile) ID() uint64 { return f.id }

func (f *ctlFile) Attr(c *netcore.Cred) netcore.Attr {
	a := f.h.readAttr(c)
	f.h.mu.Lock()
	mode := f.h.mode
	f.h.mu.Unlock()
	for shift := 0; shift <= 6; shift += 3 {
		if mode>>shift&1 != 0 {
			a.Mode |= 2 << shift
		}
	}
	return a
}

func (f *ctlFile) Open(_ context.Context, c *netcore.Cred, flags int) (netcore.Handle, error) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	want := rights(0)
	if write {
		want = rightManage
	}
	r := f.h.rights(c, want)
	if r == 0 || write && r&rightManage == 0 {
		return nil, syscall.EACCES
	}
	if write {
		c.Pin() // later writes check rights with what the opener held now
	}
	return &ctlHandle{h: f.h, cred: *c, write: write, text: netcore.Snapshot{Make: f.h.ctlText}}, nil
}

type ctlHandle struct {
	h     *Host
	cred  netcore.Cred
	write bool
	mu    sync.Mutex // orders writes
	open  ctlOpen    // guarded by mu
	text  netcore.Snapshot
}

func (c *ctlHandle) Read(ctx context.Context, b []byte, off int64, nonblock bool) (int, error) {
	return c.text.Read(ctx, b, off, nonblock)
}

func (c *ctlHandle) Write(_ context.Context, b []byte, _ int64, _ bool) (int, error) {
	return netcore.CtlWrite(b, c.write, func(reason string, errno error) { c.h.refuseCtl(&c.cred, reason, errno) },
		func(text string) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.h.applyCtl(&c.cred, text, &c.open)
		})
}

func (c *ctlHandle) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.h.closeCtl(&c.open)
}
