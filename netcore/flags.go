// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Flag is a string-valued `mnet mount` flag that one family or link kind
// owns: it registers the flag from its init function, as it registers
// itself, so that cmd/mnet builds its flags, the mount helper's -o options
// and the help text from the registry without importing the package. The
// owner reads the value from Env.Flags[Name] and checks it when it starts.
type Flag struct {
	// Name is the flag without dashes ("vde-dir").
	Name string
	// Default is the value when the flag is not given.
	Default string
	// Arg names the value in the help text ("DIR").
	Arg string
	// Usage is the help text, its lines separated by newlines.
	Usage string
	// Option is the mount option (-o NAME=VALUE) that stands for the
	// flag, "" for none.
	Option string
	// CheckOption checks an option's value before the mount helper starts
	// the daemon, so that a bad fstab line fails in mount(8); nil: any.
	CheckOption func(value string) error
	// Limit marks the flag of a limit: RegisterResource makes them, and
	// the help lists them apart, in a table of their own.
	Limit bool
}

var (
	flagsMu sync.Mutex
	flags   []Flag
)

// RegisterFlag adds a mount flag; registering a name twice, or a limit's
// flag (RegisterResource makes those), panics.
func RegisterFlag(f Flag) {
	if f.Limit {
		panic("netcore: a limit's flag comes with its resource: " + f.Name)
	}
	flagsMu.Lock()
	defer flagsMu.Unlock()
	resourcesMu.Lock()
	defer resourcesMu.Unlock()
	if flagTakenLocked(f.Name) {
		panic("netcore: flag registered twice: " + f.Name)
	}
	flags = append(flags, f)
	slices.SortFunc(flags, func(a, b Flag) int { return strings.Compare(a.Name, b.Name) })
}

// flagTakenLocked reports whether a flag, a limit's included, has name.
// Called with flagsMu and resourcesMu held.
func flagTakenLocked(name string) bool {
	if name == rootReserveFlag.Name {
		return true
	}
	for _, f := range flags {
		if f.Name == name {
			return true
		}
	}
	for _, s := range resources {
		if s.Flag == name || s.GlobalFlag == name {
			return true
		}
	}
	return false
}

// Flags returns the registered flags: those of families and link kinds
// by name, then those of the limits in the order of the help.
func Flags() []Flag {
	flagsMu.Lock()
	fs := slices.Clone(flags)
	flagsMu.Unlock()
	return append(fs, limitFlags()...)
}

// The columns where help texts start: of family flags, and in the
// table of limits, whose flag names are longer.
const (
	flagHelpIndent  = 18
	limitHelpIndent = 31
)

// Help formats f for a usage text: "  --NAME ARG" and the usage, its
// lines aligned.
func (f Flag) Help() string {
	head := "  --" + f.Name
	if f.Arg != "" {
		head += " " + f.Arg
	}
	indent := flagHelpIndent
	if f.Limit {
		indent = limitHelpIndent
	}
	var b strings.Builder
	for i, line := range strings.Split(f.Usage, "\n") {
		if i == 0 {
			pad := max(indent-len(head), 2)
			fmt.Fprintf(&b, "%s%s%s\n", head, strings.Repeat(" ", pad), line)
			continue
		}
		fmt.Fprintf(&b, "%s%s\n", strings.Repeat(" ", indent), line)
	}
	return b.String()
}

// AbsolutePath is a Flag.CheckOption: an absolute path.
func AbsolutePath(p string) error {
	if !filepath.IsAbs(p) {
		return errors.New("want an absolute path")
	}
	return nil
}

// AbsolutePaths is a Flag.CheckOption: absolute paths separated by colons.
func AbsolutePaths(list string) error {
	for p := range strings.SplitSeq(list, ":") {
		if err := AbsolutePath(p); err != nil {
			return err
		}
	}
	return nil
}
