// SPDX-License-Identifier: BSD-3-Clause

package netcore

import (
	"os/exec"
	"strings"
	"testing"
)

// The layers keep to their direction (cmd -> fs -> netcore -> internal):
// netcore is the standard library only, a family links nothing of another
// family's (inet does not pull in ipn's packet code, pcap or devices), and
// the helpers under internal/ know nothing of the layers above them.
func TestDependencies(t *testing.T) {
	for _, c := range []struct {
		pkg       string
		forbidden []string // prefixes
	}{
		{"github.com/mnet-project/mnet/netcore", []string{"github.com/", "golang.org/x/"}},
		{"github.com/mnet-project/mnet/netcore/inet", []string{
			"github.com/gopacket/gopacket", "github.com/hanwen/go-fuse",
			"github.com/mnet-project/mnet/netcore/ipn", "github.com/mnet-project/mnet/netcore/link",
			"github.com/mnet-project/mnet/internal/tap", "github.com/mnet-project/mnet/internal/vnet"}},
		{"github.com/mnet-project/mnet/netcore/ipn", []string{
			"github.com/hanwen/go-fuse", "github.com/mnet-project/mnet/internal/tap", "github.com/mnet-project/mnet/fs"}},
		{"github.com/mnet-project/mnet/internal/vnet", []string{"github.com/mnet-project/"}},
		{"github.com/mnet-project/mnet/internal/fdpoll", []string{"github.com/mnet-project/"}},
		{"github.com/mnet-project/mnet/internal/netns", []string{"github.com/mnet-project/"}},
		{"github.com/mnet-project/mnet/internal/tap", []string{
			"github.com/mnet-project/mnet/netcore", "github.com/mnet-project/mnet/fs",
			"github.com/mnet-project/mnet/cmd"}},
		{"github.com/mnet-project/mnet/netcore/iphost", []string{
			"github.com/hanwen/go-fuse", "github.com/mnet-project/mnet/netcore/ipn",
			"github.com/mnet-project/mnet/internal/tap", "github.com/mnet-project/mnet/fs"}},
		{"github.com/mnet-project/mnet/netcore/mhost", []string{
			"github.com/hanwen/go-fuse", "github.com/mnet-project/mnet/netcore/ipn",
			"github.com/mnet-project/mnet/netcore/inet", "github.com/mnet-project/mnet/internal/tap", "github.com/mnet-project/mnet/fs"}},
	} {
		out, err := exec.Command("go", "list", "-deps", c.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", c.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == c.pkg {
				continue
			}
			for _, f := range c.forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", c.pkg, dep)
				}
			}
		}
	}
}
