# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollCloseWithPollPending (poll_test.go); arguments: a network's
# data and pcap.
import os, select, sys, time

from prelude import check, later

data, pcap = sys.argv[1], sys.argv[2]
w = os.open(data, os.O_WRONLY)
for k in range(20):
    r = os.open(data, os.O_RDONLY | os.O_NONBLOCK)
    c = os.open(pcap, os.O_RDONLY | os.O_NONBLOCK)
    os.read(c, 24)
    ep = select.epoll()
    ep.register(r, select.EPOLLIN | select.EPOLLET)
    ep.register(c, select.EPOLLIN | select.EPOLLET)
    ep.poll(0.01)
    os.close(r)        # armed in the daemon, released by the kernel
    os.close(c)
    ep.close()
    os.write(w, b"after close %d" % k)
# a poll(2) in a process killed while it waits
pid = os.fork()
if pid == 0:
    r = os.open(data, os.O_RDONLY)
    select.poll().register(r, select.POLLIN)
    p = select.poll()
    p.register(r, select.POLLIN)
    p.poll(10000)
    os._exit(0)
time.sleep(0.3)
os.kill(pid, 9)
os.waitpid(pid, 0)
os.write(w, b"after kill")
# polls still work
r = os.open(data, os.O_RDONLY)
p = select.poll()
p.register(r, select.POLLIN)
check(p.poll(200) == [], "idle file readable")
later(0.05, lambda: os.write(w, b"last"))
check(p.poll(5000) == [(r, select.POLLIN)], "not woken after the closes")
