// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"syscall"
	"testing"
)

func TestImpairParse(t *testing.T) {
	good := map[string]string{
		"all delay 50ms":                        "all delay 50ms",
		"im0 delay 1.5ms jitter 500us":          "im0 delay 1500us jitter 500us",
		"#3 loss 50% seed 7":                    "#3 loss 50% seed 7",
		"mem:m42 dup 0.5% corrupt 12.34":        "mem:m42 dup 0.5% corrupt 12.34%",
		"all rate 10mbit limit 20":              "all rate 10mbit limit 20",
		"all rate 1500kbit":                     "all rate 1500kbit",
		"all rate 1.5mbit limit 1000":           "all rate 1500kbit",
		"all delay 2s reorder 100% loss 100.00": "all delay 2s loss 100% reorder 100%",
		"memsvc:2 seed 18446744073709551615":    "memsvc:2 seed 18446744073709551615",
		"all loss 0%":                           "all loss 0%",
		"all rate 7bit":                         "all rate 7bit",
		"all rate 1gbit":                        "all rate 1gbit",
	}
	for in, want := range good {
		l, bad := parseImpair(in)
		if bad != nil {
			t.Errorf("parseImpair(%q): %v", in, bad)
			continue
		}
		if got := l.target() + " " + l.spec.String(); got != want {
			t.Errorf("parseImpair(%q) shows as %q, want %q", in, got, want)
		}
	}
	if l, bad := parseImpair("im0 off"); bad != nil || l.spec != nil || l.target() != "im0" {
		t.Errorf("im0 off: %+v, %v", l, bad)
	}
	for _, in := range []string{
		"", "all", "off", "all delay", "all delay 50", "all delay 50xs", "all delay -5ms",
		"all delay 1.5us", "all delay 61s", "all delay 5ms jitter 6ms", "all jitter 1ms",
		"all loss 101%", "all loss 0.001%", "all loss x%", "all loss 50%%", "all rate 0mbit",
		"all rate 10", "all rate 1.0000001kbit", "all rate 2000gbit", "all limit 0", "all limit 65537",
		"all seed -1", "all seed 18446744073709551616", "all bogus 1", "all delay 5ms delay 6ms",
		"#x loss 1%", "mem: loss 1%", "memsvc:-1 loss 1%", "memsvc:0 loss 1%", "#0 loss 1%", "nokind:1 loss 1%", "a/b loss 1%", "all off now",
		"all loss 1% off", "#+1 loss 1%",
	} {
		if _, bad := parseImpair(in); bad == nil || bad.errno != syscall.EINVAL {
			t.Errorf("parseImpair(%q) = %v, want EINVAL", in, bad)
		}
	}
}
