# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollPcap (poll_test.go); arguments: a network's directory.
import os, select, sys

from prelude import check, later

net = sys.argv[1]
c = os.open(net + "/pcap", os.O_RDONLY | os.O_NONBLOCK)
w = os.open(net + "/data", os.O_WRONLY)
p = select.poll()
p.register(c, select.POLLIN)
check(p.poll(1000) == [(c, select.POLLIN)], "not readable at open")
check(len(os.read(c, 24)) == 24, "no 24-byte file header")
check(p.poll(200) == [], "readable when drained on an idle network")
pkt = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00payload"
later(0.1, lambda: os.write(w, pkt))
check(p.poll(5000) == [(c, select.POLLIN)], "not readable after a packet")
check(len(os.read(c, 65536)) == 16 + len(pkt), "not one record")
check(p.poll(200) == [], "readable when drained again")
