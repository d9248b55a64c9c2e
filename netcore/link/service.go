// SPDX-License-Identifier: BSD-3-Clause

package link

import (
	"log/slog"
	"sort"

	"github.com/mnet-project/mnet/netcore"
)

// A Service serves every network through something other than ctl lines:
// a VDE switch directory whose clients become ports as they connect. It is
// switched per network by the ctl line "NAME on|off" (reading ctl shows
// "NAME on" or "NAME off", and a persistent network keeps it), and its
// ports show NAME in the KIND column of ports. Ports of a service are not
// attachments: ctl does not list them, detach does not take them, and they
// are not restored after a restart (their clients reconnect).
type Service struct {
	// Name is the ctl word and the KIND of the service's ports.
	Name string
	// Default is whether a new network has the service on.
	Default bool
	// New prepares the service for one daemon: it reads its options
	// (Env.Flags) and cleans up what a killed daemon left behind.
	New func(env *netcore.Env) (Server, error)
}

// Server is a service in one daemon.
type Server interface {
	// Start serves one network until the Stopper it returns is stopped.
	// It must not call n's Join before it returns. Its errors carry the
	// errno the writer of ctl gets (see Errorf); others are EIO.
	Start(n Network) (Stopper, error)
	// Close releases what the service holds for the daemon, after every
	// network's service has stopped.
	Close()
}

// Stopper is a service serving one network.
type Stopper interface {
	// Stop ends it: every port it joined leaves, what it made outside
	// mnet (a directory) is removed. The network's lock is not held.
	Stop()
	// AccessChanged tells it that the network's owner or mode changed
	// (chmod, chown), for what it derives from them (file modes).
	AccessChanged()
}

// Network is what a service (or an extension) sees of the network it serves.
type Network interface {
	// Name is the network's name.
	Name() string
	Log() *slog.Logger
	// Access is the network's owner, group and rwx mode bits, from which
	// IPN derives rights (r receive, w send, x manage).
	Access() (uid, gid, mode uint32)
	// Rights reports what c may do on the network: receive, send.
	Rights(c *netcore.Cred) (recv, send bool)
	// Limits are the network's mtu and qlen now.
	Limits() (mtu, qlen int)
	// Recovered counts a panic r that a goroutine of the service or
	// extension recovered while it handled something from outside (a
	// frame, a client's request: lost) in the network's stats, and logs
	// it at error level with its stack; call it from the deferred
	// function that recovered. msg says what was lost.
	Recovered(r any, msg string, args ...any)
	// Quota counts what uids hold, for what a service or extension
	// queues for a caller (its queued bytes) or opens for it.
	Quota() *netcore.Quota
	// Join makes l a port of the network, described by m; the network
	// reads l until leave is called or Read fails. Join fails with
	// EBUSY at maxports and ENOENT once the network is gone. leave may be
	// called any number of times, from any goroutine without the
	// network's lock; it returns once l is closed.
	Join(l Link, m Member) (leave func(), err error)
}

// Member describes a port a service joins.
type Member struct {
	UID, PID   uint32
	Name       string // the NAME column: no spaces
	Recv, Send bool
	// Number is what the service's clients know the port by (a VDE
	// port number), which settings such as "vlan vde:N VID" name; 0 for
	// none.
	Number int
}

var services = map[string]*Service{}

// RegisterService adds a service; like Register, from its package's init.
// A name taken by a kind or a service, or reserved, panics.
func RegisterService(s *Service) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if s.Name == "" || reserved[s.Name] || kinds[s.Name] != nil || services[s.Name] != nil || extWord(s.Name) != nil {
		panic("link: service name empty, reserved or registered twice: " + s.Name)
	}
	if s.New == nil {
		panic("link: service without New: " + s.Name)
	}
	services[s.Name] = s
}

// LookupService returns the service called name, or nil.
func LookupService(name string) *Service {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	return services[name]
}

// Services returns every registered service, by name.
func Services() []*Service {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	out := make([]*Service, 0, len(services))
	for _, s := range services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
