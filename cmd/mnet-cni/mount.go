// SPDX-License-Identifier: BSD-3-Clause

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"
)

// Error codes of this plugin (the CNI spec leaves 100 and up to plugins).
const (
	// errRefused: the network's rights or the caller's capabilities
	// refuse what the plugin asked of the mount.
	errRefused uint = 100
	// errNameTaken: CNI_IFNAME already names an interface in the
	// container's namespace.
	errNameTaken uint = 101
	// errNetwork: the mount refused a ctl command for another reason
	// (the network full, a bad setting); the message has mnet's reason.
	errNetwork uint = 102
)

// fuseSuperMagic is statfs(2)'s f_type of a FUSE mount.
const fuseSuperMagic = 0x65735546

// mnetMount is an mnet mount and one network on it.
type mnetMount struct {
	dir     string // the mount point
	network string
}

func (m mnetMount) netDir() string          { return filepath.Join(m.dir, "ipn", m.network) }
func (m mnetMount) file(name string) string { return filepath.Join(m.netDir(), name) }

// check makes sure mnet serves at the mount point. Its error is "try
// again later": a daemon still starting, or restarted, will be there.
func (m mnetMount) check() error {
	start := fmt.Sprintf("start it: systemctl start mnet, or mount -t mnet mnet %s", m.dir)
	var st unix.Statfs_t
	err := unix.Statfs(m.dir, &st)
	switch {
	case errors.Is(err, unix.ENOTCONN):
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("mnet: the mnet mount at %s is not answering (its daemon is gone); %s", m.dir, start), "")
	case err != nil:
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("mnet: mnet is not mounted at %s (%v); %s", m.dir, errnoText(err), start), "")
	}
	if st.Type != fuseSuperMagic {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("mnet: mnet is not mounted at %s; %s", m.dir, start), "")
	}
	if _, err := os.Stat(filepath.Join(m.dir, "ipn")); err != nil {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("mnet: %s is a FUSE mount but not mnet's (no ipn directory); %s", m.dir, start), "")
	}
	return nil
}

// ensureNetwork creates the network with mode (and persist on) unless it
// exists; an existing network keeps its owner, mode and settings.
func (m mnetMount) ensureNetwork(mode uint32, persist bool) error {
	dir := m.netDir()
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return types.NewError(types.ErrIOFailure, fmt.Sprintf("mnet: %s is not a network", dir), "")
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return m.fileError("looking up network", err)
	}
	if err := os.Mkdir(dir, os.FileMode(mode)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil // made meanwhile, by another ADD
		}
		return m.fileError("creating network", err)
	}
	// mkdir applies the umask and keeps x from group and others; the
	// configured mode is meant as written.
	if err := os.Chmod(dir, os.FileMode(mode)); err != nil {
		return m.fileError("setting the mode of network", err)
	}
	if persist {
		if err := os.WriteFile(m.file("ctl"), []byte("persist on\n"), 0); err != nil {
			return m.ctlError("persist", "on", err)
		}
	}
	return nil
}

// fileError describes a failed file operation on the network.
func (m mnetMount) fileError(what string, err error) error {
	switch {
	case errors.Is(err, unix.ENOTCONN):
		return m.check()
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return m.refused(what, err)
	case errors.Is(err, unix.ENOSPC):
		return types.NewError(errNetwork, fmt.Sprintf("mnet: %s %q: this user may create no more networks (%v)", what, m.network, errnoText(err)), "")
	}
	return types.NewError(types.ErrIOFailure, fmt.Sprintf("mnet: %s %q at %s: %v", what, m.network, m.dir, errnoText(err)), "")
}

// refused explains an EACCES or EPERM of the mount: which rights the
// network grants and who the caller is.
func (m mnetMount) refused(what string, err error) error {
	who := fmt.Sprintf("uid %d", os.Geteuid())
	rights := ""
	var st unix.Stat_t
	if unix.Stat(m.netDir(), &st) == nil {
		rights = fmt.Sprintf(" (mode %04o, owner uid %d, group %d)", st.Mode&0o7777, st.Uid, st.Gid)
	}
	var hint string
	switch {
	case errors.Is(err, unix.EPERM):
		hint = "creating an interface needs CAP_NET_ADMIN in the mnet daemon's user namespace (a rootless runtime has none there)"
	case strings.HasPrefix(what, "creating"):
		hint = "creating a network needs write permission on " + filepath.Join(m.dir, "ipn")
	default:
		hint = "attaching an interface needs the network's manage right (x), see Rights in mnet(7); its owner can chmod or chown it, or configure another \"network\""
	}
	return types.NewError(errRefused,
		fmt.Sprintf("mnet: %s %q%s refused for %s: %v; %s", what, m.network, rights, who, errnoText(err), hint), "")
}

// ctlError describes a failed ctl command, with the daemon's reason
// (last-error) where it can be read.
func (m mnetMount) ctlError(cmd, ifname string, err error) error {
	switch {
	case errors.Is(err, unix.ENOTCONN):
		return m.check()
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return m.refused(cmd+" "+ifname+" on network", err)
	case errors.Is(err, unix.EEXIST):
		return nameTaken(ifname)
	}
	reason := errnoText(err)
	if last := m.lastError(); last != "" {
		reason = last
	}
	return types.NewError(errNetwork, fmt.Sprintf("mnet: %s %s on network %q: %s", cmd, ifname, m.network, reason), "")
}

func nameTaken(ifname string) error {
	return types.NewError(errNameTaken,
		fmt.Sprintf("mnet: interface name %q is taken in the container's network namespace; choose another CNI_IFNAME", ifname), "")
}

// lastError is the daemon's reason for the network's last failed ctl
// command.
func (m mnetMount) lastError() string {
	for _, l := range m.ctlLines() {
		if r, ok := strings.CutPrefix(l, "last-error "); ok {
			return r
		}
	}
	return ""
}

// ctlLines are the lines ctl reads, nil if it cannot be read.
func (m mnetMount) ctlLines() []string {
	b, err := os.ReadFile(m.file("ctl"))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// ctlValue is the value of a setting ctl shows ("mtu 65535").
func ctlValue(lines []string, key string) string {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			return v
		}
	}
	return ""
}

// ctlFile is a network's ctl opened for writing. The mount acts in the
// namespace of the thread that opened it, whichever thread writes.
type ctlFile struct {
	m mnetMount
	f *os.File
}

// openCtl opens the network's ctl. Call it on a thread that has entered
// the container's namespace.
func (m mnetMount) openCtl() (*ctlFile, error) {
	f, err := os.OpenFile(m.file("ctl"), os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &ctlFile{m: m, f: f}, nil
}

// do writes one ctl command.
func (c *ctlFile) do(cmd, ifname string) error {
	_, err := c.f.WriteString(cmd + " " + ifname + "\n")
	return err
}

func (c *ctlFile) Close() error { return c.f.Close() }

// errnoText is err's errno alone ("permission denied") where it has one:
// the path is in the message already.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// portNamed reports whether the ports table has a tap port named ifname.
func (m mnetMount) portNamed(ifname string) (bool, error) {
	b, err := os.ReadFile(m.file("ports"))
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		// PORT KIND UID PID MODE RXPKTS RXBYTES TXPKTS TXBYTES DROPS NAME
		if len(f) >= 11 && f[1] == "tap" && f[10] == ifname {
			return true, nil
		}
	}
	return false, nil
}
