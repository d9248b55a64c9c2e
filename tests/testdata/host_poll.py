# SPDX-License-Identifier: BSD-3-Clause
# Run by TestHostPoll (host_test.go); arguments: a bound udp file, a
# connected one whose port is closed, an mhost/any udp file, the peer's
# namespace and address, the bound and the mhost/any port.
import errno, os, select, subprocess, sys

from prelude import check, later

bound, conn, anyf, ns, addr = sys.argv[1:6]
port, any_port = int(sys.argv[6]), int(sys.argv[7])


def send(to_port):
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", "echo hi | nc -u -w1 %s %d" % (addr, to_port)])


u = os.open(bound, os.O_RDONLY | os.O_NONBLOCK)
p = select.poll()
p.register(u, select.POLLIN)
check(p.poll(200) == [], "idle bound udp file readable to poll")
check(select.select([u], [], [], 0.2)[0] == [], "idle bound udp file readable to select")
later(0.1, lambda: send(port))
check(p.poll(10000) == [(u, select.POLLIN)], "not readable after a datagram")
check(os.read(u, 100) == b"hi\n", "wrong datagram")
check(p.poll(0) == [], "readable after reading the datagram")

e = select.epoll()
e.register(u, select.EPOLLIN | select.EPOLLET)
check(e.poll(0.2) == [], "idle file: an epoll event")
later(0.1, lambda: send(port))
check(e.poll(10) == [(u, select.EPOLLIN)], "edge-triggered epoll: no event for a datagram")
check(e.poll(0.2) == [], "edge-triggered epoll: a second event for one datagram")
check(os.read(u, 100) == b"hi\n", "wrong datagram (epoll)")

c = os.open(conn, os.O_RDWR)
os.write(c, b"anyone?")
p = select.poll()
p.register(c, select.POLLIN)
got = p.poll(10000)
check(len(got) == 1 and got[0][1] & select.POLLERR, "no POLLERR after port unreachable: %r" % got)
try:
    os.read(c, 100)
    check(False, "read after port unreachable succeeded")
except OSError as ex:
    check(ex.errno == errno.ECONNREFUSED, "read after port unreachable: %r" % ex)

a = os.open(anyf, os.O_RDWR)
p = select.poll()
p.register(a, select.POLLIN)
check(p.poll(200) == [], "idle mhost/any file readable")
later(0.1, lambda: send(any_port))
check(p.poll(10000) == [(a, select.POLLIN)], "mhost/any not readable after a datagram")
check(os.read(a, 100) == b"hi\n", "wrong datagram (any)")
print("ok")
