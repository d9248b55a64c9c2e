// SPDX-License-Identifier: BSD-3-Clause

// Package logdest opens the daemon's log: standard error (in the
// foreground, and under systemd, whose journal reads it), syslog (a detached
// daemon with no terminal: journald and syslog daemons read /dev/log), or a
// file.
//
// A record is one line of key=value text. Where a log daemon stamps the
// time and keeps the priority (syslog, the journal), the line carries no
// time and says its priority the way that daemon reads it.
package logdest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Syslog is the destination name that means the system log.
const Syslog = "syslog"

// DevLog is where the system log listens.
const DevLog = "/dev/log"

// Open returns a logger for dest: "" is standard error, Syslog the system
// log, anything else a file appended to. The closer releases what was
// opened. A file that cannot be opened is an error; a system log that is
// not listening is not (lines are dropped until it is).
func Open(dest string, level slog.Level) (*slog.Logger, io.Closer, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch dest {
	case "":
		if stderrIsJournal() {
			return slog.New(newPriorityHandler(journalSink{w: os.Stderr}, opts)), io.NopCloser(nil), nil
		}
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), io.NopCloser(nil), nil
	case Syslog:
		w := newSyslogWriter(DevLog, "mnet")
		return slog.New(newPriorityHandler(w, opts)), w, nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("log: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, opts)), f, nil
}

// Listening reports whether a system log takes lines at addr (DevLog):
// nil, or why not. Lines sent where nothing listens are lost.
func Listening(addr string) error {
	c, err := net.Dial("unixgram", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// Syslog facility and severities (RFC 5424).
const (
	facilityDaemon = 3 << 3
	sevErr         = 3
	sevWarning     = 4
	sevInfo        = 6
	sevDebug       = 7
)

func severity(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return sevErr
	case l >= slog.LevelWarn:
		return sevWarning
	case l >= slog.LevelInfo:
		return sevInfo
	}
	return sevDebug
}

// stderrIsJournal reports whether standard error is systemd's journal:
// systemd then names the stream in JOURNAL_STREAM as DEVICE:INODE.
func stderrIsJournal() bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	fi, err := os.Stderr.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && v == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// sink takes one formatted record with its severity.
type sink interface {
	send(sev int, msg []byte)
}

// journalSink writes lines with the "<N>" priority prefix the journal
// reads on a service's standard error (sd-daemon(3)).
type journalSink struct{ w io.Writer }

func (j journalSink) send(sev int, msg []byte) {
	j.w.Write(fmt.Appendf(nil, "<%d>%s\n", sev, bytes.TrimRight(msg, "\n")))
}

// syslogWriter sends one datagram per line to a syslog socket, connecting
// (again) when needed, so a syslog daemon restarted under mnet loses only
// the lines logged while it was away.
type syslogWriter struct {
	mu   sync.Mutex
	addr string
	tag  string
	conn net.Conn
}

func newSyslogWriter(addr, tag string) *syslogWriter {
	return &syslogWriter{addr: addr, tag: tag}
}

func (w *syslogWriter) send(sev int, msg []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := fmt.Appendf(nil, "<%d>%s %s[%d]: %s", facilityDaemon|sev,
		time.Now().Format(time.Stamp), w.tag, os.Getpid(), bytes.TrimRight(msg, "\n"))
	for range 2 {
		if w.conn == nil {
			c, err := net.Dial("unixgram", w.addr)
			if err != nil {
				return // nobody listens: the line is lost
			}
			w.conn = c
		}
		if _, err := w.conn.Write(line); err == nil {
			return
		}
		w.conn.Close()
		w.conn = nil
	}
}

func (w *syslogWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	return nil
}

// priorityHandler formats records as text without the time (the log
// daemon stamps it) and hands each to its sink with the severity of its
// level.
type priorityHandler struct {
	f    *formatter
	text slog.Handler // writes into f.buf
}

// formatter is the buffer a record is formatted into, shared by the
// handlers WithAttrs and WithGroup derive.
type formatter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	sink sink
}

func (f *formatter) Write(p []byte) (int, error) { return f.buf.Write(p) }

func newPriorityHandler(s sink, opts *slog.HandlerOptions) *priorityHandler {
	o := *opts
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	f := &formatter{sink: s}
	return &priorityHandler{f: f, text: slog.NewTextHandler(f, &o)}
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	h.f.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	h.f.sink.send(severity(r.Level), h.f.buf.Bytes())
	return nil
}

func (h *priorityHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &priorityHandler{f: h.f, text: h.text.WithAttrs(attrs)}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{f: h.f, text: h.text.WithGroup(name)}
}
