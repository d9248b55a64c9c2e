# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollIdleDataAndWakeup (poll_test.go); arguments: a network's
# data.
import os, select, sys, time

from prelude import check, later, ms

data = sys.argv[1]
r = os.open(data, os.O_RDONLY | os.O_NONBLOCK)
w = os.open(data, os.O_WRONLY)
sent = []
def send():
    sent.append(time.monotonic())  # counted from the start of the write
    os.write(w, b"ping")

def woken(name, wait):
    # idle: nothing after 200 ms, nothing at once
    t0 = time.monotonic()
    check(not wait(0.2), name + ": idle file readable")
    check(ms(t0) >= 190, name + ": idle wait returned early")
    check(not wait(0), name + ": idle file readable to a zero timeout")
    # a write 100 ms later wakes it within 100 ms
    sent.clear()
    later(0.1, send)
    check(wait(5), name + ": not woken by a write")
    delay = (time.monotonic() - sent[0]) * 1000
    check(delay < 100, "%s: woken %.1f ms after the write" % (name, delay))
    check(os.read(r, 100) == b"ping", name + ": wrong packet")
    print("%s woken %.1f ms after the write" % (name, delay))

p = select.poll()
p.register(r, select.POLLIN)
woken("poll", lambda s: p.poll(s * 1000) == [(r, select.POLLIN)])
woken("select", lambda s: select.select([r], [], [], s)[0] == [r])
ep = select.epoll()
ep.register(r, select.EPOLLIN)
woken("epoll", lambda s: ep.poll(s) == [(r, select.EPOLLIN)])
