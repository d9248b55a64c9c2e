# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollInetSockets (poll_test.go); arguments: a bound inet/udp
# file, its port, and an inet/tcp file whose peer closes.
import os, select, socket, sys

from prelude import check, later

udp, udpPort, tcp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
u = os.open(udp, os.O_RDWR)
p = select.poll()
p.register(u, select.POLLIN)
check(p.poll(200) == [], "idle bound UDP file readable to poll")
check(select.select([u], [], [], 0.2)[0] == [], "idle bound UDP file readable to select")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
later(0.1, lambda: s.sendto(b"hi", ("127.0.0.1", udpPort)))
check(p.poll(5000) == [(u, select.POLLIN)], "not readable after a datagram")
check(os.read(u, 100) == b"hi", "wrong datagram")
check(p.poll(0) == [], "readable after reading the datagram")

c = os.open(tcp, os.O_RDWR)
p = select.poll()
p.register(c, select.POLLIN)
check(p.poll(100) == [], "open TCP file readable before the peer closed")
got = p.poll(5000)
check(len(got) == 1 and got[0][1] & select.POLLIN, "not readable after the peer closed: %r" % got)
check(os.read(c, 100) == b"", "read after the peer closed is not 0 bytes")
