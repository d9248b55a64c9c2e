package ipn

import (
	"errors"
	"log/slog"
	"syscall"
	"testing"

	"github.com/mnet-project/mnet/netcore"
)

// Per-uid limits: a uid other than 0 owns at most Limits.Networks
// networks and makes at most Limits.Persistent of them persistent
// (ENOSPC); other uids and root are not held back by it.
func TestPerUidLimits(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler),
		Limits: netcore.Limits{Networks: 2, Persistent: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	m := ipnRoot(t, c).(netcore.Mkdirer)
	a := mkNet(t, c, ownerCred, "a", 0700)
	b := mkNet(t, c, ownerCred, "b", 0777)
	if _, err := m.Mkdir(ownerCred, "c", 0700); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("third network of uid 1000: %v, want ENOSPC", err)
	}
	other := &netcore.Cred{Uid: 2000, Gid: 2000, CapsKnown: true}
	mkNet(t, c, other, "o", 0700)
	mkNet(t, c, rootCred, "r", 0700)

	if err := ctl(t, a, ownerCred, "persist on\n"); err != nil {
		t.Fatalf("first persistent network: %v", err)
	}
	if err := ctl(t, b, ownerCred, "persist on\n"); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("second persistent network of uid 1000: %v, want ENOSPC", err)
	}
	// Counted for the owner, whoever writes; root may go past it.
	if err := ctl(t, b, other, "persist on\n"); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("uid 2000 making uid 1000's second network persist: %v, want ENOSPC", err)
	}
	if err := ctl(t, a, ownerCred, "persist on\n"); err != nil {
		t.Errorf("persist on for a network already persistent: %v", err)
	}
	if err := ctl(t, b, rootCred, "persist on\n"); err != nil {
		t.Errorf("root making uid 1000's second network persist: %v", err)
	}
	// Removing a network frees its place.
	if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(ownerCred, "a"); err != nil {
		t.Fatal(err)
	}
	mkNet(t, c, ownerCred, "c", 0700)
}
