// SPDX-License-Identifier: BSD-3-Clause

// Command mnet mounts the mnet filesystem: networking as files.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mnet-project/mnet/cmd/mnet/internal/detach"
	"github.com/mnet-project/mnet/cmd/mnet/internal/logdest"
	"github.com/mnet-project/mnet/cmd/mnet/internal/sdnotify"
	"github.com/mnet-project/mnet/fs"
	"github.com/mnet-project/mnet/netcore"
	_ "github.com/mnet-project/mnet/netcore/inet"       // the inet and inet6 families
	_ "github.com/mnet-project/mnet/netcore/iphost"     // the userspace host: addr, mac, udp/
	_ "github.com/mnet-project/mnet/netcore/ipn"        // the ipn family
	_ "github.com/mnet-project/mnet/netcore/link/iface" // tap and grab
	_ "github.com/mnet-project/mnet/netcore/link/vde"   // every network a VDE switch
	_ "github.com/mnet-project/mnet/netcore/link/vxlan" // vxlan cables
	_ "github.com/mnet-project/mnet/netcore/mhost"      // the mhost family
)

// usageText is mnet help; FAMILYFLAGS stands for the flags families and
// link kinds register, LIMITFLAGS for those of the limits.
const usageText = `mnet: networking as files

Usage:
  mnet mount [flags] MOUNTPOINT   serve mnet at MOUNTPOINT in the foreground (as root)
  mnet umount MOUNTPOINT          unmount it; the daemon then exits
  mnet help                       this text
  mnet --version                  the version this binary was built from
  mount -t mnet mnet MOUNTPOINT   the same daemon in the background, through the
                                  mount helper mount.mnet (-o state=PATH,debug,log=PATH)

mount flags:
  -v              debug log lines (port joins and leaves, and more)
  --debug-fuse    log every FUSE request (very verbose)
  --state PATH    where persistent networks are kept (default /var/lib/mnet/state.json;
                  empty: keep nothing)
FAMILYFLAGS  --log DEST      where log lines go: standard error (default), syslog, or a file
  Limits (man 8 mnet): per uid, and in all with a reserve for CAP_SYS_ADMIN;
  SIZE is bytes, or with K, M or G:
LIMITFLAGS  --cpuprofile PATH            write a Go CPU profile of the whole run to PATH (for
                               developers: go tool pprof, or cmd/mnet/default.pgo)

The daemon stops on SIGINT, SIGTERM or umount: it unmounts, deletes what it
created and exits 0. A stale mount left by a killed daemon is recovered by the
next mount. Try:

  mnet mount /mnt/mnet &
  mkdir /mnt/mnet/ipn/lab
  cat /mnt/mnet/ipn/lab/data &
  echo hello > /mnt/mnet/ipn/lab/data

Manual: man 7 mnet (the files: the interface), man 8 mnet (the daemon, the mount
helper, fstab and systemd). In the source tree: man/mnet.7.md and man/mnet.8.md.
`

// usage is mnet help, with the registered flags.
func usage() string {
	var family, limits strings.Builder
	for _, f := range netcore.Flags() {
		if f.Limit {
			limits.WriteString(f.Help())
		} else {
			family.WriteString(f.Help())
		}
	}
	return strings.NewReplacer("FAMILYFLAGS", family.String(), "LIMITFLAGS", limits.String()).Replace(usageText)
}

func main() {
	if filepath.Base(os.Args[0]) == helperName {
		os.Exit(helperMain(os.Args[1:]))
	}
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage())
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "mount":
		err = mountCmd(os.Args[2:])
	case "umount", "unmount":
		err = umountCmd(os.Args[2:])
	case "help", "-h", "-help", "--help":
		fmt.Print(usage())
		return
	case "version", "--version", "-version":
		fmt.Println(version())
		return
	default:
		fmt.Fprintf(os.Stderr, "mnet: unknown command %q\n\n%s", os.Args[1], usage())
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mnet: %v\n", err)
		os.Exit(1)
	}
}

// mountCmd serves until stopped. Started by the mount helper, it reports its
// first error, or that it serves, to the helper waiting for it.
func mountCmd(args []string) error {
	ready := detach.FromEnv()
	err := serve(args, ready)
	if err != nil {
		ready.Fail(err) // nothing once it reported ready
	}
	return err
}

// serve is mnet mount: it mounts, reports ready and serves until a signal
// or an unmount ends it.
func serve(args []string, ready *detach.Reporter) error {
	o, err := parseMountFlags(args)
	if err != nil {
		return err
	}
	log, logCloser, err := openLog(o)
	if err != nil {
		return err
	}
	defer logCloser.Close()

	if os.Geteuid() != 0 {
		return errors.New("mount: must run as root (it mounts for every user and creates interfaces)")
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("mount: --cpuprofile: %v", err)
		}
		defer stop(log)
	}
	mp, err := filepath.Abs(o.mountpoint)
	if err != nil {
		return err
	}
	if err := prepareMountpoint(mp, log); err != nil {
		return err
	}

	// Signals are caught from before the mount and handled once it is up.
	// A process killed while it holds a file of its own mount open cannot
	// exit: closing the file waits for an answer from itself. go-fuse's
	// mount-time poll probe used to hold one; with poll on there is no
	// probe, and the daemon never opens its own files (see fs.Mount).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)

	core, server, err := mount(o, log, mp)
	if err != nil {
		return err
	}
	ready.Ready()
	notify(log, "READY=1\nSTATUS=serving "+mp)
	serveUntilStopped(log, core, server, mp, sigs)
	return nil
}

// mountOptions are mnet mount's flags and MOUNTPOINT.
type mountOptions struct {
	logDest, state, cpuProfile string
	verbose, debugFuse         bool
	limits                     netcore.Limits
	// flags are the registered flags' values, defaults included.
	flags      map[string]string
	mountpoint string
}

// parseMountFlags reads mnet mount's arguments; --help prints the usage
// and returns flag.ErrHelp.
func parseMountFlags(args []string) (*mountOptions, error) {
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	logDest := fl.String("log", "", "")
	verbose := fl.Bool("v", false, "")
	debugFuse := fl.Bool("debug-fuse", false, "")
	state := fl.String("state", "/var/lib/mnet/state.json", "")
	registered := make(map[string]*string)
	for _, f := range netcore.Flags() {
		registered[f.Name] = fl.String(f.Name, f.Default, "")
	}
	cpuProfile := fl.String("cpuprofile", "", "")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Print(usage())
			return nil, err
		}
		return nil, fmt.Errorf("mount: %v (see mnet help)", err)
	}
	if fl.NArg() != 1 {
		return nil, errors.New("mount: want exactly one MOUNTPOINT (see mnet help)")
	}
	flags := make(map[string]string, len(registered))
	for name, v := range registered {
		flags[name] = *v
	}
	limits, err := netcore.ParseLimits(flags)
	if err != nil {
		return nil, fmt.Errorf("mount: %v (see mnet help)", err)
	}
	return &mountOptions{logDest: *logDest, state: *state, flags: flags,
		cpuProfile: *cpuProfile, verbose: *verbose, debugFuse: *debugFuse, limits: limits,
		mountpoint: fl.Arg(0)}, nil
}

// openLog opens the daemon's log where --log says, at debug level with
// -v or --debug-fuse.
func openLog(o *mountOptions) (*slog.Logger, io.Closer, error) {
	level := slog.LevelInfo
	if o.verbose || o.debugFuse {
		level = slog.LevelDebug
	}
	log, logCloser, err := logdest.Open(o.logDest, level)
	if err != nil {
		return nil, nil, fmt.Errorf("mount: %v", err)
	}
	if f, ok := logCloser.(*os.File); ok {
		// The Go runtime writes a crash to standard error: into the log.
		unix.Dup2(int(f.Fd()), 2)
	}
	return log, logCloser, nil
}

// fuseServer is the FUSE connection of the mount.
type fuseServer interface {
	Wait()
	Unmount() error
}

// mount makes the families and mounts them on mp.
func mount(o *mountOptions, log *slog.Logger, mp string) (*netcore.Core, fuseServer, error) {
	core, err := netcore.New(netcore.Env{Log: log, StatePath: o.state, Limits: o.limits,
		Flags: o.flags})
	if err != nil {
		return nil, nil, err
	}
	server, err := fs.Mount(core, fs.Config{Mountpoint: mp, Log: log, Debug: o.debugFuse})
	if err != nil {
		core.Close()
		return nil, nil, fmt.Errorf("mount %s: %v", mp, err)
	}
	log.Info("mounted", "mountpoint", mp, "pid", os.Getpid(), "limits", core.Quota().Limits().String())
	if netcore.TestHooksEnabled() {
		log.Warn("test hooks enabled (MNET_TEST_HOOKS=1): marked frames and writes make the daemon panic on purpose")
	}
	stopMem := releaseMemory(core.Quota(), log)
	defer stopMem()
	if !netcore.ProcMatches() {
		log.Warn("/proc is not of the daemon's pid namespace (mount one: unshare --mount-proc); " +
			"callers get no supplementary groups, no capabilities and EACCES for inet")
	}
	return core, server, nil
}

// serveUntilStopped serves the mount until a signal (sigs), the mount
// leaving this mount namespace, or the FUSE connection ending from
// outside, and stops the daemon accordingly.
func serveUntilStopped(log *slog.Logger, core *netcore.Core, server fuseServer, mp string, sigs <-chan os.Signal) {
	served := make(chan struct{})
	go func() { server.Wait(); close(served) }()
	var st unix.Stat_t
	statErr := unix.Stat(mp, &st)
	var gone <-chan struct{}
	if statErr == nil {
		var stopWatch func()
		var err error
		if gone, stopWatch, err = watchMount(uint64(st.Dev), log); err != nil {
			log.Warn("cannot watch the mount: umount from outside ends the daemon only with the last copy of the mount", "err", err)
		} else {
			defer stopWatch()
		}
	}

	select {
	case sig := <-sigs:
		log.Info("stopping", "signal", sig.String())
		stop(log, core, server, mp, true, statErr == nil, uint64(st.Dev), served)
	case <-gone:
		log.Info("unmounted, stopping", "mountpoint", mp)
		stop(log, core, server, mp, false, true, uint64(st.Dev), served)
	case <-served:
		log.Info("unmounted from outside, stopping")
		notify(log, "STOPPING=1")
		core.Close()
	}
	if n := netcore.Panics(); n > 0 {
		log.Error("panics were contained while serving; each is logged above with its stack", "panics", n)
	}
	log.Info("stopped")
}

// stop ends the daemon's service: on a signal (unmount set) or when the
// mount left this mount namespace (mnet umount, umount). Blocked readers
// are woken first and read end of file, then the FUSE connection ends:
// by the unmount, or, where a copy of the mount lives on in another mount
// namespace made while it was mounted (ip netns exec, unshare -m) and the
// kernel keeps the connection for it, by this process through fusectl.
// known says whether dev, the mount's device, could be read.
func stop(log *slog.Logger, core *netcore.Core, server interface{ Unmount() error }, mp string, unmount, known bool, dev uint64, served <-chan struct{}) {
	notify(log, "STOPPING=1")
	// Wake every blocked reader first, so their requests finish and
	// the unmount is not refused for them.
	core.Close()
	ended := served
	if unmount {
		unmounted := make(chan struct{})
		go func() {
			if err := server.Unmount(); err != nil {
				// Files still held open: detach the mount now; the
				// kernel ends the connection when this process exits.
				log.Info("files still open, detaching the mount", "err", err)
				if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
					log.Error("detach failed", "mountpoint", mp, "err", err)
				}
			}
			close(unmounted)
		}()
		ended = unmounted
	}
	select {
	case <-ended:
		return
	case <-time.After(unmountGrace):
	}
	log.Warn("mount still held by another mount namespace; ending the FUSE connection")
	if known {
		abortConnection(dev)
	}
	select {
	case <-ended:
	case <-time.After(unmountGrace):
		log.Error("FUSE connection did not end; exiting anyway")
	}
}

// notify tells systemd (or another service manager) how the daemon is
// doing, when it started the daemon with NOTIFY_SOCKET.
func notify(log *slog.Logger, state string) {
	if err := sdnotify.Notify(state); err != nil {
		log.Warn("telling the service manager", "state", state, "err", err)
	}
}

// prepareMountpoint makes sure mp is a directory we can mount on: it creates
// it if missing, recovers a stale mount (its daemon died: ENOTCONN) and
// refuses a live one.
func prepareMountpoint(mp string, log *slog.Logger) error {
	var st unix.Stat_t
	err := unix.Stat(mp, &st)
	switch {
	case errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED):
		// Only a dead mnet is ours to clear away.
		if fstype, _ := mountedAt(mp); fstype != "fuse.mnet" {
			return fmt.Errorf("%s is a dead mount of %s, not of mnet; unmount it yourself", mp, fstype)
		}
		log.Info("recovering stale mount left by a dead daemon", "mountpoint", mp)
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("stale mount at %s: %v", mp, err)
		}
	case errors.Is(err, unix.ENOENT):
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return err
		}
		return nil
	case err != nil:
		return fmt.Errorf("mountpoint %s: %v", mp, err)
	}
	if fstype, ok := mountedAt(mp); ok && strings.HasPrefix(fstype, "fuse") {
		return fmt.Errorf("%s is already mounted (%s); umount %s first", mp, fstype, mp)
	}
	if err := unix.Stat(mp, &st); err != nil {
		return fmt.Errorf("mountpoint %s: %v", mp, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("mountpoint %s: not a directory", mp)
	}
	return nil
}

// mountedAt reports the filesystem type of the topmost mount at mp, if any.
func mountedAt(mp string) (string, bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	fstype, found := "", false
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		if unescapeMountinfo(f[4]) == mp {
			fstype, found = f[sep+1], true // later lines are mounted on top
		}
	}
	return fstype, found
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + c - '0'
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountGrace is how long a stop waits for the kernel to end the FUSE
// connection after unmounting before it ends the connection itself.
const unmountGrace = 3 * time.Second

func umountCmd(args []string) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Print(usage())
		return nil
	}
	if len(args) != 1 {
		return errors.New("umount: want exactly one MOUNTPOINT (see mnet help)")
	}
	mp, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	fstype, ok := mountedAt(mp)
	if !ok || fstype != "fuse.mnet" {
		return fmt.Errorf("umount: %s is not an mnet mount", mp)
	}
	var st unix.Stat_t
	statErr := unix.Stat(mp, &st)
	err = unix.Unmount(mp, 0)
	if err != nil && !errors.Is(err, unix.EBUSY) {
		if statErr != nil { // stale: the daemon is gone
			return unix.Unmount(mp, unix.MNT_DETACH)
		}
		return fmt.Errorf("umount %s: %v", mp, err)
	}
	if err != nil {
		// Files are held open: detach the mount. The daemon sees its
		// mount leave, ends their reads with end of file and stops.
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("umount %s: %v", mp, err)
		}
	}
	if statErr == nil {
		awaitConnectionEnd(uint64(st.Dev))
	}
	return nil
}

// awaitConnectionEnd waits for the daemon serving the FUSE connection of
// device dev to stop, as it does once its mount has left its mount
// namespace, so that mnet umount returns when the daemon is done (its
// interfaces deleted) even where a copy of the mount lives on in another
// mount namespace. A daemon that does not stop has its connection ended.
func awaitConnectionEnd(dev uint64) {
	minor := unix.Minor(dev)
	holders := fuseHolders(minor)
	dir := connectionDir(dev)
	// Without the daemon's pid (a kernel that does not show a FUSE file's
	// connection), the connection's fusectl directory going away is the
	// sign, which a copy of the mount postpones: wait less.
	wait := 3*unmountGrace + time.Second
	if len(holders) == 0 {
		wait = unmountGrace + 2*watchEvery + time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if len(holders) > 0 {
			holders = slices.DeleteFunc(holders, func(pid int) bool { return !holdsFuse(pid, minor) })
			if len(holders) == 0 {
				return
			}
		} else if _, err := os.Stat(dir); dir == "" || err != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(holders) > 0 {
		fmt.Fprintf(os.Stderr, "mnet: the daemon (pid %v) did not stop; ending its FUSE connection\n", holders)
		abortConnection(dev)
	}
}

// fuseHolders returns the processes holding the FUSE device open for
// the connection minor (its daemon), as /proc/PID/fdinfo tells.
func fuseHolders(minor uint32) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != os.Getpid() && holdsFuse(pid, minor) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// holdsFuse reports whether process pid has the FUSE device of
// connection minor open.
func holdsFuse(pid int, minor uint32) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := fmt.Sprintf("fuse_connection:\t%d\n", minor)
	for _, fd := range fds {
		if target, _ := os.Readlink(dir + "/" + fd.Name()); target != "/dev/fuse" {
			continue
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if strings.Contains(string(info), want) {
			return true
		}
	}
	return false
}

// fusectlDir is where fusectl shows FUSE connections.
const fusectlDir = "/sys/fs/fuse/connections"

// connectionDir is fusectl's directory of the FUSE connection of device
// dev, mounting fusectl if needed; "" if fusectl is not to be had.
func connectionDir(dev uint64) string {
	if _, err := os.Stat(fusectlDir + "/."); err != nil {
		return ""
	}
	var st, parent unix.Stat_t
	if unix.Stat(fusectlDir, &st) == nil && unix.Stat("/sys/fs/fuse", &parent) == nil && st.Dev == parent.Dev {
		if err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, ""); err != nil {
			return ""
		}
	}
	return fmt.Sprintf("%s/%d", fusectlDir, unix.Minor(dev))
}

// abortConnection ends the FUSE connection of device dev through fusectl,
// mounting fusectl if needed.
func abortConnection(dev uint64) {
	dir := connectionDir(dev)
	if dir == "" {
		fmt.Fprintf(os.Stderr, "mnet: ending the FUSE connection: no fusectl at %s\n", fusectlDir)
		return
	}
	if err := os.WriteFile(dir+"/abort", []byte("1"), 0); err != nil {
		fmt.Fprintf(os.Stderr, "mnet: ending the FUSE connection failed: %v\n", err)
	}
}

// startCPUProfile profiles the daemon into path until stop.
func startCPUProfile(path string) (stop func(*slog.Logger), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func(log *slog.Logger) {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Error("CPU profile not written", "path", path, "err", err)
			return
		}
		log.Info("CPU profile written", "path", path)
	}, nil
}
