# SPDX-License-Identifier: BSD-3-Clause
# What the Python clients of the tests share: check(cond, what) fails the
# script, later(s, f) runs f in s seconds in a thread, and ms(t0) is the
# time since t0 in milliseconds.
import sys, threading, time


def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)


def later(s, f):
    th = threading.Timer(s, f)
    th.start()
    return th


def ms(t0):
    return (time.monotonic() - t0) * 1000
