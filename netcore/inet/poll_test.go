// SPDX-License-Identifier: BSD-3-Clause

package inet

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mnet-project/mnet/netcore"
)

// wakes returns a wake function and a channel that gets a value per call.
func wakes() (func(), chan struct{}) {
	ch := make(chan struct{}, 16)
	return func() { ch <- struct{}{} }, ch
}

func woken(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the armed poll was not woken", what)
	}
}

// A bound UDP socket is not readable until a datagram arrives, which wakes
// the armed poll once; the datagram is still there to read after polls.
func TestPollUDP(t *testing.T) {
	f := testFamily(t, v4)
	port := freeUDPPort(t)
	s := open(t, file(t, f, "udp", "0.0.0.0", port), root)
	in := uint32(netcore.PollIn | netcore.PollRdNorm)
	wake, ch := wakes()
	if got := s.Poll(in, wake); got != 0 {
		t.Fatalf("idle bound socket: revents %#x, want 0", got)
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hi"))
	woken(t, ch, "datagram")
	for range 2 {
		if got := s.Poll(in, nil); got != in {
			t.Fatalf("after a datagram: revents %#x, want POLLIN", got)
		}
	}
	buf := make([]byte, 10)
	if n, err := s.Read(context.Background(), buf, 0, true); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read after polls: %q, %v", buf[:n], err)
	}
	if got := s.Poll(in|netcore.PollOut, nil); got != netcore.PollOut {
		t.Fatalf("drained socket: revents %#x, want POLLOUT only", got)
	}
	select {
	case <-ch:
		t.Fatal("a second wakeup without a new poll")
	case <-time.After(50 * time.Millisecond):
	}
}

// A TCP peer that closes makes the file readable with POLLRDHUP and wakes
// the armed poll; the daemon stopping hangs it up.
func TestPollTCPPeerCloseAndHangUp(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := testFamily(t, v4)
	s := open(t, file(t, f, "tcp", "127.0.0.1", l.Addr().(*net.TCPAddr).Port), root)
	peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	in := uint32(netcore.PollIn | netcore.PollRdNorm | netcore.PollRdHup)
	wake, ch := wakes()
	if got := s.Poll(in, wake); got != 0 {
		t.Fatalf("open connection: revents %#x, want 0", got)
	}
	peer.Close()
	woken(t, ch, "peer close")
	if got := s.Poll(in, wake); got&(netcore.PollIn|netcore.PollRdHup) != netcore.PollIn|netcore.PollRdHup {
		t.Fatalf("after the peer closed: revents %#x, want POLLIN|POLLRDHUP", got)
	}
	f.Close()
	woken(t, ch, "daemon stopping")
	if got := s.Poll(in, nil); got&netcore.PollHup == 0 {
		t.Fatalf("after the family closed: revents %#x, want POLLHUP", got)
	}
}
