# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollInet6UDP (poll_test.go); arguments: an inet6/udp file bound
# to ::, and its port.
import os, select, socket, sys

from prelude import check, later

path, port = sys.argv[1], int(sys.argv[2])
u = os.open(path, os.O_RDWR)
p = select.poll()
p.register(u, select.POLLIN)
check(p.poll(200) == [], "idle bound UDP file readable")
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
later(0.1, lambda: s.sendto(b"hi6", ("::1", port)))
check(p.poll(5000) == [(u, select.POLLIN)], "not readable after a datagram")
check(os.read(u, 100) == b"hi6", "wrong datagram")
