// SPDX-License-Identifier: BSD-3-Clause

// Package mountopt reads the command line mount(8) gives a filesystem's
// mount helper (mount.mnet SPEC DIR [-sfnv] [-o OPTIONS]) and turns the
// options into flags of `mnet mount`.
package mountopt

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mnet-project/mnet/netcore"
)

// Request is one mount helper invocation.
type Request struct {
	Spec    string // the "device": ignored, "mnet" by convention
	Dir     string // the mount point, absolute and clean
	Fake    bool   // -f: check everything, mount nothing
	Verbose bool   // -v: say what is done
	NoMtab  bool   // -n: nothing to do, mnet keeps no mtab entry
	Sloppy  bool   // -s: ignore unknown options instead of failing
	// Flags are the `mnet mount` flags the options stand for, in the
	// order given, without the mount point.
	Flags []string
	// LogPath is the log= option, "" when the daemon logs to syslog.
	LogPath string
	// Ignored lists options accepted and not acted upon: generic ones
	// that do not concern mnet and, with -s, unknown ones.
	Ignored []string
}

// daemonOption is a mount option that is a flag of `mnet mount`.
type daemonOption struct {
	name  string
	flag  string
	value bool                     // NAME=VALUE; otherwise a bare NAME
	check func(value string) error // nil: any value
}

// daemonOptions maps mnet's own mount options to daemon flags. A new
// daemon flag that an administrator sets per mount gets a row here (and a
// line in mnet(8)); a flag a family or link kind registers
// (netcore.RegisterFlag), and a limit's (netcore.RegisterResource),
// brings its option with it.
var daemonOptions = []daemonOption{
	{name: "state", flag: "--state", value: true, check: emptyOrAbsolute},
	{name: "log", flag: "--log", value: true, check: absolute},
	{name: "debug", flag: "-v"},
	{name: "debug_fuse", flag: "--debug-fuse"},
}

// genericOptions are options mount(8) hands every helper that concern
// mount(8), systemd or the VFS rather than mnet. mnet accepts and ignores
// them: its mounts are always rw, nosuid and nodev.
var genericOptions = map[string]bool{
	"rw": true, "defaults": true, "auto": true, "noauto": true,
	"nofail": true, "_netdev": true, "nouser": true,
	"nosuid": true, "nodev": true, "exec": true, "noexec": true,
	"async": true, "sync": true, "dirsync": true,
	"atime": true, "noatime": true, "relatime": true, "norelatime": true,
	"strictatime": true, "nostrictatime": true, "lazytime": true,
	"nolazytime": true, "diratime": true, "nodiratime": true,
	"silent": true, "loud": true,
}

// refusedOptions contradict what an mnet mount is.
var refusedOptions = map[string]string{
	"ro":    "mnet is always mounted read-write",
	"suid":  "mnet is always mounted nosuid",
	"dev":   "mnet is always mounted nodev",
	"user":  "mnet is mounted by root only (it creates interfaces for every user)",
	"users": "mnet is mounted by root only (it creates interfaces for every user)",
	"owner": "mnet is mounted by root only (it creates interfaces for every user)",
	"group": "mnet is mounted by root only (it creates interfaces for every user)",
}

// ErrUsage marks a command line mount(8) would never have produced.
var ErrUsage = errors.New("usage: mount.mnet SPEC DIR [-sfnv] [-o OPTIONS]")

// Parse reads a mount helper's arguments (without argv[0]).
func Parse(args []string) (*Request, error) {
	r := &Request{}
	var pos, opts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-t":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%s needs a value: %w", a, ErrUsage)
			}
			i++
			if a == "-o" {
				opts = append(opts, args[i])
			} else if args[i] != "mnet" {
				return nil, fmt.Errorf("-t %s: this helper mounts type mnet only", args[i])
			}
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, a[2:])
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			for _, c := range a[1:] {
				switch c {
				case 's':
					r.Sloppy = true
				case 'f':
					r.Fake = true
				case 'n':
					r.NoMtab = true
				case 'v':
					r.Verbose = true
				default:
					return nil, fmt.Errorf("unknown flag -%c: %w", c, ErrUsage)
				}
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, fmt.Errorf("want SPEC and DIR, got %d arguments: %w", len(pos), ErrUsage)
	}
	r.Spec = pos[0]
	dir, err := filepath.Abs(pos[1])
	if err != nil {
		return nil, err
	}
	r.Dir = dir
	for _, o := range opts {
		if err := r.addOptions(o); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addOptions applies one -o list, comma-separated.
func (r *Request) addOptions(list string) error {
	for _, o := range strings.Split(list, ",") {
		if o == "" {
			continue
		}
		name, value, hasValue := strings.Cut(o, "=")
		if why, bad := refusedOptions[name]; bad && !hasValue {
			return fmt.Errorf("option %s: %s", o, why)
		}
		if (genericOptions[name] && !hasValue) || strings.HasPrefix(name, "x-") || name == "comment" {
			r.Ignored = append(r.Ignored, o)
			continue
		}
		d := lookup(name)
		switch {
		case d == nil && r.Sloppy:
			r.Ignored = append(r.Ignored, o)
		case d == nil:
			return fmt.Errorf("unknown option %q (mnet(8) lists the options; -s ignores unknown ones)", o)
		case d.value && !hasValue:
			return fmt.Errorf("option %s needs a value: %s=VALUE", name, name)
		case !d.value && hasValue:
			return fmt.Errorf("option %s takes no value", name)
		case d.value:
			if d.check != nil {
				if err := d.check(value); err != nil {
					return fmt.Errorf("option %s: %v", o, err)
				}
			}
			if name == "log" {
				r.LogPath = value
			}
			r.Flags = append(r.Flags, d.flag, value)
		default:
			r.Flags = append(r.Flags, d.flag)
		}
	}
	return nil
}

func lookup(name string) *daemonOption {
	for i := range daemonOptions {
		if daemonOptions[i].name == name {
			return &daemonOptions[i]
		}
	}
	for _, f := range netcore.Flags() {
		if f.Option == name {
			return &daemonOption{name: name, flag: "--" + f.Name, value: true, check: f.CheckOption}
		}
	}
	return nil
}

var absolute = netcore.AbsolutePath

func emptyOrAbsolute(p string) error {
	if p == "" {
		return nil
	}
	return absolute(p)
}
