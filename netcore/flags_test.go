// SPDX-License-Identifier: BSD-3-Clause

package netcore

import "testing"

func TestFlagHelp(t *testing.T) {
	for _, tc := range []struct {
		f    Flag
		want string
	}{
		{Flag{Name: "x-dir", Arg: "DIR", Usage: "where x is\n(default /x)"},
			"  --x-dir DIR     where x is\n                  (default /x)\n"},
		{Flag{Name: "long-name-dir", Arg: "DIR[:DIR...]", Usage: "where"},
			"  --long-name-dir DIR[:DIR...]  where\n"},
	} {
		if got := tc.f.Help(); got != tc.want {
			t.Errorf("Help() = %q, want %q", got, tc.want)
		}
	}
}

func TestRegisterFlagTwicePanics(t *testing.T) {
	RegisterFlag(Flag{Name: "test-flag-twice"})
	defer func() {
		flagsMu.Lock()
		defer flagsMu.Unlock()
		for i, f := range flags {
			if f.Name == "test-flag-twice" {
				flags = append(flags[:i], flags[i+1:]...)
				break
			}
		}
		if recover() == nil {
			t.Error("second RegisterFlag did not panic")
		}
	}()
	RegisterFlag(Flag{Name: "test-flag-twice"})
}
