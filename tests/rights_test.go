// SPDX-License-Identifier: BSD-3-Clause

package tests

// End-to-end tests of SPEC "Rights": the mode of ipn/NAME gives r = receive,
// w = send, x = manage to the owner, group and other classes (one class
// applies, first match, as on any Unix file); uid 0 holds every right.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The callers of these tests. None needs an /etc/passwd entry.
var (
	rightsOwner     = &cred{1000, 1000, []int{2000}} // creates and owns ipn/lab
	rightsMember    = &cred{1001, 1001, []int{2000}} // in group 2000 through a supplementary group only
	rightsNonMember = &cred{1001, 1001, nil}         // the same uid without group 2000
	rightsOther     = &cred{1002, 1002, nil}         // in no group of the network
	rightsRoot      *cred                            // nil: root
)

const (
	rightsEACCES = "Permission denied"
	rightsEPERM  = "Operation not permitted"
	rightsEBADF  = "Bad file descriptor"
)

func rightsWho(c *cred) string {
	if c == nil {
		return "root"
	}
	return fmt.Sprintf("uid %d gid %d groups %v", c.uid, c.gid, c.groups)
}

// rightsRun runs script as c with a timeout; the script finds the network
// (or any other directory) dir in $N. It does not cd there: changing into
// ipn/NAME needs its x bit, which not every caller holds.
func rightsRun(t *testing.T, c *cred, dir, script string) (string, error) {
	t.Helper()
	return shAs(t, c, 15*time.Second, rightsScript(dir, script))
}

// rightsScript wraps script so that it sees dir as $N and is killed, with
// every process it started, after 10 s: a reader left blocked on data
// (when a right is wrongly granted) must not hold shAs's output pipe open.
func rightsScript(dir, script string) string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	return fmt.Sprintf("export N=%s\nexec timeout -k 2 10 bash -c %s", quote(dir), quote(script))
}

// rightsOK runs script as c with $N = dir and fails the test if it fails.
func rightsOK(t *testing.T, c *cred, dir, script string) string {
	t.Helper()
	out, err := rightsRun(t, c, dir, script)
	if err != nil {
		t.Errorf("as %s: %q should succeed, got %v\n%s", rightsWho(c), script, err, out)
	}
	return out
}

// rightsFails runs script as c with $N = dir; it must fail with want (an strerror
// text) in its output.
func rightsFails(t *testing.T, c *cred, dir, script, want string) {
	t.Helper()
	out, err := rightsRun(t, c, dir, script)
	if err == nil {
		t.Errorf("as %s: %q succeeded, want it to fail with %q\n%s", rightsWho(c), script, want, out)
		return
	}
	if strings.Contains(err.Error(), "timed out") || strings.Contains(err.Error(), "exit status 124") {
		t.Errorf("as %s: %q blocked until killed (%v), want it to fail at once with %q (a right wrongly granted?)\n%s",
			rightsWho(c), script, err, want, out)
		return
	}
	if !strings.Contains(out, want) {
		t.Errorf("as %s: %q failed (%v) but not with %q:\n%s", rightsWho(c), script, err, want, out)
	}
}

// rightsLab creates ipn/lab the way a user would: as rightsOwner, with
// mkdir and chgrp 2000, then sets mode. It returns the network's path.
func rightsLab(t *testing.T, d *daemon, mode os.FileMode) string {
	t.Helper()
	net := d.path("ipn", "lab")
	if out, err := shAs(t, rightsOwner, 15*time.Second,
		fmt.Sprintf("umask 027 && mkdir %q && chgrp 2000 %q && chmod %o %q", net, net, mode, net)); err != nil {
		t.Fatalf("creating %s as uid 1000: %v\n%s", net, err, out)
	}
	rightsWantStat(t, net, fmt.Sprintf("1000 2000 %o", mode))
	return net
}

// rightsWantStat checks `stat -c '%u %g %a'` of path (as root).
func rightsWantStat(t *testing.T, path, want string) {
	t.Helper()
	out, err := shAs(t, nil, 15*time.Second, fmt.Sprintf("stat -c '%%u %%g %%a' %q", path))
	if err != nil {
		t.Fatalf("stat %s: %v\n%s", path, err, out)
	}
	if got := strings.TrimSpace(out); got != want {
		t.Errorf("stat %s: uid gid mode = %q, want %q", path, got, want)
	}
}

// rightsBG is a script running in the background.
type rightsBG struct {
	done chan struct{}
	out  string
	err  error
}

// rightsBackground runs script as c (with $N = dir) in the background.
func rightsBackground(t *testing.T, c *cred, dir, script string) *rightsBG {
	t.Helper()
	bg := &rightsBG{done: make(chan struct{})}
	go func() {
		defer close(bg.done)
		bg.out, bg.err = shAs(t, c, 15*time.Second, rightsScript(dir, script))
	}()
	return bg
}

// wait waits for the script and returns its output and error.
func (bg *rightsBG) wait() (string, error) {
	<-bg.done
	return bg.out, bg.err
}

// rightsPortRow waits until net has a file port opened by uid and returns
// its ports row. bg is the script expected to open it: if it ends first,
// the port will never come.
func rightsPortRow(t *testing.T, net string, uid int, bg *rightsBG) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range portRows(t, net) {
			if len(r) >= 5 && r[1] == "file" && r[2] == fmt.Sprint(uid) {
				return r
			}
		}
		select {
		case <-bg.done:
			t.Fatalf("uid %d never joined %s: its script ended first: %v\n%s", uid, net, bg.err, bg.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for a port of uid %d in %s/ports", uid, net)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rightsReadOne is a shell command that receives exactly one packet from data
// (one read(2) of up to 64 KiB, like one iteration of cat).
const rightsReadOne = "dd if=$N/data bs=65536 count=1 status=none"

func TestRightsOwnerCreatesNetwork(t *testing.T) {
	d := startMnet(t)
	net := d.path("ipn", "lab")
	out, err := shAs(t, rightsOwner, 15*time.Second,
		fmt.Sprintf("umask 027; mkdir %q && chgrp 2000 %q && ls -lnd %q", net, net, net))
	if err != nil {
		t.Fatalf("mkdir + chgrp as uid 1000 (groups 2000): %v\n%s", err, out)
	}
	f := strings.Fields(out)
	// umask 027 leaves 0750, less x (manage) for the group.
	if len(f) < 4 || f[0] != "drwxr-----" || f[2] != "1000" || f[3] != "2000" {
		t.Errorf("ls -lnd ipn/lab = %q, want mode drwxr-----, owner 1000, group 2000", strings.TrimSpace(out))
	}
	// The owner holds every right of the owner class (rwx of 0740).
	rightsOK(t, rightsOwner, net, "echo 'descr made by 1000' > $N/ctl && cat $N/ctl $N/ports $N/stats >/dev/null && echo hi > $N/data")
	if got := keyValue(t, filepath.Join(net, "ctl"), "descr"); got != "made by 1000" {
		t.Errorf("descr after the owner's ctl write = %q, want %q", got, "made by 1000")
	}
}

func TestRightsSupplementaryGroup(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o750)

	// Group class through a supplementary group only: r and x, not w.
	bg := rightsBackground(t, rightsMember, net, rightsReadOne)
	row := rightsPortRow(t, net, 1001, bg)
	if row[4] != "r" {
		t.Errorf("member's O_RDONLY port has MODE %q, want r (row %v)", row[4], row)
	}
	rightsOK(t, rightsOwner, net, "echo hello > $N/data")
	out, err := bg.wait()
	if err != nil || out != "hello\n" {
		t.Errorf("group member (supplementary group 2000) receiving with mode 0750: got %q, %v; want the owner's packet %q", out, err, "hello\n")
	}

	rightsOK(t, rightsMember, net, "echo 'descr by member' > $N/ctl")
	if got := keyValue(t, filepath.Join(net, "ctl"), "descr"); got != "by member" {
		t.Errorf("descr after the member's ctl write = %q, want %q", got, "by member")
	}
	rightsOK(t, rightsMember, net, "cat $N/ctl $N/ports $N/stats")
	rightsFails(t, rightsMember, net, "echo hi > $N/data", rightsEACCES)
	rightsFails(t, rightsMember, net, "echo hi >> $N/data", rightsEACCES)

	// The same uid without the supplementary group is "other": no right.
	for _, script := range []string{
		"echo hi > $N/data",
		"cat $N/data",
		"exec 3<>$N/data",
		"cat $N/ctl",
		"cat $N/ports",
		"cat $N/stats",
		"cat $N/pcap",
		"echo 'descr by other' > $N/ctl",
	} {
		rightsFails(t, rightsNonMember, net, script, rightsEACCES)
	}
	if got := keyValue(t, filepath.Join(net, "ctl"), "descr"); got != "by member" {
		t.Errorf("descr = %q after a refused write by a non-member, want %q", got, "by member")
	}
}

func TestRightsOneClassFirstMatch(t *testing.T) {
	d := startMnet(t)
	// Owner class empty, group and other full: the owner has no right,
	// although it is in the group and "other" could do everything.
	net := rightsLab(t, d, 0o077)
	for _, script := range []string{"echo hi > $N/data", "cat $N/data", "exec 3<>$N/data", "cat $N/ctl", "cat $N/ports", "echo 'descr x' > $N/ctl"} {
		rightsFails(t, rightsOwner, net, script, rightsEACCES)
	}
	rightsOK(t, rightsMember, net, "echo hi > $N/data && cat $N/ports >/dev/null && echo 'descr m' > $N/ctl")
	rightsOK(t, rightsOther, net, "echo hi > $N/data && cat $N/ports >/dev/null && echo 'descr o' > $N/ctl")

	// Group class empty, other full: a group member has no right.
	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chmod 0707 %q", net))
	for _, script := range []string{"echo hi > $N/data", "cat $N/data", "exec 3<>$N/data", "cat $N/ctl", "echo 'descr x' > $N/ctl"} {
		rightsFails(t, rightsMember, net, script, rightsEACCES)
	}
	rightsOK(t, rightsOther, net, "echo hi > $N/data && echo 'descr o2' > $N/ctl")
	rightsOK(t, rightsNonMember, net, "echo hi > $N/data && echo 'descr o3' > $N/ctl")
}

func TestRightsRootOnMode0000(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0)
	for _, script := range []string{"echo hi > $N/data", "exec 3<>$N/data", "cat $N/ctl", "cat $N/ports", "cat $N/stats"} {
		rightsFails(t, rightsOwner, net, script, rightsEACCES)
	}
	// Root, in a shell, through every file.
	out := rightsOK(t, rightsRoot, net, "echo 'descr by root' > $N/ctl && exec 3<>$N/data && cat $N/ports && cat $N/stats >/dev/null && timeout 2 head -c 24 $N/pcap | wc -c")
	if !strings.Contains(out, "24") {
		t.Errorf("root reading pcap of a mode 0000 network: want the 24-byte pcap header, got:\n%s", out)
	}
	if got := keyValue(t, filepath.Join(net, "ctl"), "descr"); got != "by root" {
		t.Errorf("descr after root's ctl write on mode 0000 = %q, want %q", got, "by root")
	}
	// Root sends and receives on mode 0000.
	rx := openPort(t, net, unix.O_RDWR)
	tx := openPort(t, net, unix.O_RDWR)
	for _, r := range portRows(t, net) {
		if len(r) >= 5 && r[4] != "rw" {
			t.Errorf("root's O_RDWR port on mode 0000 has MODE %q, want rw (row %v)", r[4], r)
		}
	}
	if _, err := unix.Write(tx, []byte("root-pkt")); err != nil {
		t.Fatalf("root write on mode 0000: %v", err)
	}
	p, err := readTimeout(rx, 5*time.Second)
	if err != nil || string(p) != "root-pkt" {
		t.Errorf("root read on mode 0000: %q, %v; want %q", p, err, "root-pkt")
	}
}

func TestRightsChmodOtherTakesEffect(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o750)
	rightsFails(t, rightsOther, net, "echo hi > $N/data", rightsEACCES)
	rightsFails(t, rightsOther, net, "cat $N/ports", rightsEACCES)

	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chmod 0752 %q", net))
	rightsWantStat(t, net, "1000 2000 752")

	rx := openPort(t, net, unix.O_RDONLY) // root listens
	rightsOK(t, rightsOther, net, "echo other-was-here > $N/data")
	p, err := readTimeout(rx, 5*time.Second)
	if err != nil || string(p) != "other-was-here\n" {
		t.Errorf("after chmod 0752, other's packet: got %q, %v; want %q", p, err, "other-was-here\n")
	}
	rightsOK(t, rightsOther, net, "cat $N/ports $N/stats $N/ctl >/dev/null") // w is "any right"
	rightsFails(t, rightsOther, net, rightsReadOne, rightsEACCES)
	rightsFails(t, rightsOther, net, "echo 'descr x' > $N/ctl", rightsEACCES)

	// Taking the right away again takes effect for the next open.
	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chmod 0750 %q", net))
	rightsFails(t, rightsOther, net, "echo hi > $N/data", rightsEACCES)
}

func TestRightsReadWriteWithOneRight(t *testing.T) {
	t.Run("ReceiveOnly", func(t *testing.T) {
		d := startMnet(t)
		net := rightsLab(t, d, 0o740) // group: r only
		bg := rightsBackground(t, rightsMember, net, `exec 3<>$N/data || exit 9
dd bs=65536 count=1 status=none <&3
echo
echo write-attempt >&3 && echo WRITE-SUCCEEDED
exit 0`)
		row := rightsPortRow(t, net, 1001, bg)
		if row[4] != "r" {
			t.Errorf("O_RDWR by a caller holding only r: ports MODE %q, want r (row %v)", row[4], row)
		}
		tx := openPort(t, net, unix.O_WRONLY)
		if _, err := unix.Write(tx, []byte("to-reader")); err != nil {
			t.Fatal(err)
		}
		out, err := bg.wait()
		if err != nil {
			t.Fatalf("receive-only O_RDWR script: %v\n%s", err, out)
		}
		if !strings.HasPrefix(out, "to-reader\n") {
			t.Errorf("receive-only O_RDWR port did not receive %q:\n%s", "to-reader", out)
		}
		if strings.Contains(out, "WRITE-SUCCEEDED") || !strings.Contains(out, rightsEBADF) {
			t.Errorf("writing on a receive-only O_RDWR port must fail with EBADF:\n%s", out)
		}
	})

	t.Run("SendOnly", func(t *testing.T) {
		d := startMnet(t)
		net := rightsLab(t, d, 0o720) // group: w only
		rx := openPort(t, net, unix.O_RDONLY)
		out := rightsOK(t, rightsMember, net, `exec 3<>$N/data || exit 9
sed -n '2,$p' $N/ports
echo from-writer >&3 || exit 8
dd bs=65536 count=1 status=none <&3 && echo READ-SUCCEEDED
exit 0`)
		var row []string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) >= 5 && f[1] == "file" && f[2] == "1001" {
				row = f
			}
		}
		if row == nil || row[4] != "w" {
			t.Errorf("O_RDWR by a caller holding only w: want a ports row with UID 1001 and MODE w, got:\n%s", out)
		}
		if strings.Contains(out, "READ-SUCCEEDED") || !strings.Contains(out, rightsEBADF) {
			t.Errorf("reading a send-only O_RDWR port must fail with EBADF:\n%s", out)
		}
		p, err := readTimeout(rx, 5*time.Second)
		if err != nil || string(p) != "from-writer\n" {
			t.Errorf("packet from the send-only O_RDWR port: %q, %v; want %q", p, err, "from-writer\n")
		}
	})

	t.Run("NoRight", func(t *testing.T) {
		d := startMnet(t)
		net := rightsLab(t, d, 0o701) // group: nothing; other: x only
		rightsFails(t, rightsMember, net, "exec 3<>$N/data", rightsEACCES)
		rightsFails(t, rightsOther, net, "exec 3<>$N/data", rightsEACCES)
		rightsFails(t, rightsOther, net, "echo hi > $N/data", rightsEACCES)
		rightsFails(t, rightsOther, net, "cat $N/data", rightsEACCES)
		if rows := portRows(t, net); len(rows) != 0 {
			t.Errorf("refused opens left ports behind: %v", rows)
		}
	})
}

func TestRightsCtlNeedsManage(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o642) // owner rw-, group r--, other -w-
	for _, c := range []*cred{rightsOwner, rightsMember, rightsOther} {
		rightsFails(t, c, net, "echo 'mtu 1500' > $N/ctl", rightsEACCES)
		// Any one right lets ctl, ports, stats and pcap be read.
		out := rightsOK(t, c, net, "cat $N/ctl $N/ports $N/stats && timeout 2 head -c 24 $N/pcap | wc -c")
		for _, want := range []string{"policy hub", "PORT KIND UID PID MODE", "packets "} {
			if !strings.Contains(out, want) {
				t.Errorf("as %s: ctl, ports and stats should read; %q missing:\n%s", rightsWho(c), want, out)
			}
		}
		if !strings.HasSuffix(strings.TrimSpace(out), "24") {
			t.Errorf("as %s: pcap should give its 24-byte header:\n%s", rightsWho(c), out)
		}
	}
	if got := keyValue(t, filepath.Join(net, "ctl"), "mtu"); got != "65535" {
		t.Errorf("mtu = %q after refused writes, want 65535", got)
	}
	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chmod 0742 %q", net)) // owner gains x
	rightsOK(t, rightsOwner, net, "echo 'mtu 1500' > $N/ctl")
	if got := keyValue(t, filepath.Join(net, "ctl"), "mtu"); got != "1500" {
		t.Errorf("mtu = %q after the owner (now with x) wrote it, want 1500", got)
	}
	// x alone is enough to manage (and to read ctl).
	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chmod 0710 %q", net))
	rightsOK(t, rightsMember, net, "echo 'mtu 1400' > $N/ctl && grep -x 'mtu 1400' $N/ctl")
}

func TestRightsChmodChown(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o770)

	for _, c := range []*cred{rightsOther, rightsMember} { // a member with x still may not
		for _, cmd := range []string{"chmod 0777", "chown 1002", "chgrp 1002", "chown 1002:1002", "chgrp 2000"} {
			rightsFails(t, c, "/", fmt.Sprintf("%s %q", cmd, net), rightsEPERM)
		}
	}
	rightsWantStat(t, net, "1000 2000 770")

	// The owner may not give the network away nor pick a group it is not in.
	rightsFails(t, rightsOwner, "/", fmt.Sprintf("chown 1001 %q", net), rightsEPERM)
	rightsFails(t, rightsOwner, "/", fmt.Sprintf("chgrp 3000 %q", net), rightsEPERM)
	rightsFails(t, rightsOwner, "/", fmt.Sprintf("chgrp 1001 %q", net), rightsEPERM)
	rightsWantStat(t, net, "1000 2000 770")
	// Its own groups, primary and supplementary, are fine.
	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chgrp 1000 %q", net))
	rightsWantStat(t, net, "1000 1000 770")
	rightsFails(t, rightsMember, net, "cat $N/ctl", rightsEACCES) // no longer in the group
	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chgrp 2000 %q && chmod 0705 %q", net, net))
	rightsWantStat(t, net, "1000 2000 705")
	rightsFails(t, rightsMember, net, "cat $N/ctl", rightsEACCES) // group class is empty now

	// Root may do anything; the old owner is then just "other".
	rightsOK(t, rightsRoot, "/", fmt.Sprintf("chown 1003:1003 %q", net))
	rightsWantStat(t, net, "1003 1003 705")
	rightsFails(t, rightsOwner, "/", fmt.Sprintf("chmod 0777 %q", net), rightsEPERM)
	rightsOK(t, rightsOwner, net, "echo 'descr now other' > $N/ctl") // other class r-x
	rightsFails(t, rightsOwner, net, "echo hi > $N/data", rightsEACCES)
	rightsOK(t, &cred{1003, 1003, nil}, "/", fmt.Sprintf("chmod 0700 %q", net))
	rightsWantStat(t, net, "1003 1003 700")
	rightsFails(t, rightsOwner, net, "cat $N/ctl", rightsEACCES)
}

func TestRightsDerivedModes(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o750)
	type want struct{ dir, data, ctl, ro string } // ro: ports, stats, pcap
	for _, tc := range []struct {
		mode os.FileMode
		want want
	}{
		{0o750, want{"drwxr-x---", "-rw-r-----", "-rw-rw----", "-r--r-----"}},
		{0o751, want{"drwxr-x--x", "-rw-r-----", "-rw-rw-rw-", "-r--r--r--"}},
		{0o640, want{"drw-r-----", "-rw-r-----", "-r--r-----", "-r--r-----"}},
		{0o124, want{"d--x-w-r--", "-----w-r--", "-rw-r--r--", "-r--r--r--"}},
		{0o777, want{"drwxrwxrwx", "-rw-rw-rw-", "-rw-rw-rw-", "-r--r--r--"}},
		{0o000, want{"d---------", "----------", "----------", "----------"}},
	} {
		if err := os.Chmod(net, tc.mode); err != nil {
			t.Fatalf("chmod %o: %v", tc.mode, err)
		}
		// Every caller sees the same modes; ask as root, the owner and other.
		for _, c := range []*cred{rightsRoot, rightsOwner, rightsOther} {
			out := rightsOK(t, c, net, "cd / && stat -c '%n %A %u %g' $N $N/data $N/ctl $N/ports $N/stats $N/pcap")
			got := map[string][]string{}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Fields(l)
				if len(f) == 4 {
					got[strings.TrimPrefix(strings.TrimPrefix(f[0], net), "/")] = f[1:]
				}
			}
			for name, w := range map[string]string{"": tc.want.dir, "data": tc.want.data, "ctl": tc.want.ctl,
				"ports": tc.want.ro, "stats": tc.want.ro, "pcap": tc.want.ro} {
				g := got[name]
				if g == nil {
					t.Errorf("mode %04o, as %s: no stat line for %s:\n%s", tc.mode, rightsWho(c), name, out)
					continue
				}
				if g[0] != w {
					t.Errorf("mode %04o, as %s: %s shows %s, want %s", tc.mode, rightsWho(c), name, g[0], w)
				}
				// Owner and group are the network's, so the classes read right.
				if g[1] != "1000" || g[2] != "2000" {
					t.Errorf("mode %04o: %s is owned by %s:%s, want the network's 1000:2000", tc.mode, name, g[1], g[2])
				}
			}
		}
	}
	// ls -l shows the same.
	if err := os.Chmod(net, 0o751); err != nil {
		t.Fatal(err)
	}
	out := sh(t, fmt.Sprintf("ls -ln %q", net))
	for name, w := range map[string]string{"data": "-rw-r-----", "ctl": "-rw-rw-rw-", "ports": "-r--r--r--"} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) >= 9 && f[len(f)-1] == name {
				found = true
				if f[0] != w {
					t.Errorf("ls -ln with mode 0751: %s shows %s, want %s", name, f[0], w)
				}
			}
		}
		if !found {
			t.Errorf("ls -ln %s lists no %s:\n%s", net, name, out)
		}
	}
}

func TestRightsAccessTruthful(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o750)
	// For data and ctl: what test -r / test -w say, then whether an open for
	// reading / writing really succeeds.
	const script = `for f in $N/data $N/ctl; do
  test -r $f && r=1 || r=0; test -w $f && w=1 || w=0
  (exec 3<$f) 2>/dev/null && R=1 || R=0
  if [ $f = $N/ctl ]; then (exec 3>>$f) 2>/dev/null && W=1 || W=0; else (exec 3>$f) 2>/dev/null && W=1 || W=0; fi
  echo "${f##*/} -r=$r -w=$w open-r=$R open-w=$W"
done`
	type exp struct{ dataR, dataW, ctlR, ctlW int }
	for _, tc := range []struct {
		mode os.FileMode
		who  map[string]exp
	}{
		{0o750, map[string]exp{"owner": {1, 1, 1, 1}, "member": {1, 0, 1, 1}, "other": {0, 0, 0, 0}, "root": {1, 1, 1, 1}}},
		{0o642, map[string]exp{"owner": {1, 1, 1, 0}, "member": {1, 0, 1, 0}, "other": {0, 1, 1, 0}, "root": {1, 1, 1, 1}}},
		{0o000, map[string]exp{"owner": {0, 0, 0, 0}, "member": {0, 0, 0, 0}, "other": {0, 0, 0, 0}, "root": {1, 1, 1, 1}}},
	} {
		if err := os.Chmod(net, tc.mode); err != nil {
			t.Fatal(err)
		}
		creds := map[string]*cred{"owner": rightsOwner, "member": rightsMember, "other": rightsOther, "root": rightsRoot}
		for _, name := range []string{"owner", "member", "other", "root"} {
			e := tc.who[name]
			out := rightsOK(t, creds[name], net, script)
			want := fmt.Sprintf("data -r=%d -w=%d open-r=%d open-w=%d\nctl -r=%d -w=%d open-r=%d open-w=%d\n",
				e.dataR, e.dataW, e.dataR, e.dataW, e.ctlR, e.ctlW, e.ctlR, e.ctlW)
			if out != want {
				t.Errorf("mode %04o, %s (%s): test -r/-w and real opens:\n%s\nwant:\n%s", tc.mode, name, rightsWho(creds[name]), out, want)
			}
		}
	}
}

func TestRightsRmdir(t *testing.T) {
	d := startMnet(t)

	// The owner without x may not destroy its own network.
	net := rightsLab(t, d, 0o650)
	rightsFails(t, rightsOwner, "/", fmt.Sprintf("rmdir %q", net), rightsEACCES)
	if _, err := os.Stat(net); err != nil {
		t.Fatalf("network gone after a refused rmdir: %v", err)
	}
	// Neither may anyone else without x.
	rightsFails(t, rightsOther, "/", fmt.Sprintf("rmdir %q", net), rightsEACCES)
	if _, err := os.Stat(net); err != nil {
		t.Fatalf("network gone after a refused rmdir by other: %v", err)
	}
	// With x the owner may.
	rightsOK(t, rightsOwner, "/", fmt.Sprintf("chmod 0750 %q && rmdir %q", net, net))
	if _, err := os.Stat(net); !os.IsNotExist(err) {
		t.Errorf("network still there after the owner (with x) removed it: %v", err)
	}

	// Root may remove any network, even mode 0000 owned by someone else.
	net = rightsLab(t, d, 0)
	rightsOK(t, rightsRoot, "/", fmt.Sprintf("rmdir %q", net))
	if _, err := os.Stat(net); !os.IsNotExist(err) {
		t.Errorf("network still there after root removed it: %v", err)
	}
}

// TestRightsRmdirByManager: x is the manage right, and rmdir needs x; a
// group member holding x is not the owner, so this also tells whether the
// sticky bit of ipn/ (mode 1777) gets in the way.
func TestRightsRmdirByManager(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o770)
	out, err := rightsRun(t, rightsMember, "/", fmt.Sprintf("rmdir %q", net))
	if err != nil {
		t.Errorf("group member with x (mode 0770) could not rmdir the network: %v\n%s", err, out)
	}
	net = rightsLab(t, d, 0o750)
	// Other (no right at all): refused with EACCES (Permission denied).
	rightsFails(t, rightsOther, "/", fmt.Sprintf("rmdir %q", net), rightsEACCES)
}

func TestRightsInterfacesNeedRoot(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0o770)
	for _, tc := range []struct {
		c   *cred
		cmd string
	}{
		{rightsOwner, "tap mnrt0"},
		{rightsMember, "tap mnrt1"},
		{rightsOwner, "grab mnrt2"},
		{rightsMember, "grab lo"},
	} {
		rightsFails(t, tc.c, net, fmt.Sprintf("echo '%s' > $N/ctl", tc.cmd), rightsEPERM)
		ctlText := readFile(t, filepath.Join(net, "ctl"))
		found := false
		for _, l := range strings.Split(ctlText, "\n") {
			if strings.HasPrefix(l, "last-error ") {
				found = true
			}
			if strings.HasPrefix(l, "tap ") || strings.HasPrefix(l, "grab ") {
				t.Errorf("after a refused %q ctl shows an attachment: %q", tc.cmd, l)
			}
		}
		if !found {
			t.Errorf("after a refused %q by %s, ctl has no last-error line:\n%s", tc.cmd, rightsWho(tc.c), ctlText)
		}
	}
	if out, err := shAs(t, nil, 15*time.Second, "ip link show mnrt0 || ip link show mnrt1"); err == nil {
		t.Errorf("a refused tap created an interface:\n%s", out)
	}
	// A caller without x is refused before anything else: EACCES.
	rightsFails(t, rightsOther, net, "echo 'tap mnrt3' > $N/ctl", rightsEACCES)
}

// TestRightsRootSearchesMode0000: uid 0 has every right even on mode 0000,
// and on Unix root may always search a directory, so `cd` into a network
// and `test -x` on it work for root whatever its mode.
func TestRightsRootSearchesMode0000(t *testing.T) {
	d := startMnet(t)
	net := rightsLab(t, d, 0)
	out, err := rightsRun(t, rightsRoot, net, "cd $N && cat ctl >/dev/null && echo CD-OK; test -x $N && echo X-OK")
	if !strings.Contains(out, "CD-OK") {
		t.Errorf("BUG (netcore/tree.go ModeAccess, reached from fs/fs.go Access): root cannot cd into a mode 0000 network "+
			"(root's X_OK is refused on a directory without x bits; on Unix root may always search a directory) (%v):\n%s", err, out)
	}
	if !strings.Contains(out, "X-OK") {
		t.Errorf("BUG (netcore/tree.go ModeAccess): access(X_OK) on a mode 0000 network directory is refused to root:\n%s", out)
	}
	// A caller without the network's x bit may not cd there; that is the
	// directory's own mode, as on any Unix directory.
	rightsFails(t, rightsMember, net, "cd $N", rightsEACCES)
}

// rightsPriv runs script under setpriv with args (credentials and
// capabilities) with $N = dir, and returns its output and error.
func rightsPriv(t *testing.T, args []string, dir, script string) (string, error) {
	t.Helper()
	return privSh(t, args, rightsScript(dir, script))
}

// uid 0 is no exception by itself (SPEC Rights): with an empty capability
// set it gets on another user's 0700 network and host what any stranger
// gets, with the errnos the kernel gives for a 0700 file (EACCES to use,
// EPERM to chmod or chown); CAP_DAC_OVERRIDE, CAP_FOWNER and CAP_CHOWN
// each give what they give on any file, to uid 0 or to another uid.
func TestRightsRootWithoutCapabilities(t *testing.T) {
	require(t, "setpriv")
	d := startMnet(t)
	net := rightsLab(t, d, 0o700)
	host := d.path("mhost", "rightsh")
	if out, err := shAs(t, rightsOwner, 15*time.Second, fmt.Sprintf("mkdir %q && chmod 0700 %q", host, host)); err != nil {
		t.Fatalf("mkdir mhost/rightsh as uid 1000: %v\n%s", err, out)
	}
	noCaps := rootNoCaps
	fails := func(args []string, who, dir, script, want string) {
		t.Helper()
		out, err := rightsPriv(t, args, dir, script)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: %q: %v %q, want it to fail with %q", who, script, err, out, want)
		}
	}
	ok := func(args []string, who, dir, script string) {
		t.Helper()
		if out, err := rightsPriv(t, args, dir, script); err != nil {
			t.Errorf("%s: %q: %v %q, want it to succeed", who, script, err, out)
		}
	}
	const who = "uid 0 without capabilities"
	for _, s := range []string{"cat $N/ports", "cat $N/ctl", "exec 3<$N/data", "exec 3>$N/data", "exec 3<>$N/data",
		"echo 'descr no caps' > $N/ctl", "cd $N", "timeout 2 head -c 24 $N/pcap", "cat $N/host"} {
		fails(noCaps, who, net, s, rightsEACCES)
	}
	fails(noCaps, who, net, "test -r $N/data || test -w $N/data || test -w $N/ctl || exit 1", "")
	fails(noCaps, who, net, "rmdir $N", rightsEACCES)
	for _, s := range []string{"chmod 0777 $N", "chown 0 $N", "chgrp 0 $N", "chown 1000:1000 $N"} {
		fails(noCaps, who, net, s, rightsEPERM)
	}
	rightsWantStat(t, net, "1000 2000 700")
	if got := keyValue(t, filepath.Join(net, "ctl"), "descr"); got != "" {
		t.Errorf("descr after a refused write by %s: %q", who, got)
	}
	for _, s := range []string{"echo 'inet 127.0.0.1' > $N/ctl", "cat $N/ctl", "cat $N/locators", "exec 3<>$N/udp/9"} {
		fails(noCaps, who, host, s, rightsEACCES)
	}
	for _, s := range []string{"chmod 0777 $N", "chown 0 $N"} {
		fails(noCaps, who, host, s, rightsEPERM)
	}
	rightsWantStat(t, host, "1000 1000 700")

	// Each capability alone gives what it gives on a file.
	dac := []string{"--bounding-set=-all,+dac_override", "--inh-caps=-all"}
	ok(dac, "uid 0 with CAP_DAC_OVERRIDE", net, "echo 'descr dac' > $N/ctl && cat $N/ports >/dev/null && exec 3<>$N/data")
	fails(dac, "uid 0 with CAP_DAC_OVERRIDE", net, "chmod 0777 $N", rightsEPERM)
	fails(dac, "uid 0 with CAP_DAC_OVERRIDE", net, "chown 0 $N", rightsEPERM)
	ok(dac, "uid 0 with CAP_DAC_OVERRIDE", host, "echo 'inet 127.0.0.1' > $N/ctl")
	fowner := []string{"--bounding-set=-all,+fowner", "--inh-caps=-all"}
	ok(fowner, "uid 0 with CAP_FOWNER", net, "chmod 0704 $N")
	fails(fowner, "uid 0 with CAP_FOWNER", net, "echo 'descr fowner' > $N/ctl", rightsEACCES)
	fails(fowner, "uid 0 with CAP_FOWNER", net, "chgrp 0 $N", rightsEPERM)
	rightsWantStat(t, net, "1000 2000 704")
	chown := []string{"--bounding-set=-all,+chown", "--inh-caps=-all"}
	ok(chown, "uid 0 with CAP_CHOWN", net, "chown 1003:1003 $N")
	fails(chown, "uid 0 with CAP_CHOWN", net, "chmod 0700 $N", rightsEPERM)
	rightsWantStat(t, net, "1003 1003 704")
	// A uid other than 0 holding CAP_DAC_OVERRIDE (ambient) overrides too.
	user := []string{"--reuid=1002", "--regid=1002", "--clear-groups", "--inh-caps=+dac_override", "--ambient-caps=+dac_override"}
	ok(user, "uid 1002 with CAP_DAC_OVERRIDE", net, "echo 'descr user dac' > $N/ctl && exec 3<>$N/data")
	fails(user, "uid 1002 with CAP_DAC_OVERRIDE", net, "chmod 0777 $N", rightsEPERM)
	// Root with its capabilities may still do everything.
	rightsOK(t, rightsRoot, net, "chown 1000:2000 $N && chmod 0700 $N && echo 'descr root' > $N/ctl && exec 3<>$N/data && cat $N/ports >/dev/null")
	rightsWantStat(t, net, "1000 2000 700")
	if got := keyValue(t, filepath.Join(net, "ctl"), "descr"); got != "root" {
		t.Errorf("descr after root's write = %q, want %q", got, "root")
	}
}

// A new network or host drops x (manage) for group and others: with the
// usual umask 022 mkdir gives 0744, so another user cannot change the
// policy, detach an interface or rmdir it; `chmod g+x` grants it.
func TestRightsMkdirKeepsManage(t *testing.T) {
	d := startMnet(t)
	net, host := d.path("ipn", "lab"), d.path("mhost", "rightsm")
	if out, err := shAs(t, rightsOwner, 15*time.Second, fmt.Sprintf("umask 022 && mkdir %q %q", net, host)); err != nil {
		t.Fatalf("mkdir as uid 1000: %v\n%s", err, out)
	}
	rightsWantStat(t, net, "1000 1000 744")
	rightsWantStat(t, host, "1000 1000 744")
	member := &cred{1001, 1001, []int{1000}}
	for _, dir := range []string{net, host} {
		rightsFails(t, member, dir, "echo 'descr stranger' > $N/ctl", rightsEACCES)
		rightsFails(t, rightsOther, dir, "echo 'descr stranger' > $N/ctl", rightsEACCES)
		rightsFails(t, rightsOther, dir, "rmdir $N", rightsEACCES)
		rightsOK(t, rightsOther, dir, "cat $N/ctl >/dev/null") // r is still there
	}
	rightsOK(t, rightsOther, net, "exec 3<$N/data") // so is receiving; w is not
	rightsFails(t, rightsOther, net, "exec 3>$N/data", rightsEACCES)
	// The owner grants x to its group with chmod.
	if out, err := shAs(t, rightsOwner, 15*time.Second, fmt.Sprintf("chmod g+x %q %q", net, host)); err != nil {
		t.Fatalf("chmod g+x as the owner: %v\n%s", err, out)
	}
	rightsWantStat(t, net, "1000 1000 754")
	rightsOK(t, member, net, "echo 'descr by the group' > $N/ctl")
	rightsOK(t, member, host, "echo 'inet 127.0.0.1' > $N/ctl")
	rightsFails(t, rightsOther, net, "echo 'descr stranger' > $N/ctl", rightsEACCES)
}
