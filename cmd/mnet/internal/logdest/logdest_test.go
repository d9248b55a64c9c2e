package logdest

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSyslogLines(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "log")
	w := newSyslogWriter(addr, "mnet")
	defer w.Close()
	log := slog.New(newSyslogHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// Nobody listens yet: the line is dropped, nothing fails.
	log.Info("before the log daemon")

	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	log.With("mountpoint", "/mnt/mnet").Info("mounted", "pid", 7)
	log.Error("failed", "err", "boom")
	log.Debug("detail")

	pid := fmt.Sprintf("mnet[%d]: ", os.Getpid())
	for _, want := range []struct{ pri, text string }{
		{"<30>", "level=INFO msg=mounted mountpoint=/mnt/mnet pid=7"},
		{"<27>", `level=ERROR msg=failed err=boom`},
		{"<31>", "level=DEBUG msg=detail"},
	} {
		ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		line := string(buf[:n])
		if !strings.HasPrefix(line, want.pri) || !strings.Contains(line, pid+want.text) || strings.HasSuffix(line, "\n") {
			t.Errorf("syslog line %q, want %s...%s%s", line, want.pri, pid, want.text)
		}
		if strings.Contains(line, "time=") {
			t.Errorf("syslog line %q carries a time of its own", line)
		}
	}
}

func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mnet.log")
	log, c, err := Open(path, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello")
	log.Debug("not at this level")
	c.Close()
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "msg=hello") || strings.Contains(string(b), "not at this level") {
		t.Errorf("log file:\n%s", b)
	}
	if _, _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir"), slog.LevelInfo); err == nil {
		t.Error("Open of a file in a missing directory succeeded")
	}
}
