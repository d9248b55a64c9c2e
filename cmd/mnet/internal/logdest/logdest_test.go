// SPDX-License-Identifier: BSD-3-Clause

package logdest

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSyslogLines(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "log")
	w := newSyslogWriter(addr, "mnet")
	defer w.Close()
	log := slog.New(newPriorityHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))

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

// Under systemd, standard error is the journal, which reads a "<N>" prefix
// as the line's priority.
func TestJournalLines(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(newPriorityHandler(journalSink{w: &out}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	log.Info("mounted", "mountpoint", "/mnt/mnet")
	log.Warn("careful")
	log.Error("failed")
	log.Debug("hidden")
	want := "<6>level=INFO msg=mounted mountpoint=/mnt/mnet\n<4>level=WARN msg=careful\n<3>level=ERROR msg=failed\n"
	if out.String() != want {
		t.Errorf("journal lines\n%s\nwant\n%s", out.String(), want)
	}
}

// JOURNAL_STREAM names standard error only when it is that very stream.
func TestStderrIsJournal(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !stderrIsJournal() {
		t.Error("JOURNAL_STREAM naming standard error not recognised")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if stderrIsJournal() {
		t.Error("JOURNAL_STREAM naming another stream taken for standard error")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if stderrIsJournal() {
		t.Error("no JOURNAL_STREAM taken for the journal")
	}
}

// Listening tells a system log that takes lines from none.
func TestListening(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "log")
	if err := Listening(addr); err == nil {
		t.Error("Listening on a path where nothing is: nil")
	}
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Listening(addr); err != nil {
		t.Errorf("Listening on a system log socket: %v", err)
	}
	ln.Close()
	if err := Listening(addr); err == nil {
		t.Error("Listening on a socket nobody serves any more: nil")
	}
}
