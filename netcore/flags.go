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
}

var (
	flagsMu sync.Mutex
	flags   []Flag
)

// RegisterFlag adds a mount flag; registering a name twice panics.
func RegisterFlag(f Flag) {
	flagsMu.Lock()
	defer flagsMu.Unlock()
	for _, g := range flags {
		if g.Name == f.Name {
			panic("netcore: flag registered twice: " + f.Name)
		}
	}
	flags = append(flags, f)
	slices.SortFunc(flags, func(a, b Flag) int { return strings.Compare(a.Name, b.Name) })
}

// Flags returns the registered flags, by name.
func Flags() []Flag {
	flagsMu.Lock()
	defer flagsMu.Unlock()
	return slices.Clone(flags)
}

// flagHelpIndent is the column where help texts start.
const flagHelpIndent = 18

// Help formats f for a usage text: "  --NAME ARG" and the usage, its
// lines aligned.
func (f Flag) Help() string {
	head := "  --" + f.Name
	if f.Arg != "" {
		head += " " + f.Arg
	}
	var b strings.Builder
	for i, line := range strings.Split(f.Usage, "\n") {
		if i == 0 {
			pad := max(flagHelpIndent-len(head), 2)
			fmt.Fprintf(&b, "%s%s%s\n", head, strings.Repeat(" ", pad), line)
			continue
		}
		fmt.Fprintf(&b, "%s%s\n", strings.Repeat(" ", flagHelpIndent), line)
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
