// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The ctl line of link emulation (impair.go):
//
//	impair PORT|all [delay D] [jitter J] [loss P%] [dup P%] [reorder P%] [corrupt P%] [rate R] [limit N] [seed N]
//	impair PORT|all off

// Bounds of impair's values.
const (
	DefaultImpairLimit = 1000
	MaxImpairLimit     = 65536
	// MaxImpairDelay bounds delay+jitter: a frame waits at most that long
	// after its turn on the rate.
	MaxImpairDelay = time.Minute
	// MaxImpairBacklog bounds the wait for a turn on the rate: a frame
	// that would wait longer is dropped, so that a very low rate cannot
	// hold frames (and their senders' budgets) for days.
	MaxImpairBacklog = time.Minute
	MaxImpairRate    = 1000_000_000_000 // bits per second
	percentScale     = 10000            // percentages are kept in hundredths
)

// impairSpec is one parsed impair line's parameters. Percentages are in
// hundredths of a percent; rate is in bits per second (0: none).
type impairSpec struct {
	delay, jitter               time.Duration
	loss, dup, reorder, corrupt int
	rate                        uint64
	limit                       int // 0: DefaultImpairLimit
	seed                        uint64
	seeded                      bool
}

// queueLimit is how many frames may wait in the impairment.
func (s *impairSpec) queueLimit() int {
	if s.limit == 0 {
		return DefaultImpairLimit
	}
	return s.limit
}

// impairLine is a parsed impair line: all or a port, and the
// parameters, or off (spec nil).
type impairLine struct {
	all  bool
	port portRef
	spec *impairSpec
}

// target is the PORT|all of l, in the form ctl shows.
func (l impairLine) target() string {
	if l.all {
		return "all"
	}
	return l.port.String()
}

// parseImpair parses the argument of an impair line.
func parseImpair(arg string) (impairLine, *ctlError) {
	words := strings.Fields(arg)
	if len(words) < 2 {
		return impairLine{}, ctlErr(syscall.EINVAL, "want PORT|all and parameters, or PORT|all off")
	}
	l := impairLine{all: words[0] == "all"}
	if !l.all {
		port, bad := parsePortRef(words[0])
		if bad != nil {
			return impairLine{}, bad
		}
		l.port = port
	}
	if len(words) == 2 && words[1] == "off" {
		return l, nil
	}
	if (len(words)-1)%2 != 0 {
		return impairLine{}, ctlErr(syscall.EINVAL, "%q has no value", words[len(words)-1])
	}
	s := &impairSpec{}
	seen := map[string]bool{}
	for i := 1; i < len(words); i += 2 {
		key, val := words[i], words[i+1]
		if seen[key] {
			return impairLine{}, ctlErr(syscall.EINVAL, "%s given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "delay":
			s.delay, err = parseImpairTime(val)
		case "jitter":
			s.jitter, err = parseImpairTime(val)
		case "loss":
			s.loss, err = parsePercent(val)
		case "dup":
			s.dup, err = parsePercent(val)
		case "reorder":
			s.reorder, err = parsePercent(val)
		case "corrupt":
			s.corrupt, err = parsePercent(val)
		case "rate":
			s.rate, err = parseRate(val)
		case "limit":
			s.limit, err = strconv.Atoi(val)
			if err == nil && (s.limit < 1 || s.limit > MaxImpairLimit) {
				err = fmt.Errorf("out of range 1..%d", MaxImpairLimit)
			} else if err != nil {
				err = fmt.Errorf("not a number")
			}
		case "seed":
			s.seed, err = strconv.ParseUint(val, 10, 64)
			if err != nil {
				err = fmt.Errorf("not a number 0..%d", uint64(1<<64-1))
			}
			s.seeded = true
		default:
			return impairLine{}, ctlErr(syscall.EINVAL, "unknown parameter %q", key)
		}
		if err != nil {
			return impairLine{}, ctlErr(syscall.EINVAL, "%s %q: %v", key, val, err)
		}
	}
	if s.jitter > s.delay {
		return impairLine{}, ctlErr(syscall.EINVAL, "jitter %v larger than delay %v", s.jitter, s.delay)
	}
	if s.delay+s.jitter > MaxImpairDelay {
		return impairLine{}, ctlErr(syscall.EINVAL, "delay+jitter above %v", MaxImpairDelay)
	}
	l.spec = s
	return l, nil
}

// parseDecimal reads a non-negative decimal number (digits, at most one
// point) scaled by 10^frac, refusing more fractional digits than frac
// and values above max. So "1.5" with frac 3 is 1500.
func parseDecimal(s string, frac int, max uint64) (uint64, error) {
	whole, part, dot := strings.Cut(s, ".")
	if whole == "" || (dot && part == "") || len(part) > frac {
		return 0, fmt.Errorf("want a number with at most %d decimals", frac)
	}
	var v uint64
	digits := whole + part + strings.Repeat("0", frac-len(part))
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a number")
		}
		if v > (max-uint64(c-'0'))/10 {
			return 0, fmt.Errorf("too large")
		}
		v = v*10 + uint64(c-'0')
	}
	if v > max {
		return 0, fmt.Errorf("too large")
	}
	return v, nil
}

// parsePercent reads P% (the sign may be left out), 0..100 with up to
// two decimals, in hundredths.
func parsePercent(s string) (int, error) {
	v, err := parseDecimal(strings.TrimSuffix(s, "%"), 2, percentScale)
	if err != nil {
		return 0, fmt.Errorf("want a percentage 0..100 with up to two decimals")
	}
	return int(v), nil
}

// impairTimeUnits are the units of times, largest first (for formatting).
var impairTimeUnits = []struct {
	name string
	d    time.Duration
}{{"s", time.Second}, {"ms", time.Millisecond}, {"us", time.Microsecond}}

// parseImpairTime reads a time with its unit: us, ms or s (a number with
// decimals down to the microsecond).
func parseImpairTime(s string) (time.Duration, error) {
	for _, u := range []string{"us", "ms", "s"} { // "ms" before "s"
		num, ok := strings.CutSuffix(s, u)
		if !ok {
			continue
		}
		frac := 0
		for d := u2d(u); d > time.Microsecond; d /= 10 {
			frac++
		}
		v, err := parseDecimal(num, frac, uint64(MaxImpairDelay/time.Microsecond))
		if err != nil {
			return 0, err
		}
		return time.Duration(v) * time.Microsecond, nil
	}
	return 0, fmt.Errorf("want a time in us, ms or s")
}

func u2d(u string) time.Duration {
	for _, x := range impairTimeUnits {
		if x.name == u {
			return x.d
		}
	}
	return 0
}

// rateUnits are the units of rates, largest first.
var rateUnits = []struct {
	name string
	bps  uint64
}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}

// parseRate reads a rate in bit, kbit, mbit or gbit per second (decimals
// down to the bit), at least 1 bit per second.
func parseRate(s string) (uint64, error) {
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(s, u.name)
		if !ok {
			continue
		}
		frac := 0
		for b := u.bps; b > 1; b /= 10 {
			frac++
		}
		v, err := parseDecimal(num, frac, MaxImpairRate)
		if err != nil {
			return 0, err
		}
		if v == 0 {
			return 0, fmt.Errorf("a rate of 0")
		}
		return v, nil
	}
	return 0, fmt.Errorf("want a rate in bit, kbit, mbit or gbit")
}

// formatImpairTime writes d in the largest unit that shows it exactly.
func formatImpairTime(d time.Duration) string {
	for _, u := range impairTimeUnits {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
}

// formatRate writes bps in the largest unit that shows it exactly.
func formatRate(bps uint64) string {
	for _, u := range rateUnits {
		if bps%u.bps == 0 {
			return strconv.FormatUint(bps/u.bps, 10) + u.name
		}
	}
	return strconv.FormatUint(bps, 10) + "bit"
}

// formatPercent writes hundredths of a percent as P%.
func formatPercent(h int) string {
	s := strconv.Itoa(h / 100)
	if f := h % 100; f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%02d", f), "0")
	}
	return s + "%"
}

// String is the parameters in the form that sets them, defaults left out.
func (s *impairSpec) String() string {
	var w []string
	add := func(k, v string) { w = append(w, k, v) }
	if s.delay > 0 {
		add("delay", formatImpairTime(s.delay))
	}
	if s.jitter > 0 {
		add("jitter", formatImpairTime(s.jitter))
	}
	for _, p := range []struct {
		k string
		v int
	}{{"loss", s.loss}, {"dup", s.dup}, {"reorder", s.reorder}, {"corrupt", s.corrupt}} {
		if p.v > 0 {
			add(p.k, formatPercent(p.v))
		}
	}
	if s.rate > 0 {
		add("rate", formatRate(s.rate))
	}
	if s.limit != 0 && s.limit != DefaultImpairLimit {
		add("limit", strconv.Itoa(s.limit))
	}
	if s.seeded {
		add("seed", strconv.FormatUint(s.seed, 10))
	}
	if len(w) == 0 {
		// Every value 0: an impairment that changes nothing, shown so
		// that it reads back as one.
		add("loss", "0%")
	}
	return strings.Join(w, " ")
}
