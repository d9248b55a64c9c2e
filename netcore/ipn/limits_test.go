// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/mnet-project/mnet/netcore"
)

// Per-uid limits: a uid other than 0 owns at most its limit of Networks
// and makes at most its limit of PersistentNetworks persistent
// (ENOSPC); other uids and root are not held back by it.
func TestPerUidLimits(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler),
		Limits: netcore.Limits{}.With(Networks, 2, 0).With(PersistentNetworks, 1, 0)})
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

// Queued bytes: what a uid writes waits in receive queues charged to it,
// once per packet however many ports hold it (plus an entry's cost per
// queue). Past its budget, lossless off drops and counts at each port;
// lossless on makes the writer wait (EAGAIN non-blocking, EINTR on a
// signal, not writable for poll) until a reader makes room.
func TestQueuedBytesBudget(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler),
		Limits: netcore.Limits{}.With(netcore.Queued, 64<<10, 0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	q := c.Quota()
	nd := mkNet(t, c, ownerCred, "budget", 0777)
	mustCtl(t, nd, "qlen 65536\n")
	r1 := openData(t, nd, ownerCred, syscall.O_RDONLY)
	r2 := openData(t, nd, ownerCred, syscall.O_RDONLY)
	w := openData(t, nd, ownerCred, syscall.O_WRONLY)
	pkt := make([]byte, 1000)
	perPkt := int64(len(pkt) + 2*entryCost) // one buffer, two queues
	fit := int((64 << 10) / perPkt)
	for range fit + 10 {
		send(t, w, pkt)
	}
	if got, want := q.UsedBy(1000, netcore.Queued), int64(fit)*perPkt; got != want {
		t.Fatalf("uid 1000 has %d bytes queued, want %d (%d packets)", got, want, fit)
	}
	st := nd.n.Stats()
	if st.Drops != 20 || st.Delivered != uint64(2*fit) {
		t.Fatalf("stats %+v: want 20 drops (10 at each reader), %d delivered", st, 2*fit)
	}
	for _, h := range []netcore.Handle{r1, r2} {
		for range fit {
			if _, err := h.Read(context.Background(), make([]byte, 2000), 0, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := q.UsedBy(1000, netcore.Queued); got != 0 {
		t.Fatalf("after the readers drained their queues uid 1000 has %d bytes queued", got)
	}

	mustCtl(t, nd, "lossless on\n")
	for range fit {
		send(t, w, pkt)
	}
	if got := pollOf(t, w).Poll(pollOut, nil); got != 0 {
		t.Fatalf("a writer past its budget: revents %#x, want not writable", got)
	}
	if _, err := w.Write(context.Background(), pkt, 0, true); err != syscall.EAGAIN {
		t.Fatalf("non-blocking write past the budget: %v, want EAGAIN", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := w.Write(ctx, pkt, 0, false); err != syscall.EINTR {
		t.Fatalf("blocked write interrupted: %v, want EINTR", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Write(context.Background(), pkt, 0, false)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("write past the budget returned %v at once, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	for _, h := range []netcore.Handle{r1, r2} {
		if _, err := h.Read(context.Background(), make([]byte, 2000), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write after readers made room: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the writer did not go on after readers made room")
	}
	if st := nd.n.Stats(); st.Drops != 20 {
		t.Fatalf("lossless dropped: %+v", st)
	}
	// Closing the ports gives everything back.
	r1.Close()
	r2.Close()
	if got := q.Used(netcore.Queued); got != 0 {
		t.Fatalf("after the readers closed %d bytes are still counted", got)
	}
}

// A caller with CAP_SYS_ADMIN keeps a reserve of the global limit of
// networks that users filling it together cannot take.
func TestNetworksRootReserve(t *testing.T) {
	c, err := netcore.New(netcore.Env{Log: slog.New(slog.DiscardHandler),
		Limits: netcore.Limits{RootReserve: 25}.With(Networks, 3, 8)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	m := ipnRoot(t, c).(netcore.Mkdirer)
	for i := range 6 {
		u := &netcore.Cred{Uid: uint32(1000 + i/3), Gid: 1000, CapsKnown: true}
		if _, err := m.Mkdir(u, fmt.Sprintf("u%d", i), 0700); err != nil {
			t.Fatalf("uid %d's network: %v", u.Uid, err)
		}
	}
	late := &netcore.Cred{Uid: 1002, Gid: 1000, CapsKnown: true}
	if _, err := m.Mkdir(late, "late", 0700); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a user's network past the global limit less the reserve: %v, want ENOSPC", err)
	}
	noCaps := &netcore.Cred{Uid: 0, Gid: 0, CapsKnown: true}
	if _, err := m.Mkdir(noCaps, "nocaps", 0700); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("uid 0 without CAP_SYS_ADMIN: %v, want ENOSPC (the reserve is not its)", err)
	}
	mkNet(t, c, rootCred, "r1", 0700)
	mkNet(t, c, rootCred, "r2", 0700)
	if _, err := m.Mkdir(rootCred, "r3", 0700); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("root past the global limit: %v, want ENOSPC", err)
	}
	if err := ipnRoot(t, c).(netcore.Rmdirer).Rmdir(rootCred, "r1"); err != nil {
		t.Fatal(err)
	}
	if got := c.Quota().Used(Networks); got != 7 {
		t.Fatalf("%d networks counted, want 7", got)
	}
}
