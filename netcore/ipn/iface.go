package ipn

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/mnet-project/mnet/tap"
)

// Interfaces join a network as ports of kind tap or grab. Each has a pump
// goroutine that reads frames from the interface into the network; frames
// the network delivers to it are written by the sender (transmit).

// maxIfaceFrame is the largest frame read from an interface: a 64 KiB TSO
// segment with its Ethernet header and a VLAN tag.
const maxIfaceFrame = 65536 + ethHeaderLen + vlanTagLen

// defaultTapMTU is the MTU of a TAP mnet creates, as a NIC's: a network of
// TAPs then has the MTU of the Ethernet around it, and offloads (not a
// larger MTU) carry the big segments.
const defaultTapMTU = 1500

// ifaceClaim records which network holds an interface, so that no two
// networks (nor one, twice) attach the same interface.
type ifaceClaim struct {
	n    *Network
	kind string
}

// claim reserves name for n, before the interface is opened.
func (f *ipnFamily) claim(n *Network, kind, name string) *ctlError {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.ifaces[name]; ok {
		switch {
		case kind == KindGrab && c.kind == KindGrab:
			return ctlErr(syscall.EBUSY, "grab %s: already grabbed by network %s", name, c.n.name)
		case c.n == n:
			return ctlErr(syscall.EEXIST, "%s %s: already attached to this network", kind, name)
		default:
			return ctlErr(syscall.EEXIST, "%s %s: in use by network %s", kind, name, c.n.name)
		}
	}
	f.ifaces[name] = ifaceClaim{n, kind}
	return nil
}

func (f *ipnFamily) unclaim(n *Network, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.ifaces[name]; ok && c.n == n {
		delete(f.ifaces, name)
	}
}

// ifaceAttach is one tap or grab command between its check and its apply.
type ifaceAttach struct {
	kind, name string
	netns      string // a TAP's namespace when restored; "" is the daemon's
	dev        tap.Device
	created    bool
}

// open claims the interface and opens it. On failure nothing is held.
func (a *ifaceAttach) open(n *Network) *ctlError {
	if err := tap.CheckName(a.name); err != nil {
		return ctlErr(syscall.EINVAL, "%s: %v", a.kind, err)
	}
	if err := n.fam.claim(n, a.kind, a.name); err != nil {
		return err
	}
	n.mu.Lock()
	mtu := min(defaultTapMTU, n.set.MTU-ethHeaderLen)
	n.mu.Unlock()
	var err error
	switch a.kind {
	case KindTap:
		var t *tap.Tap
		if t, err = tap.OpenTapIn(a.netns, a.name, max(mtu, 68)); err == nil {
			a.dev, a.created = t, t.Created()
		}
	case KindGrab:
		// Through a variable of the concrete type: a nil *Grabbed in
		// a.dev would be a non-nil interface.
		var g *tap.Grabbed
		if g, err = tap.Grab(a.name); err == nil {
			a.dev = g
		}
	}
	if err != nil {
		n.fam.unclaim(n, a.name)
		return ifaceError(a.kind, a.name, err)
	}
	return nil
}

// abort undoes open.
func (a *ifaceAttach) abort(n *Network) {
	if a.dev != nil {
		closeDevice(a.dev, a.created, false)
		a.dev = nil
		n.fam.unclaim(n, a.name)
	}
}

// ifaceError turns an error from package tap into a ctl error with the
// errno SPEC.md names.
func ifaceError(kind, name string, err error) *ctlError {
	var errno syscall.Errno
	switch {
	case errors.Is(err, tap.ErrNotTap):
		return ctlErr(syscall.EEXIST, "tap %s: %v", name, err)
	case errors.Is(err, tap.ErrLoopback):
		return ctlErr(syscall.EINVAL, "grab %s: %v", name, err)
	case errors.Is(err, syscall.ENODEV):
		return ctlErr(syscall.ENODEV, "%s %s: no such interface", kind, name)
	case errors.Is(err, syscall.EBUSY):
		return ctlErr(syscall.EBUSY, "%s %s: held by another process", kind, name)
	case errors.As(err, &errno):
		return ctlErr(errno, "%s %s: %v", kind, name, err)
	}
	return ctlErr(syscall.EIO, "%s %s: %v", kind, name, err)
}

// closeDevice lets an interface go. A TAP mnet created is deleted, unless
// keep (a persistent network at daemon exit): then it stays, persistent,
// for the next daemon to take over.
func closeDevice(dev tap.Device, created, keep bool) {
	if t, ok := dev.(*tap.Tap); ok && created {
		t.SetPersist(keep)
	}
	dev.Close()
}

// attachLocked adds the opened interface as a port. Called with n.mu held,
// after checkIfaceLocked.
func (n *Network) attachLocked(a *ifaceAttach) *Port {
	p := newPort(n, n.nextPort, a.kind, 0, 0, a.name, true, true)
	n.nextPort++
	p.dev, p.created = a.dev, a.created
	p.stop, p.cancel = context.WithCancel(context.Background())
	p.pumpDone = make(chan struct{})
	n.portList = append(n.portList, p)
	a.dev = nil // the port owns it now
	return p
}

// ifacePort returns the interface port called name, or nil. Called with
// n.mu held.
func (n *Network) ifacePort(name string) *Port {
	for _, p := range n.portList {
		if p.dev != nil && p.name == name {
			return p
		}
	}
	return nil
}

// detachLocked takes an interface port out of the network; release
// finishes the job once n.mu is released.
func (n *Network) detachLocked(p *Port) {
	for i, q := range n.portList {
		if q == p {
			n.portList = append(n.portList[:i], n.portList[i+1:]...)
			break
		}
	}
	n.fdb.forget(p)
}

// release stops an interface port that has left the network: its pump
// ends, the device is closed (a created TAP deleted unless keep) and the
// name is free again when release returns.
func (n *Network) release(p *Port, keep bool) {
	p.shut()
	p.cancel()
	closeDevice(p.dev, p.created, keep)
	<-p.pumpDone // the device's descriptor is really closed once Read returned
	n.fam.unclaim(n, p.name)
	n.space.broadcast()
}

// pump reads frames from the interface into the network until the port
// leaves or the interface goes away.
func (p *Port) pump() {
	defer close(p.pumpDone)
	n := p.net
	buf := make([]byte, tap.VnetHdrLen+maxIfaceFrame)
	for {
		k, err := p.dev.Read(buf)
		if err != nil {
			if p.stop.Err() != nil {
				return
			}
			if errors.Is(err, syscall.ENETDOWN) && tap.Exists(p.name) {
				continue // taken down, not away: frames come again when it is up
			}
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			n.fam.log.Warn("interface gone; detached", "network", n.name, "kind", p.kind, "interface", p.name, "err", err)
			go n.detachGone(p)
			<-p.stop.Done()
			return
		}
		if k <= tap.VnetHdrLen {
			continue
		}
		// Errors (too long, too short for a switch) are counted and
		// logged by the network; the interface just goes on.
		n.transmit(p.stop, p, buf[:k], false, false)
	}
}

// detachGone removes an interface port whose interface disappeared.
func (n *Network) detachGone(p *Port) {
	n.mu.Lock()
	if n.ifacePort(p.name) != p {
		n.mu.Unlock()
		return // detached meanwhile
	}
	n.detachLocked(p)
	persist := n.set.Persist
	n.mu.Unlock()
	n.release(p, false)
	if persist {
		n.fam.saveState()
	}
}

// savedIfacesLocked lists the attachments for the state file. Called with
// n.mu held.
func (n *Network) savedIfacesLocked() []savedIface {
	var out []savedIface
	for _, p := range n.portList {
		if p.dev == nil {
			continue
		}
		s := savedIface{Kind: p.kind, Name: p.name, Created: p.created}
		if t, ok := p.dev.(*tap.Tap); ok {
			ns, err := t.Netns()
			if err != nil {
				n.fam.log.Warn("cannot tell where the TAP is; a restart looks for it in the daemon's namespace",
					"network", n.name, "interface", p.name, "err", err)
			}
			s.Netns = ns
		}
		out = append(out, s)
	}
	return out
}

// restoreIfaces attaches the interfaces of a restored persistent network.
// One that cannot be attached is logged and left out; the network serves
// without it.
func (n *Network) restoreIfaces(saved []savedIface) {
	for _, s := range saved {
		if s.Kind != KindTap && s.Kind != KindGrab {
			n.fam.log.Error("state file: bad attachment kind, skipped", "network", n.name, "kind", s.Kind)
			continue
		}
		a := &ifaceAttach{kind: s.Kind, name: s.Name}
		if s.Kind == KindTap && s.Netns != "" {
			if _, err := os.Stat(s.Netns); err == nil {
				a.netns = s.Netns
			} else {
				n.fam.log.Warn("the TAP's network namespace is gone; creating it in the daemon's",
					"network", n.name, "interface", s.Name, "netns", s.Netns)
			}
		}
		if err := a.open(n); err != nil {
			n.fam.log.Error("cannot restore attachment", "network", n.name, "err", err.reason)
			continue
		}
		// A TAP this daemon's predecessor created, kept across the
		// restart, is still mnet's to delete.
		a.created = a.created || s.Created
		n.mu.Lock()
		p := n.attachLocked(a)
		n.mu.Unlock()
		go p.pump()
		n.fam.log.Info("attachment restored", "network", n.name, "kind", s.Kind, "interface", s.Name)
	}
}
