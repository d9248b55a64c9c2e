# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollEpollEdgeTriggered (poll_test.go); arguments: a network's
# data.
import os, select, sys

from prelude import check

data = sys.argv[1]
r = os.open(data, os.O_RDONLY | os.O_NONBLOCK)
w = os.open(data, os.O_WRONLY)
ep = select.epoll()
ep.register(r, select.EPOLLIN | select.EPOLLET)
check(ep.poll(0.2) == [], "idle file: spurious event")
os.write(w, b"a")
check(ep.poll(1) == [(r, select.EPOLLIN)], "no event for the first packet")
check(ep.poll(0.2) == [], "a second event without a new packet")
os.write(w, b"b")
check(ep.poll(1) == [(r, select.EPOLLIN)], "no event for the second packet")
check(ep.poll(0.2) == [], "spurious event after the second packet")
got = []
while True:
    try:
        got.append(os.read(r, 100))
    except BlockingIOError:
        break
check(got == [b"a", b"b"], "read to EAGAIN got %r" % got)
check(ep.poll(0.2) == [], "event after reading to EAGAIN")
os.write(w, b"c")
check(ep.poll(1) == [(r, select.EPOLLIN)], "no event after EAGAIN and a new packet")
check(os.read(r, 100) == b"c", "wrong packet")
