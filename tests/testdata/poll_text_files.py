# SPDX-License-Identifier: BSD-3-Clause
# Run by TestPollTextFilesAlwaysReady (poll_test.go); arguments: text files
# of the mount.
import os, select, sys

from prelude import check

for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    p = select.poll()
    p.register(fd, select.POLLIN | select.POLLOUT)
    got = p.poll(1000)
    check(got == [(fd, select.POLLIN | select.POLLOUT)], "%s: %r, want POLLIN|POLLOUT" % (path, got))
    os.close(fd)
