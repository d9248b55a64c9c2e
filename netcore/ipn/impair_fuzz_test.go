// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"syscall"
	"testing"
)

// Whatever follows "impair", the line parses or fails with EINVAL; what
// parses is within bounds, and its canonical form (what ctl shows)
// parses back to the same impairment.
func FuzzImpairLine(f *testing.F) {
	for _, seed := range []string{
		"all delay 50ms", "im0 delay 10ms jitter 5ms loss 1.5% dup 2% reorder 25% corrupt 0.01%",
		"#2 rate 10mbit limit 100 seed 7", "mem:m42 off", "memsvc:3 rate 1.5kbit", "all off",
		"all delay 1.000001s", "all loss 100.0%", "all seed 18446744073709551615", "all rate 999gbit",
		"all delay 5ms delay 5ms", "#-1 loss 1%", "all jitter 1us delay 1us",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		l, bad := parseImpair(arg)
		if bad != nil {
			if bad.errno != syscall.EINVAL {
				t.Fatalf("parseImpair(%q): errno %v, want EINVAL", arg, bad.errno)
			}
			return
		}
		if l.spec == nil {
			return
		}
		s := l.spec
		if s.delay < 0 || s.jitter < 0 || s.jitter > s.delay || s.delay+s.jitter > MaxImpairDelay ||
			s.loss > percentScale || s.dup > percentScale || s.reorder > percentScale || s.corrupt > percentScale ||
			s.rate > MaxImpairRate || s.limit < 0 || s.limit > MaxImpairLimit {
			t.Fatalf("parseImpair(%q) out of bounds: %+v", arg, *s)
		}
		shown := l.target() + " " + s.String()
		again, bad := parseImpair(shown)
		if bad != nil {
			t.Fatalf("%q shows as %q, which does not parse: %v", arg, shown, bad)
		}
		a, b := *s, *again.spec
		a.limit, b.limit = a.queueLimit(), b.queueLimit()
		if a != b || again.target() != l.target() {
			t.Fatalf("%q shows as %q, which parses to %+v, not %+v", arg, shown, b, a)
		}
	})
}
