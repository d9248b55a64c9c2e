// Package logdest opens the daemon's log: standard error (in the
// foreground, and under systemd, whose journal reads it), syslog (a detached
// daemon with no terminal: journald and syslog daemons read /dev/log), or a
// file.
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
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), io.NopCloser(nil), nil
	case Syslog:
		w := newSyslogWriter(DevLog, "mnet")
		return slog.New(newSyslogHandler(w, opts)), w, nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("log: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, opts)), f, nil
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

// syslogWriter sends one datagram per line to a syslog socket, connecting
// (again) when needed, so a syslog daemon restarted under mnet loses only
// the lines logged while it was away.
type syslogWriter struct {
	mu   sync.Mutex
	addr string
	tag  string
	conn net.Conn
	buf  bytes.Buffer // the record being formatted
}

func newSyslogWriter(addr, tag string) *syslogWriter {
	return &syslogWriter{addr: addr, tag: tag}
}

// Write collects the text of the record being handled (see Handle).
func (w *syslogWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }

// send writes msg with severity sev; called with mu held.
func (w *syslogWriter) send(sev int, msg []byte) {
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

// syslogHandler formats records as text (without the time, which syslog
// adds) and sends each with the severity of its level.
type syslogHandler struct {
	w    *syslogWriter
	text slog.Handler // writes into w.buf
}

func newSyslogHandler(w *syslogWriter, opts *slog.HandlerOptions) *syslogHandler {
	o := *opts
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return &syslogHandler{w: w, text: slog.NewTextHandler(w, &o)}
}

func (h *syslogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *syslogHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	h.w.send(severity(r.Level), h.w.buf.Bytes())
	return nil
}

func (h *syslogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &syslogHandler{w: h.w, text: h.text.WithAttrs(attrs)}
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	return &syslogHandler{w: h.w, text: h.text.WithGroup(name)}
}
