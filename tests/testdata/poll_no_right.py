# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollNoRightNeverReady (poll_test.go); arguments: a network's
# data.
import os, select, sys

from prelude import check

data = sys.argv[1]
r = os.open(data, os.O_RDONLY)
w = os.open(data, os.O_WRONLY)
w2 = os.open(data, os.O_WRONLY)
os.write(w2, b"queued for r and w, which w cannot read")
p = select.poll()
p.register(r, select.POLLIN | select.POLLOUT)
p.register(w, select.POLLIN | select.POLLOUT)
got = dict(p.poll(1000))
check(got.get(r) == select.POLLIN, "read-only port: %r, want POLLIN only" % got.get(r))
check(got.get(w) == select.POLLOUT, "write-only port: %r, want POLLOUT only" % got.get(w))
