# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollEpollLevelTriggered (poll_test.go); arguments: a network's
# data.
import os, select, sys, time

from prelude import check

data = sys.argv[1]
r = os.open(data, os.O_RDONLY | os.O_NONBLOCK)
w = os.open(data, os.O_WRONLY)
ep = select.epoll()
ep.register(r, select.EPOLLIN)
check(ep.poll(0.1) == [], "idle file readable")
os.write(w, b"one")
for i in range(3):
    check(ep.poll(1) == [(r, select.EPOLLIN)], "wait %d without reading: not readable" % i)
check(os.read(r, 100) == b"one", "wrong packet")
check(ep.poll(0.2) == [], "drained file still readable")
os.write(w, b"two")   # nobody is inside epoll_wait now
time.sleep(0.05)
check(ep.poll(1) == [(r, select.EPOLLIN)], "a write between waits was not reported")
check(os.read(r, 100) == b"two", "wrong packet")
check(ep.poll(0.2) == [], "drained file still readable")
