// SPDX-License-Identifier: BSD-3-Clause

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
	// Flags are mount flags meant for one family or service, by flag
	// name without dashes ("vde-dir"), so that a new option does not
	// change this struct. A missing flag means its default.
	Flags map[string]string
	// Limits are what one uid, and all together, may hold of each
	// registered Resource (ParseLimits reads them from Flags); limits
	// not set get the defaults.
	Limits Limits
	// Quota counts it against Limits for every family; New makes it.
	Quota *Quota
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
	env.Limits = env.Limits.WithDefaults()
	if env.Quota == nil {
		env.Quota = NewQuota(env.Limits, env.Log)
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

// Quota is what counts the uids' holdings for every family.
func (c *Core) Quota() *Quota { return c.env.Quota }

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
	readme  *TextFile
	famfile *TextFile
	started time.Time
}

func newRootDir(c *Core) *rootDir {
	d := &rootDir{core: c, started: time.Now()}
	ro := func(*Cred) Attr { return Attr{Mode: syscall.S_IFREG | 0444, Mtime: d.started} }
	readme := c.readme()
	d.readme = NewTextFile(ro, func(*Cred) []byte { return readme })
	d.famfile = NewTextFile(ro, func(*Cred) []byte {
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
	return LookupListed(d, c, name)
}

// Readmer is a Family that contributes to the README at the root of the
// mount: a few lines for a person at a shell, paths indented by two spaces
// as the rest of that file.
type Readmer interface {
	Readme() string
}

const readmeHead = `mnet: networking as files

  README                this text
  families              registered protocol families, one per line: NAME<TAB>description
  (man 7 mnet is the manual of these files, man 8 mnet of the daemon and mount -t mnet)
`

// readme assembles the root README from what each family contributes, in
// registry order, so that no family is listed by hand here.
func (c *Core) readme() []byte {
	var b strings.Builder
	b.WriteString(readmeHead)
	for _, f := range c.families {
		if r, ok := f.(Readmer); ok {
			b.WriteString("\n")
			b.WriteString(r.Readme())
		}
	}
	return []byte(b.String())
}
