// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// testResource is a resource as a family registers one, forgotten when
// the test ends.
var testResource = ResourceSpec{Name: "test-widgets", Owner: "atest", PerUid: 2, Global: 3,
	Flag: "max-widgets-per-uid", GlobalFlag: "max-widgets",
	Usage: "widgets one uid may own (default 2; ENOSPC)", GlobalUsage: "widgets in all (default 3; ENFILE)",
	Refusal: syscall.ENOSPC, GlobalRefusal: syscall.ENFILE}

func registerForTest(t *testing.T, s ResourceSpec) Resource {
	t.Helper()
	resourcesMu.Lock()
	n := len(resources)
	resourcesMu.Unlock()
	t.Cleanup(func() {
		resourcesMu.Lock()
		defer resourcesMu.Unlock()
		resources = resources[:n]
	})
	return RegisterResource(s)
}

func panicsOn(f func()) (panicked bool) {
	defer func() { panicked = recover() != nil }()
	f()
	return false
}

// A name or flag taken, and a spec that lacks what the help, the quota
// or the log need, are refused at registration, not found at run time.
func TestRegisterResourceRefuses(t *testing.T) {
	registerForTest(t, testResource)
	RegisterFlag(Flag{Name: "test-family-flag"})
	t.Cleanup(func() {
		flagsMu.Lock()
		defer flagsMu.Unlock()
		flags = slices.DeleteFunc(flags, func(f Flag) bool { return f.Name == "test-family-flag" })
	})
	for what, change := range map[string]func(s *ResourceSpec){
		"a taken name":                  func(s *ResourceSpec) { s.Name = testResource.Name },
		"a taken per-uid flag":          func(s *ResourceSpec) { s.Flag = testResource.Flag },
		"a taken global flag":           func(s *ResourceSpec) { s.GlobalFlag = testResource.GlobalFlag },
		"a flag of netcore's":           func(s *ResourceSpec) { s.Flag = "max-sockets" },
		"the root reserve's flag":       func(s *ResourceSpec) { s.GlobalFlag = "root-reserve" },
		"a family's flag":               func(s *ResourceSpec) { s.Flag = "test-family-flag" },
		"no name":                       func(s *ResourceSpec) { s.Name = "" },
		"no owner":                      func(s *ResourceSpec) { s.Owner = "" },
		"no per-uid default":            func(s *ResourceSpec) { s.PerUid = 0 },
		"no flag":                       func(s *ResourceSpec) { s.Flag = "" },
		"no help":                       func(s *ResourceSpec) { s.Usage = "" },
		"no errno":                      func(s *ResourceSpec) { s.Refusal = 0 },
		"a global flag, no default":     func(s *ResourceSpec) { s.Global = 0 },
		"a global default, no flag":     func(s *ResourceSpec) { s.GlobalFlag = "" },
		"a global limit, no errno":      func(s *ResourceSpec) { s.GlobalRefusal = 0 },
		"a global limit, no help":       func(s *ResourceSpec) { s.GlobalUsage = "" },
		"the same flag twice (per uid)": func(s *ResourceSpec) { s.GlobalFlag = s.Flag },
	} {
		s := testResource
		s.Name, s.Flag, s.GlobalFlag = "w2", "max-w2-per-uid", "max-w2"
		change(&s)
		if !panicsOn(func() { RegisterResource(s) }) {
			t.Errorf("registering a resource with %s did not panic", what)
			resourcesMu.Lock()
			resources = resources[:len(resources)-1]
			resourcesMu.Unlock()
		}
	}
	if !panicsOn(func() { RegisterFlag(Flag{Name: testResource.GlobalFlag}) }) {
		t.Error("RegisterFlag of a limit's flag name did not panic")
	}
	if !panicsOn(func() { RegisterFlag(Flag{Name: "test-limit", Limit: true}) }) {
		t.Error("RegisterFlag of a Limit flag did not panic")
	}
}

// A registered resource is counted with its defaults and refused with
// its errnos, and logged by its name.
func TestRegisteredResourceDefaults(t *testing.T) {
	widgets := registerForTest(t, testResource)
	var logged strings.Builder
	q := NewQuota(Limits{RootReserve: -1}, slog.New(slog.NewTextHandler(&logged, nil)))
	if got := q.Limits().PerUid(widgets); got != 2 {
		t.Errorf("per-uid limit %d, want the default 2", got)
	}
	a, b := q.Payer(1000, false), q.Payer(1001, false)
	if err := a.Take(widgets, 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Take(widgets, 1); err != syscall.ENOSPC {
		t.Errorf("past the per-uid default: %v, want ENOSPC", err)
	}
	if err := b.Take(widgets, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Take(widgets, 1); err != syscall.ENFILE {
		t.Errorf("past the global default: %v, want ENFILE", err)
	}
	for _, want := range []string{"resource=test-widgets uid=1000 scope=per-uid limit=2", "resource=test-widgets uid=1001 scope=global limit=3"} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("no log line with %q:\n%s", want, logged.String())
		}
	}
	if got := widgets.String(); got != "test-widgets" {
		t.Errorf("String() = %q", got)
	}
	q = NewQuota(Limits{}.With(widgets, 5, 0), nil)
	if got := q.Limits().PerUid(widgets); got != 5 {
		t.Errorf("per-uid limit %d, want 5 as set", got)
	}
	if got := q.Limits().Global(widgets); got != 3 {
		t.Errorf("global limit %d, want the default 3 (With's 0 leaves it)", got)
	}
}

// The flags of every limit are mount flags with options, in the order of
// the help: each owner's per uid, netcore's last, then in all, then the
// root reserve.
func TestLimitFlags(t *testing.T) {
	registerForTest(t, testResource)
	var names []string
	byName := map[string]Flag{}
	for _, f := range Flags() {
		if f.Limit {
			names = append(names, f.Name)
			byName[f.Name] = f
		} else if len(names) > 0 {
			t.Errorf("flag %s after the limits'", f.Name)
		}
	}
	want := "max-widgets-per-uid max-sockets-per-uid max-queued-per-uid max-widgets max-sockets max-queued root-reserve"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("limit flags %s, want %s", got, want)
	}
	for _, tc := range []struct{ name, option, def, help string }{
		{"max-widgets", "max_widgets", "3", "  --max-widgets N              widgets in all (default 3; ENFILE)\n"},
		{"max-sockets-per-uid", "max_sockets_per_uid", "1024",
			"  --max-sockets-per-uid N      kernel sockets made for one uid, every family counted\n" +
				"                               together: inet, inet6, mhost, vxlan (default 1024; EMFILE)\n"},
		{"max-queued", "max_queued", "256M", "  --max-queued SIZE            queued bytes in all (default 256M)\n"},
		{"root-reserve", "root_reserve", "10",
			"  --root-reserve PERCENT       share of each global limit only CAP_SYS_ADMIN may use\n" +
				"                               (default 10; 0: none)\n"},
	} {
		f := byName[tc.name]
		if f.Option != tc.option || f.Default != tc.def || f.Help() != tc.help {
			t.Errorf("%s: option %q, default %q, help %q; want %q, %q, %q", tc.name, f.Option, f.Default, f.Help(),
				tc.option, tc.def, tc.help)
		}
	}
	for _, f := range byName {
		if !strings.Contains(f.Usage, "(default "+f.Default) {
			t.Errorf("%s: the help does not say the default %s: %q", f.Name, f.Default, f.Usage)
		}
		if err := f.CheckOption(f.Default); err != nil {
			t.Errorf("%s: the option check refuses the default: %v", f.Name, err)
		}
	}
}

// ParseLimits reads what the flags say, defaults for what they do not,
// and refuses a value as the flag's option check does.
func TestParseLimits(t *testing.T) {
	widgets := registerForTest(t, testResource)
	l, err := ParseLimits(map[string]string{"max-widgets-per-uid": "7", "max-queued": "1G", "max-sockets": "0x10",
		"root-reserve": "0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"widgets per uid", l.PerUid(widgets), 7},
		{"widgets in all", l.Global(widgets), 3},
		{"queued in all", l.Global(Queued), 1 << 30},
		{"queued per uid", l.PerUid(Queued), 64 << 20},
		{"sockets in all", l.Global(Sockets), 16},
		{"root reserve", int64(l.RootReserve), -1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}
	if l, _ := ParseLimits(nil); l.RootReserve != DefaultRootReserve || l.PerUid(Sockets) != 1024 {
		t.Errorf("no flags: %s, want the defaults", l)
	}
	for _, tc := range []struct{ flag, value, msg string }{
		{"max-widgets", "0", "--max-widgets 0: want at least 1"},
		{"max-widgets-per-uid", "many", "--max-widgets-per-uid many: want a whole number"},
		{"max-queued-per-uid", "12", "--max-queued-per-uid 12: want a size of at least 64K"},
		{"root-reserve", "60", "--root-reserve 60: want a percentage, 0 to 50"},
	} {
		if _, err := ParseLimits(map[string]string{tc.flag: tc.value}); err == nil || err.Error() != tc.msg &&
			!strings.HasPrefix(err.Error(), tc.msg) {
			t.Errorf("--%s %s: %v, want %q", tc.flag, tc.value, err, tc.msg)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{64 << 20: "64M", 1 << 30: "1G", 96 << 10: "96K", 100000: "100000", 0: "0"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if n >= 64<<10 {
			if back, err := ParseSize(want); err != nil || back != n {
				t.Errorf("ParseSize(%q) = %d, %v", want, back, err)
			}
		}
	}
}
