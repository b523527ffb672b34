package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/rules"
)

// Run is `finderbot run`: it loads the configuration at path, runs the
// daemon until ctx is cancelled (SIGINT/SIGTERM in main), reloads the rules
// whenever reload delivers (SIGHUP; main registers it before anything else,
// so that one sent during start-up is applied once the daemon runs), and
// stops within the configured shutdown_timeout. Logs go to logOut. Login
// QR codes are drawn on logOut too when the log is text, each in one
// piece: no log line is written while one is drawn. With log.format json
// they are drawn on qrOut instead, so that logOut holds JSON lines only.
// An error that stops the daemon from starting is returned as one line,
// for the caller to print once; so is a shutdown that did not finish in
// time, naming what it was still waiting for.
//
// Under systemd (Type=notify, NOTIFY_SOCKET set) Run reports READY=1 once
// the daemon has started — store open, admin API listening, plugins
// started, every account's login under way — and STOPPING=1 when it
// begins to shut down.
func Run(ctx context.Context, path string, logOut, qrOut io.Writer, reload <-chan os.Signal) error {
	cfg, err := config.Load(path)
	if err != nil {
		return oneLine(err)
	}
	logW := &lockedWriter{w: logOut}
	var qrW io.Writer = logW
	if cfg.Log.Format == "json" {
		qrW = &lockedWriter{w: qrOut}
	}
	log := NewLogger(logW, cfg.Log)
	d, err := New(cfg, Options{Logger: log, QR: qrW})
	if err != nil {
		return oneLine(err)
	}
	if err := d.Start(ctx); err != nil {
		d.Close()
		return oneLine(err)
	}
	status := fmt.Sprintf("running: accounts %d, admin API off", len(d.order))
	if addr := d.AdminAddr(); addr != "" {
		status = fmt.Sprintf("running: accounts %d, admin API on %s", len(d.order), addr)
	}
	notify(log, daemon.SdNotifyReady+"\nSTATUS="+status)
	for {
		select {
		case <-reload:
			log.Info("SIGHUP: reloading rules")
			d.rules.requestReload() // however slow, it never delays a stop
		case err := <-d.Fatal():
			log.Error("stopping: the store is damaged", "err", err)
			_ = shutdown(log, d, cfg.ShutdownTimeout) // the damage is the error to report
			return oneLine(err)
		case <-ctx.Done():
			return shutdown(log, d, cfg.ShutdownTimeout)
		}
	}
}

// shutdown closes d, giving up after timeout: a stop must end the process
// whatever is stuck, saying what it was stuck on.
func shutdown(log *slog.Logger, d *Daemon, timeout time.Duration) error {
	log.Info("shutting down", "timeout", timeout)
	notify(log, daemon.SdNotifyStopping)
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-closed:
		if err != nil {
			return fmt.Errorf("engine: shutdown: %w", err)
		}
		log.Info("stopped")
		return nil
	case <-t.C:
		waiting := d.closingStep()
		if d.rules.reloadRunning() {
			waiting += "; a rule reload"
		}
		log.Error("shutdown timed out; exiting without waiting any longer", "timeout", timeout, "waiting_for", waiting)
		return fmt.Errorf("engine: shutdown did not finish within shutdown_timeout (%v); still waiting for %s", timeout, waiting)
	}
}

// oneLine returns err with its message on one line. A refused start-up is
// read among log lines, where the rule compiler's source excerpt and caret
// (kept for `finderbot check`) or a joined error's later lines would read as
// unrelated output; the file:line:col is enough to find the mistake. The
// original error stays reachable with errors.As.
func oneLine(err error) error {
	orig := err.Error()
	msg := orig
	var le *rules.LoadError
	if errors.As(err, &le) {
		flat := make([]string, len(le.Problems))
		for i, p := range le.Problems {
			p.Source = ""
			flat[i] = p.String()
		}
		msg = strings.Replace(msg, le.Error(), "rules: "+strings.Join(flat, "; "), 1)
	}
	if strings.Contains(msg, "\n") {
		var parts []string
		for _, l := range strings.Split(msg, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				parts = append(parts, l)
			}
		}
		msg = strings.Join(parts, "; ")
	}
	if msg == orig {
		return err
	}
	return &lineError{msg, err}
}

// lineError is an error whose message was put on one line by oneLine.
type lineError struct {
	msg string
	err error
}

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return e.err }

// NewLogger returns the daemon's structured logger for the log settings.
// Every record goes through a redact.Handler with a Set of its own; a
// daemon given this logger registers its secrets in that Set, so that the
// lines its caller logs are filtered as well.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(redact.NewHandler(h, redact.New()))
}

// notify tells systemd about the daemon's state when it runs the daemon
// as a Type=notify service; elsewhere it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("cannot notify systemd", "state", state, "err", err)
	}
}

// lockedWriter serialises the writes of the log and of the QR codes that
// share one stream: each Write goes out whole, so a QR code, drawn in one
// Write, is never cut by a log line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
