// SPDX-License-Identifier: BSD-3-Clause

package link

import (
	"encoding/json"
	"sort"

	"github.com/mnet-project/mnet/netcore"
)

// An Extension adds to every network what is neither an attachment made by
// one ctl line, a service's clients, nor a file port: ctl words with settings of its own, names
// in the network's directory, and ports it joins and leaves as it needs
// them. The userspace host is one ("addr CIDR", "mac MAC", udp/, a port of
// KIND host while it has an address).
//
// Every network gets one Instance of each registered extension when it is
// made, and closes it when it goes away.
type Extension struct {
	// Name is the KIND its ports show and the key of its saved state.
	Name string
	// Words are the ctl words it owns.
	Words []string
	// New makes the extension's instance for one network, which it sees
	// as a service does (Network): it joins its ports through it.
	New func(n Network) Instance
}

// Instance is an extension on one network.
type Instance interface {
	// Parse checks the ctl line "word arg" (word one of Words) written by
	// c, who holds the manage right, and returns what applies it. Every
	// line of a write is parsed before any is applied; Parse's errors
	// are EINVAL unless they carry another errno (see Errorf). apply runs
	// without the network's lock held, after the network's own settings
	// of the write are applied; its errors fail the write likewise.
	Parse(c *netcore.Cred, word, arg string) (apply func() error, err error)
	// CtlLines are what reading ctl shows of it: settings ("mac ...",
	// listed with the network's settings) and items ("addr ...", listed
	// after the attachments). Each is a line that, written to ctl, makes
	// it so.
	CtlLines() (settings, items []string)
	// Entries are the names it adds to the network's directory.
	Entries() []netcore.DirEntry
	// Busy reports whether files it adds are open: rmdir of the network
	// is then EBUSY, as with open data files.
	Busy() bool
	// Save returns its state for a persistent network, nil for none;
	// Restore takes it back at the next start, before anything else.
	Save() json.RawMessage
	Restore(saved json.RawMessage) error
	// Close ends it with its network: its ports leave, its files fail.
	Close()
}

var extensions = map[string]*Extension{}

// RegisterExtension adds an extension; like Register, from its package's
// init. A word or name taken by a kind or another extension panics.
func RegisterExtension(e *Extension) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if e.Name == "" || reserved[e.Name] || extensions[e.Name] != nil || e.New == nil {
		panic("link: extension name empty, reserved or registered twice, or without New: " + e.Name)
	}
	for _, w := range e.Words {
		if reserved[w] || kinds[w] != nil || services[w] != nil || extWord(w) != nil {
			panic("link: extension word taken: " + w)
		}
	}
	extensions[e.Name] = e
}

// extWord returns the extension owning ctl word w; kindsMu is held.
func extWord(w string) *Extension {
	for _, e := range extensions {
		for _, x := range e.Words {
			if x == w {
				return e
			}
		}
	}
	return nil
}

// Extensions returns every registered extension, by name.
func Extensions() []*Extension {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	out := make([]*Extension, 0, len(extensions))
	for _, e := range extensions {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
