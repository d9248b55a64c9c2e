// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Resource is one thing every caller shares and the Quota bounds: per uid,
// and in all, with a reserve of the whole kept for the administrator.
// netcore defines those of every family (Sockets, Queued); a family or
// link kind registers its own with RegisterResource.
type Resource int

const (
	// Sockets are kernel sockets made for a uid, of every family: inet,
	// inet6, mhost locators, VXLAN underlays.
	Sockets Resource = iota
	// Queued are bytes of packets waiting in the daemon's queues.
	Queued
	// numShared counts the resources netcore defines.
	numShared = int(Queued) + 1
)

// maxResources bounds the resources there may be, so that a Quota counts
// them in arrays: a charge per packet costs no look-up.
const maxResources = 16

// ResourceSpec describes a resource: its name, the defaults of its
// limits, the mount flags that set them and the errnos of a refusal.
type ResourceSpec struct {
	// Name names the resource in the log ("networks").
	Name string
	// Owner is the family or link kind that registers the resource: the
	// help lists resources by owner, those netcore defines for every
	// family last.
	Owner string
	// PerUid is the default of the per-uid limit, Global of the limit in
	// all; a Global of 0 means no limit in all (no GlobalFlag then).
	PerUid, Global int64
	// Flag and GlobalFlag are the mount flags that set the limits, without
	// dashes ("max-networks-per-uid", "max-networks"); the mount option
	// of each is its name with underscores for dashes.
	Flag, GlobalFlag string
	// Usage and GlobalUsage are the flags' help texts, lines separated by
	// newlines, the default and the errno of a refusal included.
	Usage, GlobalUsage string
	// Size says the limits are bytes, given as a SIZE (with K, M or G);
	// otherwise they are counts, at least 1.
	Size bool
	// Refusal is the errno of a charge refused past the per-uid limit,
	// GlobalRefusal past the global one.
	Refusal, GlobalRefusal syscall.Errno
}

var (
	resourcesMu sync.Mutex
	// resources are indexed by Resource; a Resource is never removed.
	// Names are ENOSPC, sockets EMFILE as a process's descriptor table
	// and ENFILE as the system's, queued bytes ENOBUFS (callers drop or
	// wait; it never reaches a caller as such).
	resources = []ResourceSpec{
		Sockets: {Name: "sockets", PerUid: 1024, Global: 8192,
			Flag: "max-sockets-per-uid", GlobalFlag: "max-sockets",
			Usage: "kernel sockets made for one uid, every family counted\n" +
				"together: inet, inet6, mhost, vxlan (default 1024; EMFILE)",
			GlobalUsage: "kernel sockets in all (default 8192; ENFILE)",
			Refusal:     syscall.EMFILE, GlobalRefusal: syscall.ENFILE},
		Queued: {Name: "queued-bytes", PerUid: 64 << 20, Global: 256 << 20,
			Flag: "max-queued-per-uid", GlobalFlag: "max-queued", Size: true,
			Usage: "bytes of packets waiting in queues for or from one uid\n" +
				"(default 64M; beyond: dropped, or a lossless writer waits)",
			GlobalUsage: "queued bytes in all (default 256M)",
			Refusal:     syscall.ENOBUFS, GlobalRefusal: syscall.ENOBUFS},
	}
)

// RegisterResource adds a resource that every Quota made afterwards
// counts, and its limits' mount flags (with their -o options) to Flags.
// It is meant to be called from the owner's package variables or init
// function, before any Quota is made. It panics on a spec that lacks a
// name, an owner, a flag, a usage or an errno, has a GlobalFlag without
// a Global default or the other way round, or whose name or flags are
// taken.
func RegisterResource(s ResourceSpec) Resource {
	switch {
	case s.Name == "" || s.Owner == "" || s.Flag == "" || s.Usage == "" || s.PerUid < 1 || s.Refusal == 0:
		panic(fmt.Sprintf("netcore: resource %q: want a name, an owner, a flag, a usage, a per-uid default and an errno", s.Name))
	case (s.GlobalFlag == "") != (s.Global == 0) || (s.GlobalFlag != "" && (s.GlobalUsage == "" || s.GlobalRefusal == 0)):
		panic(fmt.Sprintf("netcore: resource %q: a global limit wants a default, a flag, a usage and an errno", s.Name))
	}
	flagsMu.Lock()
	defer flagsMu.Unlock()
	resourcesMu.Lock()
	defer resourcesMu.Unlock()
	if len(resources) == maxResources {
		panic("netcore: too many resources: " + s.Name)
	}
	for _, t := range resources {
		if t.Name == s.Name {
			panic("netcore: resource registered twice: " + s.Name)
		}
	}
	for _, name := range []string{s.Flag, s.GlobalFlag} {
		if name != "" && flagTakenLocked(name) || s.Flag == s.GlobalFlag {
			panic("netcore: flag registered twice: " + name)
		}
	}
	resources = append(resources, s)
	return Resource(len(resources) - 1)
}

// spec returns r's spec.
func (r Resource) spec() ResourceSpec {
	resourcesMu.Lock()
	defer resourcesMu.Unlock()
	if r < 0 || int(r) >= len(resources) {
		return ResourceSpec{Name: "resource" + strconv.Itoa(int(r))}
	}
	return resources[r]
}

func (r Resource) String() string { return r.spec().Name }

// registeredResources returns the specs, indexed by Resource.
func registeredResources() []ResourceSpec {
	resourcesMu.Lock()
	defer resourcesMu.Unlock()
	return slices.Clone(resources)
}

// inHelpOrder returns the resources by owner, in the order each owner
// registered them, then those of every family.
func inHelpOrder(specs []ResourceSpec) []Resource {
	order := make([]Resource, len(specs))
	for i := range order {
		order[i] = Resource((i + numShared) % len(specs))
	}
	slices.SortStableFunc(order[:len(specs)-numShared], func(a, b Resource) int {
		return cmp.Compare(specs[a].Owner, specs[b].Owner)
	})
	return order
}

// Limits bound what a uid may hold of each Resource, and what all may
// hold together. Root sets them with `mnet mount` flags (ParseLimits);
// limits not set get the defaults.
type Limits struct {
	perUid, global [maxResources]int64
	// RootReserve is the percentage of each global limit that only a
	// caller with CAP_SYS_ADMIN may use (at least one unit when not 0),
	// so that users filling a limit together never lock the
	// administrator out. 0: the default; negative: none.
	RootReserve int
}

// DefaultRootReserve is the default Limits.RootReserve.
const DefaultRootReserve = 10

// With returns l with r bounded to perUid per uid and global in all; 0
// leaves a bound as it was.
func (l Limits) With(r Resource, perUid, global int64) Limits {
	if perUid != 0 {
		l.perUid[r] = perUid
	}
	if global != 0 {
		l.global[r] = global
	}
	return l
}

// PerUid is what one uid may hold of r; 0 when not set.
func (l Limits) PerUid(r Resource) int64 { return l.perUid[r] }

// Global is what all may hold of r together; 0 when not set, or when r
// has no global limit.
func (l Limits) Global(r Resource) int64 { return l.global[r] }

// WithDefaults returns l with the limits not set set to the defaults.
func (l Limits) WithDefaults() Limits {
	for r, s := range registeredResources() {
		if l.perUid[r] == 0 {
			l.perUid[r] = s.PerUid
		}
		if l.global[r] == 0 {
			l.global[r] = s.Global
		}
	}
	if l.RootReserve == 0 {
		l.RootReserve = DefaultRootReserve
	}
	return l
}

// String describes l for the start-up log line.
func (l Limits) String() string {
	specs := registeredResources()
	order := inHelpOrder(specs)
	var perUid, global []string
	for _, r := range order {
		perUid = append(perUid, fmt.Sprintf("%s %d", specs[r].Name, l.perUid[r]))
		if specs[r].GlobalFlag != "" {
			global = append(global, fmt.Sprintf("%s %d", specs[r].Name, l.global[r]))
		}
	}
	return fmt.Sprintf("per uid: %s; in all: %s; root reserve %d%%",
		strings.Join(perUid, ", "), strings.Join(global, ", "), max(l.RootReserve, 0))
}

// rootReserveFlag is the mount flag of Limits.RootReserve.
var rootReserveFlag = Flag{Name: "root-reserve", Default: strconv.Itoa(DefaultRootReserve), Arg: "PERCENT",
	Usage: "share of each global limit only CAP_SYS_ADMIN may use\n" +
		"(default " + strconv.Itoa(DefaultRootReserve) + "; 0: none)",
	Option: "root_reserve", CheckOption: checkPercent, Limit: true}

// limitFlags are the flags of the registered limits, in the order of the
// help: per uid, in all, the root reserve.
func limitFlags() []Flag {
	specs := registeredResources()
	order := inHelpOrder(specs)
	var perUid, global []Flag
	for _, r := range order {
		s := specs[r]
		arg, def, check := "N", strconv.FormatInt, checkCount
		if s.Size {
			arg, def, check = "SIZE", func(n int64, _ int) string { return FormatSize(n) }, checkSize
		}
		perUid = append(perUid, Flag{Name: s.Flag, Default: def(s.PerUid, 10), Arg: arg, Usage: s.Usage,
			Option: optionOf(s.Flag), CheckOption: check, Limit: true})
		if s.GlobalFlag != "" {
			global = append(global, Flag{Name: s.GlobalFlag, Default: def(s.Global, 10), Arg: arg, Usage: s.GlobalUsage,
				Option: optionOf(s.GlobalFlag), CheckOption: check, Limit: true})
		}
	}
	return append(append(perUid, global...), rootReserveFlag)
}

// optionOf is the mount option of a limit's flag.
func optionOf(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// ParseLimits reads the limits from mount flags' values by flag name
// without dashes (Env.Flags); a flag missing means its default.
func ParseLimits(flags map[string]string) (Limits, error) {
	var l Limits
	for r, s := range registeredResources() {
		for i, name := range []string{s.Flag, s.GlobalFlag} {
			v, ok := flags[name]
			if name == "" || !ok {
				continue
			}
			n, err := parseLimit(v, s.Size)
			if err != nil {
				return Limits{}, fmt.Errorf("--%s %s: %v", name, v, err)
			}
			if i == 0 {
				l = l.With(Resource(r), n, 0)
			} else {
				l = l.With(Resource(r), 0, n)
			}
		}
	}
	if v, ok := flags[rootReserveFlag.Name]; ok {
		n, err := strconv.ParseInt(v, 0, strconv.IntSize)
		if err != nil || n < 0 || n > 50 {
			return Limits{}, fmt.Errorf("--%s %s: want a percentage, 0 to 50", rootReserveFlag.Name, v)
		}
		l.RootReserve = int(n)
		if n == 0 {
			l.RootReserve = -1 // none
		}
	}
	return l.WithDefaults(), nil
}

// parseLimit reads a limit's value: a SIZE if size, otherwise a count.
func parseLimit(v string, size bool) (int64, error) {
	if size {
		return ParseSize(v)
	}
	n, err := strconv.ParseInt(v, 0, strconv.IntSize)
	if err != nil {
		return 0, errors.New("want a whole number, at least 1")
	}
	if n < 1 {
		return 0, errors.New("want at least 1")
	}
	return n, nil
}

// checkCount is the CheckOption of a count.
func checkCount(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 1 {
		return errors.New("want a whole number, at least 1")
	}
	return nil
}

// checkSize is the CheckOption of a SIZE.
func checkSize(v string) error {
	_, err := ParseSize(v)
	return err
}

// checkPercent is the CheckOption of the root reserve.
func checkPercent(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < 0 || n > 50 {
		return errors.New("want a percentage, 0 to 50")
	}
	return nil
}

// ParseSize reads a size in bytes: a whole number, optionally followed by
// K, M or G (KiB, MiB, GiB); at least 64K, so that a packet of the
// largest mtu fits.
func ParseSize(v string) (int64, error) {
	mult := int64(1)
	if k := len(v); k > 0 {
		switch v[k-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			v = v[:k-1]
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > (1<<50)/mult {
		return 0, errors.New("want a size: a whole number of bytes, or with K, M or G")
	}
	if n*mult < 64<<10 {
		return 0, errors.New("want a size of at least 64K")
	}
	return n * mult, nil
}

// FormatSize writes n bytes as ParseSize reads them, in the largest unit
// that divides it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"G", 30}, {"M", 20}, {"K", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
