// SPDX-License-Identifier: BSD-3-Clause

package inet

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/netcore"
)

// A socket file's readiness is the socket's own. Poll asks the kernel with
// poll(2) and a zero timeout, which consumes nothing and, inside
// RawConn.Control, takes neither the read nor the write lock (a read
// blocked in Go's poller holds the read lock for its whole wait). To learn
// when a waiting poll is to be woken, every polled socket is also in one
// daemon-wide edge-triggered epoll (the way gVisor's fdnotifier does it),
// next to Go's own: both see every change, and one goroutine turns events
// into the armed wakeups.

// Events that wake an armed poll of each half.
const (
	inEvents  = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
	outEvents = unix.EPOLLOUT | unix.EPOLLHUP | unix.EPOLLERR
)

// pollArm is the wakeup of one POLL request, shared by the halves it waits
// for, so that it is called once even if both become ready.
type pollArm struct {
	wake func()
	done bool // guarded by the sock's pollMu
}

// notifier is the daemon-wide epoll over polled sockets.
type notifier struct {
	once sync.Once
	epfd int
	err  error

	mu     sync.Mutex
	socks  map[uint64]*sock // by the id in each epoll event
	nextID uint64
}

var sockNotifier notifier

// start makes the epoll and its goroutine, at the first poll of a socket.
func (n *notifier) start() error {
	n.once.Do(func() {
		n.epfd, n.err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if n.err != nil {
			return
		}
		n.socks = make(map[uint64]*sock)
		go n.loop()
	})
	return n.err
}

// loop waits for events for ever: the epoll lives as long as the daemon.
func (n *notifier) loop() {
	events := make([]unix.EpollEvent, 64)
	for {
		k, err := unix.EpollWait(n.epfd, events, -1)
		if err != nil {
			continue // EINTR
		}
		for _, ev := range events[:k] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			n.mu.Lock()
			s := n.socks[id]
			n.mu.Unlock()
			if s != nil {
				s.pollEvent(ev.Events)
			}
		}
	}
}

// add puts s into the epoll, once; its events carry s's id rather than the
// descriptor, whose number is reused after a close.
func (n *notifier) add(s *sock) error {
	if err := n.start(); err != nil {
		return err
	}
	n.mu.Lock()
	n.nextID++
	id := n.nextID
	n.socks[id] = s
	n.mu.Unlock()
	var addErr error
	err := s.rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{
			Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
			Fd:     int32(uint32(id)),
			Pad:    int32(uint32(id >> 32)),
		}
		addErr = unix.EpollCtl(n.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err == nil {
		err = addErr
	}
	if err != nil {
		n.mu.Lock()
		delete(n.socks, id)
		n.mu.Unlock()
		return err
	}
	s.pollID = id
	return nil
}

// remove takes s out of the epoll before its descriptor is closed.
func (n *notifier) remove(s *sock) {
	s.rc.Control(func(fd uintptr) {
		unix.EpollCtl(n.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	n.mu.Lock()
	delete(n.socks, s.pollID)
	n.mu.Unlock()
}

// Poll reports the socket's readiness (netcore.Poller): POLLIN, POLLOUT,
// POLLRDHUP, POLLHUP and POLLERR as poll(2) on the socket reports them.
// A socket closed by the daemon stopping reads end of file and fails
// writes at once: readable, writable and hung up.
func (s *sock) Poll(events uint32, wake func()) uint32 {
	const closed = netcore.PollIn | netcore.PollRdNorm | netcore.PollOut | netcore.PollWrNorm | netcore.PollHup
	in := events&(netcore.PollIn|netcore.PollRdNorm|netcore.PollRdHup) != 0
	out := events&(netcore.PollOut|netcore.PollWrNorm) != 0
	s.pollMu.Lock()
	if s.hungUp {
		s.pollMu.Unlock()
		return closed & (events | netcore.PollHup)
	}
	// Armed before asking the kernel: an event in between wakes the
	// poll, which then asks again.
	if wake != nil {
		arm := &pollArm{wake: wake}
		if in {
			s.inArm = arm
		}
		if out {
			s.outArm = arm
		}
	}
	var err error
	if s.pollID == 0 {
		err = sockNotifier.add(s)
	}
	s.pollMu.Unlock()
	if err != nil {
		return closed & (events | netcore.PollHup)
	}
	// poll(2)'s bits are netcore's: ask for what the caller asks.
	fds := []unix.PollFd{{Events: int16(uint16(events))}}
	var perr error
	err = s.rc.Control(func(fd uintptr) {
		fds[0].Fd = int32(fd)
		for {
			if _, perr = unix.Poll(fds, 0); perr != unix.EINTR {
				return
			}
		}
	})
	if err != nil || perr != nil {
		return closed & (events | netcore.PollHup)
	}
	return uint32(uint16(fds[0].Revents)) & (events | netcore.PollErr | netcore.PollHup)
}

// pollEvent wakes the polls armed for what the event says.
func (s *sock) pollEvent(ev uint32) {
	s.pollMu.Lock()
	var fire [2]*pollArm
	if ev&inEvents != 0 && s.inArm != nil {
		fire[0], s.inArm = s.inArm, nil
	}
	if ev&outEvents != 0 && s.outArm != nil {
		fire[1], s.outArm = s.outArm, nil
	}
	for i, a := range fire {
		if a == nil || a.done {
			fire[i] = nil
			continue
		}
		a.done = true
	}
	s.pollMu.Unlock()
	for _, a := range fire {
		if a != nil {
			a.wake()
		}
	}
}

// hangUp wakes the polls armed on a socket that the daemon closed under
// its file (the daemon is stopping): they see it hung up.
func (s *sock) hangUp() {
	s.pollMu.Lock()
	s.hungUp = true
	s.pollMu.Unlock()
	s.pollEvent(inEvents | outEvents)
}

// stopPolls forgets a socket whose file is being released: nobody polls
// it any more.
func (s *sock) stopPolls() {
	s.pollMu.Lock()
	s.inArm, s.outArm = nil, nil
	if s.pollID != 0 {
		sockNotifier.remove(s)
	}
	s.pollMu.Unlock()
}
