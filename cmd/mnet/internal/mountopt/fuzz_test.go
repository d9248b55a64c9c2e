// SPDX-License-Identifier: BSD-3-Clause

package mountopt

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

// FuzzParse: any mount helper command line (arguments separated by NUL,
// as in /proc/PID/cmdline). Parse never panics, and what it accepts
// turns into `mnet mount` flags that say only what the options said: the
// flags of known options, each value flag with a value its check
// accepts, so that no option value can become another flag of the
// daemon; the mount point absolute and clean.
func FuzzParse(f *testing.F) {
	for _, args := range [][]string{
		{"mnet", "/mnt/mnet", "-o", "rw"},
		{"-sfnv", "none", "/x", "-orw,state=/var/tmp/s.json,debug", "-o", "log=/var/log/mnet.log,x-systemd.requires=foo,_netdev"},
		{"mnet", "/m", "-o", "state=,debug_fuse"},
		{"mnet", "/m", "-o", "max_networks_per_uid=8,max_persistent_per_uid=2,max_sockets_per_uid=64"},
		{"mnet", "/m", "-s", "-o", "frobnicate,debug"},
		{"mnet", "/m", "-t", "mnet"},
		{"mnet", "m/../x", "-o", "log=-v"},
		{"mnet", "/m", "-o", "max_sockets_per_uid=+1,ro=1"},
		{"--", "-x", "/m"},
	} {
		f.Add(strings.Join(args, "\x00"))
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		args := strings.Split(cmdline, "\x00")
		r, err := Parse(args)
		if err != nil {
			return
		}
		if !filepath.IsAbs(r.Dir) || filepath.Clean(r.Dir) != r.Dir {
			t.Fatalf("%q: mount point %q", args, r.Dir)
		}
		log := ""
		for i := 0; i < len(r.Flags); i++ {
			d := optionByFlag(r.Flags[i])
			if d == nil {
				t.Fatalf("%q: flag %q is no option's", args, r.Flags[i])
			}
			if !d.value {
				continue
			}
			if i+1 >= len(r.Flags) {
				t.Fatalf("%q: %s without a value", args, d.flag)
			}
			i++
			v := r.Flags[i]
			if d.check != nil && d.check(v) != nil {
				t.Fatalf("%q: %s %q passed no check", args, d.flag, v)
			}
			if n, err := strconv.Atoi(v); strings.HasPrefix(v, "-") && (err != nil || n < 1) {
				t.Fatalf("%q: %s %q reads as a flag", args, d.flag, v)
			}
			if d.name == "log" {
				log = v
			}
		}
		if r.LogPath != log {
			t.Fatalf("%q: LogPath %q, last log= %q", args, r.LogPath, log)
		}
	})
}

// optionByFlag returns the option that stands for flag, nil for none.
func optionByFlag(flag string) *daemonOption {
	if j := slices.IndexFunc(daemonOptions, func(d daemonOption) bool { return d.flag == flag }); j >= 0 {
		return &daemonOptions[j]
	}
	for _, f := range netcore.Flags() {
		if "--"+f.Name == flag && f.Option != "" {
			return lookup(f.Option)
		}
	}
	return nil
}
