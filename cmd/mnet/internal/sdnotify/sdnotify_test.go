// SPDX-License-Identifier: BSD-3-Clause

package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	for _, state := range []string{"READY=1", "STOPPING=1"} {
		if err := Notify(state); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, conn); got != state+"\n" {
			t.Errorf("received %q, want %q", got, state+"\n")
		}
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "mnet-sdnotify-test-" + time.Now().Format("150405.000000000")
	conn := listen(t, "@"+name)
	t.Setenv("NOTIFY_SOCKET", "@"+name)
	if err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1\n" {
		t.Errorf("received %q", got)
	}
}

func TestNotifyWithoutManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify("READY=1"); err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET: %v, want nothing done", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody-listens"))
	if err := Notify("READY=1"); err == nil {
		t.Error("Notify to a missing socket succeeded")
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if err := Notify("READY=1"); err == nil {
		t.Error("Notify to a vsock address succeeded")
	}
}
