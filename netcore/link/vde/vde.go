// SPDX-License-Identifier: BSD-3-Clause

// Package vde serves every IPN network as a VDE2 switch (service "vde" of
// package link): the directory VDEDIR/NAME holds the switch's control
// socket ctl, and each VDE client that connects to it (vde_plug,
// vde_plug2tap, qemu -nic vde, anything on libvdeplug) becomes a port of
// KIND vde, sending and receiving one Ethernet frame per datagram on a
// socket of its own, for as long as its control connection stays open.
//
// Who may join is the network's business: the daemon checks the peer's
// credentials (SO_PEERCRED, SO_PEERGROUPS) against the network's r and w
// rights, as for its data file. The directory's mode only lets the users
// that hold a right reach the sockets (a client binds its own datagram
// socket inside the switch directory, so it needs write access there).
package vde

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/netcore"
	"github.com/mnet-project/mnet/netcore/link"
)

// Name is the service's ctl word and the KIND of its ports.
const Name = "vde"

// DirFlag is the mount flag (netcore.Env.Flags) that names VDEDIR, and
// DefaultDir its default.
const (
	DirFlag    = "vde-dir"
	DefaultDir = "/run/mnet/vde"
)

func init() {
	link.RegisterService(&link.Service{Name: Name, Default: true, New: newServer})
	netcore.RegisterFlag(netcore.Flag{Name: DirFlag, Default: DefaultDir, Arg: "DIR",
		Usage: "where each network with vde on is a VDE switch, DIR/NAME\n" +
			"(default " + DefaultDir + "): vde_plug DIR/NAME joins it",
		Option: "vde_dir", CheckOption: netcore.AbsolutePath})
}

// clientSockLen is the length of "/.PID-NNNNN", the name libvdeplug gives
// its socket in the switch directory: with the directory's path it must
// fit in a sockaddr_un.
const clientSockLen = 1 + 1 + 7 + 1 + 5

// server is the service in one daemon: the directory holding one switch
// directory per network.
type server struct {
	dir string
}

func newServer(env *netcore.Env) (link.Server, error) {
	dir := env.Flags[DirFlag]
	if dir == "" {
		dir = DefaultDir
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("--%s %q: not an absolute path", DirFlag, dir)
	}
	dir = filepath.Clean(dir)
	if len(dir)+2+clientSockLen >= sunPathLen {
		return nil, fmt.Errorf("--%s %q: too long for socket paths under it", DirFlag, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &server{dir: dir}
	s.cleanStale(env)
	return s, nil
}

// cleanStale removes the switch directories whose switch is dead: a
// daemon that was killed left them, with a ctl socket nobody listens on.
// A live switch (another daemon's, a vde_switch) is left alone.
func (s *server) cleanStale(env *netcore.Env) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		if switchState(path) == switchDead {
			if err := os.RemoveAll(path); err == nil {
				env.Log.Info("stale VDE switch directory removed", "path", path)
			}
		}
	}
}

type liveness int

const (
	switchNone liveness = iota // no ctl socket
	switchDead                 // a ctl socket nobody listens on
	switchLive
)

// switchState tells whether dir is a switch directory with a switch
// behind it.
func switchState(dir string) liveness {
	ctl := filepath.Join(dir, "ctl")
	var st unix.Stat_t
	if err := unix.Lstat(ctl, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return switchNone
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return switchLive // cannot tell: leave it
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: ctl})
	if errors.Is(err, unix.ECONNREFUSED) {
		return switchDead
	}
	return switchLive // connected, or a full backlog (EAGAIN): someone listens
}

func (s *server) Close() {}

func (s *server) Start(n link.Network) (link.Stopper, error) {
	path := filepath.Join(s.dir, n.Name())
	if len(path)+max(clientSockLen, portSockLen) >= sunPathLen {
		return nil, link.Errorf(syscall.ENAMETOOLONG, "%s: too long for the sockets of VDE clients in it (shorten the name or --%s)", path, DirFlag)
	}
	switch switchState(path) {
	case switchLive:
		return nil, link.Errorf(syscall.EADDRINUSE, "%s is served by another switch", path)
	case switchDead:
		n.Log().Info("stale VDE switch directory removed", "path", path)
	}
	if err := os.RemoveAll(path); err != nil {
		return nil, err
	}
	// The directory is root's and closed to others until ctl and the
	// ports directory are made: it is then given to the network's owner,
	// who could otherwise swap a name the daemon is about to chmod.
	if err := unix.Mkdir(path, 0o700); err != nil {
		return nil, fmt.Errorf("mkdir %s: %w", path, err)
	}
	sw := &switchDir{net: n, path: path, portsFD: -1, conns: map[*clientConn]bool{}}
	if err := sw.prepare(); err != nil {
		sw.close()
		os.RemoveAll(path)
		return nil, err
	}
	sw.wg.Add(1)
	go sw.accept()
	n.Log().Info("VDE switch serving", "network", n.Name(), "path", path)
	return sw, nil
}

// prepare makes ctl and the ports directory, then opens the switch
// directory to the users the network's rights admit.
func (sw *switchDir) prepare() error {
	if err := sw.listen(); err != nil {
		return err
	}
	// The switch's own sockets, one per client, are made in a directory
	// only root may change, and only through a descriptor of it: the
	// switch directory belongs to the network's owner, who may rename
	// anything in it.
	ports := filepath.Join(sw.path, portsDir)
	if err := unix.Mkdir(ports, 0o711); err != nil {
		return err
	}
	fd, err := unix.Open(ports, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	sw.portsFD = fd
	return sw.setAccess()
}

// portsDir holds the switch's datagram sockets, and portSockLen is what
// "/.mnet/NNN.mnet" may take of a socket path.
const (
	portsDir    = ".mnet"
	portSockLen = 1 + len(portsDir) + 1 + 16
)

// dirMode is the mode of a switch directory for a network of mode mode:
// every class holding r or w may create its socket there (rwx), others
// may not even look in; sticky, so no client removes another's socket.
func dirMode(mode uint32) uint32 {
	var m uint32 = unix.S_ISVTX
	for shift := 0; shift <= 6; shift += 3 {
		if mode>>shift&6 != 0 {
			m |= 7 << shift
		}
	}
	return m
}

// setAccess gives the directory the network's owner, group and derived
// mode.
func (sw *switchDir) setAccess() error {
	uid, gid, mode := sw.net.Access()
	if err := unix.Lchown(sw.path, int(uid), int(gid)); err != nil {
		return fmt.Errorf("chown %s: %w", sw.path, err)
	}
	if err := unix.Chmod(sw.path, dirMode(mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", sw.path, err)
	}
	return nil
}

func (sw *switchDir) AccessChanged() {
	if err := sw.setAccess(); err != nil {
		sw.net.Log().Error("VDE switch directory keeps its old mode", "network", sw.net.Name(), "err", err)
	}
}
