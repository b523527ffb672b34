package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/finderbot/finderbot/engine/config"
	"github.com/finderbot/finderbot/engine/redact"
	"github.com/finderbot/finderbot/rules"
)

// Run is `finderbot run`: it loads the configuration at path, runs the
// daemon until ctx is cancelled (SIGINT/SIGTERM in main), reloads the rules
// on SIGHUP, and stops cleanly. Logs go to logOut; login QR codes are drawn
// on qrOut. An error that stops the daemon from starting is returned as one
// line, for the caller to print once.
func Run(ctx context.Context, path string, logOut, qrOut io.Writer) error {
	cfg, err := config.Load(path)
	if err != nil {
		return oneLine(err)
	}
	log := NewLogger(logOut, cfg.Log)
	d, err := New(cfg, Options{Logger: log, QR: qrOut})
	if err != nil {
		return oneLine(err)
	}
	if err := d.Start(ctx); err != nil {
		d.Close()
		return oneLine(err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading rules")
			d.Reload() // a failed reload is logged and keeps the old rules
		case err := <-d.Fatal():
			log.Error("stopping: the store is damaged", "err", err)
			d.Close()
			return oneLine(err)
		case <-ctx.Done():
			log.Info("shutting down")
			err := d.Close()
			if err != nil {
				return fmt.Errorf("engine: shutdown: %w", err)
			}
			log.Info("stopped")
			return nil
		}
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
