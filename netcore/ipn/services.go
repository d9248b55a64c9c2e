// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"syscall"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Services (package link) serve a network through something other than
// ctl lines, such as a VDE switch directory; "NAME on|off" switches one for
// a network. Their ports are link ports without a Spec: ctl does not list
// them, detach does not find them and the state file does not save them.

// service is one registered service in this daemon.
type service struct {
	svc    *link.Service
	server link.Server // nil if it could not be set up
	kind   *link.Kind  // what the ports table shows; not a ctl verb
}

// openServices sets up every registered service for the family. One that
// cannot be set up is logged and left out: the networks serve without it.
func (f *ipnFamily) openServices() {
	for _, s := range link.Services() {
		srv, err := s.New(f.env)
		if err != nil {
			f.log.Error("service unavailable", "service", s.Name, "err", err)
		}
		f.services = append(f.services, &service{svc: s, server: srv, kind: &link.Kind{Name: s.Name}})
	}
}

func (f *ipnFamily) closeServices() {
	for _, s := range f.services {
		if s.server != nil {
			s.server.Close()
		}
	}
}

// serviceOn reports whether service s is on in set.
func serviceOn(set Settings, s *link.Service) bool {
	if on, ok := set.Services[s.Name]; ok {
		return on
	}
	return s.Default
}

// withService returns set with service name switched on or off; the map is
// copied, never changed in place, because saved copies of the settings
// share it.
func withService(set Settings, name string, on bool) Settings {
	m := maps.Clone(set.Services)
	if m == nil {
		m = map[string]bool{}
	}
	m[name] = on
	set.Services = m
	return set
}

// syncServices starts and stops the network's services to match its
// settings (every service stops once the network is closed). A service
// that cannot start is logged and kept as last-error; the error of the
// first is returned.
func (n *Network) syncServices() error {
	n.svcMu.Lock()
	defer n.svcMu.Unlock()
	var first error
	for _, s := range n.fam.services {
		n.mu.Lock()
		want := serviceOn(n.set, s.svc) && !n.closed
		n.mu.Unlock()
		running := n.running[s.svc.Name]
		switch {
		case want && running == nil:
			if s.server == nil {
				err := link.Errorf(syscall.EIO, "%s: unavailable in this daemon (see its log)", s.svc.Name)
				n.serviceFailed(s, err)
				first = cmpErr(first, err)
				continue
			}
			st, err := s.server.Start(&linkNet{n: n, kind: s.kind})
			if err != nil {
				n.serviceFailed(s, err)
				first = cmpErr(first, err)
				continue
			}
			if n.running == nil {
				n.running = map[string]link.Stopper{}
			}
			n.running[s.svc.Name] = st
			n.fam.log.Debug("service started", "network", n.name, "service", s.svc.Name)
		case !want && running != nil:
			delete(n.running, s.svc.Name)
			running.Stop()
			n.fam.log.Debug("service stopped", "network", n.name, "service", s.svc.Name)
		}
	}
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (n *Network) serviceFailed(s *service, err error) {
	n.fam.log.Error("service cannot serve the network", "network", n.name, "service", s.svc.Name, "err", err)
	n.setLastError(s.svc.Name + ": " + err.Error())
}

// accessChanged tells the running services that the owner or mode changed.
func (n *Network) accessChanged() {
	n.svcMu.Lock()
	defer n.svcMu.Unlock()
	for _, st := range n.running {
		st.AccessChanged()
	}
}

// linkNet is a network as one service or extension sees it.
type linkNet struct {
	n    *Network
	kind *link.Kind
}

var _ link.Network = (*linkNet)(nil)

func (ln *linkNet) Name() string      { return ln.n.name }
func (ln *linkNet) Log() *slog.Logger { return ln.n.fam.log }

func (ln *linkNet) Access() (uid, gid, mode uint32) {
	n := ln.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.uid, n.gid, n.mode
}

func (ln *linkNet) Rights(c *netcore.Cred) (recv, send bool) {
	r := ln.n.rights(c, RightRecv|RightSend)
	return r&RightRecv != 0, r&RightSend != 0
}

func (ln *linkNet) Recovered(r any, msg string, args ...any) {
	ln.n.panicked(r, msg, args...)
}
func (ln *linkNet) Quota() *netcore.Quota { return ln.n.fam.quota }

func (ln *linkNet) Limits() (mtu, qlen int) {
	n := ln.n
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.set.MTU, n.set.Qlen
}

func (ln *linkNet) Join(l link.Link, m link.Member) (func(), error) {
	n := ln.n
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, syscall.ENOENT
	}
	if len(n.portList) >= n.set.MaxPorts {
		n.mu.Unlock()
		return nil, syscall.EBUSY
	}
	p := newPort(n, n.nextPort, ln.kind, m.UID, m.PID, m.Name, m.Recv, m.Send)
	n.nextPort++
	n.joinedService(p, m.Number)
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
			// Not a member: it was released by whoever took it out
			// (the pump when the link went away, or shutdown).
			<-p.pumpDone
		})
	}, nil
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
