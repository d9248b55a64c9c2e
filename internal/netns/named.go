// SPDX-License-Identifier: BSD-3-Clause

package netns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Named network namespaces are bind mounts of a namespace's nsfs file,
// such as those `ip netns add` makes under /run/netns: a path an
// administrator gave a namespace, which outlives any process in it.

// DirFlag is the mount flag naming the directories of named namespaces,
// DefaultDir its default.
const (
	DirFlag    = "netns-dir"
	DefaultDir = "/run/netns"
)

// Dirs reads the value of DirFlag: directories separated by colons; ""
// is DefaultDir.
func Dirs(flag string) []string {
	if flag == "" {
		return []string{DefaultDir}
	}
	var dirs []string
	for d := range strings.SplitSeq(flag, ":") {
		if d != "" {
			dirs = append(dirs, filepath.Clean(d))
		}
	}
	return dirs
}

// NameOf returns a path in one of dirs that is namespace id (a bind mount
// of it), or "" if none is: the namespace has no name.
func NameOf(dirs []string, id ID) string {
	for _, dir := range dirs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			var st unix.Stat_t
			if unix.Stat(p, &st) == nil && (ID{st.Dev, st.Ino}) == id {
				return p
			}
		}
	}
	return ""
}

// ErrGone is OpenNamed's error when nothing is at the path, and
// ErrChanged when another namespace than the one asked for is.
var (
	ErrGone    = errors.New("gone")
	ErrChanged = errors.New("now another namespace")
)

// OpenNamed opens the namespace at path if it is the one called id (no
// other given that name meanwhile). A zero id takes whatever namespace
// is there. A path that is no namespace (the file an unmount leaves) is
// ErrGone.
func OpenNamed(path string, id ID) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		if errors.Is(err, syscall.ENOENT) || unix.Stat(path, &st) != nil {
			return nil, ErrGone
		}
		return nil, err
	}
	var fs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return nil, ErrGone
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	got := ID{st.Dev, st.Ino}
	switch {
	case id != (ID{}) && got != id:
		unix.Close(fd)
		return nil, ErrChanged
	case got == self.id:
		unix.Close(fd)
		return self, nil
	}
	return &NS{id: got, fd: fd}, nil
}
