package netcore

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Family is one protocol family: a named directory at the root of the mount.
// Families register a constructor with Register (the way the kernel's
// sock_register works); every Core builds one instance of each.
type Family interface {
	Name() string
	Description() string
	// Root is the family's directory.
	Root() Dir
	// Close releases everything the family holds: it wakes blocked callers,
	// closes sockets and removes interfaces it created.
	Close()
}

// Env is what a family gets from the core that builds it.
type Env struct {
	Log *slog.Logger
	// StatePath is the file where families keep state across restarts.
	StatePath string
}

// FamilyConstructor builds a family for one Core.
type FamilyConstructor func(env *Env) (Family, error)

type registration struct {
	name string
	new  FamilyConstructor
}

var (
	registryMu sync.Mutex
	registry   []registration
)

// Register adds a family to every Core created after the call. It is meant
// to be called from a family's init function; registering a name twice
// panics, as sock_register refuses a taken family.
func Register(name string, fn FamilyConstructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	for _, r := range registry {
		if r.name == name {
			panic("netcore: family registered twice: " + name)
		}
	}
	registry = append(registry, registration{name, fn})
	sort.Slice(registry, func(i, j int) bool { return registry[i].name < registry[j].name })
}

// Core is one running instance: every registered family and the root
// directory that shows them.
type Core struct {
	env      Env
	families []Family
	root     *rootDir
}

// New builds every registered family.
func New(env Env) (*Core, error) {
	if env.Log == nil {
		env.Log = slog.Default()
	}
	c := &Core{env: env}
	registryMu.Lock()
	regs := append([]registration(nil), registry...)
	registryMu.Unlock()
	for _, r := range regs {
		f, err := r.new(&c.env)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("family %s: %w", r.name, err)
		}
		c.families = append(c.families, f)
	}
	c.root = newRootDir(c)
	return c, nil
}

// Root is the directory at the top of the mount.
func (c *Core) Root() Dir { return c.root }

// Families lists the families of this core, by name.
func (c *Core) Families() []Family { return c.families }

// Close shuts every family down.
func (c *Core) Close() {
	for _, f := range c.families {
		f.Close()
	}
}

// rootDir holds README, families and one directory per family.
type rootDir struct {
	core    *Core
	readme  *textFile
	famfile *textFile
	started time.Time
}

func newRootDir(c *Core) *rootDir {
	d := &rootDir{core: c, started: time.Now()}
	ro := func(*Cred) Attr { return Attr{Mode: syscall.S_IFREG | 0444, Mtime: d.started} }
	d.readme = newTextFile(ro, func(*Cred) []byte { return []byte(rootReadme) })
	d.famfile = newTextFile(ro, func(*Cred) []byte {
		var b strings.Builder
		for _, f := range c.families {
			fmt.Fprintf(&b, "%s\t%s\n", f.Name(), f.Description())
		}
		return []byte(b.String())
	})
	return d
}

func (d *rootDir) ID() uint64 { return 1 }

func (d *rootDir) Attr(*Cred) Attr {
	return Attr{Mode: syscall.S_IFDIR | 0555, Mtime: d.started}
}

func (d *rootDir) List(*Cred) []DirEntry {
	ents := []DirEntry{{"README", d.readme}, {"families", d.famfile}}
	for _, f := range d.core.families {
		ents = append(ents, DirEntry{f.Name(), f.Root()})
	}
	return ents
}

func (d *rootDir) Lookup(c *Cred, name string) (Node, error) {
	for _, e := range d.List(c) {
		if e.Name == name {
			return e.Node, nil
		}
	}
	return nil, syscall.ENOENT
}

const rootReadme = `mnet: networking as files

  families              registered protocol families, one per line: NAME<TAB>description
  ipn/                  IPN networks; mkdir ipn/NAME creates one, rmdir destroys it
  ipn/NAME/data         each open() is a port: one write sends one packet, one read receives one
  ipn/NAME/ctl          read: settings; write: commands, one per line:
                          policy hub|switch   mtu N   qlen N   lossless on|off
                          maxports N   descr TEXT   persist on|off
                          tap IFNAME   grab IFNAME   detach IFNAME
  ipn/NAME/ports        table of ports
  ipn/NAME/stats        counters
  ipn/NAME/pcap         live capture in pcap format: tcpdump -r ipn/NAME/pcap
  inet/udp/HOST/PORT    each open() is a UDP socket connected to HOST:PORT: write one datagram, read one reply
  inet/udp/0.0.0.0/PORT each open() binds PORT: read datagrams from anyone, write back to the last sender
  inet/tcp/HOST/PORT    each open() connects to HOST:PORT; the file is the byte stream
  inet/tcp/0.0.0.0/PORT each open() accepts one connection on PORT
  inet6/                the same for IPv6: inet6/udp/::1/PORT, wildcard ::
                        HOST: an address or a name; ls lists HOSTs and PORTs with open files

Rights come from the mode of ipn/NAME: r = receive, w = send, x = manage.
inet ports below net.ipv4.ip_unprivileged_port_start are bound only by root.
Example:
  mkdir /mnt/mnet/ipn/lab
  cat /mnt/mnet/ipn/lab/data &
  echo hello > /mnt/mnet/ipn/lab/data
  exec 3<>/mnt/mnet/inet/tcp/127.0.0.1/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3
`
