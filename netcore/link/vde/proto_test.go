// SPDX-License-Identifier: BSD-3-Clause

package vde

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vdePlugRequest is the request vde_plug (vdeplug 4.0.1, Debian 12) sent to
// vde_switch, as strace showed it: magic, version 3, REQ_NEW_CONTROL for
// any port, the client's data socket and its description.
func vdePlugRequest(t *testing.T) []byte {
	t.Helper()
	head, err := hex.DecodeString("cefaedfe" + "03000000" + "00000000" + "0100")
	if err != nil {
		t.Fatal(err)
	}
	path := make([]byte, sunPathLen)
	copy(path, "/tmp/vdet/sw/.18779-00000")
	return append(append(head, path...), "vdeplug: user=root pid=18779"...)
}

func TestParseVdePlugRequest(t *testing.T) {
	b := vdePlugRequest(t)
	if len(b) != 150 {
		t.Fatalf("request is %d bytes, want the 150 strace saw", len(b))
	}
	r, err := parseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.port != 0 || r.path != "/tmp/vdet/sw/.18779-00000" || r.descr != "vdeplug: user=root pid=18779" {
		t.Fatalf("parsed %+v", r)
	}
	if got := portName(r.descr); got != "vdeplug:_user=root_pid=18779" {
		t.Errorf("portName = %q", got)
	}
}

func TestParseRequestIncomplete(t *testing.T) {
	b := vdePlugRequest(t)
	for _, n := range []int{0, 4, 12, reqFixedLen - 1} {
		if _, err := parseRequest(b[:n]); !errors.Is(err, errShort) {
			t.Errorf("%d bytes: %v, want errShort", n, err)
		}
	}
	// The fixed part alone is a request without a description.
	r, err := parseRequest(b[:reqFixedLen])
	if err != nil || r.descr != "" || portName(r.descr) != "-" {
		t.Errorf("no description: %+v, %v", r, err)
	}
}

func TestParseRequestRefusals(t *testing.T) {
	cases := []struct {
		name string
		edit func(b []byte)
		want string
	}{
		{"magic", func(b []byte) { b[0] = 0 }, "magic"},
		{"version 2", func(b []byte) { b[4] = 2 }, "version"},
		{"type", func(b []byte) { b[8] = 5 }, "type"},
		{"family", func(b []byte) { b[12] = 2 }, "family"},
		{"empty path", func(b []byte) { b[14] = 0 }, "no data socket"},
		{"relative path", func(b []byte) { b[14] = 't' }, "absolute"},
		{"unterminated", func(b []byte) {
			for i := 14; i < 14+sunPathLen; i++ {
				b[i] = 'a'
			}
			b[14] = '/'
		}, "terminated"},
	}
	for _, c := range cases {
		b := vdePlugRequest(t)
		c.edit(b)
		_, err := parseRequest(b)
		if err == nil || errors.Is(err, errShort) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
	// A requested port number is read (and left to the switch).
	b := vdePlugRequest(t)
	b[9] = 7
	if r, err := parseRequest(b); err != nil || r.port != 7 {
		t.Errorf("port 7: %+v, %v", r, err)
	}
}

func TestSockaddr(t *testing.T) {
	b, err := sockaddr("/run/mnet/vde/lab/001.mnet")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 110 || !bytes.Equal(b[:2], []byte{1, 0}) || string(b[2:28]) != "/run/mnet/vde/lab/001.mnet" || b[28] != 0 {
		t.Fatalf("sockaddr = %x", b)
	}
	if _, err := sockaddr("/" + strings.Repeat("a", 107)); err == nil {
		t.Error("a path that leaves no room for the NUL is accepted")
	}
}

func TestPortName(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "-",
		"   ":                      "-",
		"qemu":                     "qemu",
		"a  b\tc\n":                "a_b_c",
		"  lead and trail  ":       "lead_and_trail",
		"ctl\x00\x01bytes\xff\xfe": "ctl_bytes",
		strings.Repeat("x", 100):   strings.Repeat("x", maxNameLen),
	} {
		if got := portName(in); got != want {
			t.Errorf("portName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDirMode(t *testing.T) {
	for mode, want := range map[uint32]uint32{
		0o777: 0o1777, 0o750: 0o1770, 0o700: 0o1700, 0o711: 0o1700, 0o604: 0o1707, 0o000: 0o1000,
	} {
		if got := dirMode(mode); got != want {
			t.Errorf("dirMode(%o) = %o, want %o", mode, got, want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(vdePlugRequest(&testing.T{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err == nil && (r.path == "" || r.path[0] != '/' || strings.IndexByte(r.path, 0) >= 0) {
			t.Fatalf("accepted path %q", r.path)
		}
		if n := portName(r.descr); n == "" || len(n) > maxNameLen || strings.ContainsAny(n, " \t\n") {
			t.Fatalf("portName %q", n)
		}
	})
}

// A client's capabilities are read when it connects: here the test
// itself is the client.
func TestPeerCredCaps(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "ctl"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("unix", filepath.Join(dir, "ctl"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cred, err := peerCred(conn)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Pid != uint32(os.Getpid()) || !cred.CapsKnown || !cred.GroupsKnown {
		t.Fatalf("peerCred = %+v, want this process with capabilities and groups known", cred)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			want, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if cred.CapEff != want {
		t.Errorf("peer's CapEff %#x, want this process's %#x", cred.CapEff, want)
	}
}
