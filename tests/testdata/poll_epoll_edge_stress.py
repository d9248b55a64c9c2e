# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollEpollEdgeTriggeredStress (poll_test.go); arguments: a
# network's data, under lossless on.
import os, select, sys, threading, time

from prelude import check

data = sys.argv[1]
r = os.open(data, os.O_RDONLY | os.O_NONBLOCK)
ep = select.epoll()
ep.register(r, select.EPOLLIN | select.EPOLLET)
N = 3000
def writer(k):
    w = os.open(data, os.O_WRONLY)
    for i in range(N):
        os.write(w, b"%d %d" % (k, i))
    os.close(w)
ths = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
for th in ths:
    th.start()
last = [-1, -1, -1]
got = 0
deadline = time.monotonic() + 90
while got < 3 * N and time.monotonic() < deadline:
    if not ep.poll(5):
        break   # 5 s without an event: a lost wakeup
    while True:
        try:
            pkt = os.read(r, 100)
        except BlockingIOError:
            break
        k, i = map(int, pkt.split())
        check(i == last[k] + 1, "writer %d: packet %d after %d" % (k, i, last[k]))
        last[k] = i
        got += 1
for th in ths:
    th.join()
print("received %d/%d" % (got, 3 * N))
check(got == 3 * N, "lost packets")
