// SPDX-License-Identifier: BSD-3-Clause

// Package iface is the tap and grab kinds of link: a TAP device mnet
// creates (or takes over) and an existing interface grabbed through a
// packet socket, both from package tap. ctl's "tap IFNAME" and
// "grab IFNAME" attach them; they need CAP_NET_ADMIN.
package iface

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/mnet-project/mnet/internal/fdpoll"
	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/internal/tap"
	"github.com/mnet-project/mnet/netcore/link"
)

func init() {
	link.Register(&link.Kind{Name: "tap", Privilege: link.PrivNetAdmin,
		Parse: func(args string) (link.Spec, error) { return parse(kindTap, args) }, Restore: restore})
	link.Register(&link.Kind{Name: "grab", Privilege: link.PrivNetAdmin, Busy: true,
		Parse: func(args string) (link.Spec, error) { return parse(kindGrab, args) }, Restore: restore})
}

type kind int

const (
	kindTap kind = iota
	kindGrab
)

func (k kind) String() string {
	if k == kindGrab {
		return "grab"
	}
	return "tap"
}

// defaultTapMTU is the MTU of a TAP mnet creates, as a NIC's: a network of
// TAPs then has the MTU of the Ethernet around it, and offloads (not a
// larger MTU) carry the big segments.
const defaultTapMTU = 1500

const (
	ethHeaderLen = 14
	minIPv4MTU   = 68
)

// spec is one tap or grab line, or a restored attachment.
type spec struct {
	kind kind
	name string
	// Restored TAPs only: whether mnet created it (then it is still
	// mnet's to delete).
	created bool
	// ns is the network namespace the name is looked up in (Bind): its
	// identity, for Claim; zero for the daemon's own.
	ns netns.ID
}

var (
	_ link.Spec   = (*spec)(nil)
	_ link.Binder = (*spec)(nil)
)

func parse(k kind, args string) (link.Spec, error) {
	if args == "" {
		return nil, link.Errorf(syscall.EINVAL, "%s: missing interface name", k)
	}
	if err := tap.CheckName(args); err != nil {
		return nil, link.Errorf(syscall.EINVAL, "%s: %v", k, err)
	}
	return &spec{kind: k, name: args}, nil
}

// saved is what a persistent network keeps of a tap or grab attachment;
// the field names are those of the state file since attachments were
// first saved. The network records the namespace (package link's
// Located).
type saved struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Created: mnet created this TAP, so it deletes it when detached, also
	// after a restart has taken the TAP over.
	Created bool `json:"created,omitempty"`
}

func restore(raw json.RawMessage) (link.Spec, error) {
	var s saved
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	k := kindTap
	if s.Kind == "grab" {
		k = kindGrab
	}
	sp, err := parse(k, s.Name)
	if err != nil {
		return nil, err
	}
	if k == kindTap {
		sp.(*spec).created = s.Created
	}
	return sp, nil
}

func (s *spec) Name() string { return s.name }
func (s *spec) Args() string { return s.name }

// Claim is the interface: its name in its namespace. Two namespaces may
// each attach an interface of the same name.
func (s *spec) Claim() string {
	if s.ns == (netns.ID{}) {
		return "iface:" + s.name
	}
	return fmt.Sprintf("iface:%d:%d:%s", s.ns.Dev, s.ns.Ino, s.name)
}

// Bind notes the namespace the interface is to be found or made in.
func (s *spec) Bind(ns *netns.NS) error {
	if !ns.Self() {
		s.ns = ns.ID()
	}
	return nil
}

// Open opens the device inside env.NS: the caller's, pinned when it
// opened ctl, or, for a restored attachment, the one it was made in.
func (s *spec) Open(env link.Env) (link.Link, error) {
	ns := env.NS
	var dev device
	var derr error
	var err error
	if s.kind == kindGrab {
		err = ns.Do(func() { dev, derr = tap.Grab(s.name) })
	} else {
		mtu := max(min(defaultTapMTU, env.MTU-ethHeaderLen), minIPv4MTU)
		err = ns.Do(func() { dev, derr = tap.OpenTapQueues(s.name, mtu, tapQueues()) })
	}
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, openError(s.kind, s.name, err)
	}
	if env.Cred != nil && !ns.Self() {
		env.Log.Info("interface in the caller's network namespace", "network", env.Network,
			"kind", s.kind.String(), "interface", s.name, "pid", env.Cred.Pid)
	}
	if g, ok := dev.(*tap.Grabbed); ok {
		return &grabLink{devLink{g}}, nil
	}
	t := dev.(*tap.Tap)
	return &tapLink{devLink: devLink{t}, tap: t, created: t.Created() || s.created}, nil
}

// openError gives an error of package tap the errno SPEC.md names.
func openError(k kind, name string, err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, tap.ErrNotTap):
		return link.Errorf(syscall.EEXIST, "tap %s: %v", name, err)
	case errors.Is(err, tap.ErrLoopback):
		return link.Errorf(syscall.EINVAL, "grab %s: %v", name, err)
	case errors.Is(err, syscall.ENODEV):
		return link.Errorf(syscall.ENODEV, "%s %s: no such interface", k, name)
	case errors.Is(err, syscall.EBUSY):
		return link.Errorf(syscall.EBUSY, "%s %s: held by another process", k, name)
	case errors.As(err, &errno):
		return link.Errorf(errno, "%s %s: %v", k, name, err)
	}
	return link.Errorf(syscall.EIO, "%s %s: %v", k, name, err)
}

// device is what tapLink and grabLink share of package tap's devices.
type device interface {
	Name() string
	MTU() int
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
	TryRead(p []byte) (int, error)
	PollFD() int
	Exists() bool
}

// devLink is a device of package tap as a link; tapLink and grabLink add
// how each lets its device go and what each saves.
type devLink struct{ dev device }

// Read reads the next frame. An interface taken down (ENETDOWN while it
// still exists) is waited out: frames come again when it is up.
func (l devLink) Read(p []byte) (int, error) { return read(l.dev, p) }

// TryRead and PollFD make a devLink a link.FDPoller.
func (l devLink) TryRead(p []byte) (int, error) { return tryRead(l.dev, p) }
func (l devLink) PollFD() int                   { return l.dev.PollFD() }

// reader is what read needs of a device or a queue. Exists tells an
// interface taken down (ENETDOWN, still there: waited out) from one gone;
// it looks where the device is, in the caller's namespace it was opened
// in, not the daemon's.
type reader interface {
	Name() string
	Read(p []byte) (int, error)
	Exists() bool
}

// read reads the next frame (link.Link's Read).
func read(d reader, p []byte) (int, error) {
	for {
		n, err := d.Read(p)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, os.ErrClosed):
			return 0, link.ErrClosed
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ENETDOWN) && d.Exists():
			continue
		}
		return 0, err
	}
}

// poller is what link.FDPoller's TryRead needs of a device or a queue.
type poller interface {
	reader
	TryRead(p []byte) (int, error)
}

// tryRead is read without waiting (link.FDPoller's TryRead).
func tryRead(d poller, p []byte) (int, error) {
	for {
		n, err := d.TryRead(p)
		switch {
		case err == nil:
			return n, nil
		case errors.Is(err, syscall.EAGAIN):
			return 0, link.ErrNoFrame
		case errors.Is(err, os.ErrClosed):
			return 0, link.ErrClosed
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ENETDOWN) && d.Exists():
			continue
		}
		return 0, err
	}
}

func (l devLink) Write(p []byte) error {
	_, err := l.dev.Write(p)
	return err
}

func (l devLink) MTU() int { return l.dev.MTU() }

// Caps: TAPs and packet sockets run with a virtio-net header and take
// TSO segments and partial checksums as they are.
func (l devLink) Caps() link.Caps { return link.CapGSO }

// tapQueues is how many queues a TAP mnet creates has: one per CPU the
// daemon runs on (up to tap.MaxQueues), so that as many flows as there
// are CPUs are forwarded in parallel.
func tapQueues() int { return min(fdpoll.Procs(), tap.MaxQueues) }

// tapQueue is a queue of a multi-queue TAP after the first, as a
// link.Reader and link.FDPoller.
type tapQueue struct{ q queueDev }

// queueDev is a queue of package tap with its TAP's name.
type queueDev struct {
	*tap.Queue
	name string
}

func (d queueDev) Name() string { return d.name }

var _ link.FDPoller = (*tapQueue)(nil)

func (q *tapQueue) Read(p []byte) (int, error)    { return read(q.q, p) }
func (q *tapQueue) TryRead(p []byte) (int, error) { return tryRead(q.q, p) }
func (q *tapQueue) PollFD() int                   { return q.q.PollFD() }

// tapLink is a TAP device.
type tapLink struct {
	devLink
	tap     *tap.Tap
	created bool // mnet created the TAP: it deletes it when let go
}

var (
	_ link.Link       = (*tapLink)(nil)
	_ link.Saver      = (*tapLink)(nil)
	_ link.FDPoller   = (*tapLink)(nil)
	_ link.Multiqueue = (*tapLink)(nil)
	_ link.Located    = (*tapLink)(nil)
)

// Queues are the TAP's queues, the link itself first (link.Multiqueue).
func (l *tapLink) Queues() []link.Reader {
	out := []link.Reader{l}
	for _, q := range l.tap.Queues()[1:] {
		out = append(out, &tapQueue{queueDev{q, l.tap.Name()}})
	}
	return out
}

// Close lets the TAP go. One mnet created is deleted (the kernel deletes a
// non-persistent TAP when its last descriptor closes), unless keep: then
// it is made persistent, for the next daemon to take over.
func (l *tapLink) Close(keep bool) error {
	if l.created {
		l.tap.SetPersist(keep)
	}
	return l.tap.Close()
}

// Save records whether mnet created the TAP.
func (l *tapLink) Save() (json.RawMessage, error) {
	return json.Marshal(saved{Kind: "tap", Name: l.tap.Name(), Created: l.created})
}

// Netns is where the TAP is now: the user may have moved it since it was
// attached, and a restart looks for it there.
func (l *tapLink) Netns() (netns.ID, error) {
	dev, ino, err := l.tap.NetnsID()
	return netns.ID{Dev: dev, Ino: ino}, err
}

// grabLink is an existing interface grabbed through a packet socket.
type grabLink struct{ devLink }

var (
	_ link.Link     = (*grabLink)(nil)
	_ link.Saver    = (*grabLink)(nil)
	_ link.FDPoller = (*grabLink)(nil)
)

func (l *grabLink) Close(bool) error { return l.dev.Close() }

func (l *grabLink) Save() (json.RawMessage, error) {
	return json.Marshal(saved{Kind: "grab", Name: l.dev.Name()})
}
