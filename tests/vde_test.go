// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of SPEC "VDE switch endpoint": Debian's real VDE
// clients (vde_plug, vde_plug2tap, dpipe, vde_switch, qemu) against the
// switch directories the daemon serves under its --vde-dir (the harness
// puts it next to the test's state file).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// vdeClient is a running vde_plug: what is written to its stdin goes into
// the switch, what the switch sends comes out of its stdout, both as
// frames with a 2-byte big-endian length in front.
type vdeClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	frames chan []byte
	exited chan struct{}
	out    *syncBuffer // stderr
}

// startVdePlug runs vde_plug SWITCHDIR as c (nil: root).
func startVdePlug(t *testing.T, c *cred, dir string) *vdeClient {
	t.Helper()
	var cmd *exec.Cmd
	if c == nil {
		cmd = exec.Command("vde_plug", dir)
	} else {
		groups := "--clear-groups"
		if len(c.groups) > 0 {
			var gs []string
			for _, g := range c.groups {
				gs = append(gs, fmt.Sprint(g))
			}
			groups = "--groups=" + strings.Join(gs, ",")
		}
		cmd = exec.Command("setpriv", fmt.Sprintf("--reuid=%d", c.uid), fmt.Sprintf("--regid=%d", c.gid),
			groups, "vde_plug", dir)
	}
	return runVdePlug(t, cmd)
}

// startVdePlugPriv runs vde_plug SWITCHDIR under setpriv with args.
func startVdePlugPriv(t *testing.T, args []string, dir string) *vdeClient {
	t.Helper()
	return runVdePlug(t, exec.Command("setpriv", append(args, "vde_plug", dir)...))
}

func runVdePlug(t *testing.T, cmd *exec.Cmd) *vdeClient {
	t.Helper()
	v := &vdeClient{t: t, cmd: cmd, frames: make(chan []byte, 8192), exited: make(chan struct{}), out: &syncBuffer{}}
	cmd.Stderr = v.out
	var err error
	if v.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r := bufio.NewReader(stdout)
		for {
			var size uint16
			if err := binary.Read(r, binary.BigEndian, &size); err != nil {
				break
			}
			f := make([]byte, size)
			if _, err := io.ReadFull(r, f); err != nil {
				break
			}
			select {
			case v.frames <- f:
			default: // the test does not want them all
			}
		}
		cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(v.kill)
	return v
}

func (v *vdeClient) pid() int { return v.cmd.Process.Pid }

func (v *vdeClient) kill() {
	v.cmd.Process.Signal(syscall.SIGCONT)
	v.cmd.Process.Kill()
	<-v.exited
}

// send hands the switch one frame.
func (v *vdeClient) send(frame []byte) {
	v.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, uint16(len(frame)))
	if _, err := v.in.Write(append(b, frame...)); err != nil {
		v.t.Fatalf("vde_plug stdin: %v", err)
	}
}

// expect waits for frame to come out of the client, skipping others.
func (v *vdeClient) expect(frame []byte) {
	v.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f := <-v.frames:
			if bytes.Equal(f, frame) {
				return
			}
		case <-deadline:
			v.t.Fatalf("vde_plug %d did not receive %x", v.pid(), frame)
		}
	}
}

// expectNone checks that no frame comes out of the client for a while.
func (v *vdeClient) expectNone(what string) {
	v.t.Helper()
	select {
	case f := <-v.frames:
		v.t.Fatalf("%s: vde_plug %d received %x", what, v.pid(), f)
	case <-time.After(300 * time.Millisecond):
	}
}

// waitExit waits for the client to end by itself.
func (v *vdeClient) waitExit(what string) {
	v.t.Helper()
	select {
	case <-v.exited:
	case <-time.After(10 * time.Second):
		v.t.Fatalf("%s: vde_plug %d still runs", what, v.pid())
	}
}

// vdeRow returns the ports row of the vde port of process pid, or nil.
func vdeRow(t *testing.T, net string, pid int) []string {
	t.Helper()
	for _, r := range portRows(t, net) {
		if len(r) >= 11 && r[1] == "vde" && r[3] == strconv.Itoa(pid) {
			return r
		}
	}
	return nil
}

// waitVdeRow waits for the client of process pid to be a port.
func waitVdeRow(t *testing.T, net string, pid int) []string {
	t.Helper()
	var row []string
	waitFor(t, fmt.Sprintf("a vde port of pid %d in %s/ports", pid, net), func() bool {
		row = vdeRow(t, net, pid)
		return row != nil
	})
	return row
}

// vdeFrame is a broadcast frame of size bytes, ethertype 0x88b5, whose
// payload starts with tag.
func vdeFrame(tag string, size int) []byte {
	f := make([]byte, max(size, 60))
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x76, 0x64, 0x65, 0, 1, 0x88, 0xb5})
	copy(f[14:], tag)
	return f
}

// readFrame reads data fd until a frame starting like want arrives.
func readFrame(t *testing.T, fd int, want []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p, err := readTimeout(fd, time.Second)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			t.Fatalf("read data: %v", err)
		}
		if bytes.Equal(p, want) {
			return
		}
	}
	t.Fatalf("frame %x did not reach the data file", want[:24])
}

func requireVDE(t *testing.T, tools ...string) {
	t.Helper()
	require(t, append([]string{"vde_plug"}, tools...)...)
}

func TestVdePlugJoinsNetwork(t *testing.T) {
	requireVDE(t)
	d := startMnet(t)
	net := d.mkNet(t, "v")
	dir := d.vdePath("v")
	if out := sh(t, "stat -c %F "+filepath.Join(dir, "ctl")); strings.TrimSpace(out) != "socket" {
		t.Fatalf("%s/ctl is a %s", dir, out)
	}
	fd := openPort(t, net, unix.O_RDWR)
	c := startVdePlug(t, nil, dir)
	row := waitVdeRow(t, net, c.pid())
	// The switch's socket for the client is the client's alone (made
	// 0600; libvdeplug then makes it 0700 itself).
	if out := strings.Fields(sh(t, "stat -c '%F %a %u' "+dir+"/.mnet/*")); len(out) != 3 || out[0] != "socket" ||
		!strings.HasSuffix(out[1], "00") || out[2] != "0" {
		t.Errorf("switch's socket for the client: %v", out)
	}
	want := []string{"vde", "0", strconv.Itoa(c.pid()), "rw"}
	if !slicesEqual(row[1:5], want) || row[10] != fmt.Sprintf("vdeplug:_user=root_pid=%d", c.pid()) {
		t.Errorf("ports row %v, want KIND UID PID MODE %v and NAME vdeplug:_user=root_pid=%d", row, want, c.pid())
	}

	in := vdeFrame("from vde_plug", 100)
	c.send(in)
	readFrame(t, fd, in)
	out := vdeFrame("to vde_plug", 1514)
	if _, err := unix.Write(fd, out); err != nil {
		t.Fatal(err)
	}
	c.expect(out)
	r := vdeRow(t, net, c.pid())
	if r[5] != "1" || r[6] != "1514" || r[7] != "1" || r[8] != "100" {
		t.Errorf("counters of the vde port: %v, want RX 1 1514 TX 1 100", r)
	}

	// Killing the client ends its control connection: the port leaves.
	c.cmd.Process.Signal(syscall.SIGKILL)
	waitFor(t, "the killed client's port to leave", func() bool { return vdeRow(t, net, c.pid()) == nil })
	if out := sh(t, "ls -A "+dir+" "+dir+"/.mnet"); strings.Join(strings.Fields(out), " ") != dir+": .mnet ctl "+dir+"/.mnet:" {
		t.Errorf("after the client left, the switch directory holds:\n%s", out)
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, " ") == strings.Join(b, " ")
}

// A dpipe cable between an mnet network and Debian's vde_switch: a
// vde_plug on the vde_switch side and a data file on mnet's talk.
func TestVdeDpipeToVdeSwitch(t *testing.T) {
	requireVDE(t, "dpipe", "vde_switch")
	d := startMnet(t)
	net := d.mkNet(t, "cable")
	sw := filepath.Join(filepath.Dir(d.state), "vde_switch")
	pidfile := sw + ".pid"
	sh(t, fmt.Sprintf("vde_switch -s %s -p %s -d", sw, pidfile))
	t.Cleanup(func() { exec.Command("bash", "-c", "kill $(cat "+pidfile+")").Run() })

	cable := exec.Command("dpipe", "vde_plug", d.vdePath("cable"), "=", "vde_plug", sw)
	cable.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cable.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cable.Process.Pid, syscall.SIGKILL); cable.Wait() })
	waitFor(t, "the cable's vde port", func() bool {
		for _, r := range portRows(t, net) {
			if r[1] == "vde" {
				return true
			}
		}
		return false
	})

	fd := openPort(t, net, unix.O_RDWR)
	far := startVdePlug(t, nil, sw)
	// vde_switch learns; broadcast frames cross whatever it knows.
	for i := range 3 {
		f := vdeFrame(fmt.Sprintf("over the cable %d", i), 200)
		far.send(f)
		readFrame(t, fd, f)
	}
	back := vdeFrame("back over the cable", 300)
	if _, err := unix.Write(fd, back); err != nil {
		t.Fatal(err)
	}
	far.expect(back)
}

// A namespace whose TAP is mnet's pings one whose TAP is behind
// vde_plug2tap.
func TestVdePingThroughPlug2tap(t *testing.T) {
	e := newIfEnv(t, "ping", "vde_plug2tap")
	requireVDE(t)
	nsA, nsB := e.netns("a"), e.netns("b")
	d := startMnet(t)
	net := d.mkNet(t, "p")
	tapA, tapB := e.name("a"), e.name("b")
	mustCtl(t, net, "tap "+tapA)
	intoNS(t, tapA, nsA, "198.18.61.1")

	plug := exec.Command("ip", "netns", "exec", nsB, "vde_plug2tap", "-s", d.vdePath("p"), tapB)
	plug.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logb := &syncBuffer{}
	plug.Stdout, plug.Stderr = logb, logb
	if err := plug.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-plug.Process.Pid, syscall.SIGKILL); plug.Wait() })
	waitFor(t, "vde_plug2tap's TAP", func() bool { return linkExists(nsB, tapB) })
	sh(t, fmt.Sprintf("ip -n %s addr add 198.18.61.2/24 dev %s && ip -n %s link set %s up", nsB, tapB, nsB, tapB))
	var row []string
	waitFor(t, "vde_plug2tap's port", func() bool {
		for _, r := range portRows(t, net) {
			if r[1] == "vde" {
				row = r
				return true
			}
		}
		return false
	})
	if row[4] != "rw" || row[2] != "0" {
		t.Errorf("vde_plug2tap's port: %v", row)
	}
	ping(t, nsA, "198.18.61.2")
	ping(t, nsB, "198.18.61.1")
}

// Rights: the daemon checks the client's credentials against the
// network's r and w, as for data; the switch directory's mode lets only
// those with a right in.
func TestVdeRights(t *testing.T) {
	requireVDE(t, "setpriv")
	d := startMnet(t)
	net := d.mkNet(t, "rights")
	// group 4242: w only; others: r only.
	sh(t, "chown 0:4242 "+net+" && chmod 0724 "+net)
	dir := d.vdePath("rights")
	waitFor(t, "the switch directory to follow chmod", func() bool {
		return strings.TrimSpace(sh(t, "stat -c '%a %g' "+dir)) == "1777 4242"
	})
	fd := openPort(t, net, unix.O_RDWR)

	// In group 4242 as a supplementary group (SO_PEERGROUPS).
	writer := startVdePlug(t, &cred{uid: 4001, gid: 4001, groups: []int{4242}}, dir)
	if row := waitVdeRow(t, net, writer.pid()); row[2] != "4001" || row[4] != "w" {
		t.Errorf("group member's port: %v, want UID 4001 MODE w", row)
	}
	reader := startVdePlug(t, &cred{uid: 4002, gid: 4002}, dir)
	if row := waitVdeRow(t, net, reader.pid()); row[2] != "4002" || row[4] != "r" {
		t.Errorf("other's port: %v, want UID 4002 MODE r", row)
	}
	f := vdeFrame("from the writer", 80)
	writer.send(f)
	readFrame(t, fd, f)
	reader.expect(f)
	g := vdeFrame("from the reader", 80)
	reader.send(g)
	h := vdeFrame("from data", 80)
	if _, err := unix.Write(fd, h); err != nil {
		t.Fatal(err)
	}
	reader.expect(h)
	writer.expectNone("a port without r")
	if p, err := readTimeout(fd, 300*time.Millisecond); err == nil {
		t.Errorf("a port without w sent %x into the network", p)
	}

	// No right at all: the directory keeps the client out ...
	sh(t, "chmod 0720 "+net)
	waitFor(t, "the switch directory to follow chmod", func() bool {
		return strings.TrimSpace(sh(t, "stat -c %a "+dir)) == "1770"
	})
	nobody := startVdePlug(t, &cred{uid: 4003, gid: 4003}, dir)
	nobody.waitExit("a client without rights, kept out by the directory's mode")
	// ... and the daemon refuses it even where the directory lets it in.
	sh(t, "chmod 1777 "+dir)
	nobody = startVdePlug(t, &cred{uid: 4003, gid: 4003}, dir)
	nobody.waitExit("a client without rights")
	if !strings.Contains(d.log.String(), "VDE client refused: no right to receive or send") {
		t.Error("the daemon did not log the refusal")
	}
	for _, r := range portRows(t, net) {
		if r[2] == "4003" {
			t.Errorf("a client without rights got a port: %v", r)
		}
	}
}

// A VDE client's capabilities are read at connect, as the kernel's
// rules for a file would use them: uid 0 without CAP_DAC_OVERRIDE is
// refused by another user's 0700 network; with it, it joins.
func TestVdeRootWithoutCapabilities(t *testing.T) {
	requireVDE(t, "setpriv")
	d := startMnet(t)
	net := rightsLab(t, d, 0o700)
	dir := d.vdePath("lab")
	waitFor(t, "the switch directory", func() bool {
		_, err := os.Stat(dir)
		return err == nil
	})
	// The directory's mode would keep the client out on its own: open it,
	// so that the daemon's check is what is tested.
	sh(t, "chmod 1777 "+dir)
	noCaps := startVdePlugPriv(t, rootNoCaps, dir)
	noCaps.waitExit("uid 0 without capabilities on another user's 0700 network")
	if !strings.Contains(d.log.String(), "VDE client refused: no right to receive or send") {
		t.Error("the daemon did not log the refusal")
	}
	for _, r := range portRows(t, net) {
		if r[1] == "vde" {
			t.Errorf("uid 0 without capabilities got a port: %v", r)
		}
	}
	dac := startVdePlugPriv(t, []string{"--bounding-set=-all,+dac_override", "--inh-caps=-all"}, dir)
	if row := waitVdeRow(t, net, dac.pid()); row[2] != "0" || row[4] != "rw" {
		t.Errorf("uid 0 with CAP_DAC_OVERRIDE: port %v, want UID 0 MODE rw", row)
	}
}

func TestVdeMaxports(t *testing.T) {
	requireVDE(t)
	d := startMnet(t)
	net := d.mkNet(t, "max")
	mustCtl(t, net, "maxports 1")
	openPort(t, net, unix.O_RDONLY)
	c := startVdePlug(t, nil, d.vdePath("max"))
	c.waitExit("a client past maxports")
	if len(portRows(t, net)) != 1 {
		t.Errorf("ports past maxports:\n%s", readFile(t, filepath.Join(net, "ports")))
	}
	if !strings.Contains(d.log.String(), "VDE client refused") {
		t.Error("the refusal is not logged")
	}
}

// A client that stops reading costs drops on its own port, never a wedge:
// the rest of the network gets every frame.
func TestVdeStoppedClientIsADrop(t *testing.T) {
	requireVDE(t)
	d := startMnet(t)
	net := d.mkNet(t, "slow")
	mustCtl(t, net, "qlen 64")
	c := startVdePlug(t, nil, d.vdePath("slow"))
	waitVdeRow(t, net, c.pid())
	c.cmd.Process.Signal(syscall.SIGSTOP)
	w := openPort(t, net, unix.O_WRONLY)
	r := openPort(t, net, unix.O_RDONLY)
	const frames = 3000
	got := 0
	for i := range frames {
		if _, err := unix.Write(w, vdeFrame(fmt.Sprint(i), 1400)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if i%32 == 31 || i == frames-1 {
			for {
				if _, err := readNB(r); err != nil {
					break
				}
				got++
			}
		}
	}
	if got != frames {
		t.Errorf("the file port got %d of %d frames", got, frames)
	}
	row := vdeRow(t, net, c.pid())
	drops, _ := strconv.Atoi(row[9])
	if drops == 0 {
		t.Errorf("stopped client's port: %v, want drops", row)
	}
	// Woken, it is served again.
	c.cmd.Process.Signal(syscall.SIGCONT)
	last := vdeFrame("after the stop", 100)
	waitFor(t, "the woken client to receive", func() bool {
		unix.Write(w, last)
		for {
			select {
			case f := <-c.frames:
				if bytes.Equal(f, last) {
					return true
				}
				continue
			case <-time.After(50 * time.Millisecond):
			}
			return false
		}
	})
}

// rmdir and the daemon's exit remove the switch directory and disconnect
// its clients.
func TestVdeRmdirAndExitDisconnect(t *testing.T) {
	requireVDE(t)
	d := startMnet(t)
	net := d.mkNet(t, "gone")
	c := startVdePlug(t, nil, d.vdePath("gone"))
	waitVdeRow(t, net, c.pid())
	if err := os.Remove(net); err != nil {
		t.Fatalf("rmdir with a VDE client: %v", err)
	}
	c.waitExit("a client of a removed network")
	if _, err := os.Stat(d.vdePath("gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("switch directory after rmdir: %v", err)
	}

	net2 := d.mkNet(t, "exit")
	c2 := startVdePlug(t, nil, d.vdePath("exit"))
	waitVdeRow(t, net2, c2.pid())
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	c2.waitExit("a client of a stopped daemon")
	if out := sh(t, "ls -A "+vdeDir(d.state)); strings.TrimSpace(out) != "" {
		t.Errorf("after the daemon stopped, %s holds %s", vdeDir(d.state), out)
	}
}

// A killed daemon leaves its switch directories; the next start removes
// them (or serves them again, for persistent networks) and leaves a live
// switch alone.
func TestVdeStaleDirectoryCleaned(t *testing.T) {
	requireVDE(t, "vde_switch")
	d := startMnet(t)
	keep := d.mkNet(t, "keep")
	mustCtl(t, keep, "persist on")
	d.mkNet(t, "dead")
	d.cmd.Process.Kill()
	<-d.done
	for _, n := range []string{"keep", "dead"} {
		if _, err := os.Stat(filepath.Join(d.vdePath(n), "ctl")); err != nil {
			t.Fatalf("a killed daemon left no %s switch directory to clean: %v", n, err)
		}
	}
	live := d.vdePath("live")
	sh(t, fmt.Sprintf("vde_switch -s %s -p %s.pid -d", live, live))
	t.Cleanup(func() { exec.Command("bash", "-c", "kill $(cat "+live+".pid)").Run() })

	d2 := startMnetAt(t, d.mp, d.state)
	if _, err := os.Stat(d.vdePath("dead")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale switch directory of a dead network: %v", err)
	}
	if _, err := os.Stat(filepath.Join(live, "ctl")); err != nil {
		t.Errorf("a live vde_switch's directory was removed: %v", err)
	}
	c := startVdePlug(t, nil, d2.vdePath("keep"))
	waitVdeRow(t, d2.path("ipn", "keep"), c.pid())

	// A network whose directory a live switch holds is made, without
	// VDE, and says why.
	n := d2.mkNet(t, "live")
	if le := lastError(t, n); !strings.Contains(le, "served by another switch") {
		t.Errorf("last-error of a network whose switch directory is taken: %q", le)
	}
}

func TestVdeSettingPersists(t *testing.T) {
	requireVDE(t)
	d := startMnet(t)
	net := d.mkNet(t, "set")
	mustCtl(t, net, "persist on\nvde off")
	if _, err := os.Stat(d.vdePath("set")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("vde off left the switch directory: %v", err)
	}
	if !hasLine(ctlLines(t, net), "vde off") {
		t.Fatalf("ctl does not show vde off:\n%s", readFile(t, filepath.Join(net, "ctl")))
	}
	ctlFails(t, net, "vde sometimes", unix.EINVAL)
	d.stop()
	d2 := startMnetAt(t, d.mp, d.state)
	net = d2.path("ipn", "set")
	if !hasLine(ctlLines(t, net), "vde off") {
		t.Fatalf("after restart ctl shows:\n%s", readFile(t, filepath.Join(net, "ctl")))
	}
	if _, err := os.Stat(d2.vdePath("set")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("vde off network served after restart: %v", err)
	}
	mustCtl(t, net, "vde on")
	c := startVdePlug(t, nil, d2.vdePath("set"))
	waitVdeRow(t, net, c.pid())
	d2.stop()
	d3 := startMnetAt(t, d.mp, d.state)
	if !hasLine(ctlLines(t, d3.path("ipn", "set")), "vde on") {
		t.Fatalf("vde on not kept:\n%s", readFile(t, d3.path("ipn", "set", "ctl")))
	}
	if _, err := os.Stat(filepath.Join(d3.vdePath("set"), "ctl")); err != nil {
		t.Fatalf("vde on network not served after restart: %v", err)
	}
}

// qemu's -nic vde joins as a vde port; no guest is needed (-S).
func TestVdeQemu(t *testing.T) {
	requireVDE(t, "qemu-system-x86_64")
	d := startMnet(t)
	net := d.mkNet(t, "qemu")
	q := exec.Command("qemu-system-x86_64", "-S", "-nodefaults", "-display", "none", "-monitor", "none",
		"-serial", "none", "-nic", "vde,sock="+d.vdePath("qemu")+",model=e1000,mac=52:54:00:12:34:56")
	logb := &syncBuffer{}
	q.Stdout, q.Stderr = logb, logb
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { q.Wait(); close(done) }()
	t.Cleanup(func() { q.Process.Kill(); <-done })
	var row []string
	waitFor(t, "qemu's vde port", func() bool {
		select {
		case <-done:
			t.Fatalf("qemu exited: %s", logb.String())
		default:
		}
		row = vdeRow(t, net, q.Process.Pid)
		return row != nil
	})
	if row[4] != "rw" || row[2] != "0" {
		t.Errorf("qemu's port: %v", row)
	}
	q.Process.Kill()
	waitFor(t, "qemu's port to leave", func() bool { return vdeRow(t, net, q.Process.Pid) == nil })
}

// A connection that does not speak VDE2's request_v3 is closed, and the
// switch goes on serving.
func TestVdeBadHandshake(t *testing.T) {
	requireVDE(t)
	d := startMnet(t)
	net := d.mkNet(t, "bad")
	ctlPath := filepath.Join(d.vdePath("bad"), "ctl")
	for _, junk := range [][]byte{
		bytes.Repeat([]byte("GET / HTTP/1.0\r\n"), 20),                           // not VDE
		append([]byte{0xce, 0xfa, 0xed, 0xfe, 2, 0, 0, 0}, make([]byte, 200)...), // version 2
	} {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: ctlPath}); err != nil {
			t.Fatal(err)
		}
		unix.Write(fd, junk)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
		buf := make([]byte, 200)
		n, err := unix.Read(fd, buf)
		unix.Close(fd)
		if n != 0 || err != nil {
			t.Errorf("after %q...: read %d bytes, %v; want the switch to close the connection", junk[:8], n, err)
		}
	}
	if rows := portRows(t, net); len(rows) != 0 {
		t.Errorf("bad handshakes left ports: %v", rows)
	}
	c := startVdePlug(t, nil, d.vdePath("bad"))
	waitVdeRow(t, net, c.pid())
	if !strings.Contains(d.log.String(), "VDE client refused: bad request") {
		t.Error("bad requests are not logged")
	}
}

// Connections that say nothing are bounded: past 64 in their handshake,
// new ones are closed at once; once they go, clients join again.
func TestVdeSilentConnectionsBounded(t *testing.T) {
	requireVDE(t)
	d := startMnet(t)
	net := d.mkNet(t, "silent")
	ctlPath := filepath.Join(d.vdePath("silent"), "ctl")
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	dial := func() int {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: ctlPath}); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		return fd
	}
	for range 64 {
		dial()
	}
	time.Sleep(300 * time.Millisecond) // let the switch accept them all
	extra := dial()
	unix.SetsockoptTimeval(extra, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 3})
	if n, err := unix.Read(extra, make([]byte, 16)); n != 0 || err != nil {
		t.Errorf("the 65th silent connection: read %d, %v; want it closed at once", n, err)
	}
	for _, fd := range fds {
		unix.Close(fd)
	}
	fds = nil
	time.Sleep(300 * time.Millisecond) // let the switch see them go
	c := startVdePlug(t, nil, d.vdePath("silent"))
	waitVdeRow(t, net, c.pid())
}
