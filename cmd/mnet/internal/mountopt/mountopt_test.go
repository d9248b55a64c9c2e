// SPDX-License-Identifier: BSD-3-Clause

package mountopt

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	_ "github.com/mnet-project/mnet/netcore/ipn"      // registers --netns-dir, netns_dir, ipn's limits
	_ "github.com/mnet-project/mnet/netcore/link/vde" // registers --vde-dir, vde_dir
	_ "github.com/mnet-project/mnet/netcore/mhost"    // registers the limits of mhost
)

// What mount(8) hands the helper, as util-linux 2.38 does it.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    Request
		ignored []string
	}{
		{args: []string{"mnet", "/mnt/mnet", "-o", "rw"},
			want: Request{Spec: "mnet", Dir: "/mnt/mnet"}, ignored: []string{"rw"}},
		{args: []string{"mnet", "/mnt/mnet", "-o", "rw,nofail"},
			want: Request{Spec: "mnet", Dir: "/mnt/mnet"}, ignored: []string{"rw", "nofail"}},
		{args: []string{"mnet", "/mnt/mnet/", "-s", "-f", "-n", "-v", "-o", "rw"},
			want:    Request{Spec: "mnet", Dir: "/mnt/mnet", Fake: true, NoMtab: true, Verbose: true, Sloppy: true},
			ignored: []string{"rw"}},
		{args: []string{"-sfnv", "none", "/x", "-orw,state=/var/tmp/s.json,debug", "-o", "log=/var/log/mnet.log,x-systemd.requires=foo,_netdev"},
			want: Request{Spec: "none", Dir: "/x", Fake: true, NoMtab: true, Verbose: true, Sloppy: true,
				Flags:   []string{"--state", "/var/tmp/s.json", "-v", "--log", "/var/log/mnet.log"},
				LogPath: "/var/log/mnet.log"},
			ignored: []string{"rw", "x-systemd.requires=foo", "_netdev"}},
		{args: []string{"mnet", "/m", "-o", "state=,debug_fuse"},
			want: Request{Spec: "mnet", Dir: "/m", Flags: []string{"--state", "", "--debug-fuse"}}},
		{args: []string{"mnet", "/m", "-o", "max_networks_per_uid=8,max_persistent_per_uid=2,max_sockets_per_uid=64"},
			want: Request{Spec: "mnet", Dir: "/m", Flags: []string{"--max-networks-per-uid", "8",
				"--max-persistent-per-uid", "2", "--max-sockets-per-uid", "64"}}},
		{args: []string{"mnet", "/m", "-o", "netns_dir=/run/netns:/var/run/docker/netns"},
			want: Request{Spec: "mnet", Dir: "/m", Flags: []string{"--netns-dir", "/run/netns:/var/run/docker/netns"}}},
		{args: []string{"mnet", "/m", "-o", "vde_dir=/run/vde"},
			want: Request{Spec: "mnet", Dir: "/m", Flags: []string{"--vde-dir", "/run/vde"}}},
		{args: []string{"mnet", "/m", "-o", "max_queued_per_uid=16M,max_queued=1G,max_hosts_per_uid=4,max_endpoints_per_uid=8,max_networks=64,max_hosts=32,max_endpoints=16,max_sockets=128,root_reserve=0"},
			want: Request{Spec: "mnet", Dir: "/m", Flags: []string{"--max-queued-per-uid", "16M", "--max-queued", "1G",
				"--max-hosts-per-uid", "4", "--max-endpoints-per-uid", "8", "--max-networks", "64", "--max-hosts", "32",
				"--max-endpoints", "16", "--max-sockets", "128", "--root-reserve", "0"}}},
		{args: []string{"mnet", "/m", "-s", "-o", "frobnicate,debug"},
			want:    Request{Spec: "mnet", Dir: "/m", Sloppy: true, Flags: []string{"-v"}},
			ignored: []string{"frobnicate"}},
		{args: []string{"mnet", "/m", "-t", "mnet"},
			want: Request{Spec: "mnet", Dir: "/m"}},
	} {
		got, err := Parse(tc.args)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.args, err)
			continue
		}
		want := tc.want
		want.Ignored = tc.ignored
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.args, *got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		usage bool   // a command line mount(8) never makes
		msg   string // part of the message
	}{
		{args: []string{"mnet"}, usage: true},
		{args: []string{"mnet", "/a", "/b"}, usage: true},
		{args: []string{"mnet", "/a", "-o"}, usage: true},
		{args: []string{"mnet", "/a", "-x"}, usage: true},
		{args: []string{"mnet", "/a", "-t", "ext4"}, msg: "type mnet only"},
		{args: []string{"mnet", "/a", "-o", "frobnicate"}, msg: `unknown option "frobnicate"`},
		{args: []string{"mnet", "/a", "-o", "rw,ro"}, msg: "read-write"},
		{args: []string{"mnet", "/a", "-s", "-o", "ro"}, msg: "read-write"},
		{args: []string{"mnet", "/a", "-o", "user"}, msg: "root only"},
		{args: []string{"mnet", "/a", "-o", "state"}, msg: "needs a value"},
		{args: []string{"mnet", "/a", "-o", "state=relative.json"}, msg: "absolute"},
		{args: []string{"mnet", "/a", "-o", "log="}, msg: "absolute"},
		{args: []string{"mnet", "/a", "-o", "netns_dir=/run/netns:netns"}, msg: "absolute"},
		{args: []string{"mnet", "/a", "-o", "vde_dir=vde"}, msg: "absolute"},
		{args: []string{"mnet", "/a", "-o", "vde_dir"}, msg: "needs a value"},
		{args: []string{"mnet", "/a", "-o", "debug=1"}, msg: "takes no value"},
		{args: []string{"mnet", "/a", "-o", "max_queued_per_uid=12"}, msg: "at least 64K"},
		{args: []string{"mnet", "/a", "-o", "max_queued=1T"}, msg: "want a size"},
		{args: []string{"mnet", "/a", "-o", "root_reserve=60"}, msg: "percentage"},
	} {
		_, err := Parse(tc.args)
		switch {
		case err == nil:
			t.Errorf("Parse(%q) succeeded", tc.args)
		case tc.usage != errors.Is(err, ErrUsage):
			t.Errorf("Parse(%q): %v; usage error: %v, want %v", tc.args, err, errors.Is(err, ErrUsage), tc.usage)
		case !strings.Contains(err.Error(), tc.msg):
			t.Errorf("Parse(%q): %v, want it to say %q", tc.args, err, tc.msg)
		}
	}
}

// Every daemon option names a flag of the daemon, once.
func TestDaemonOptionsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range daemonOptions {
		if seen[d.name] || genericOptions[d.name] || refusedOptions[d.name] != "" {
			t.Errorf("option %q defined twice", d.name)
		}
		seen[d.name] = true
		if !strings.HasPrefix(d.flag, "-") {
			t.Errorf("option %q maps to %q, not a flag", d.name, d.flag)
		}
	}
}
