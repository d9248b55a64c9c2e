// SPDX-License-Identifier: BSD-3-Clause

package ipn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// savedNetwork is one persistent network in the state file.
type savedNetwork struct {
	Name     string   `json:"name"`
	Uid      uint32   `json:"uid"`
	Gid      uint32   `json:"gid"`
	Mode     uint32   `json:"mode"`
	Settings Settings `json:"settings"`
	// Links are the attachments, in the order they were attached: JSON
	// objects with "kind", "name" and what the kind saves (package link).
	// The key is from when only interfaces were attached.
	Links []json.RawMessage `json:"ifaces,omitempty"`
	// Ext is what extensions (package link) keep, by extension name.
	Ext map[string]json.RawMessage `json:"ext,omitempty"`
	// Impair are the impair lines of the attachments and of all, without
	// the word, restored after the attachments.
	Impair []string `json:"impair,omitempty"`
	// VLANs are the VLAN settings of service port numbers ("vde:5");
	// those of attachments are kept with them.
	VLANs map[string]savedVLAN `json:"vlans,omitempty"`
}

type stateDoc struct {
	// Version is stateVersion when saved; files from before it have 0.
	Version  int            `json:"version,omitempty"`
	Networks []savedNetwork `json:"networks"`
}

// stateVersion 2 records the network namespace of every attachment made
// outside the daemon's (where.go). In an older file an attachment without
// one may have been made in a container's namespace: it is marked
// savedWhere.Unknown at load and waits instead of being made here.
const stateVersion = 2

// stateFile keeps persistent networks across daemon restarts. An empty path
// disables it.
type stateFile struct {
	path string
	mu   sync.Mutex
}

func (s *stateFile) load() ([]savedNetwork, error) {
	if s.path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Version < stateVersion {
		for i := range doc.Networks {
			markUnknownWhere(doc.Networks[i].Links)
		}
	}
	return doc.Networks, nil
}

// save replaces the file atomically (write, fsync, rename).
func (s *stateFile) save(nets []savedNetwork) error {
	if s.path == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if nets == nil {
		nets = []savedNetwork{} // "networks": [], not null, for a person or jq
	}
	b, err := json.MarshalIndent(stateDoc{Version: stateVersion, Networks: nets}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".state-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.path)
}

// moveAside renames an unreadable state file out of the way and returns its
// new name ("" if it could not be moved).
func (s *stateFile) moveAside() string {
	aside := fmt.Sprintf("%s.broken-%s", s.path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(s.path, aside); err != nil {
		return ""
	}
	return aside
}
