# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollLosslessPollout (poll_test.go); arguments: a network's data,
# under lossless on and qlen 4.
import os, select, sys, time

from prelude import check, later, ms

data = sys.argv[1]
r = os.open(data, os.O_RDONLY)
w = os.open(data, os.O_WRONLY | os.O_NONBLOCK)
def fill():
    n = 0
    while True:
        try:
            os.write(w, b"x")
            n += 1
        except BlockingIOError:
            return n
check(fill() == 4, "qlen 4 did not take 4 packets")
p = select.poll()
p.register(w, select.POLLOUT)
check(p.poll(300) == [], "writable with a full receiver")
later(0.1, lambda: os.read(r, 10))
t0 = time.monotonic()
check(p.poll(5000) == [(w, select.POLLOUT)], "not writable after the receiver read")
print("POLLOUT %.1f ms after the poll began" % ms(t0), flush=True)

check(fill() == 1, "one packet of room")
ep = select.epoll()
ep.register(w, select.EPOLLOUT | select.EPOLLET)
check(ep.poll(0.3) == [], "edge-triggered: writable with a full receiver")
later(0.1, lambda: os.read(r, 10))
check(ep.poll(5) == [(w, select.EPOLLOUT)], "edge-triggered: no event after the receiver read")
check(fill() == 1, "one packet of room")
check(ep.poll(0.2) == [], "edge-triggered: spurious event")
later(0.1, lambda: os.close(r))
t0 = time.monotonic()
check(ep.poll(5) == [(w, select.EPOLLOUT)], "edge-triggered: no event when the full receiver left")
print("leave: %.1f ms" % ms(t0))
