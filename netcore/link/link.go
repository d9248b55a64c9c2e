// SPDX-License-Identifier: BSD-3-Clause

// Package link is the seam between IPN networks and every port that is not
// a file: TAP devices, grabbed interfaces and, through the same interface,
// any other kind of port (a VDE client, a VXLAN cable, a userspace host).
//
// A kind of link is registered once, from its package's init, with
// Register; a network then attaches links of that kind with the ctl line
// "KIND ARGS", shows them in its ports table with KIND in the KIND column,
// detaches them with "detach NAME", and, for a persistent network,
// restores them after a restart. The network never asks what kind a link
// is: what differs between kinds is behind Link, Kind and Spec.
//
// Frames cross a link in the network's frame format (package vnet): a
// vnet.HdrLen-byte virtio-net header, then the Ethernet frame.
//
// Two more ways to add to every network use the same Link: a Service
// (service.go) serves each network through something outside ctl, such as
// a VDE switch directory, and is switched by "NAME on|off"; an Extension
// (ext.go) owns ctl words with settings of its own and names in the
// network's directory, such as the userspace host ("addr", "mac", udp/).
// Both see their network as a Network and join their ports through it.
package link

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"syscall"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
)

// Link is one attached port that is not a file.
type Link interface {
	// Read blocks until a frame arrives and copies it, virtio-net header
	// first, into p, returning its length. After Close it returns
	// ErrClosed; any other error means the link is gone (its interface
	// was deleted, its peer went away) and the network detaches it.
	Read(p []byte) (int, error)

	// Write sends one frame, virtio-net header first. It must not wait on
	// a slow peer: a frame the link cannot take now is an error, which
	// the network counts as a drop for this port. Write is called from
	// any goroutine, also concurrently: two pumps may deliver to one link at
	// once, so a link serializes its own writes if its device needs it.
	Write(p []byte) error

	// MTU is the largest payload the link carries: frames of up to MTU
	// plus an Ethernet header and a VLAN tag. Longer plain frames are
	// drops for this port.
	MTU() int

	// Caps tells what the link takes beyond plain frames.
	Caps() Caps

	// Close lets the link go. Read returns ErrClosed once Close has been
	// called; Close may run while another goroutine is in Read or Write.
	// keep is set when the daemon stops and the network persists: what
	// the link holds outside mnet (a TAP it created) then stays for the
	// next daemon to take over, instead of being deleted.
	Close(keep bool) error
}

// FDPoller is a link queue whose readiness a file descriptor reports
// (readable when a frame is waiting, in error or hung up when the link is
// gone) and whose frames can be taken without waiting. The network waits
// for all such queues of its links in one goroutine, as a poll loop does,
// and that goroutine reads and forwards what an idle link receives (a
// ping, a request, its reply) itself; a busy queue is handed to its own
// pump. The descriptor is only waited on, never read or closed by the
// network, and it stays valid until the link is closed.
type FDPoller interface {
	// TryRead is Read without waiting: ErrNoFrame when no frame is there
	// now. It may run while another goroutine is in Read.
	TryRead(p []byte) (int, error)
	// PollFD is the descriptor.
	PollFD() int
}

// Multiqueue is a Link whose frames arrive on several queues (a TAP with
// IFF_MULTI_QUEUE, where the kernel hands each flow to one queue): the
// network reads every queue with a pump of its own, so that flows are
// forwarded in parallel. The frames of one queue keep their order; those
// of different queues (different flows) need not.
type Multiqueue interface {
	// Queues are the link's queues, the first being the Link itself
	// (its Read, and its FDPoller methods if it has them). A queue that
	// is an FDPoller is waited for as one.
	Queues() []Reader
}

// Reader is one queue of a Multiqueue link: Read as Link's.
type Reader interface {
	Read(p []byte) (int, error)
}

// ErrNoFrame is what FDPoller.TryRead returns when no frame is waiting.
var ErrNoFrame = errors.New("no frame waiting")

// Caps are the capabilities of a link, as gVisor's LinkEndpoint has them.
type Caps uint32

const (
	// CapGSO: the link takes frames with offloads as they are: a TCP or
	// UDP segment of up to 64 KiB and a checksum left to complete, as the
	// virtio-net header describes them. A link without it gets such a
	// frame cut into wire-size frames with complete checksums.
	CapGSO Caps = 1 << iota
)

// Saver is a Link whose attachment a persistent network restores at the
// next start. Save returns the fields Kind.Restore needs, as a JSON object;
// "kind" and "name" are added by the network.
type Saver interface {
	Save() (json.RawMessage, error)
}

// ErrClosed is what Read returns after Close.
var ErrClosed = errors.New("link closed")

// Spec is one attachment between ctl's parse and the link's open: a ctl
// line is checked whole before anything of it is applied.
type Spec interface {
	// Name is the attachment's name: the NAME column of ports and the
	// argument of detach.
	Name() string
	// Args is the argument text of the ctl line that makes this
	// attachment ("KIND ARGS"), as reading ctl shows it.
	Args() string
	// Claim is the key no two attachments in the daemon may share, such
	// as an interface name (an interface joins one network only); ""
	// claims nothing.
	Claim() string
	// Open opens the link. Its errors carry the errno the writer of ctl
	// gets (see Errorf); others are EIO.
	Open(env Env) (Link, error)
}

// Binder is a Spec whose Claim depends on where it is attached: an
// interface name means the interface of that name in one network
// namespace. Bind is called once, before Claim, with the namespace the
// link is to be opened in (Env.NS); its errors carry the errno the
// writer gets.
type Binder interface {
	Bind(ns *netns.NS) error
}

// Env is what a link learns of the network it joins when it is opened.
type Env struct {
	// Network is the network's name, for log lines.
	Network string
	// MTU is the network's mtu: the largest frame it carries.
	MTU int
	// Cred is the caller whose ctl write attaches the link, pinned when it
	// opened ctl; nil when a persistent network's attachment is restored
	// at start.
	Cred *netcore.Cred
	// NS is the network namespace the link is made in, never nil: the
	// caller's, pinned when it opened ctl, or, for a restored attachment,
	// the one it was made in. It is lent for the call to Open: a link
	// that needs it later keeps what it made there, not NS.
	NS  *netns.NS
	Log *slog.Logger
	// Payer is who the kernel sockets the link makes count for (with
	// every family's, EMFILE past the limit): the caller, or root for a
	// restored attachment. Nil counts nothing.
	Payer *netcore.Payer
}

// Located is a Link that may leave the namespace it was opened in (a TAP
// the user moves with `ip link set NAME netns NS`): Netns tells where it
// is now. A persistent network restores a link there, and any other link
// in the namespace it was opened in.
type Located interface {
	Netns() (netns.ID, error)
}

// Privilege is what a caller needs, beyond the network's manage right, to
// attach or detach links of a kind.
type Privilege int

const (
	// PrivNone: the manage right is enough.
	PrivNone Privilege = iota
	// PrivNetAdmin: the caller may change the network configuration of
	// its network namespace: CAP_NET_ADMIN in its effective set, counted
	// only in the daemon's user namespace. uid 0 without it is refused.
	PrivNetAdmin
)

// Held reports whether c holds p.
func (p Privilege) Held(c *netcore.Cred) bool {
	switch p {
	case PrivNone:
		return true
	case PrivNetAdmin:
		return c.HasCap(netcore.CapNetAdmin)
	}
	return false
}

func (p Privilege) String() string {
	switch p {
	case PrivNone:
		return "none"
	case PrivNetAdmin:
		return "CAP_NET_ADMIN"
	}
	return fmt.Sprintf("Privilege(%d)", int(p))
}

// Kind is one kind of link.
type Kind struct {
	// Name is the ctl verb that attaches a link of this kind and what
	// the KIND column of ports shows.
	Name string
	// Privilege is needed to attach and to detach links of this kind.
	Privilege Privilege
	// Busy: a second attachment of this kind to a claimed key fails
	// with EBUSY (the device is busy); other collisions are EEXIST.
	Busy bool
	// Parse reads the argument of the ctl line "Name ARGS". Its errors
	// are EINVAL unless they carry another errno.
	Parse func(args string) (Spec, error)
	// Restore reads an attachment a Saver saved; nil if links of this
	// kind are not restored.
	Restore func(saved json.RawMessage) (Spec, error)
}

var (
	kindsMu sync.Mutex
	kinds   = map[string]*Kind{}
)

// reserved are names a kind may not take: the KIND of file ports, and the
// ctl verb that detaches links of every kind.
var reserved = map[string]bool{"file": true, "detach": true}

// Register adds a kind of link. It is meant to be called from the kind's
// package init; a name taken twice or reserved panics.
func Register(k *Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if k.Name == "" || reserved[k.Name] || kinds[k.Name] != nil || services[k.Name] != nil || extWord(k.Name) != nil {
		panic("link: kind name empty, reserved or registered twice: " + k.Name)
	}
	if k.Parse == nil {
		panic("link: kind without Parse: " + k.Name)
	}
	kinds[k.Name] = k
}

// Lookup returns the kind called name, or nil.
func Lookup(name string) *Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	return kinds[name]
}

// Kinds returns every registered kind, by name.
func Kinds() []*Kind {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	out := make([]*Kind, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Error is a failure with the errno the writer of ctl gets.
type Error struct {
	Errno syscall.Errno
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, syscall.EXXX) and errors.As(err, &errno) work.
func (e *Error) Unwrap() error { return e.Errno }

// Errorf returns an Error with errno and a formatted message.
func Errorf(errno syscall.Errno, format string, args ...any) error {
	return &Error{errno, fmt.Sprintf(format, args...)}
}

// ErrnoOf returns the errno err carries, or EIO.
func ErrnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}
