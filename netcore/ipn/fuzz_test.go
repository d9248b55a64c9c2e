package ipn

import (
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/internal/netns"
	"github.com/mnet-project/mnet/netcore"
)

// Whatever is written to ctl, the write ends with success or an errno the
// spec names, never a panic, and the settings stay within their limits.
func FuzzCtl(f *testing.F) {
	for _, seed := range []string{
		"policy switch\n", "mtu 1500\nqlen 8\n", "lossless on", "descr hello world",
		"maxports 0", "mtu -1", "qlen 99999999999999999999", "tap eth0", "persist maybe",
		"\n\n#comment\n", "policy  hub", "descr \x00\xff", "mtu 64\nmtu 65535\nbogus",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	ipn, _ := c.Root().Lookup(rootCred, "ipn")
	node, err := ipn.(netcore.Mkdirer).Mkdir(rootCred, "fuzz", 0777)
	if err != nil {
		f.Fatal(err)
	}
	n := node.(*netDir).n
	f.Fuzz(func(t *testing.T, text string, asRoot bool) {
		cred := ownerCred
		// Root would attach real interfaces: the fuzzer must not create
		// TAPs on the machine, so those lines run as the owner (EPERM).
		if asRoot && !strings.Contains(text, "tap") && !strings.Contains(text, "grab") {
			cred = rootCred
		}
		err := n.applyCtl(cred, netns.Self(), text)
		var errno syscall.Errno
		if err != nil && (!errors.As(err, &errno) ||
			(errno != syscall.EINVAL && errno != syscall.EPERM && errno != syscall.ENODEV)) {
			t.Fatalf("ctl %q: %v", text, err)
		}
		n.mu.Lock()
		s := n.set
		n.mu.Unlock()
		if err := checkSettings(s); err != nil {
			t.Fatalf("ctl %q left bad settings %+v: %v", text, s, err)
		}
		if s.Persist {
			n.applyCtl(rootCred, netns.Self(), "persist off") // no state file here; keep it off
		}
	})
}

// Mkdir accepts exactly the names the spec allows.
func FuzzNetName(f *testing.F) {
	for _, seed := range []string{"lab", ".x", "a b", "", "-", "x/y", "ü", "Lab-1.t_x"} {
		f.Add(seed)
	}
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	ipnNode, _ := c.Root().Lookup(rootCred, "ipn")
	ipn := ipnNode.(netcore.Dir)
	f.Fuzz(func(t *testing.T, name string) {
		_, err := ipn.(netcore.Mkdirer).Mkdir(rootCred, name, 0755)
		switch {
		case netcore.ValidName(name) && err != nil && !errors.Is(err, syscall.EEXIST):
			t.Fatalf("valid name %q refused: %v", name, err)
		case !netcore.ValidName(name) && !errors.Is(err, syscall.EINVAL):
			t.Fatalf("bad name %q: %v, want EINVAL", name, err)
		}
		if err == nil {
			if err := ipn.(netcore.Rmdirer).Rmdir(rootCred, name); err != nil {
				t.Fatalf("rmdir %q: %v", name, err)
			}
		}
	})
}
